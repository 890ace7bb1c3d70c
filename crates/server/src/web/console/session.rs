//! The console's server-side sessions: a bounded in-memory table keyed by the SHA-256 of a
//! random 256-bit id that only the browser's cookie holds.
//!
//! A session keeps the signed-in principal (from a verified access token of the console's own
//! sign-in) and that sign-in's refresh token, which renews the principal when its token would
//! have expired (so a disabled user loses the console within the access-token lifetime) and
//! which sign-out revokes. Sessions are per process: with several nodes the balancer must keep
//! a browser on one node (or the person signs in again on another); see ARCHITECTURE.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_core::principal::Principal;
use mlgate_core::secrets::{random_bytes, sha256};
use time::{Duration, OffsetDateTime};

/// The session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS).
pub const SESSION_COOKIE: &str = "mlgate_console";
/// Sessions held at most; a new sign-in past this evicts the least recently used one.
pub const MAX_SESSIONS: usize = 10_000;
/// A session unused this long is gone.
pub const IDLE: Duration = Duration::hours(1);
/// And none lives longer than this, used or not.
pub const ABSOLUTE: Duration = Duration::hours(12);

/// What one signed-in browser holds.
pub struct SessionData {
    pub principal: Principal,
    /// When the principal must be renewed with the refresh token (its token's expiry).
    pub renew_at: OffsetDateTime,
    /// The console sign-in's refresh token (rotated at each renewal); revoked at sign-out.
    pub refresh_token: String,
}

struct Entry {
    data: Arc<tokio::sync::Mutex<SessionData>>,
    created: OffsetDateTime,
    last_used: OffsetDateTime,
}

#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Entry>>,
}

pub type Session = Arc<tokio::sync::Mutex<SessionData>>;

impl Sessions {
    /// Stores a new session and returns the cookie value that names it.
    pub fn create(&self, data: SessionData, now: OffsetDateTime) -> String {
        let id = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // Only a full table is swept (O(sessions), once per sign-in at the bound).
        if t.len() >= MAX_SESSIONS {
            t.retain(|_, e| alive(e, now));
        }
        if t.len() >= MAX_SESSIONS
            && let Some(oldest) = t.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k)
        {
            t.remove(&oldest);
        }
        t.insert(
            sha256(id.as_bytes()),
            Entry { data: Arc::new(tokio::sync::Mutex::new(data)), created: now, last_used: now },
        );
        id
    }

    /// The live session the cookie names, marked used.
    pub fn get(&self, cookie: &str, now: OffsetDateTime) -> Option<Session> {
        if cookie.len() != 43 {
            return None;
        }
        let key = sha256(cookie.as_bytes());
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match t.get_mut(&key) {
            Some(e) if alive(e, now) => {
                e.last_used = now;
                Some(e.data.clone())
            }
            Some(_) => {
                t.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, cookie: &str) -> Option<Session> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.remove(&sha256(cookie.as_bytes())).map(|e| e.data)
    }

    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(e: &Entry, now: OffsetDateTime) -> bool {
    now - e.last_used < IDLE && now - e.created < ABSOLUTE
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlgate_core::tokens::AccessClaims;

    fn data() -> SessionData {
        let claims: AccessClaims = serde_json::from_value(serde_json::json!({
            "aud": "a", "iss": "i", "iat": 0, "nbf": 0, "exp": 1,
            "oid": uuid::Uuid::new_v4().to_string(), "tid": uuid::Uuid::new_v4().to_string(),
            "sub": "s", "uti": "u", "ver": "2.0", "idtyp": "user", "upn": "a@b"
        }))
        .unwrap();
        SessionData {
            principal: Principal::from_claims(claims).unwrap(),
            renew_at: OffsetDateTime::UNIX_EPOCH,
            refresh_token: "r".into(),
        }
    }

    #[test]
    fn sessions_expire_idle_and_absolute_and_the_table_is_bounded() {
        let s = Sessions::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let id = s.create(data(), t0);
        assert!(s.get(&id, t0 + Duration::minutes(59)).is_some());
        assert!(s.get(&id, t0 + Duration::minutes(59) * 2).is_some(), "use renews idleness");
        assert!(s.get(&id, t0 + Duration::hours(3) + Duration::minutes(59)).is_none(), "idle");
        let id = s.create(data(), t0);
        let mut at = t0;
        while at < t0 + Duration::hours(12) - Duration::minutes(30) {
            at += Duration::minutes(30);
            assert!(s.get(&id, at).is_some());
        }
        assert!(s.get(&id, t0 + Duration::hours(12)).is_none(), "absolute lifetime");
        assert!(s.get("not-a-session", t0).is_none());

        let s = Sessions::default();
        let first = s.create(data(), t0);
        for i in 1..MAX_SESSIONS + 5 {
            s.create(data(), t0 + Duration::milliseconds(i as i64));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first, t0 + Duration::seconds(30)).is_none(), "least recently used went");
        assert!(s.remove("x").is_none());
    }
}
