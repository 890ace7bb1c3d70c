//! The master key wrapped under a passphrase, for a backup that carries its own key
//! (`mlgate backup --with-master-key`): argon2id (64 MiB, 3 passes) turns the passphrase and a
//! random salt into an AES-256-GCM key that seals the encoded master key. Without the
//! passphrase the wrapped key is as good as random bytes; a wrong passphrase fails the tag.

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

const AAD: &[u8] = b"mlgate master key escrow v1";
/// Passphrases shorter than this are refused: the wrapped key sits in backup files.
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscrowError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    #[error("the passphrase does not open the wrapped master key")]
    WrongPassphrase,
    #[error("the wrapped master key is damaged: {0}")]
    Damaged(String),
}

/// What is stored: every parameter needed to derive the key again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WrappedKey {
    pub kdf: String,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    pub salt: String,
    pub nonce: String,
    pub ciphertext: String,
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    m_kib: u32,
    t: u32,
    p: u32,
) -> Result<LessSafeKey, EscrowError> {
    let params =
        Params::new(m_kib, t, p, Some(32)).map_err(|e| EscrowError::Damaged(e.to_string()))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| EscrowError::Damaged(e.to_string()))?;
    let unbound =
        UnboundKey::new(&AES_256_GCM, &key).map_err(|_| EscrowError::Damaged("key".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Wraps the encoded master key (the text of `master.key`).
pub fn wrap(master_encoded: &str, passphrase: &str) -> Result<WrappedKey, EscrowError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(EscrowError::WeakPassphrase);
    }
    let (m_kib, t, p) = (64 * 1024, 3, 1);
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| EscrowError::Damaged("random".into()))?;
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| EscrowError::Damaged("random".into()))?;
    let key = derive(passphrase, &salt, m_kib, t, p)?;
    let mut buf = master_encoded.trim().as_bytes().to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut buf)
        .map_err(|_| EscrowError::Damaged("seal".into()))?;
    Ok(WrappedKey {
        kdf: "argon2id".into(),
        m_kib,
        t,
        p,
        salt: STANDARD.encode(salt),
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(buf),
    })
}

/// The encoded master key inside `w`.
pub fn unwrap(w: &WrappedKey, passphrase: &str) -> Result<String, EscrowError> {
    if w.kdf != "argon2id" {
        return Err(EscrowError::Damaged(format!("unknown KDF {}", w.kdf)));
    }
    // Bounds on what a crafted file could make us allocate or spin on.
    if w.m_kib > 1024 * 1024 || w.t > 16 || w.p > 16 {
        return Err(EscrowError::Damaged("KDF parameters out of range".into()));
    }
    let b64 = |s: &str| STANDARD.decode(s).map_err(|e| EscrowError::Damaged(e.to_string()));
    let (salt, nonce, mut ct) = (b64(&w.salt)?, b64(&w.nonce)?, b64(&w.ciphertext)?);
    let key = derive(passphrase, &salt, w.m_kib, w.t, w.p)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce)
        .map_err(|_| EscrowError::Damaged("nonce".into()))?;
    let plain = key
        .open_in_place(nonce, Aad::from(AAD), &mut ct)
        .map_err(|_| EscrowError::WrongPassphrase)?;
    String::from_utf8(plain.to_vec()).map_err(|_| EscrowError::Damaged("not text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap() {
        let master = crate::keys::MasterKey::generate_encoded();
        let w = wrap(&master, "correct horse battery").unwrap();
        assert!(!w.ciphertext.contains(&master));
        assert_eq!(unwrap(&w, "correct horse battery").unwrap(), master);
        assert_eq!(unwrap(&w, "correct horse batterY"), Err(EscrowError::WrongPassphrase));
        assert_eq!(wrap(&master, "short").unwrap_err(), EscrowError::WeakPassphrase);
    }
}
