//! The sign-in log (Azure AD's sign-in logs): every interactive sign-in (the sign-in pages) and
//! every token grant, successful or not (with its AADSTS code), per user and application, with
//! the client's address and the client id it used. Never a password, secret or token: a
//! record holds the name typed, ids, the grant and the error code.
//!
//! Writing is the server's business (batched off the request path); this is the record, the
//! query and the store's part.
//!
//! Non-interactive attempts are **aggregated**, as Azure AD's non-interactive sign-in log is:
//! identical token requests (same tenant, user or application, client id, address, grant,
//! resource and result) within one minute are one record that counts them ([`SignInRecord::count`],
//! first and last time). A client renewing its token thousands of times a minute is then one
//! row a minute, not thousands, and a guesser shows as one failure row whose count climbs.
//! Interactive sign-ins (a person at the pages) are one record each.

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
    /// The first attempt's correlation id (an aggregated record keeps only the first).
    pub correlation_id: String,
    /// How many identical attempts this record stands for (1 for an interactive sign-in).
    pub count: u32,
    /// The last of them; `at` is the first.
    pub last_at: OffsetDateTime,
}

/// Identical non-interactive attempts within this many seconds are one record.
pub const AGGREGATION_WINDOW_SECS: i64 = 60;

impl SignInRecord {
    pub fn succeeded(&self) -> bool {
        self.error_code == 0
    }

    /// The key that identical non-interactive attempts of one window share (an unpadded
    /// base64url SHA-256 of the window and every field that names the attempt), or `None` for
    /// an interactive sign-in, which is never aggregated. Stores keep one record per key and
    /// add the counts of later batches into it.
    pub fn aggregation_key(&self) -> Option<String> {
        use base64::Engine;
        if self.interactive {
            return None;
        }
        let window = self.at.unix_timestamp().div_euclid(AGGREGATION_WINDOW_SECS);
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(&window.to_be_bytes());
        let tenant = self.tenant_id.map(|t| t.to_string());
        let fields = [
            tenant.as_deref(),
            self.user_id.as_deref(),
            self.user_principal_name.as_deref(),
            self.app_id.as_deref(),
            self.service_principal_id.as_deref(),
            Some(self.client_address.as_str()),
            Some(self.grant.as_str()),
            self.resource.as_deref(),
        ];
        for f in fields {
            // Length-prefixed, and absent distinct from empty: no two field lists share bytes.
            match f {
                None => ctx.update(&[0]),
                Some(v) => {
                    ctx.update(&[1]);
                    ctx.update(&(v.len() as u64).to_be_bytes());
                    ctx.update(v.as_bytes());
                }
            }
        }
        ctx.update(&self.error_code.to_be_bytes());
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.finish().as_ref()))
    }

    /// Adds `other` (an attempt with the same aggregation key) into this record.
    pub fn absorb(&mut self, other: &SignInRecord) {
        self.count = self.count.saturating_add(other.count);
        self.at = self.at.min(other.at);
        self.last_at = self.last_at.max(other.last_at);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(at: i64) -> SignInRecord {
        let at = OffsetDateTime::from_unix_timestamp(at).unwrap();
        SignInRecord {
            id: Uuid::new_v4(),
            at,
            tenant_id: None,
            user_id: None,
            user_principal_name: None,
            app_id: Some("app".into()),
            app_display_name: None,
            service_principal_id: Some("sp".into()),
            client_address: "10.0.0.1".into(),
            interactive: false,
            grant: "client_credentials".into(),
            resource: None,
            error_code: 0,
            failure_reason: None,
            correlation_id: Uuid::new_v4().to_string(),
            count: 1,
            last_at: at,
        }
    }

    #[test]
    fn identical_grants_of_one_minute_share_a_key_and_nothing_else_does() {
        let key = |r: &SignInRecord| r.aggregation_key().unwrap();
        let a = grant(120);
        // Another id, correlation id, time in the same minute and failure text: the same.
        let mut same = grant(179);
        same.failure_reason = Some("words".into());
        assert_eq!(key(&a), key(&same));
        assert_ne!(key(&a), key(&grant(180)), "the next minute");
        let mut failed = grant(120);
        failed.error_code = 7000215;
        assert_ne!(key(&a), key(&failed));
        // Absent is not empty, and the fields' boundaries count.
        let mut empty = grant(120);
        empty.resource = Some(String::new());
        assert_ne!(key(&a), key(&empty));
        let (mut x, mut y) = (grant(120), grant(120));
        (x.app_id, x.service_principal_id) = (Some("ab".into()), Some("c".into()));
        (y.app_id, y.service_principal_id) = (Some("a".into()), Some("bc".into()));
        assert_ne!(key(&x), key(&y));
        let mut page = grant(120);
        page.interactive = true;
        assert_eq!(page.aggregation_key(), None, "interactive sign-ins are one record each");
    }

    #[test]
    fn absorbing_adds_counts_and_widens_the_span() {
        let mut a = grant(130);
        let mut b = grant(125);
        b.count = 3;
        b.last_at = OffsetDateTime::from_unix_timestamp(150).unwrap();
        a.absorb(&b);
        assert_eq!((a.count, a.at.unix_timestamp(), a.last_at.unix_timestamp()), (4, 125, 150));
    }
}
