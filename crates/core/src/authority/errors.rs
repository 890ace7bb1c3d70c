//! What a refused grant says: the OAuth error, Azure AD's AADSTS number, and a message that
//! never contains a secret.

use crate::error::Error;
use crate::lockout::Locked;

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

/// The AADSTS numbers mlgate answers with, one variant per distinct error so that one number
/// never stands for two causes. Clients (and people searching Microsoft's error reference)
/// key on these numbers, so each is Azure AD's own for the same cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Aadsts {
    /// The tenant in the path is neither a known GUID, domain, nor alias.
    TenantNotFound = 90002,
    /// The directory (store) could not be reached.
    DirectoryUnavailable = 90033,
    /// Too many requests at once; retry after the given seconds.
    Throttled = 90055,
    /// An internal error (details only in the server's log).
    InternalError = 90100,
    /// A required parameter is missing or malformed.
    InvalidParameter = 900144,
    /// The refresh token is unknown.
    InvalidRefreshToken = 9002313,
    /// The requested resource (audience) is not known.
    ResourceNotFound = 500011,
    /// Locked out after too many failed sign-ins (account or source).
    Locked = 50053,
    /// The user must change the password before signing in.
    PasswordChangeRequired = 50055,
    /// The user account is disabled or deleted.
    UserDisabled = 50057,
    /// Wrong user name or password.
    InvalidCredentials = 50126,
    /// The code's redirect URI differs from the one it was issued for.
    RedirectUriMismatch = 500112,
    /// The PKCE code verifier does not match the challenge.
    PkceMismatch = 50148,
    /// The code was already redeemed.
    CodeRedeemed = 54005,
    /// The grant (refresh token, device code, authorization code) is invalid for this request.
    InvalidGrant = 70000,
    /// The grant type is not supported.
    UnsupportedGrantType = 70003,
    /// The authorization code has expired.
    CodeExpired = 70008,
    /// The scope is invalid (or names more than one resource).
    InvalidScope = 70011,
    /// Device flow: the user has not finished signing in yet.
    AuthorizationPending = 70016,
    /// Device flow: the user declined.
    SignInDeclined = 70019,
    /// Device flow: the device code expired.
    DeviceCodeExpired = 70020,
    /// The application is disabled.
    ApplicationDisabled = 7000112,
    /// No application with that id in this tenant.
    ApplicationNotFound = 700016,
    /// A public client tried the client-credentials grant.
    PublicClientCredentials = 700025,
    /// Certificate credentials (client assertions) are not supported.
    ClientAssertionUnsupported = 700027,
    /// The refresh token has expired.
    RefreshTokenExpired = 700082,
    /// The client secret is wrong.
    InvalidClientSecret = 7000215,
    /// A confidential client sent no credential.
    MissingClientCredential = 7000218,
    /// The client secret has expired.
    ClientSecretExpired = 7000222,
}

impl Aadsts {
    pub fn number(self) -> u32 {
        self as u32
    }
}

/// An OAuth error with Azure AD's AADSTS number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantError {
    pub kind: OAuthErrorKind,
    pub code: Aadsts,
    pub description: String,
    /// Throttled: the caller should retry after this many seconds (answered as 429).
    pub retry_after: Option<u32>,
}

impl GrantError {
    pub fn new(kind: OAuthErrorKind, code: Aadsts, description: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            description: format!("AADSTS{}: {}", code.number(), description.into()),
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
                Aadsts::Throttled,
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
        Self::new(OAuthErrorKind::InvalidGrant, Aadsts::Locked, description)
    }

    /// Is this the lock-out answer (AADSTS50053)?
    pub fn is_locked(&self) -> bool {
        self.code == Aadsts::Locked
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidRequest, Aadsts::InvalidParameter, description)
    }

    /// The tenant segment names no tenant (`shown` is already truncated for display).
    pub fn tenant_not_found(shown: &str) -> Self {
        Self::new(
            OAuthErrorKind::InvalidRequest,
            Aadsts::TenantNotFound,
            format!("Tenant '{shown}' not found."),
        )
    }

    pub(super) fn unavailable() -> Self {
        Self::new(
            OAuthErrorKind::TemporarilyUnavailable,
            Aadsts::DirectoryUnavailable,
            "the directory is unavailable",
        )
    }

    pub(super) fn internal() -> Self {
        Self::new(OAuthErrorKind::ServerError, Aadsts::InternalError, "an internal error occurred")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_starts_with_the_aadsts_number() {
        let e = GrantError::new(OAuthErrorKind::InvalidClient, Aadsts::InvalidClientSecret, "x");
        assert_eq!(e.description, "AADSTS7000215: x");
        assert_eq!(e.code.number(), 7000215);
        assert!(!e.is_locked());
        let t = GrantError::throttled(3);
        assert_eq!((t.code.number(), t.retry_after), (90055, Some(3)));
    }
}
