//! Token-signing keys and the master key that seals them at rest. Security-critical.
//!
//! Tokens are signed ES256 (ECDSA P-256): every JOSE library verifies it, signing with a cached
//! key pair costs ~22 us against RS256's ~650 us, and tokens are shorter. The private key is
//! stored only sealed with AES-256-GCM under a master key that never enters the database (a
//! file beside it, mode 0600, or `MLGATE_MASTER_KEY`).
//!
//! Rotation keeps three states (see [`KeyState`]): the `next` key is published in JWKS one
//! rotation before it signs anything, and a retired key stays published until every token it
//! signed has expired.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::KeyId;
use crate::records::{KeyState, SigningKeyRecord};
use crate::secrets::{random_bytes, sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key is malformed: {0}")]
    MasterKey(String),
    #[error("a sealed key could not be opened (wrong master key?)")]
    Unseal,
    #[error("key material is malformed: {0}")]
    Malformed(String),
    #[error("no active signing key")]
    NoActiveKey,
    #[error("signing failed")]
    Sign,
}

/// The AES-256-GCM key that seals private keys at rest, and HMAC keys derived from it: for the
/// sign-in pages' cookies (so every node sharing the master key accepts them), for the digests
/// of device user codes at rest, and for signed upload URLs.
pub struct MasterKey(
    LessSafeKey,
    aws_lc_rs::hmac::Key,
    aws_lc_rs::hmac::Key,
    aws_lc_rs::hmac::Key,
    [u8; 32],
);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate_encoded() -> String {
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    }

    /// Parses 32 bytes in base64 (url-safe or standard, padding optional).
    pub fn from_encoded(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
            .map_err(|_| KeyError::MasterKey("not base64".into()))?;
        if bytes.len() != 32 {
            return Err(KeyError::MasterKey(format!("{} bytes, need 32", bytes.len())));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| KeyError::MasterKey("rejected by AES-256-GCM".into()))?;
        let root = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes);
        let derive = |label: &[u8]| {
            let derived = aws_lc_rs::hmac::sign(&root, label);
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref())
        };
        Ok(Self(
            LessSafeKey::new(key),
            derive(b"mlgate web cookies v1"),
            derive(b"mlgate user codes v1"),
            derive(b"mlgate upload urls v1"),
            {
                let tag = aws_lc_rs::hmac::sign(&root, b"mlgate master key check v1");
                let mut check = [0u8; 32];
                check.copy_from_slice(tag.as_ref());
                check
            },
        ))
    }

    /// The keyed digest a device user code is stored and looked up by. A user code has only
    /// ~35 bits, so a plain hash of it could be reversed by trying them all; without the
    /// master key the digest says nothing.
    pub fn user_code_digest(&self, normalized_code: &str) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.2, normalized_code.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// A value that names this key without revealing it (an HMAC of a fixed label): the
    /// store keeps the first node's, so a node started with another key is told so.
    pub fn check_value(&self) -> [u8; 32] {
        self.4
    }

    /// The key that signs upload URLs (`startPendingUpload`'s SAS-like tokens).
    pub fn upload_key(&self) -> &aws_lc_rs::hmac::Key {
        &self.3
    }

    /// The key that signs the sign-in pages' cookies and CSRF tokens.
    pub fn cookie_key(&self) -> &aws_lc_rs::hmac::Key {
        &self.1
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| KeyError::Sign)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < NONCE_LEN {
            return Err(KeyError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal)?;
        let mut buf = ct.to_vec();
        let plain =
            self.0.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }
}

/// A public key as JWKS publishes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub crv: String,
    pub x: String,
    pub y: String,
}

fn split_point(public: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    if public.len() != 65 || public[0] != 4 {
        return Err(KeyError::Malformed("not an uncompressed P-256 point".into()));
    }
    Ok((&public[1..33], &public[33..]))
}

/// RFC 7638 thumbprint of the EC public key: the `kid`.
fn thumbprint(x: &str, y: &str) -> KeyId {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    KeyId(URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes())))
}

/// Generates a new P-256 key, sealed under `master`.
pub fn new_signing_key(
    master: &MasterKey,
    state: KeyState,
    now: OffsetDateTime,
) -> Result<SigningKeyRecord, KeyError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| KeyError::Malformed("key generation failed".into()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| KeyError::Malformed("generated key unreadable".into()))?;
    let public = pair.public_key().as_ref().to_vec();
    let (x, y) = split_point(&public)?;
    let kid = thumbprint(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y));
    let sealed = master.seal(kid.0.as_bytes(), pkcs8.as_ref())?;
    Ok(SigningKeyRecord {
        kid,
        state,
        sealed_private_key: sealed,
        public_key: public,
        created_at: now,
        retired_at: None,
    })
}

/// The active key pair, parsed once and kept: re-parsing per token would cost more than the
/// signature itself.
pub struct Signer {
    kid: KeyId,
    pair: EcdsaKeyPair,
    /// The base64url JWS header, identical for every token this key signs.
    header_b64: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.kid)
    }
}

impl Signer {
    /// Unseals a signing key record (the bench/token-limit.sh baseline signs with it too).
    pub fn open(record: &SigningKeyRecord, master: &MasterKey) -> Result<Self, KeyError> {
        let pkcs8 = master.open(record.kid.0.as_bytes(), &record.sealed_private_key)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| KeyError::Malformed("sealed key is not P-256 PKCS#8".into()))?;
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": record.kid.0});
        Ok(Self {
            kid: record.kid.clone(),
            pair,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            rng: SystemRandom::new(),
        })
    }

    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// A compact JWS (RFC 7515) of `claims`.
    pub fn sign_jwt<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut out = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        out.push_str(&self.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let sig = self.pair.sign(&self.rng, out.as_bytes()).map_err(|_| KeyError::Sign)?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
        Ok(out)
    }
}

/// The keys in force: one signer, every published verification key.
pub struct KeySet {
    pub signer: Arc<Signer>,
    pub verifiers: HashMap<String, DecodingKey>,
    pub jwks: Vec<Jwk>,
}

impl KeySet {
    pub fn load(records: &[SigningKeyRecord], master: &MasterKey) -> Result<Self, KeyError> {
        let active = records
            .iter()
            .filter(|r| r.state == KeyState::Active)
            .max_by_key(|r| r.created_at)
            .ok_or(KeyError::NoActiveKey)?;
        let signer = Arc::new(Signer::open(active, master)?);
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for r in records {
            let (x, y) = split_point(&r.public_key)?;
            let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
            let key = DecodingKey::from_ec_components(&x, &y)
                .map_err(|e| KeyError::Malformed(e.to_string()))?;
            verifiers.insert(r.kid.0.clone(), key);
            jwks.push(Jwk {
                kty: "EC".into(),
                use_: "sig".into(),
                alg: "ES256".into(),
                kid: r.kid.0.clone(),
                crv: "P-256".into(),
                x,
                y,
            });
        }
        Ok(Self { signer, verifiers, jwks })
    }
}

/// The shared, swappable key set: readers take an `Arc` snapshot, a reload swaps it whole.
pub struct KeyRing {
    /// Read by every grant and verification: loaded without a lock, replaced whole.
    current: arc_swap::ArcSwap<KeySet>,
}

impl KeyRing {
    pub fn new(set: KeySet) -> Self {
        Self { current: arc_swap::ArcSwap::from_pointee(set) }
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    pub fn replace(&self, set: KeySet) {
        self.current.store(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn sealed_keys_open_only_with_their_master_key_and_kid() {
        let master = MasterKey::from_encoded(&MasterKey::generate_encoded()).unwrap();
        let other = MasterKey::from_encoded(&MasterKey::generate_encoded()).unwrap();
        let rec =
            new_signing_key(&master, KeyState::Active, crate::clock::SystemClock.now()).unwrap();
        assert!(master.open(rec.kid.0.as_bytes(), &rec.sealed_private_key).is_ok());
        assert!(other.open(rec.kid.0.as_bytes(), &rec.sealed_private_key).is_err());
        assert!(master.open(b"another kid", &rec.sealed_private_key).is_err());
        let set = KeySet::load(std::slice::from_ref(&rec), &master).unwrap();
        assert_eq!(set.signer.kid(), &rec.kid);
        assert_eq!(set.jwks.len(), 1);
        assert!(MasterKey::from_encoded("c2hvcnQ").is_err());
    }
}
