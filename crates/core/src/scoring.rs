//! The scoring gate: who may score which service, decided from memory alone.
//!
//! Each deployed service has an entry holding its [`AuthMode`] and what that mode checks
//! against: keyed hashes (HMAC-SHA256 under a per-process key) of its two keys, the
//! audience and issuer of its service tokens, or the RBAC scope for identity tokens. Entries
//! are replaced whole when a service is deployed, updated or has a key regenerated, so a
//! scoring request never touches the store or the control plane, and scoring goes on while
//! they are down.
//!
//! Verifying an ES256 service token costs ~66 us, as much as scoring a small model; a verified
//! token is remembered (by its SHA-256) until it expires, so the signature is checked once per
//! token rather than once per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use subtle::ConstantTimeEq;

use crate::access::Access;
use crate::authority::Authority;
use crate::ids::WorkspaceId;
use crate::rbac::Scope;
use crate::secrets::sha256;
use crate::tokens::{TokenError, VerifiedCache, expired, normalize_resource};

/// The audience of identity tokens accepted for scoring (Azure ML's).
pub const SCORING_IDENTITY_AUDIENCE: &str = "https://ml.azure.com";
/// Verified service tokens remembered at most; the cache starts over when full.
const TOKEN_CACHE_ENTRIES: usize = 100_000;

/// Why a scoring request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the service does not exist")]
    UnknownService,
    #[error("the request has no 'Authorization: Bearer' credential")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    /// A valid identity without `score/action`; the message names the action and scope.
    #[error("{0}")]
    Forbidden(String),
}

/// What the gate needs to know about one service. `keys` are the plaintext keys, hashed on
/// [`ScoringGate::install`] and not kept.
pub struct GateConfig<'a> {
    pub mode: AuthMode,
    pub workspace: WorkspaceId,
    pub scope: Scope,
    /// What an identity token's holder needs at `scope`.
    pub score_action: &'static str,
    /// The scoring URI: the audience of the service's tokens.
    pub scoring_uri: String,
    pub keys: [&'a str; 2],
}

struct Entry {
    mode: AuthMode,
    workspace: WorkspaceId,
    scope: Scope,
    score_action: &'static str,
    scoring_uri: String,
    key_tags: [hmac::Tag; 2],
}

pub struct ScoringGate {
    authority: Arc<Authority>,
    access: Arc<Access>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    tag_key: hmac::Key,
    /// Verified service tokens: the service (lower case) and workspace each was checked for.
    tokens: VerifiedCache<(String, WorkspaceId)>,
}

impl ScoringGate {
    pub fn new(authority: Arc<Authority>, access: Arc<Access>) -> Result<Self, crate::Error> {
        let tag_key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| crate::Error::Internal("the system random generator failed".into()))?;
        Ok(Self {
            authority,
            access,
            entries: RwLock::default(),
            tag_key,
            tokens: VerifiedCache::new(TOKEN_CACHE_ENTRIES),
        })
    }

    /// Puts a service's current authentication in force (replacing what was there).
    pub fn install(&self, service: &str, cfg: GateConfig<'_>) {
        let entry = Arc::new(Entry {
            mode: cfg.mode,
            workspace: cfg.workspace,
            scope: cfg.scope,
            score_action: cfg.score_action,
            scoring_uri: cfg.scoring_uri,
            key_tags: cfg.keys.map(|k| hmac::sign(&self.tag_key, k.as_bytes())),
        });
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_ascii_lowercase(), entry);
    }

    pub fn remove(&self, service: &str) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&service.to_ascii_lowercase());
    }

    /// Forgets the verified service tokens (signing keys changed: a token signed by a
    /// removed key must be verified again, and fail).
    pub fn forget_verified_tokens(&self) {
        self.tokens.clear();
    }

    /// The services the gate admits (lower case), for the reconciliation.
    pub fn services(&self) -> Vec<String> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    fn entry(&self, service: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&service.to_ascii_lowercase())
            .cloned()
    }

    /// Decides a scoring request from its `Authorization` header (raw bytes, as received).
    pub fn check(&self, service: &str, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let entry = self.entry(service).ok_or(Denied::UnknownService)?;
        if entry.mode == AuthMode::None {
            return Ok(());
        }
        let credential = bearer(authorization.ok_or(Denied::Missing)?)?;
        match entry.mode {
            AuthMode::None => Ok(()),
            AuthMode::Key => {
                // One keyed hash, compared with both keys' in constant time (both, always).
                let tag = hmac::sign(&self.tag_key, credential);
                let a = tag.as_ref().ct_eq(entry.key_tags[0].as_ref());
                let b = tag.as_ref().ct_eq(entry.key_tags[1].as_ref());
                if bool::from(a | b) {
                    Ok(())
                } else {
                    Err(Denied::Invalid("the key is not a key of this service".into()))
                }
            }
            AuthMode::Token => self.check_service_token(service, &entry, credential),
            AuthMode::Identity => {
                let token = std::str::from_utf8(credential)
                    .map_err(|_| Denied::Invalid(TokenError::Malformed.to_string()))?;
                let caller =
                    self.authority.verify(token).map_err(|e| Denied::Invalid(e.to_string()))?;
                if normalize_resource(&caller.claims.aud) != SCORING_IDENTITY_AUDIENCE {
                    return Err(Denied::Invalid(format!(
                        "the token's audience is not {SCORING_IDENTITY_AUDIENCE}"
                    )));
                }
                self.access
                    .authorize(&caller, entry.score_action, &entry.scope)
                    .map_err(|e| Denied::Forbidden(e.to_string()))
            }
        }
    }

    fn check_service_token(
        &self,
        service: &str,
        entry: &Entry,
        credential: &[u8],
    ) -> Result<(), Denied> {
        let now = self.authority.clock().now().unix_timestamp();
        let digest = sha256(credential);
        let service = service.to_ascii_lowercase();
        if let Some((exp, (svc, ws))) = self.tokens.get(&digest)
            && svc == service
            && ws == entry.workspace
        {
            return if expired(exp, now) {
                Err(Denied::Invalid(TokenError::Expired.to_string()))
            } else {
                Ok(())
            };
        }
        let token = std::str::from_utf8(credential)
            .map_err(|_| Denied::Invalid(TokenError::Malformed.to_string()))?;
        let claims = self
            .authority
            .verify_service_token(token, entry.workspace, &entry.scoring_uri)
            .map_err(|e| Denied::Invalid(e.to_string()))?;
        self.tokens.insert(digest, claims.exp, (service, entry.workspace));
        Ok(())
    }
}

/// The credential of `Authorization: Bearer <credential>`: exactly one space after the scheme,
/// and no whitespace or control characters in the credential (a key with a stray space is a
/// different key, not the same one tidied up).
fn bearer(header: &[u8]) -> Result<&[u8], Denied> {
    let wrong = || Denied::Invalid("the Authorization header is not 'Bearer <credential>'".into());
    if header.len() < 7 || !header[..7].eq_ignore_ascii_case(b"bearer ") {
        return Err(wrong());
    }
    let credential = &header[7..];
    if credential.is_empty() || credential.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(wrong());
    }
    Ok(credential)
}

/// Who may score a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone who can reach the scoring URI (an instance's default).
    None,
    /// `Authorization: Bearer <primary or secondary key>` (a cluster's default).
    Key,
    /// `Authorization: Bearer <token from get-token>`: a short-lived JWT for this one service.
    Token,
    /// `Authorization: Bearer <access token from the authority>` for the workspace audience,
    /// and the RBAC action `services/score/action` on the service (newer Azure ML's
    /// `aad_token`).
    Identity,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Key => "key",
            AuthMode::Token => "token",
            AuthMode::Identity => "aad_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(AuthMode::None),
            "key" => Some(AuthMode::Key),
            "token" | "aml_token" => Some(AuthMode::Token),
            "aad_token" => Some(AuthMode::Identity),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn only_a_clean_bearer_credential_is_taken() {
        assert_eq!(bearer(b"Bearer abc").unwrap(), b"abc");
        assert_eq!(bearer(b"bearer abc").unwrap(), b"abc");
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer  abc",
            b"Bearer abc ",
            b"Bearer ab c",
            b"Basic abc",
            b"Key abc",
            b"abc",
            b"Bearer ab\tc",
        ] {
            assert!(bearer(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
