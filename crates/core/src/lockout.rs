//! Limits on guessing: passwords (per account and per source, with smart lock-out) and device
//! user codes (per source, and in total). Security-critical.
//!
//! Every failure is counted against a key; past a number of free failures the key is locked,
//! for a time that doubles with each further failure (exponential back-off) up to a ceiling;
//! a key with no failure for a while is forgotten. A locked key is refused before any work is
//! done (no password is hashed for it).
//!
//! Passwords, as Azure AD's smart lock-out: failures count per source address (one address
//! guessing many accounts) and per account; an account's failures from strangers lock out
//! strangers only. A source that has signed in to the account successfully is *familiar* and
//! has its own count for that account, so the real user is not locked out by someone else's
//! guesses. Unknown user names are counted like real ones (no oracle).
//!
//! Sources are IP addresses; an IPv6 address counts as its /64 (what one host usually holds).
//! Time comes from the [`Clock`]. Password counts are kept in the store, shared by every node
//! ([`password`]); user-code counts are in memory, per process, and bounded.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::ids::TenantId;

mod password;
pub use password::{AttemptStore, PasswordLockout, Refusal};

/// How failures turn into locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The failure that starts the first lock (Azure AD's "lockout threshold").
    pub threshold: u32,
    /// The first lock; each further failure doubles it.
    pub first_lock: Duration,
    pub max_lock: Duration,
    /// A key with no failure for this long starts again from zero.
    pub forget_after: Duration,
}

impl BackoffPolicy {
    /// Accounts: Azure AD's defaults (10 failures, then 60 s, growing), up to 30 minutes.
    pub const ACCOUNT: Self = Self {
        threshold: 10,
        first_lock: Duration::seconds(60),
        max_lock: Duration::minutes(30),
        forget_after: Duration::hours(1),
    };
    /// Source addresses: more room (an office behind one address), same growth.
    pub const SOURCE: Self = Self {
        threshold: 20,
        first_lock: Duration::seconds(60),
        max_lock: Duration::minutes(30),
        forget_after: Duration::hours(1),
    };
    /// User codes per source: 10 wrong codes, then back-off (the pages always allowed 10).
    pub const USER_CODE: Self = Self {
        threshold: 10,
        first_lock: Duration::seconds(60),
        max_lock: Duration::minutes(30),
        forget_after: Duration::hours(1),
    };

    fn lock_for(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.threshold)?;
        let factor = 1i32.checked_shl(over.min(30)).unwrap_or(i32::MAX);
        Some(self.first_lock.checked_mul(factor).unwrap_or(self.max_lock).min(self.max_lock))
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last_failure: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
}

/// Failure counts by key, at most `capacity` keys.
struct Table<K> {
    policy: BackoffPolicy,
    capacity: usize,
    counts: HashMap<K, Count>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(policy: BackoffPolicy, capacity: usize) -> Self {
        Self { policy, capacity, counts: HashMap::new() }
    }

    fn locked_until(&self, key: &K, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.counts.get(key).and_then(|c| c.locked_until).filter(|u| *u > now)
    }

    fn fail(&mut self, key: &K, now: OffsetDateTime) {
        if !self.counts.contains_key(key) && self.counts.len() >= self.capacity {
            self.make_room(now);
        }
        let forget = self.policy.forget_after;
        let c = self.counts.entry(key.clone()).or_insert(Count {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now - c.last_failure >= forget {
            c.failures = 0;
        }
        c.failures = c.failures.saturating_add(1);
        c.last_failure = now;
        if let Some(lock) = self.policy.lock_for(c.failures) {
            c.locked_until = Some(now + lock);
        }
    }

    /// Drops forgotten keys, then unlocked ones, then the oldest, until a tenth is free: a
    /// flood of new keys cannot grow memory, and locks go last.
    fn make_room(&mut self, now: OffsetDateTime) {
        let forget = self.policy.forget_after;
        let target = self.capacity - self.capacity / 10 - 1;
        self.counts.retain(|_, c| now - c.last_failure < forget);
        if self.counts.len() > target {
            self.counts.retain(|_, c| c.locked_until.is_some_and(|u| u > now));
        }
        if self.counts.len() > target {
            let mut by_age: Vec<(OffsetDateTime, K)> =
                self.counts.iter().map(|(k, c)| (c.last_failure, k.clone())).collect();
            by_age.sort_by_key(|(t, _)| *t);
            for (_, k) in by_age.into_iter().take(self.counts.len() - target) {
                self.counts.remove(&k);
            }
        }
    }
}

/// Where an attempt comes from: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

/// An account as typed: the tenant and the user name, case-folded. Not looked up, so that
/// unknown names are counted like known ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account(TenantId, String);

impl Account {
    pub fn new(tenant: TenantId, username: &str) -> Self {
        Self(tenant, username.trim().to_lowercase())
    }
}

/// Why an attempt is refused before it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The account is locked for this source (strangers, or this familiar source).
    Account { until: OffsetDateTime },
    /// The source address failed too often, whatever the account.
    Source { until: OffsetDateTime },
}

/// Sources remembered per account as familiar.
const FAMILIAR_PER_ACCOUNT: usize = 16;
/// Keys each table holds at most (a few MB).
const TABLE_CAPACITY: usize = 100_000;

/// The user-code guard of the device-login pages: per source with back-off, and in total per
/// fixed window, so the 20^8 codes cannot be walked from many addresses either.
pub struct CodeLockout {
    clock: Arc<dyn Clock>,
    total_per_window: u32,
    window: Duration,
    state: Mutex<CodeState>,
}

struct CodeState {
    by_source: Table<Source>,
    window_started: OffsetDateTime,
    total: u32,
}

impl CodeLockout {
    /// 10 failures per source before back-off, 1,000 in total per 10 minutes.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(clock, BackoffPolicy::USER_CODE, 1000, Duration::minutes(10))
    }

    pub fn with_limits(
        clock: Arc<dyn Clock>,
        per_source: BackoffPolicy,
        total_per_window: u32,
        window: Duration,
    ) -> Self {
        let now = clock.now();
        Self {
            clock,
            total_per_window,
            window,
            state: Mutex::new(CodeState {
                by_source: Table::new(per_source, TABLE_CAPACITY),
                window_started: now,
                total: 0,
            }),
        }
    }

    fn state(&self, now: OffsetDateTime) -> std::sync::MutexGuard<'_, CodeState> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now - s.window_started >= self.window {
            s.window_started = now;
            s.total = 0;
        }
        s
    }

    /// Before looking a code up: the time until this source may try again, if it may not.
    pub fn check(&self, source: Source) -> Result<(), OffsetDateTime> {
        let now = self.clock.now();
        let s = self.state(now);
        if s.total >= self.total_per_window {
            return Err(s.window_started + self.window);
        }
        match s.by_source.locked_until(&source, now) {
            Some(until) => Err(until),
            None => Ok(()),
        }
    }

    pub fn failed(&self, source: Source) {
        let now = self.clock.now();
        let mut s = self.state(now);
        s.total = s.total.saturating_add(1);
        s.by_source.fail(&source, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn ip(s: &str) -> Source {
        s.parse::<IpAddr>().unwrap().into()
    }

    fn small() -> BackoffPolicy {
        BackoffPolicy {
            threshold: 3,
            first_lock: Duration::seconds(60),
            max_lock: Duration::minutes(10),
            forget_after: Duration::hours(1),
        }
    }

    #[test]
    fn locks_grow_exponentially_up_to_the_ceiling() {
        let p = small();
        assert_eq!(p.lock_for(2), None);
        assert_eq!(p.lock_for(3), Some(Duration::seconds(60)));
        assert_eq!(p.lock_for(4), Some(Duration::seconds(120)));
        assert_eq!(p.lock_for(5), Some(Duration::seconds(240)));
        assert_eq!(p.lock_for(8), Some(Duration::minutes(10)));
        assert_eq!(p.lock_for(u32::MAX), Some(Duration::minutes(10)));
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_v4_as_v4() {
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
    }

    #[test]
    fn tables_stay_bounded_and_keep_locks_longest() {
        let clock = Arc::new(ManualClock::new());
        let now = clock.now();
        let mut t: Table<u32> = Table::new(small(), 100);
        for _ in 0..3 {
            t.fail(&0, now);
        }
        for k in 1..1000 {
            t.fail(&k, now);
        }
        assert!(t.counts.len() <= 100);
        assert!(t.locked_until(&0, now).is_some(), "the locked key survived the flood");
    }

    #[test]
    fn user_codes_are_limited_per_source_and_in_total() {
        let clock = Arc::new(ManualClock::new());
        let g = CodeLockout::with_limits(clock.clone(), small(), 10, Duration::minutes(10));
        let a = ip("10.1.1.1");
        for _ in 0..3 {
            assert!(g.check(a).is_ok());
            g.failed(a);
        }
        assert!(g.check(a).is_err());
        assert!(g.check(ip("10.1.1.2")).is_ok());
        for i in 0..7 {
            g.failed(ip(&format!("10.2.0.{i}")));
        }
        assert!(g.check(ip("10.9.9.9")).is_err(), "the total applies to everyone");
        clock.advance(Duration::minutes(10));
        assert!(g.check(ip("10.9.9.9")).is_ok(), "until the window ends");
    }
}
