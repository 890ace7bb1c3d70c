//! Password lock-out kept in the store, so that every node sharing it counts the same
//! failures: guesses spread over three nodes lock an account as fast as guesses at one.
//!
//! The policy is the parent module's (smart lock-out, exponential back-off); the store only
//! counts. Each count is keyed by a SHA-256 of what it counts (`src`, `acct`, `fam` + tenant,
//! user name as typed and case-folded, address), so no user name or address is kept in clear
//! and every key has the same size. A count's lock is derived, not stored: `last failure +
//! lock_for(failures)`, which is what the in-memory table set at each failure. A failure is one
//! atomic upsert (`failures + 1`, or 1 when the last failure is older than `forget_after`), so
//! nodes counting at once lose nothing.
//!
//! Bounds: counts with no failure for `forget_after` are pruned (the follower's periodic pass
//! calls [`PasswordLockout::prune`]), familiar sources are at most 16 per account and are
//! forgotten after 90 days without a sign-in.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{Account, BackoffPolicy, FAMILIAR_PER_ACCOUNT, Locked, Source};
use crate::clock::Clock;
use crate::secrets::sha256;
use crate::store::{StoreError, StoreResult};

/// A familiar source not seen signing in for this long is a stranger again.
const FAMILIAR_FOR: Duration = Duration::days(90);

/// The attempt counters every node shares.
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// For each key, its failures and last failure, or `None` when it has none.
    async fn attempt_counts(
        &self,
        keys: &[[u8; 32]],
    ) -> StoreResult<Vec<Option<(u32, OffsetDateTime)>>>;
    /// Counts one failure, from zero again when the last one was before `reset_before`;
    /// returns the new count. Atomic.
    async fn count_failure(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
        reset_before: OffsetDateTime,
    ) -> StoreResult<u32>;
    async fn forget_attempts(&self, key: &[u8; 32]) -> StoreResult<()>;
    async fn is_familiar(&self, account: &[u8; 32], source: &[u8; 32]) -> StoreResult<bool>;
    /// Remembers `source` as familiar to `account` (at `now`), keeping the `keep` most recent.
    async fn add_familiar(
        &self,
        account: &[u8; 32],
        source: &[u8; 32],
        now: OffsetDateTime,
        keep: u32,
    ) -> StoreResult<()>;
    /// Deletes counts whose last failure is before `failures_before` and familiar sources
    /// last seen before `familiar_before`; returns how many rows went.
    async fn prune_attempts(
        &self,
        failures_before: OffsetDateTime,
        familiar_before: OffsetDateTime,
    ) -> StoreResult<u64>;
}

/// Why an attempt may not go ahead.
#[derive(Debug)]
pub enum Refusal {
    Locked(Locked),
    /// The counts could not be read or written: refuse rather than guess unlimited.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(128);
    for p in parts {
        buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
        buf.extend_from_slice(p);
    }
    sha256(&buf)
}

fn source_key(s: Source) -> [u8; 32] {
    digest(&[b"src", s.0.to_string().as_bytes()])
}

fn account_key(a: &Account) -> [u8; 32] {
    digest(&[b"acct", a.0.to_string().as_bytes(), a.1.as_bytes()])
}

fn familiar_key(a: &Account, s: Source) -> [u8; 32] {
    digest(&[b"fam", a.0.to_string().as_bytes(), a.1.as_bytes(), s.0.to_string().as_bytes()])
}

/// The password-attempt guard: one per authority, consulted by every password check.
pub struct PasswordLockout {
    clock: Arc<dyn Clock>,
    store: Arc<dyn AttemptStore>,
    account: BackoffPolicy,
    source: BackoffPolicy,
}

impl PasswordLockout {
    pub fn new(clock: Arc<dyn Clock>, store: Arc<dyn AttemptStore>) -> Self {
        Self::with_policies(clock, store, BackoffPolicy::ACCOUNT, BackoffPolicy::SOURCE)
    }

    pub fn with_policies(
        clock: Arc<dyn Clock>,
        store: Arc<dyn AttemptStore>,
        account: BackoffPolicy,
        source: BackoffPolicy,
    ) -> Self {
        Self { clock, store, account, source }
    }

    fn until(
        policy: &BackoffPolicy,
        count: Option<(u32, OffsetDateTime)>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let (failures, last) = count?;
        if now - last >= policy.forget_after {
            return None;
        }
        Some(last + policy.lock_for(failures)?).filter(|u| *u > now)
    }

    /// The count this account's failures from `source` go to: its own when familiar.
    async fn account_count_key(&self, account: &Account, source: Source) -> StoreResult<[u8; 32]> {
        let acct = account_key(account);
        Ok(if self.store.is_familiar(&acct, &source_key(source)).await? {
            familiar_key(account, source)
        } else {
            acct
        })
    }

    /// Before checking a password: may this source try this account now?
    pub async fn check(&self, account: &Account, source: Source) -> Result<(), Refusal> {
        let now = self.clock.now();
        let by_account = self.account_count_key(account, source).await?;
        let counts = self.store.attempt_counts(&[source_key(source), by_account]).await?;
        let mut counts = counts.into_iter();
        if let Some(until) = Self::until(&self.source, counts.next().flatten(), now) {
            return Err(Refusal::Locked(Locked::Source { until }));
        }
        match Self::until(&self.account, counts.next().flatten(), now) {
            Some(until) => Err(Refusal::Locked(Locked::Account { until })),
            None => Ok(()),
        }
    }

    /// A wrong password (or an unknown user): counted for the source and for the account.
    pub async fn failed(&self, account: &Account, source: Source) -> StoreResult<()> {
        let now = self.clock.now();
        let by_account = self.account_count_key(account, source).await?;
        self.store.count_failure(&source_key(source), now, now - self.source.forget_after).await?;
        self.store.count_failure(&by_account, now, now - self.account.forget_after).await?;
        Ok(())
    }

    /// A right password: the source becomes familiar to the account and its own count for it
    /// starts again. The source's count over all accounts does not (signing in to one's own
    /// account must not buy more guesses at others).
    pub async fn succeeded(&self, account: &Account, source: Source) -> StoreResult<()> {
        let now = self.clock.now();
        self.store.forget_attempts(&familiar_key(account, source)).await?;
        self.store
            .add_familiar(
                &account_key(account),
                &source_key(source),
                now,
                FAMILIAR_PER_ACCOUNT as u32,
            )
            .await
    }

    /// Forgets what no longer counts (run periodically).
    pub async fn prune(&self) -> StoreResult<u64> {
        let now = self.clock.now();
        let forget = self.account.forget_after.max(self.source.forget_after);
        self.store.prune_attempts(now - forget, now - FAMILIAR_FOR).await
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! The counters in a map, for the policy's unit tests (the store's are tested in the
    //! integration suite, over SQLite).
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// A familiar source and when it signed in.
    type Seen = ([u8; 32], OffsetDateTime);

    #[derive(Default)]
    pub struct MemoryAttempts {
        counts: Mutex<HashMap<[u8; 32], (u32, OffsetDateTime)>>,
        familiar: Mutex<HashMap<[u8; 32], Vec<Seen>>>,
    }

    #[async_trait]
    impl AttemptStore for MemoryAttempts {
        async fn attempt_counts(
            &self,
            keys: &[[u8; 32]],
        ) -> StoreResult<Vec<Option<(u32, OffsetDateTime)>>> {
            let m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            Ok(keys.iter().map(|k| m.get(k).copied()).collect())
        }
        async fn count_failure(
            &self,
            key: &[u8; 32],
            now: OffsetDateTime,
            reset_before: OffsetDateTime,
        ) -> StoreResult<u32> {
            let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let c = m.entry(*key).or_insert((0, now));
            if c.1 < reset_before {
                c.0 = 0;
            }
            c.0 += 1;
            c.1 = now;
            Ok(c.0)
        }
        async fn forget_attempts(&self, key: &[u8; 32]) -> StoreResult<()> {
            self.counts.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
            Ok(())
        }
        async fn is_familiar(&self, account: &[u8; 32], source: &[u8; 32]) -> StoreResult<bool> {
            let m = self.familiar.lock().unwrap_or_else(|p| p.into_inner());
            Ok(m.get(account).is_some_and(|v| v.iter().any(|(s, _)| s == source)))
        }
        async fn add_familiar(
            &self,
            account: &[u8; 32],
            source: &[u8; 32],
            now: OffsetDateTime,
            keep: u32,
        ) -> StoreResult<()> {
            let mut m = self.familiar.lock().unwrap_or_else(|p| p.into_inner());
            let v = m.entry(*account).or_default();
            v.retain(|(s, _)| s != source);
            v.push((*source, now));
            while v.len() > keep as usize {
                v.remove(0);
            }
            Ok(())
        }
        async fn prune_attempts(
            &self,
            failures_before: OffsetDateTime,
            _familiar_before: OffsetDateTime,
        ) -> StoreResult<u64> {
            let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.len();
            m.retain(|_, c| c.1 >= failures_before);
            Ok((n - m.len()) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::memory::MemoryAttempts;
    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::TenantId;

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

    fn guard(clock: &Arc<ManualClock>, source: BackoffPolicy) -> PasswordLockout {
        PasswordLockout::with_policies(
            clock.clone(),
            Arc::new(MemoryAttempts::default()),
            small(),
            source,
        )
    }

    fn locked(r: Result<(), Refusal>) -> Option<Locked> {
        match r {
            Ok(()) => None,
            Err(Refusal::Locked(l)) => Some(l),
            Err(Refusal::Store(e)) => panic!("store: {e}"),
        }
    }

    #[tokio::test]
    async fn an_account_locks_after_its_free_failures_and_backs_off() {
        let clock = Arc::new(ManualClock::new());
        let g = guard(&clock, BackoffPolicy::SOURCE);
        let acct = Account::new(TenantId::new_random(), "Alice@Example.com");
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            assert!(locked(g.check(&acct, a).await).is_none());
            g.failed(&acct, a).await.unwrap();
        }
        assert!(matches!(locked(g.check(&acct, a).await), Some(Locked::Account { .. })));
        // The same name in another case is the same account.
        let same = Account::new(acct.0, " alice@example.COM ");
        assert!(locked(g.check(&same, a).await).is_some());
        clock.advance(Duration::seconds(61));
        assert!(locked(g.check(&acct, a).await).is_none(), "the first lock lasts 60 s");
        g.failed(&acct, a).await.unwrap();
        clock.advance(Duration::seconds(61));
        assert!(locked(g.check(&acct, a).await).is_some(), "the second lasts 120 s");
        clock.advance(Duration::seconds(60));
        assert!(locked(g.check(&acct, a).await).is_none());
        // An hour without failures and the count starts again.
        clock.advance(Duration::hours(1));
        for _ in 0..2 {
            g.failed(&acct, a).await.unwrap();
        }
        assert!(locked(g.check(&acct, a).await).is_none());
    }

    #[tokio::test]
    async fn strangers_do_not_lock_out_a_familiar_source() {
        let clock = Arc::new(ManualClock::new());
        let g = guard(&clock, BackoffPolicy::SOURCE);
        let acct = Account::new(TenantId::new_random(), "bob");
        let home = ip("192.0.2.10");
        g.succeeded(&acct, home).await.unwrap();
        for i in 0..50 {
            let s = ip(&format!("198.51.100.{i}"));
            g.failed(&acct, s).await.unwrap();
            g.failed(&acct, s).await.unwrap();
            assert!(locked(g.check(&acct, home).await).is_none(), "the familiar source is not");
        }
        assert!(locked(g.check(&acct, ip("198.51.100.200")).await).is_some());
        // The familiar source has its own count for the account.
        for _ in 0..3 {
            g.failed(&acct, home).await.unwrap();
        }
        assert!(matches!(locked(g.check(&acct, home).await), Some(Locked::Account { .. })));
        let other = Account::new(acct.0, "carol");
        assert!(locked(g.check(&other, ip("198.51.100.1")).await).is_none());
    }

    #[tokio::test]
    async fn one_source_guessing_many_accounts_is_locked_whatever_the_account() {
        let clock = Arc::new(ManualClock::new());
        let g = guard(&clock, small());
        let t = TenantId::new_random();
        let a = ip("203.0.113.5");
        for i in 0..3 {
            g.failed(&Account::new(t, &format!("user{i}")), a).await.unwrap();
        }
        let someone = Account::new(t, "someone");
        assert!(matches!(locked(g.check(&someone, a).await), Some(Locked::Source { .. })));
        g.succeeded(&Account::new(t, "user0"), a).await.unwrap();
        assert!(locked(g.check(&someone, a).await).is_some());
    }

    #[tokio::test]
    async fn old_counts_are_pruned() {
        let clock = Arc::new(ManualClock::new());
        let g = guard(&clock, small());
        let acct = Account::new(TenantId::new_random(), "dave");
        g.failed(&acct, ip("10.0.0.9")).await.unwrap();
        assert_eq!(g.prune().await.unwrap(), 0);
        clock.advance(Duration::hours(2));
        assert_eq!(g.prune().await.unwrap(), 2, "the account's and the source's");
    }
}
