//! The OAuth 2.0 authority: token grants, access-token verification, signing-key rotation.
//!
//! The parts: `grants` (the token endpoint: tenant, resource, client and user
//! authentication, refresh), `issuing` (the claims and the signatures; key rotation),
//! `service_tokens` (a workspace's scoring tokens), `interactive` (device code and
//! authorization code), `errors` (OAuth errors and their AADSTS numbers).
//!
//! Requests arrive here already parsed into [`TokenRequest`] (the server owns form parsing);
//! failures are [`GrantError`]s carrying the OAuth error, Azure's AADSTS code and a message
//! that never contains a secret.

use std::collections::HashSet;
use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::directory::{ClientEntry, Directory};
use crate::error::Error;
use crate::ids::{AppId, ObjectId, TenantId};
use crate::keys::{Jwk, KeyError, KeyRing, KeySet, MasterKey};
use crate::lockout::{CodeLockout, PasswordLockout};
use crate::password::PasswordChecks;
use crate::principal::Principal;
use crate::records::User;
use crate::secrets::sha256;
use crate::tokens::{TokenError, normalize_resource, verify_access_token};

mod errors;
mod grants;
mod interactive;
mod issuing;
mod password_change;
mod service_tokens;

pub use errors::{Aadsts, GrantError, OAuthErrorKind};
pub use interactive::{
    AuthorizeError, AuthorizeParams, AuthorizeRequest, DeviceCodeIssued, DeviceProblem,
    DeviceSignInError, DeviceView, Introspection, is_loopback_redirect,
    normalize_user_code as normalize_code,
};
pub use issuing::rotate_signing_keys;

/// Resources (token audiences) every mlgate server knows: ARM's identifiers, Azure ML's, and
/// the authority's own; the server adds its public URL.
pub const BUILTIN_RESOURCES: &[&str] = &[
    "https://management.azure.com/",
    "https://management.core.windows.net/",
    "https://ml.azure.com",
    "https://login.microsoftonline.com",
];

/// Verified access tokens remembered at most (a few MB); the cache starts over when full.
const VERIFIED_TOKENS: usize = 20_000;

#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// `https://host:port`, no trailing slash: the base of issuers and endpoints.
    pub public_url: String,
    pub access_token_lifetime: Duration,
    /// Sliding: each refresh extends the family by this much.
    pub refresh_token_lifetime: Duration,
    /// Accepted resources, in their canonical spelling (used as `aud`).
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/oauth2/token`: takes `resource`, answers ADAL's shape.
    V1,
    /// `/oauth2/v2.0/token`: takes `scope`, answers MSAL's shape.
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Password {
        username: String,
        password: String,
    },
    RefreshToken {
        refresh_token: String,
    },
    /// RFC 8628 polling.
    DeviceCode {
        device_code: String,
    },
    /// RFC 6749 4.1.3 with PKCE (RFC 7636).
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub endpoint: Endpoint,
    pub grant: Grant,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// MSAL's `client_info=1`.
    pub client_info: bool,
}

/// What a successful grant yields; the server shapes it per endpoint.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub expires_on: i64,
    pub not_before: i64,
    pub resource: String,
    /// v2: the scopes granted.
    pub scope: Option<String>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub client_info: Option<String>,
    /// Who the token was issued to (for the sign-in log).
    pub to: IssuedTo,
}

/// The principal a token names: a user, or an application's service principal.
#[derive(Debug, Clone)]
pub struct IssuedTo {
    pub object_id: ObjectId,
    pub user_principal_name: Option<String>,
    pub app_display_name: Option<String>,
}

/// The OIDC scopes a v2 request may carry beside its resource scope.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

pub struct Authority {
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
    master: MasterKey,
    keys: KeyRing,
    cfg: AuthorityConfig,
    audiences: HashSet<String>,
    /// Every password verification runs through this bounded pool.
    passwords: PasswordChecks,
    /// Password guessing limits (per account, per source, smart lock-out).
    password_lockout: PasswordLockout,
    /// User-code guessing limits (per source, in total).
    code_lockout: CodeLockout,
    /// Verified access tokens (by SHA-256): the signing key's id and the principal.
    verified: crate::tokens::VerifiedCache<(String, Principal)>,
}

enum Subject<'a> {
    App(&'a ClientEntry),
    User { user: &'a User, client: AppId },
}
impl Authority {
    pub async fn new(
        directory: Arc<Directory>,
        clock: Arc<dyn Clock>,
        master: MasterKey,
        cfg: AuthorityConfig,
    ) -> Result<Self, Error> {
        let records = directory.store().signing_keys().await?;
        let set = KeySet::load(&records, &master).map_err(|e| Error::Internal(e.to_string()))?;
        let audiences = cfg.resources.iter().map(|r| normalize_resource(r)).collect();
        let attempts = directory.store().clone();
        Ok(Self {
            directory,
            password_lockout: PasswordLockout::new(clock.clone(), attempts),
            code_lockout: CodeLockout::new(clock.clone()),
            verified: crate::tokens::VerifiedCache::new(VERIFIED_TOKENS),
            clock,
            master,
            keys: KeyRing::new(set),
            cfg,
            audiences,
            passwords: PasswordChecks::for_this_machine(),
        })
    }

    /// The password lock-out (its counts live in the store; the follower prunes them).
    pub fn password_lockout(&self) -> &PasswordLockout {
        &self.password_lockout
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.cfg
    }

    pub fn issuer_v1(&self, tenant: TenantId) -> String {
        format!("{}/{tenant}/", self.cfg.public_url)
    }

    pub fn issuer_v2(&self, tenant: TenantId) -> String {
        format!("{}/{tenant}/v2.0", self.cfg.public_url)
    }

    /// The HMAC key of the sign-in pages' cookies.
    pub fn cookie_key(&self) -> &aws_lc_rs::hmac::Key {
        self.master.cookie_key()
    }

    /// The HMAC key of signed upload URLs.
    pub fn upload_key(&self) -> &aws_lc_rs::hmac::Key {
        self.master.upload_key()
    }

    pub fn jwks(&self) -> Vec<Jwk> {
        self.keys.current().jwks.clone()
    }

    /// Re-reads the signing keys from the store (after a rotation, possibly by another node).
    pub async fn reload_keys(&self) -> Result<(), Error> {
        let records = self.directory.store().signing_keys().await?;
        let set = KeySet::load(&records, &self.master).map_err(|e| match e {
            KeyError::NoActiveKey => Error::Internal("no active signing key in the store".into()),
            other => Error::Internal(other.to_string()),
        })?;
        self.keys.replace(set);
        Ok(())
    }

    /// Verifies a bearer token meant for this server's API. A token verified once is
    /// remembered until it expires (while the key that signed it is still published), so
    /// management reads cost a hash lookup rather than an ES256 verification. Revocation is
    /// unchanged: access tokens are stateless until they expire.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let keys = self.keys.current();
        let digest = sha256(token.as_bytes());
        if let Some((exp, (kid, principal))) = self.verified.get(&digest)
            && keys.verifiers.contains_key(&kid)
        {
            if crate::tokens::expired(exp, self.clock.now().unix_timestamp()) {
                return Err(TokenError::Expired);
            }
            return Ok(principal);
        }
        let claims = verify_access_token(
            token,
            &keys,
            &self.audiences,
            |iss, tid| match tid.parse::<TenantId>().ok().and_then(|t| self.directory.tenant(t)) {
                Some(t) => iss == self.issuer_v1(t.id) || iss == self.issuer_v2(t.id),
                None => false,
            },
            self.clock.now(),
        )?;
        let exp = claims.exp;
        let principal = Principal::from_claims(claims).ok_or(TokenError::Malformed)?;
        if let Some(kid) = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) {
            self.verified.insert(digest, exp, (kid, principal.clone()));
        }
        Ok(principal)
    }

    /// Encrypts a secret the server must read back (web-service keys) under the master key;
    /// `aad` binds it to its place, so a sealed value moved elsewhere fails to open.
    pub fn seal(&self, aad: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
        self.master.seal(aad.as_bytes(), secret).map_err(|e| Error::Internal(e.to_string()))
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        self.master.open(aad.as_bytes(), sealed).map_err(|e| Error::Internal(e.to_string()))
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).filter(|c| !c.is_control()).collect()
}
