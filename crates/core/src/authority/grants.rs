//! The token endpoint's grants: resolving the tenant and the resource, authenticating the
//! client and the user, redeeming refresh tokens.

use std::net::IpAddr;
use std::sync::Arc;

use super::{
    Authority, Endpoint, Grant, GrantError, Issued, OAuthErrorKind, OIDC_SCOPES, Subject,
    TokenRequest, errors::Aadsts, truncate,
};
use crate::directory::ClientEntry;
use crate::error::Error;
use crate::ids::AppId;
use crate::lockout::{Account, Refusal, Source};
use crate::records::{Tenant, User};
use crate::secrets::{digest_matches, sha256};

impl Authority {
    /// The token endpoint; `source` is the client's address (password guessing is limited per
    /// address).
    pub async fn token(
        &self,
        tenant: &str,
        req: TokenRequest,
        source: IpAddr,
    ) -> Result<Issued, GrantError> {
        let tenant = self
            .directory
            .resolve_tenant(tenant)
            .ok_or_else(|| GrantError::tenant_not_found(&truncate(tenant, 64)))?;
        let (resource, scope) = self.requested_resource(&req)?;
        // A future is as large as its largest branch, and every layer above the token
        // endpoint moves it: the other grants' futures (the password pool, the store's
        // refresh-token and code records) are boxed, so the client-credentials grant, the one
        // that comes by the thousand, moves a small future (issue 15).
        match &req.grant {
            Grant::ClientCredentials => {
                let client = self.authenticate_client(&tenant, &req, true).await?;
                self.issue(&tenant, Subject::App(&client), &resource, &req, scope, None).await
            }
            Grant::Password { username, password } => {
                Box::pin(async {
                    let client = self.authenticate_client(&tenant, &req, false).await?;
                    let user = self.authenticate_user(&tenant, username, password, source).await?;
                    let subject = Subject::User { user: &user, client: client.principal.app_id };
                    self.issue(&tenant, subject, &resource, &req, scope, None).await
                })
                .await
            }
            Grant::RefreshToken { refresh_token } => {
                Box::pin(async {
                    let client = self.authenticate_client(&tenant, &req, false).await?;
                    self.refresh(&tenant, &client, refresh_token, &req, scope).await
                })
                .await
            }
            Grant::DeviceCode { device_code } => {
                Box::pin(async {
                    let client = self.authenticate_client(&tenant, &req, false).await?;
                    self.redeem_device_code(&tenant, &client, device_code, &req).await
                })
                .await
            }
            Grant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                Box::pin(async {
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
                })
                .await
            }
        }
    }

    /// The resource and the v2 scope to echo. v1 names the resource; v2 scopes name it as
    /// `{resource}/.default` (or `{resource}/{permission}`).
    pub(super) fn requested_resource(
        &self,
        req: &TokenRequest,
    ) -> Result<(String, Option<String>), GrantError> {
        let unknown = |r: &str| {
            GrantError::new(
                OAuthErrorKind::InvalidResource,
                Aadsts::ResourceNotFound,
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
                        Aadsts::InvalidScope,
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
                                Aadsts::InvalidScope,
                                format!("The scope '{}' is not valid.", truncate(s, 200)),
                            ));
                        }
                    },
                }
            }
        };
        let requested = requested.unwrap_or_else(|| mlgate_proto::DEFAULT_RESOURCE.to_string());
        // `normalize_resource`'s comparison, without its copies (this runs on every grant).
        fn trimmed(r: &str) -> &str {
            r.trim().trim_end_matches('/')
        }
        let wanted = trimmed(&requested);
        let canonical = self
            .cfg
            .resources
            .iter()
            .find(|r| trimmed(r).eq_ignore_ascii_case(wanted))
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
    pub(super) async fn authenticate_client(
        &self,
        tenant: &Tenant,
        req: &TokenRequest,
        confidential_only: bool,
    ) -> Result<Arc<ClientEntry>, GrantError> {
        let client_id = req.client_id.as_deref().map(str::trim).unwrap_or_default();
        if client_id.is_empty() {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidRequest,
                Aadsts::InvalidParameter,
                "The request body must contain the following parameter: 'client_id'.",
            ));
        }
        let not_found = || {
            GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::ApplicationNotFound,
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
                Aadsts::ApplicationDisabled,
                format!("Application '{app_id}' is disabled."),
            ));
        }
        if client.principal.public_client {
            if confidential_only {
                return Err(GrantError::new(
                    OAuthErrorKind::UnauthorizedClient,
                    Aadsts::PublicClientCredentials,
                    "A public client cannot use the client_credentials grant.",
                ));
            }
            return Ok(client);
        }
        let Some(secret) = req.client_secret.as_deref().filter(|s| !s.is_empty()) else {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::MissingClientCredential,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            ));
        };
        let now = self.clock.now();
        let matching = client.secrets.iter().find(|s| digest_matches(secret, &s.digest));
        match matching {
            Some(s) if s.expires_at.is_some_and(|e| e <= now) => Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::ClientSecretExpired,
                format!("The provided client secret keys for app '{app_id}' are expired."),
            )),
            Some(_) => Ok(client),
            None => Err(GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::InvalidClientSecret,
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                 the client secret value, not the client secret ID.",
            )),
        }
    }

    /// The one password check (password grant and both sign-in pages): refused unread while
    /// the account or the source is locked out, then verified in the bounded pool; an unknown
    /// user costs the same as a wrong password and counts the same.
    pub(super) async fn authenticate_user(
        &self,
        tenant: &Tenant,
        username: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<User, GrantError> {
        let user = self.check_password(tenant, username, password, source).await?;
        if user.force_change_password {
            return Err(GrantError::new(
                OAuthErrorKind::InvalidGrant,
                Aadsts::PasswordChangeRequired,
                "The password is expired: the user must change it before signing in.",
            ));
        }
        Ok(user)
    }

    /// The password check itself (lock-out, argon2 in the bounded pool, enabled account);
    /// a forced change is the caller's to refuse or to carry out.
    pub(super) async fn check_password(
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
                    Aadsts::InvalidCredentials,
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
                Aadsts::UserDisabled,
                "The user account is disabled.",
            ));
        }
        Ok(user)
    }

    pub(super) async fn refresh(
        &self,
        tenant: &Tenant,
        client: &ClientEntry,
        refresh_token: &str,
        req: &TokenRequest,
        scope: Option<String>,
    ) -> Result<Issued, GrantError> {
        let invalid =
            |code: Aadsts, msg: &str| GrantError::new(OAuthErrorKind::InvalidGrant, code, msg);
        let now = self.clock.now();
        let store = self.directory.store();
        let grant = store
            .use_refresh_grant(&sha256(refresh_token.as_bytes()), now)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| invalid(Aadsts::InvalidRefreshToken, "Invalid refresh token."))?;
        if grant.revoked {
            return Err(invalid(Aadsts::InvalidGrant, "The refresh token has been revoked."));
        }
        if grant.used_at.is_some() {
            // Reuse: someone holds a copy. Revoke the whole family (RFC 6819 5.2.2.3).
            store.revoke_grant_family(grant.family).await.map_err(Error::from)?;
            tracing::warn!(family = %grant.family, "refresh token reuse detected; family revoked");
            return Err(invalid(
                Aadsts::InvalidGrant,
                "The refresh token was already used; the sign-in session \
                                       has been revoked.",
            ));
        }
        if grant.expires_at <= now {
            return Err(invalid(
                Aadsts::RefreshTokenExpired,
                "The refresh token has expired due to inactivity.",
            ));
        }
        // Like Azure AD's, a refresh token may be redeemed in any tenant the user belongs to.
        if grant.client_id != client.principal.app_id {
            return Err(invalid(
                Aadsts::InvalidGrant,
                "The refresh token was issued to another client.",
            ));
        }
        let user = self
            .directory
            .member(tenant.id, grant.subject)
            .await?
            .filter(|u| u.account_enabled)
            .ok_or_else(|| {
                invalid(Aadsts::UserDisabled, "The user account is disabled or deleted.")
            })?;
        let resource = if req.resource.is_some() || req.scope.is_some() {
            self.requested_resource(req)?.0
        } else {
            grant.resource.clone()
        };
        let subject = Subject::User { user: &user, client: client.principal.app_id };
        self.issue(tenant, subject, &resource, req, scope, Some(grant.family)).await
    }
}
