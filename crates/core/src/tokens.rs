//! Access-token and id-token claims, and verification of access tokens. Security-critical.
//!
//! Verification accepts ES256 only (so `alg: none` and HS256-with-the-public-key forgeries fail
//! before any key is touched), looks the key up by `kid` among the published keys, and checks
//! `exp`/`nbf` against the injected clock, `aud` against the audiences this service accepts and
//! `iss` against the issuers of known tenants.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keys::KeySet;

/// Tokens larger than this are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Tolerated clock skew between issuer and relying party.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// The claims of an mlgate access token, in Azure AD's names. v1 tokens carry `appid`,
/// v2 tokens `azp`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appidacr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azpacr: Option<String>,
    /// `app` or `user`.
    pub idtyp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_displayname: Option<String>,
    pub oid: String,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

impl AccessClaims {
    /// The client application the token was issued to.
    pub fn client_app_id(&self) -> &str {
        self.appid.as_deref().or(self.azp.as_deref()).unwrap_or_default()
    }
}

/// OpenID Connect id_token claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub sub: String,
    pub oid: String,
    pub tid: String,
    pub ver: String,
    pub name: String,
    pub preferred_username: String,
    /// v1 id_tokens name the user as `upn` and `unique_name` too (ADAL reads `upn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Why a bearer token was refused. Mapped to `WWW-Authenticate: Bearer error="invalid_token"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not yet valid")]
    NotYetValid,
    #[error("the token's audience is not accepted here")]
    Audience,
    #[error("the token's issuer is not accepted here")]
    Issuer,
}

/// Checks the signature of an ES256 JWS against the published keys and decodes its claims;
/// time, audience and issuer are the caller's to check.
fn decode_es256<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &KeySet,
) -> Result<T, TokenError> {
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::ES256 {
        return Err(TokenError::Algorithm);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;

    // The library checks the algorithm and the signature; time, audience and issuer are
    // checked by the callers against the injected clock and the directory.
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<T>(token, key, &validation).map(|d| d.claims).map_err(|e| {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
            _ => TokenError::Malformed,
        }
    })
}

fn check_times(nbf: i64, exp: i64, now: OffsetDateTime) -> Result<(), TokenError> {
    let now = now.unix_timestamp();
    if now >= exp + CLOCK_SKEW_SECS {
        return Err(TokenError::Expired);
    }
    if now + CLOCK_SKEW_SECS < nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Verifies `token`'s signature and claims. `issuer_ok(iss, tid)` decides the issuer.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    audiences: &HashSet<String>,
    issuer_ok: impl Fn(&str, &str) -> bool,
    now: OffsetDateTime,
) -> Result<AccessClaims, TokenError> {
    let claims: AccessClaims = decode_es256(token, keys)?;
    check_times(claims.nbf, claims.exp, now)?;
    if !audiences.contains(&normalize_resource(&claims.aud)) {
        return Err(TokenError::Audience);
    }
    if !issuer_ok(&claims.iss, &claims.tid) {
        return Err(TokenError::Issuer);
    }
    Ok(claims)
}

/// The claims of a web-service token (`Webservice.get_token()`): issued by a workspace for one
/// service, whose scoring URI is the audience. `ver` is `svc1`, so no access-token parser
/// mistakes it for an access token (and its audience is never an API resource anyway).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceTokenClaims {
    /// `{public url}/workspaces/{workspace id}`.
    pub iss: String,
    /// The service's scoring URI.
    pub aud: String,
    /// The object id of the principal the token was issued to.
    pub sub: String,
    pub tid: String,
    /// The workspace id, so a token outlives neither its service's name nor its workspace.
    pub ws: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub ver: String,
}

pub const SERVICE_TOKEN_VERSION: &str = "svc1";

/// Verifies a web-service token for the service whose scoring URI is `audience` and whose
/// workspace is issuing `issuer`.
pub fn verify_service_token(
    token: &str,
    keys: &KeySet,
    audience: &str,
    issuer: &str,
    now: OffsetDateTime,
) -> Result<ServiceTokenClaims, TokenError> {
    let claims: ServiceTokenClaims = decode_es256(token, keys)?;
    check_times(claims.nbf, claims.exp, now)?;
    if claims.ver != SERVICE_TOKEN_VERSION || claims.aud != audience {
        return Err(TokenError::Audience);
    }
    if claims.iss != issuer {
        return Err(TokenError::Issuer);
    }
    Ok(claims)
}

/// Resource identifiers compare case-insensitively and without a trailing slash, so
/// `https://management.azure.com` and `https://management.azure.com/` name one resource.
pub fn normalize_resource(resource: &str) -> String {
    resource.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Tokens whose signature was verified, remembered by the SHA-256 of their text until they
/// expire, so a hot path checks each token's ES256 signature (~66 us) once rather than on
/// every request. Bounded: it starts over when full. Only verified tokens are inserted, so
/// garbage sent by strangers costs nothing here.
pub struct VerifiedCache<V> {
    max: usize,
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], (i64, V)>>,
}

impl<V: Clone> VerifiedCache<V> {
    pub fn new(max: usize) -> Self {
        Self { max, entries: std::sync::Mutex::default() }
    }

    /// The remembered value and expiry (`exp`, seconds) of a token, by its SHA-256.
    pub fn get(&self, digest: &[u8; 32]) -> Option<(i64, V)> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(digest).cloned()
    }

    pub fn insert(&self, digest: [u8; 32], exp: i64, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max {
            entries.clear();
        }
        entries.insert(digest, (exp, value));
    }

    /// Forgets every token (the keys that signed some may be gone).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a token that expires at `exp` has expired at `now` (seconds), with the skew every
/// verification allows.
pub fn expired(exp: i64, now: i64) -> bool {
    now >= exp + CLOCK_SKEW_SECS
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn the_verified_cache_is_bounded_and_keeps_expiry() {
        let c: VerifiedCache<u8> = VerifiedCache::new(3);
        for i in 0..3u8 {
            c.insert([i; 32], 100 + i64::from(i), i);
        }
        assert_eq!(c.get(&[1; 32]), Some((101, 1)));
        assert_eq!(c.len(), 3);
        // Full: the next insert starts over rather than growing.
        c.insert([9; 32], 200, 9);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&[1; 32]), None);
        assert_eq!(c.get(&[9; 32]), Some((200, 9)));
        assert!(!expired(200, 200 + CLOCK_SKEW_SECS - 1));
        assert!(expired(200, 200 + CLOCK_SKEW_SECS));
    }
}
