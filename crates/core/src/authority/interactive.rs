//! Interactive sign-in: the device authorization grant (RFC 8628) and the authorization code
//! grant with PKCE (RFC 7636), plus revocation (RFC 7009) and introspection (RFC 7662).
//! Security-critical. The web pages (server crate) call these after a person signed in.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use super::{
    Aadsts, Authority, ClientEntry, Endpoint, GrantError, Issued, OAuthErrorKind, Subject,
    TokenRequest,
};
use crate::error::Error;
use crate::ids::{AppId, TenantId};
use crate::lockout::Source;
use crate::records::{AuthorizationCode, DeviceAuthorization, DeviceState, Tenant, User};
use crate::secrets::{new_opaque_token, random_bytes, sha256};

/// User codes use consonants only: no vowels (no words), no look-alikes (no I, O, U, Y).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const DEVICE_CODE_LIFETIME: Duration = Duration::minutes(15);
pub const DEVICE_POLL_INTERVAL: i64 = 5;
const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::minutes(10);

/// What the device endpoint returns.
#[derive(Debug, Clone)]
pub struct DeviceCodeIssued {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: i64,
    pub interval: i64,
    pub message: String,
}

/// What the verification page shows about a pending device authorization.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub user_code: String,
    pub application: String,
    pub tenant: Tenant,
}

/// Why a user code cannot be used; each has its own plain message on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProblem {
    Unknown,
    Expired,
    AlreadyUsed,
    /// The signed-in user is not a member of the tenant the code was issued in.
    WrongTenant,
    /// This address (or everyone) entered too many wrong codes; try again at the given time.
    TooManyAttempts {
        until: OffsetDateTime,
    },
}

/// Why the device-login sign-in step failed. An unknown code, a wrong password, an unknown
/// user and a locked account are all [`DeviceSignInError::Failed`]: the answer must not tell a
/// guesser which codes exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSignInError {
    Failed,
    /// The password was right but must be changed first (AADSTS50055).
    MustChangePassword,
    /// Too many wrong codes from this address (or in total).
    TooManyAttempts {
        until: OffsetDateTime,
    },
    /// Too many password checks at once; retry after this many seconds.
    Busy {
        retry_after_secs: u32,
    },
}

/// Normalises what a person typed: upper case, separators and spaces dropped.
pub fn normalize_user_code(typed: &str) -> String {
    typed.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

fn new_user_code() -> String {
    // Rejection sampling keeps every letter equally likely.
    let mut out = String::with_capacity(8);
    while out.len() < 8 {
        for b in random_bytes::<16>() {
            if (b as usize) < 240 && out.len() < 8 {
                out.push(USER_CODE_ALPHABET[b as usize % USER_CODE_ALPHABET.len()] as char);
            }
        }
    }
    out
}

pub fn format_user_code(code: &str) -> String {
    if code.len() == 8 { format!("{}-{}", &code[..4], &code[4..]) } else { code.to_string() }
}

/// The query of `/authorize`, as received.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub response_type: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub login_hint: Option<String>,
}

/// A validated authorization request: safe to redirect to `redirect_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub tenant: Tenant,
    pub client_id: AppId,
    pub application: String,
    pub redirect_uri: String,
    pub resource: String,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub v1: bool,
    pub login_hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect.
    Page(String),
    /// Report to the client through its (validated) redirect URI.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

/// RFC 7662's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    pub token_type: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub tid: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub scope: Option<String>,
    pub username: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
}

/// Loopback redirect URIs (RFC 8252 7.3): `http://localhost` or `http://127.0.0.1`, any port.
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() { h } else { "" }
    });
    (host == "localhost" || host == "127.0.0.1" || host == "[::1]") && !uri.contains('#')
}

fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    let computed = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

impl Authority {
    /// `POST /{tenant}/oauth2[/v2.0]/devicecode`.
    pub async fn start_device_flow(
        &self,
        tenant: &str,
        endpoint: Endpoint,
        client_id: Option<&str>,
        resource: Option<String>,
        scope: Option<String>,
    ) -> Result<DeviceCodeIssued, GrantError> {
        let tenant = self.tenant_or_error(tenant)?;
        let req = TokenRequest {
            endpoint,
            grant: super::Grant::ClientCredentials,
            client_id: client_id.map(str::to_string),
            client_secret: None,
            resource,
            scope,
            client_info: false,
        };
        let (resource, scope) = self.requested_resource(&req)?;
        let client = self.known_client(&tenant, client_id.unwrap_or_default()).await?;
        let device_code = new_opaque_token();
        let now = self.clock.now();
        let user_code = new_user_code();
        let record = DeviceAuthorization {
            digest: sha256(device_code.as_bytes()),
            user_code_digest: self.master.user_code_digest(&user_code),
            tenant_id: tenant.id,
            client_id: client.principal.app_id,
            resource,
            scope,
            v1: endpoint == Endpoint::V1,
            created_at: now,
            expires_at: now + DEVICE_CODE_LIFETIME,
            interval_secs: DEVICE_POLL_INTERVAL,
            state: DeviceState::Pending,
            user_id: None,
            last_poll_at: None,
        };
        self.directory.store().insert_device_authorization(&record).await.map_err(Error::from)?;
        let verification_uri = format!("{}/devicelogin", self.cfg.public_url);
        let shown = format_user_code(&user_code);
        Ok(DeviceCodeIssued {
            message: format!(
                "To sign in, use a web browser to open the page {verification_uri} and enter the \
                 code {shown} to authenticate."
            ),
            device_code,
            user_code: shown,
            verification_uri,
            expires_in: DEVICE_CODE_LIFETIME.whole_seconds(),
            interval: DEVICE_POLL_INTERVAL,
        })
    }

    fn tenant_or_error(&self, segment: &str) -> Result<Tenant, GrantError> {
        self.directory
            .resolve_tenant(segment)
            .ok_or_else(|| GrantError::tenant_not_found(&super::truncate(segment, 64)))
    }

    /// A registered, enabled client, without authenticating it (public-client flows).
    async fn known_client(
        &self,
        tenant: &Tenant,
        client_id: &str,
    ) -> Result<Arc<ClientEntry>, GrantError> {
        let unknown = || {
            GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::ApplicationNotFound,
                format!(
                    "Application with identifier '{}' was not found.",
                    super::truncate(client_id, 64)
                ),
            )
        };
        let app: AppId = client_id.trim().parse().map_err(|_| unknown())?;
        let client = self.directory.client(tenant.id, app).await?.ok_or_else(unknown)?;
        if !client.principal.account_enabled {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::ApplicationDisabled,
                "The application is disabled.",
            ));
        }
        Ok(client)
    }

    /// The verification page's lookup of a typed user code. Every path that takes a user code
    /// comes through here, so every wrong, expired or used code counts against the source.
    pub async fn device_for_user_code(
        &self,
        typed: &str,
        source: IpAddr,
    ) -> Result<DeviceView, DeviceProblem> {
        let source = Source::from(source);
        self.code_lockout
            .check(source)
            .map_err(|until| DeviceProblem::TooManyAttempts { until })?;
        let found = self.lookup_user_code(typed).await;
        if found.is_err() {
            self.code_lockout.failed(source);
        }
        found
    }

    async fn lookup_user_code(&self, typed: &str) -> Result<DeviceView, DeviceProblem> {
        let code = normalize_user_code(typed);
        if code.len() != 8 {
            return Err(DeviceProblem::Unknown);
        }
        let d = self
            .directory
            .store()
            .device_by_user_code(&self.master.user_code_digest(&code))
            .await
            .map_err(|_| DeviceProblem::Unknown)?
            .ok_or(DeviceProblem::Unknown)?;
        if d.state != DeviceState::Pending {
            return Err(DeviceProblem::AlreadyUsed);
        }
        if d.expires_at <= self.clock.now() {
            return Err(DeviceProblem::Expired);
        }
        let tenant = self.directory.tenant(d.tenant_id).ok_or(DeviceProblem::Unknown)?;
        let application = match self.directory.client(d.tenant_id, d.client_id).await {
            Ok(Some(c)) => c.principal.display_name.clone(),
            _ => return Err(DeviceProblem::Unknown),
        };
        Ok(DeviceView { user_code: format_user_code(&code), application, tenant })
    }

    /// The device-login sign-in step: the code (counted like on the code page) and the
    /// password together. Whatever fails, the answer is the same, and an unknown code costs a
    /// password check too, so neither the answer nor its timing says whether a code exists.
    pub async fn device_sign_in(
        &self,
        typed: &str,
        username: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<(DeviceView, User), DeviceSignInError> {
        let view = match self.device_for_user_code(typed, source).await {
            Ok(v) => v,
            Err(DeviceProblem::TooManyAttempts { until }) => {
                return Err(DeviceSignInError::TooManyAttempts { until });
            }
            Err(_) => {
                return match self.passwords.verify(password, None).await {
                    Ok(_) => Err(DeviceSignInError::Failed),
                    Err(b) => Err(DeviceSignInError::Busy { retry_after_secs: b.retry_after_secs }),
                };
            }
        };
        match self.authenticate_user(&view.tenant, username, password, source).await {
            Ok(user) => Ok((view, user)),
            Err(e) => match e.retry_after {
                Some(retry_after_secs) => Err(DeviceSignInError::Busy { retry_after_secs }),
                None if e.code == super::Aadsts::PasswordChangeRequired => {
                    Err(DeviceSignInError::MustChangePassword)
                }
                None => Err(DeviceSignInError::Failed),
            },
        }
    }

    /// Records the signed-in user's approval or denial of a device authorization.
    pub async fn decide_device(
        &self,
        typed: &str,
        user: &User,
        approve: bool,
        source: IpAddr,
    ) -> Result<(), DeviceProblem> {
        let view = self.device_for_user_code(typed, source).await?;
        match self.directory.member(view.tenant.id, user.object_id).await {
            Ok(Some(_)) => {}
            _ => return Err(DeviceProblem::WrongTenant),
        }
        let state = if approve { DeviceState::Approved } else { DeviceState::Denied };
        let changed = self
            .directory
            .store()
            .decide_device(
                &self.master.user_code_digest(&normalize_user_code(typed)),
                state,
                user.object_id,
                self.clock.now(),
            )
            .await
            .map_err(|_| DeviceProblem::Unknown)?;
        if changed { Ok(()) } else { Err(DeviceProblem::AlreadyUsed) }
    }

    /// Checks a person's password for the web pages (same rules, limits and timing as the
    /// password grant).
    pub async fn sign_in(
        &self,
        tenant: TenantId,
        username: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<User, GrantError> {
        let tenant = self.directory.tenant(tenant).ok_or_else(GrantError::internal)?;
        self.authenticate_user(&tenant, username, password, source).await
    }

    pub(super) async fn redeem_device_code(
        &self,
        tenant: &Tenant,
        client: &ClientEntry,
        device_code: &str,
        req: &TokenRequest,
    ) -> Result<Issued, GrantError> {
        let now = self.clock.now();
        let store = self.directory.store();
        let d = store
            .poll_device(&sha256(device_code.as_bytes()), now)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| {
                GrantError::new(
                    OAuthErrorKind::InvalidGrant,
                    Aadsts::InvalidGrant,
                    "The device code is not valid.",
                )
            })?;
        if d.client_id != client.principal.app_id || d.tenant_id != tenant.id {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidGrant,
                Aadsts::InvalidGrant,
                "The device code was issued to another client.",
            ));
        }
        if d.expires_at <= now {
            return Err(GrantError::new(
                OAuthErrorKind::ExpiredToken,
                Aadsts::DeviceCodeExpired,
                "The device code has expired.",
            ));
        }
        let pending = || {
            GrantError::new(
                OAuthErrorKind::AuthorizationPending,
                Aadsts::AuthorizationPending,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        };
        match d.state {
            // A poll faster than the interval is answered like any other pending poll, and
            // costs no more than one indexed read.
            DeviceState::Pending => Err(pending()),
            DeviceState::Denied => Err(GrantError::new(
                OAuthErrorKind::AccessDenied,
                Aadsts::SignInDeclined,
                "The user declined the sign-in request.",
            )),
            DeviceState::Consumed => Err(GrantError::new(
                OAuthErrorKind::InvalidGrant,
                Aadsts::CodeRedeemed,
                "The device code was already redeemed.",
            )),
            DeviceState::Approved => {
                if !store.consume_device(&d.digest).await.map_err(Error::from)? {
                    return Err(GrantError::new(
                        OAuthErrorKind::InvalidGrant,
                        Aadsts::CodeRedeemed,
                        "The device code was already redeemed.",
                    ));
                }
                let user_id = d.user_id.ok_or_else(GrantError::internal)?;
                let user = self
                    .directory
                    .member(tenant.id, user_id)
                    .await?
                    .filter(|u| u.account_enabled)
                    .ok_or_else(|| {
                        GrantError::new(
                            OAuthErrorKind::InvalidGrant,
                            Aadsts::UserDisabled,
                            "The user account is disabled or deleted.",
                        )
                    })?;
                let endpoint = if d.v1 { Endpoint::V1 } else { Endpoint::V2 };
                let subject = Subject::User { user: &user, client: client.principal.app_id };
                self.issue_with_nonce(
                    tenant,
                    subject,
                    &d.resource,
                    endpoint,
                    req.client_info,
                    d.scope.clone(),
                    None,
                    None,
                )
                .await
            }
        }
    }

    /// Validates `/authorize`. Until client and redirect URI are known good, errors are pages;
    /// after, they go back to the client.
    pub async fn validate_authorize(
        &self,
        tenant: &str,
        endpoint: Endpoint,
        p: &AuthorizeParams,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
        let tenant = self
            .tenant_or_error(tenant)
            .map_err(|_| page("The directory in this sign-in link does not exist."))?;
        let client_id = p.client_id.as_deref().unwrap_or_default();
        let client = self.known_client(&tenant, client_id).await.map_err(|_| {
            page("The application asking you to sign in is not registered in this directory.")
        })?;
        let redirect_uri = p.redirect_uri.clone().unwrap_or_default();
        // Only public clients sign people in interactively here, and they must use a loopback
        // redirect (the way `az login` listens on localhost); the web console alone uses, and
        // may only use, its callback on this server.
        let registered = if client.principal.app_id == crate::first_party::console_app_id() {
            crate::first_party::is_first_party_redirect(
                client.principal.app_id,
                &redirect_uri,
                &self.cfg.public_url,
            )
        } else {
            is_loopback_redirect(&redirect_uri)
        };
        if !client.principal.public_client || !registered {
            return Err(page(
                "The redirect URI in this sign-in link does not match the application's registration.",
            ));
        }
        let state = p.state.clone();
        let back = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description: description.to_string(),
            state: state.clone(),
        };
        if p.response_type.as_deref() != Some("code") {
            return Err(back("unsupported_response_type", "Only response_type=code is supported."));
        }
        let challenge = p.code_challenge.clone().unwrap_or_default();
        if p.code_challenge_method.as_deref() != Some("S256") || challenge.len() != 43 {
            return Err(back(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256.",
            ));
        }
        let req = TokenRequest {
            endpoint,
            grant: super::Grant::ClientCredentials,
            client_id: Some(client_id.to_string()),
            client_secret: None,
            resource: p.resource.clone(),
            scope: p.scope.clone(),
            client_info: false,
        };
        let (resource, scope) =
            self.requested_resource(&req).map_err(|e| back("invalid_scope", &e.description))?;
        Ok(AuthorizeRequest {
            tenant,
            client_id: client.principal.app_id,
            application: client.principal.display_name.clone(),
            redirect_uri,
            resource,
            scope,
            state,
            nonce: p.nonce.clone(),
            code_challenge: challenge,
            v1: endpoint == Endpoint::V1,
            login_hint: p.login_hint.clone(),
        })
    }

    /// Issues the authorization code for a signed-in user.
    pub async fn issue_authorization_code(
        &self,
        req: &AuthorizeRequest,
        user: &User,
    ) -> Result<String, GrantError> {
        let code = new_opaque_token();
        let record = AuthorizationCode {
            digest: sha256(code.as_bytes()),
            tenant_id: req.tenant.id,
            client_id: req.client_id,
            user_id: user.object_id,
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
            resource: req.resource.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            v1: req.v1,
            expires_at: self.clock.now() + AUTHORIZATION_CODE_LIFETIME,
            used: false,
        };
        self.directory.store().insert_authorization_code(&record).await.map_err(Error::from)?;
        Ok(code)
    }

    pub(super) async fn redeem_authorization_code(
        &self,
        tenant: &Tenant,
        client: &ClientEntry,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        req: &TokenRequest,
    ) -> Result<Issued, GrantError> {
        let bad = |code: Aadsts, m: &str| GrantError::new(OAuthErrorKind::InvalidGrant, code, m);
        let c = self
            .directory
            .store()
            .take_authorization_code(&sha256(code.as_bytes()))
            .await
            .map_err(Error::from)?
            .ok_or_else(|| bad(Aadsts::InvalidGrant, "The authorization code is not valid."))?;
        if c.used {
            return Err(bad(Aadsts::CodeRedeemed, "The authorization code was already redeemed."));
        }
        if c.expires_at <= self.clock.now() {
            return Err(bad(Aadsts::CodeExpired, "The authorization code has expired."));
        }
        if c.client_id != client.principal.app_id || c.tenant_id != tenant.id {
            return Err(bad(
                Aadsts::InvalidGrant,
                "The authorization code was issued to another client.",
            ));
        }
        if redirect_uri != Some(c.redirect_uri.as_str()) {
            return Err(bad(
                Aadsts::RedirectUriMismatch,
                "The redirect_uri does not match the one the code was issued for.",
            ));
        }
        if !code_verifier.is_some_and(|v| pkce_ok(v, &c.code_challenge)) {
            return Err(bad(
                Aadsts::PkceMismatch,
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
            ));
        }
        let user = self
            .directory
            .member(tenant.id, c.user_id)
            .await?
            .filter(|u| u.account_enabled)
            .ok_or_else(|| bad(Aadsts::UserDisabled, "The user account is disabled or deleted."))?;
        let endpoint = if c.v1 { Endpoint::V1 } else { Endpoint::V2 };
        let subject = Subject::User { user: &user, client: client.principal.app_id };
        self.issue_with_nonce(
            tenant,
            subject,
            &c.resource,
            endpoint,
            req.client_info,
            c.scope.clone(),
            None,
            c.nonce.clone(),
        )
        .await
    }

    /// RFC 7009: revokes a refresh token's family. Unknown tokens are not an error.
    pub async fn revoke(&self, token: &str) -> Result<(), GrantError> {
        self.directory
            .store()
            .revoke_refresh_token(&sha256(token.as_bytes()))
            .await
            .map_err(Error::from)?;
        Ok(())
    }

    /// RFC 7662, for an authenticated confidential client.
    pub async fn introspect(
        &self,
        tenant: &str,
        req: &TokenRequest,
        token: &str,
    ) -> Result<Introspection, GrantError> {
        let tenant = self.tenant_or_error(tenant)?;
        let client = self.authenticate_client(&tenant, req, true).await?;
        let _ = client;
        if let Ok(p) = self.verify(token) {
            let c = p.claims;
            return Ok(Introspection {
                active: true,
                token_type: Some("access_token".into()),
                client_id: Some(c.client_app_id().to_string()),
                sub: Some(c.sub.clone()),
                tid: Some(c.tid.clone()),
                aud: Some(c.aud.clone()),
                iss: Some(c.iss.clone()),
                scope: c.scp.clone(),
                username: c.upn.clone().or(c.preferred_username.clone()),
                exp: Some(c.exp),
                iat: Some(c.iat),
            });
        }
        let grant = self
            .directory
            .store()
            .refresh_grant(&sha256(token.as_bytes()))
            .await
            .map_err(Error::from)?;
        let now = self.clock.now();
        match grant {
            Some(g) if !g.revoked && g.used_at.is_none() && g.expires_at > now => {
                Ok(Introspection {
                    active: true,
                    token_type: Some("refresh_token".into()),
                    client_id: Some(g.client_id.to_string()),
                    sub: Some(g.subject.to_string()),
                    tid: Some(g.tenant_id.to_string()),
                    scope: Some(g.scope.clone()).filter(|s| !s.is_empty()),
                    exp: Some(g.expires_at.unix_timestamp()),
                    iat: Some(g.issued_at.unix_timestamp()),
                    ..Default::default()
                })
            }
            _ => Ok(Introspection::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_unambiguous_and_normalise() {
        let c = new_user_code();
        assert_eq!(c.len(), 8);
        assert!(c.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        assert_eq!(normalize_user_code(" bcdf-ghjk "), "BCDFGHJK");
        assert_eq!(format_user_code("BCDFGHJK"), "BCDF-GHJK");
    }

    #[test]
    fn loopback_redirects_only() {
        assert!(is_loopback_redirect("http://localhost:8400"));
        assert!(is_loopback_redirect("http://127.0.0.1:51234/callback"));
        assert!(is_loopback_redirect("http://localhost/"));
        assert!(!is_loopback_redirect("https://localhost:8400"));
        assert!(!is_loopback_redirect("http://localhost.evil.example:8400"));
        assert!(!is_loopback_redirect("http://evil.example/?x=http://localhost"));
        assert!(!is_loopback_redirect("http://localhost:80x"));
        assert!(!is_loopback_redirect("http://localhost:8400#frag"));
    }

    #[test]
    fn pkce_s256() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_ok(verifier, challenge));
        assert!(!pkce_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", challenge));
        assert!(!pkce_ok("short", challenge));
    }
}
