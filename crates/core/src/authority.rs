//! The OAuth 2.0 authority: token grants, access-token verification, signing-key rotation.
//!
//! Requests arrive here already parsed into [`TokenRequest`] (the server owns form parsing);
//! failures are [`GrantError`]s carrying the OAuth error, Azure's AADSTS code and a message
//! that never contains a secret.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::directory::{ClientEntry, Directory};
use crate::error::Error;
use crate::ids::{AppId, GrantFamilyId, TenantId, WorkspaceId};
use crate::keys::{Jwk, KeyError, KeyRing, KeySet, MasterKey, new_signing_key};
use crate::lockout::{Account, CodeLockout, Locked, PasswordLockout, Refusal, Source};
use crate::model::{KeyState, RefreshGrant, Tenant, User};
use crate::password::PasswordChecks;
use crate::principal::Principal;
use crate::secrets::{digest_matches, new_opaque_token, random_bytes, sha256};
use crate::store::Store;
use crate::tokens::{
    AccessClaims, IdClaims, SERVICE_TOKEN_VERSION, ServiceTokenClaims, TokenError,
    normalize_resource, verify_access_token, verify_service_token,
};

mod interactive;

pub use interactive::{
    AuthorizeError, AuthorizeParams, AuthorizeRequest, DeviceCodeIssued, DeviceProblem,
    DeviceSignInError, DeviceView, Introspection, is_loopback_redirect,
    normalize_user_code as normalize_code,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidResource,
    InvalidScope,
    TemporarilyUnavailable,
    ServerError,
    AuthorizationPending,
    ExpiredToken,
    AccessDenied,
}

impl OAuthErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidResource => "invalid_resource",
            Self::InvalidScope => "invalid_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::AuthorizationPending => "authorization_pending",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
        }
    }
}

/// An OAuth error with Azure AD's AADSTS number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantError {
    pub kind: OAuthErrorKind,
    pub code: u32,
    pub description: String,
    /// Throttled: the caller should retry after this many seconds (answered as 429).
    pub retry_after: Option<u32>,
}

impl GrantError {
    pub fn new(kind: OAuthErrorKind, code: u32, description: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            description: format!("AADSTS{code}: {}", description.into()),
            retry_after: None,
        }
    }

    /// Too many password checks at once (Azure AD's throttling answer: 429 with
    /// `Retry-After`, `temporarily_unavailable`).
    pub fn throttled(retry_after_secs: u32) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                OAuthErrorKind::TemporarilyUnavailable,
                90055,
                format!(
                    "There are too many incoming requests. Retry after {retry_after_secs} seconds."
                ),
            )
        }
    }

    /// Sign-in refused without checking the password: the account (for this source) or the
    /// source itself failed too often.
    pub fn locked(why: Locked) -> Self {
        let description = match why {
            Locked::Account { .. } => {
                "Your account is locked because you've tried to sign in too many times with an \
                 incorrect user ID or password. Try again later."
            }
            Locked::Source { .. } => {
                "Sign-in was blocked because it came from an IP address with too many failed \
                 sign-in attempts. Try again later."
            }
        };
        Self::new(OAuthErrorKind::InvalidGrant, 50053, description)
    }

    /// Is this the lock-out answer (AADSTS50053)?
    pub fn is_locked(&self) -> bool {
        self.code == 50053
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidRequest, 900144, description)
    }

    fn unavailable() -> Self {
        Self::new(OAuthErrorKind::TemporarilyUnavailable, 90033, "the directory is unavailable")
    }

    fn internal() -> Self {
        Self::new(OAuthErrorKind::ServerError, 90100, "an internal error occurred")
    }
}

impl From<Error> for GrantError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable => GrantError::unavailable(),
            other => {
                tracing::error!(error = %other, "token grant failed internally");
                GrantError::internal()
            }
        }
    }
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

    /// The issuer of a workspace's web-service tokens.
    pub fn workspace_issuer(&self, workspace: WorkspaceId) -> String {
        format!("{}/workspaces/{workspace}", self.cfg.public_url)
    }

    /// Signs a web-service token: `audience` is the service's scoring URI.
    pub fn issue_service_token(
        &self,
        caller: &Principal,
        workspace: WorkspaceId,
        audience: &str,
        lifetime: Duration,
    ) -> Result<(String, ServiceTokenClaims), Error> {
        let iat = self.clock.now().unix_timestamp();
        let claims = ServiceTokenClaims {
            iss: self.workspace_issuer(workspace),
            aud: audience.to_string(),
            sub: caller.object_id.to_string(),
            tid: caller.tenant_id.to_string(),
            ws: workspace.to_string(),
            iat,
            nbf: iat,
            exp: iat + lifetime.whole_seconds(),
            ver: SERVICE_TOKEN_VERSION.into(),
        };
        let token = self
            .keys
            .current()
            .signer
            .sign_jwt(&claims)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies a web-service token, from memory.
    pub fn verify_service_token(
        &self,
        token: &str,
        workspace: WorkspaceId,
        audience: &str,
    ) -> Result<ServiceTokenClaims, TokenError> {
        let keys = self.keys.current();
        let issuer = self.workspace_issuer(workspace);
        let claims = verify_service_token(token, &keys, audience, &issuer, self.clock.now())?;
        if claims.ws != workspace.to_string() {
            return Err(TokenError::Issuer);
        }
        Ok(claims)
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

    /// The token endpoint; `source` is the client's address (password guessing is limited per
    /// address).
    pub async fn token(
        &self,
        tenant: &str,
        req: TokenRequest,
        source: IpAddr,
    ) -> Result<Issued, GrantError> {
        let tenant = self.directory.resolve_tenant(tenant).ok_or_else(|| {
            GrantError::new(
                OAuthErrorKind::InvalidRequest,
                90002,
                format!("Tenant '{}' not found.", truncate(tenant, 64)),
            )
        })?;
        let (resource, scope) = self.requested_resource(&req)?;
        match &req.grant {
            Grant::ClientCredentials => {
                let client = self.authenticate_client(&tenant, &req, true).await?;
                self.issue(&tenant, Subject::App(&client), &resource, &req, scope, None).await
            }
            Grant::Password { username, password } => {
                let client = self.authenticate_client(&tenant, &req, false).await?;
                let user = self.authenticate_user(&tenant, username, password, source).await?;
                let subject = Subject::User { user: &user, client: client.principal.app_id };
                self.issue(&tenant, subject, &resource, &req, scope, None).await
            }
            Grant::RefreshToken { refresh_token } => {
                let client = self.authenticate_client(&tenant, &req, false).await?;
                self.refresh(&tenant, &client, refresh_token, &req, scope).await
            }
            Grant::DeviceCode { device_code } => {
                let client = self.authenticate_client(&tenant, &req, false).await?;
                self.redeem_device_code(&tenant, &client, device_code, &req).await
            }
            Grant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                let client = self.authenticate_client(&tenant, &req, false).await?;
                self.redeem_authorization_code(
                    &tenant,
                    &client,
                    code,
                    redirect_uri.as_deref(),
                    code_verifier.as_deref(),
                    &req,
                )
                .await
            }
        }
    }

    /// The resource and the v2 scope to echo. v1 names the resource; v2 scopes name it as
    /// `{resource}/.default` (or `{resource}/{permission}`).
    fn requested_resource(
        &self,
        req: &TokenRequest,
    ) -> Result<(String, Option<String>), GrantError> {
        let unknown = |r: &str| {
            GrantError::new(
                OAuthErrorKind::InvalidResource,
                500011,
                format!(
                    "The resource principal named {} was not found in the tenant.",
                    truncate(r, 200)
                ),
            )
        };
        let requested = match req.endpoint {
            Endpoint::V1 => req.resource.clone(),
            Endpoint::V2 => {
                let scope = req.scope.as_deref().unwrap_or_default();
                let resources: Vec<&str> =
                    scope.split_whitespace().filter(|s| !OIDC_SCOPES.contains(s)).collect();
                if resources.len() > 1 {
                    return Err(GrantError::new(
                        OAuthErrorKind::InvalidScope,
                        70011,
                        "Scopes for more than one resource were requested.",
                    ));
                }
                match resources.first() {
                    None => None,
                    Some(s) => match s.rfind('/') {
                        Some(i) if s.contains("://") => Some(s[..=i].to_string()),
                        _ => {
                            return Err(GrantError::new(
                                OAuthErrorKind::InvalidScope,
                                70011,
                                format!("The scope '{}' is not valid.", truncate(s, 200)),
                            ));
                        }
                    },
                }
            }
        };
        let requested = requested.unwrap_or_else(|| mlgate_proto::DEFAULT_RESOURCE.to_string());
        let wanted = normalize_resource(requested.trim_end_matches('/'));
        let canonical = self
            .cfg
            .resources
            .iter()
            .find(|r| normalize_resource(r) == wanted)
            .ok_or_else(|| unknown(&requested))?
            .clone();
        let scope = match req.endpoint {
            Endpoint::V1 => None,
            Endpoint::V2 => {
                let mut granted = format!("{}/.default", canonical.trim_end_matches('/'));
                let asked = req.scope.as_deref().unwrap_or_default();
                for s in OIDC_SCOPES {
                    if asked.split_whitespace().any(|a| a == *s) {
                        granted.push(' ');
                        granted.push_str(s);
                    }
                }
                Some(granted)
            }
        };
        Ok((canonical, scope))
    }

    /// Authenticates the client. Confidential clients must present a valid secret; public
    /// clients (the CLI) may not use client credentials.
    async fn authenticate_client(
        &self,
        tenant: &Tenant,
        req: &TokenRequest,
        confidential_only: bool,
    ) -> Result<Arc<ClientEntry>, GrantError> {
        let client_id = req.client_id.as_deref().map(str::trim).unwrap_or_default();
        if client_id.is_empty() {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidRequest,
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            ));
        }
        let not_found = || {
            GrantError::new(
                OAuthErrorKind::InvalidClient,
                700016,
                format!(
                    "Application with identifier '{}' was not found in the directory '{}'.",
                    truncate(client_id, 64),
                    tenant.domain
                ),
            )
        };
        let app_id: AppId = client_id.parse().map_err(|_| not_found())?;
        let client = self.directory.client(tenant.id, app_id).await?.ok_or_else(not_found)?;
        if !client.principal.account_enabled {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                7000112,
                format!("Application '{app_id}' is disabled."),
            ));
        }
        if client.principal.public_client {
            if confidential_only {
                return Err(GrantError::new(
                    OAuthErrorKind::UnauthorizedClient,
                    7000218,
                    "A public client cannot use the client_credentials grant.",
                ));
            }
            return Ok(client);
        }
        let Some(secret) = req.client_secret.as_deref().filter(|s| !s.is_empty()) else {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            ));
        };
        let now = self.clock.now();
        let matching = client.secrets.iter().find(|s| digest_matches(secret, &s.digest));
        match matching {
            Some(s) if s.expires_at.is_some_and(|e| e <= now) => Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                7000222,
                format!("The provided client secret keys for app '{app_id}' are expired."),
            )),
            Some(_) => Ok(client),
            None => Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                 the client secret value, not the client secret ID.",
            )),
        }
    }

    /// The one password check (password grant and both sign-in pages): refused unread while
    /// the account or the source is locked out, then verified in the bounded pool; an unknown
    /// user costs the same as a wrong password and counts the same.
    async fn authenticate_user(
        &self,
        tenant: &Tenant,
        username: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<User, GrantError> {
        let account = Account::new(tenant.id, username);
        let source = Source::from(source);
        self.password_lockout.check(&account, source).await.map_err(|r| match r {
            Refusal::Locked(why) => GrantError::locked(why),
            Refusal::Store(e) => Error::from(e).into(),
        })?;
        let user = self.directory.user_for_sign_in(tenant.id, username).await?;
        let ok = self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await
            .map_err(|busy| GrantError::throttled(busy.retry_after_secs))?;
        let user = match user {
            Some(u) if ok => u,
            _ => {
                // Not counted is not refused: a failure the store could not record is a 503.
                self.password_lockout.failed(&account, source).await.map_err(Error::from)?;
                return Err(GrantError::new(
                    OAuthErrorKind::InvalidGrant,
                    50126,
                    "Error validating credentials due to invalid username or password.",
                ));
            }
        };
        if let Err(e) = self.password_lockout.succeeded(&account, source).await {
            tracing::warn!(error = %e, "could not record a familiar sign-in source");
        }
        if !user.account_enabled {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidGrant,
                50057,
                "The user account is disabled.",
            ));
        }
        Ok(user)
    }

    async fn refresh(
        &self,
        tenant: &Tenant,
        client: &ClientEntry,
        refresh_token: &str,
        req: &TokenRequest,
        scope: Option<String>,
    ) -> Result<Issued, GrantError> {
        let invalid =
            |code: u32, msg: &str| GrantError::new(OAuthErrorKind::InvalidGrant, code, msg);
        let now = self.clock.now();
        let store = self.directory.store();
        let grant = store
            .use_refresh_grant(&sha256(refresh_token.as_bytes()), now)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| invalid(9002313, "Invalid refresh token."))?;
        if grant.revoked {
            return Err(invalid(70000, "The refresh token has been revoked."));
        }
        if grant.used_at.is_some() {
            // Reuse: someone holds a copy. Revoke the whole family (RFC 6819 5.2.2.3).
            store.revoke_grant_family(grant.family).await.map_err(Error::from)?;
            tracing::warn!(family = %grant.family, "refresh token reuse detected; family revoked");
            return Err(invalid(
                70000,
                "The refresh token was already used; the sign-in session \
                                       has been revoked.",
            ));
        }
        if grant.expires_at <= now {
            return Err(invalid(700082, "The refresh token has expired due to inactivity."));
        }
        // Like Azure AD's, a refresh token may be redeemed in any tenant the user belongs to.
        if grant.client_id != client.principal.app_id {
            return Err(invalid(70000, "The refresh token was issued to another client."));
        }
        let user = self
            .directory
            .member(tenant.id, grant.subject)
            .await?
            .filter(|u| u.account_enabled)
            .ok_or_else(|| invalid(50057, "The user account is disabled or deleted."))?;
        let resource = if req.resource.is_some() || req.scope.is_some() {
            self.requested_resource(req)?.0
        } else {
            grant.resource.clone()
        };
        let subject = Subject::User { user: &user, client: client.principal.app_id };
        self.issue(tenant, subject, &resource, req, scope, Some(grant.family)).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        tenant: &Tenant,
        subject: Subject<'_>,
        resource: &str,
        req: &TokenRequest,
        scope: Option<String>,
        family: Option<GrantFamilyId>,
    ) -> Result<Issued, GrantError> {
        self.issue_with_nonce(
            tenant,
            subject,
            resource,
            req.endpoint,
            req.client_info,
            scope,
            family,
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_with_nonce(
        &self,
        tenant: &Tenant,
        subject: Subject<'_>,
        resource: &str,
        endpoint: Endpoint,
        want_client_info: bool,
        scope: Option<String>,
        family: Option<GrantFamilyId>,
        nonce: Option<String>,
    ) -> Result<Issued, GrantError> {
        let now = self.clock.now();
        let iat = now.unix_timestamp();
        let exp = iat + self.cfg.access_token_lifetime.whole_seconds();
        let v1 = endpoint == Endpoint::V1;
        let issuer = if v1 { self.issuer_v1(tenant.id) } else { self.issuer_v2(tenant.id) };
        let uti = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        let (client_id, claims) = match &subject {
            Subject::App(client) => {
                let sp = &client.principal;
                let app = sp.app_id.to_string();
                let claims = AccessClaims {
                    aud: resource.to_string(),
                    iss: issuer.clone(),
                    iat,
                    nbf: iat,
                    exp,
                    appid: v1.then(|| app.clone()),
                    appidacr: v1.then(|| "1".to_string()),
                    azp: (!v1).then(|| app.clone()),
                    azpacr: (!v1).then(|| "1".to_string()),
                    idtyp: "app".into(),
                    name: None,
                    app_displayname: Some(sp.display_name.clone()),
                    oid: sp.object_id.to_string(),
                    sub: sp.object_id.to_string(),
                    tid: tenant.id.to_string(),
                    uti,
                    ver: if v1 { "1.0" } else { "2.0" }.into(),
                    scp: None,
                    upn: None,
                    unique_name: None,
                    preferred_username: None,
                };
                (sp.app_id, claims)
            }
            Subject::User { user, client } => {
                let app = client.to_string();
                let claims = AccessClaims {
                    aud: resource.to_string(),
                    iss: issuer.clone(),
                    iat,
                    nbf: iat,
                    exp,
                    appid: v1.then(|| app.clone()),
                    appidacr: v1.then(|| "0".to_string()),
                    azp: (!v1).then(|| app.clone()),
                    azpacr: (!v1).then(|| "0".to_string()),
                    idtyp: "user".into(),
                    name: Some(user.display_name.clone()),
                    app_displayname: None,
                    oid: user.object_id.to_string(),
                    sub: user.object_id.to_string(),
                    tid: tenant.id.to_string(),
                    uti,
                    ver: if v1 { "1.0" } else { "2.0" }.into(),
                    scp: Some("user_impersonation".into()),
                    upn: v1.then(|| user.user_principal_name.clone()),
                    unique_name: v1.then(|| user.user_principal_name.clone()),
                    preferred_username: (!v1).then(|| user.user_principal_name.clone()),
                };
                (*client, claims)
            }
        };
        let keys = self.keys.current();
        let sign_err = |_| GrantError::internal();
        let access_token = keys.signer.sign_jwt(&claims).map_err(sign_err)?;

        let (mut refresh_token, mut id_token, mut client_info) = (None, None, None);
        if let Subject::User { user, .. } = subject {
            let id_claims = IdClaims {
                aud: client_id.to_string(),
                iss: issuer,
                iat,
                nbf: iat,
                exp,
                sub: user.object_id.to_string(),
                oid: user.object_id.to_string(),
                tid: tenant.id.to_string(),
                ver: if v1 { "1.0" } else { "2.0" }.into(),
                name: user.display_name.clone(),
                preferred_username: user.user_principal_name.clone(),
                upn: v1.then(|| user.user_principal_name.clone()),
                unique_name: v1.then(|| user.user_principal_name.clone()),
                nonce,
            };
            id_token = Some(keys.signer.sign_jwt(&id_claims).map_err(sign_err)?);
            let rt = new_opaque_token();
            let grant = RefreshGrant {
                digest: sha256(rt.as_bytes()),
                family: family.unwrap_or_else(GrantFamilyId::new_random),
                tenant_id: tenant.id,
                subject: user.object_id,
                client_id,
                resource: resource.to_string(),
                scope: scope.clone().unwrap_or_default(),
                issued_at: now,
                expires_at: now + self.cfg.refresh_token_lifetime,
                used_at: None,
                revoked: false,
            };
            self.directory.store().insert_refresh_grant(&grant).await.map_err(Error::from)?;
            refresh_token = Some(rt);
            if want_client_info {
                let info = serde_json::json!({"uid": user.object_id.to_string(),
                                              "utid": tenant.id.to_string()});
                client_info = Some(URL_SAFE_NO_PAD.encode(info.to_string()));
            }
        }
        Ok(Issued {
            access_token,
            expires_in: exp - iat,
            expires_on: exp,
            not_before: iat,
            resource: resource.to_string(),
            scope,
            refresh_token,
            id_token,
            client_info,
        })
    }
}

/// `mlgate keys rotate`: the next key starts signing, a new next key is published, the active
/// one retires, and retired keys whose tokens have all expired are dropped. Servers pick the
/// change up on their next key reload.
pub async fn rotate_signing_keys(
    store: &dyn Store,
    master: &MasterKey,
    now: OffsetDateTime,
    max_token_lifetime: Duration,
) -> Result<(), Error> {
    let keys = store.signing_keys().await?;
    if !keys.iter().any(|k| k.state == KeyState::Next) {
        return Err(Error::Internal("no next key to promote".into()));
    }
    let next =
        new_signing_key(master, KeyState::Next, now).map_err(|e| Error::Internal(e.to_string()))?;
    // Keep a retired key while any token it signed may still be valid (plus clock skew).
    let prune_before = now - max_token_lifetime - Duration::minutes(5);
    store.rotate_signing_keys(now, &next, prune_before).await?;
    // Every running node (this data directory's, or any sharing the store) reloads its keys.
    let change = crate::changes::Change::SigningKeys;
    if let Err(e) = store.publish_change(change.kind(), &change.key(), now).await {
        tracing::warn!(error = %e, "could not publish the rotation; servers see it within 30 s");
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).filter(|c| !c.is_control()).collect()
}
