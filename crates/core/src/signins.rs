//! The sign-in log (Azure AD's sign-in logs): every interactive sign-in (the sign-in pages) and
//! every token grant, successful or not (with its AADSTS code), per user and application, with
//! the client's address and the client id it used. Never a password, secret or token: a
//! record holds the name typed, ids, the grant and the error code.
//!
//! Writing is the server's business (batched off the request path); this is the record, the
//! query and the store's part.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::TenantId;

/// One sign-in or token grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// The tenant signed in to, when it resolved.
    pub tenant_id: Option<TenantId>,
    /// The user's object id (known users only).
    pub user_id: Option<String>,
    /// The user name as typed (at most 128 characters), or the signed-in user's name.
    pub user_principal_name: Option<String>,
    /// The client id sent (at most 64 characters).
    pub app_id: Option<String>,
    pub app_display_name: Option<String>,
    /// For client credentials: the service principal's object id.
    pub service_principal_id: Option<String>,
    pub client_address: String,
    /// A person at the sign-in pages, rather than a client redeeming a grant.
    pub interactive: bool,
    /// `password`, `client_credentials`, `refresh_token`, `device_code`, `authorization_code`,
    /// or the page: `devicelogin`, `authorize`.
    pub grant: String,
    pub resource: Option<String>,
    /// 0 on success, else the AADSTS number.
    pub error_code: u32,
    /// The failure's description, without the `AADSTS...: ` prefix.
    pub failure_reason: Option<String>,
    pub correlation_id: String,
}

impl SignInRecord {
    pub fn succeeded(&self) -> bool {
        self.error_code == 0
    }
}

/// What a query of the sign-in log asks for; newest first.
#[derive(Debug, Clone, Default)]
pub struct SignInQuery {
    pub tenant_id: Option<TenantId>,
    /// A user's principal name or object id (case-insensitive).
    pub user: Option<String>,
    /// A client id (case-insensitive).
    pub app: Option<String>,
    pub failures_only: bool,
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    /// Keyset: only records strictly older than this `(at, id)`.
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// At most this many characters of what a client typed are kept.
pub fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
