//! Client secrets and other high-entropy random values. Security-critical.
//!
//! A client secret carries 256 bits from the OS's CSPRNG, so a SHA-256 digest at rest is enough:
//! nobody can guess a preimage, and a hash that costs a microsecond (instead of argon2's tens of
//! milliseconds) keeps the token endpoint fast. Passwords, which people choose, use argon2id
//! ([`crate::password`]). Comparisons are constant-time.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// `n` random bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG only fails when the OS has no entropy source at all; there is no safe
    // fallback, so that is the one place the process stops.
    #[allow(clippy::expect_used)]
    SystemRandom::new().fill(&mut buf).expect("the OS random number generator failed");
    buf
}

/// A new client secret: 32 random bytes, base64url (43 characters). It never starts with
/// `-`, which command lines would take for an option (`-p -abc...`).
pub fn new_client_secret() -> String {
    loop {
        let s = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        if !s.starts_with('-') {
            return s;
        }
    }
}

/// A random opaque token (refresh tokens, ids), 256 bits, base64url.
pub fn new_opaque_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Does `presented` hash to `stored`? Constant-time in the digest comparison.
pub fn digest_matches(presented: &str, stored: &[u8; 32]) -> bool {
    sha256(presented.as_bytes()).ct_eq(stored).into()
}

/// The first three characters of a secret, which Azure shows as `hint`.
pub fn hint(secret: &str) -> String {
    secret.chars().take(3).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_distinct_and_match_only_themselves() {
        let a = new_client_secret();
        let b = new_client_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let stored = sha256(a.as_bytes());
        assert!(digest_matches(&a, &stored));
        assert!(!digest_matches(&b, &stored));
        assert!(!digest_matches(&a[..42], &stored));
    }
}
