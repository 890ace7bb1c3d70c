//! What several nodes on one store share beyond the records: the change log they follow
//! (`mlgate_core::changes`), settings (the master key's check value), and the password
//! lock-out's counters. Statements are written once; what differs is how a waiting follower is
//! woken: on PostgreSQL `publish_change` also sends `NOTIFY mlgate_changes` and
//! `wait_for_change` returns as soon as its `LISTEN` connection hears one; SQLite cannot push,
//! so the follower polls.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mlgate_core::changes::{ChangeRecord, ChangeStore};
use mlgate_core::lockout::AttemptStore;
use mlgate_core::store::StoreResult;
use sqlx::postgres::PgListener;
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Db, args};

/// The channel publishers notify and followers listen on.
const CHANNEL: &str = "mlgate_changes";

/// The follower's `LISTEN` connection (PostgreSQL), made on its first wait and made again
/// after it breaks.
#[derive(Clone, Default)]
pub(crate) struct Listener(Arc<tokio::sync::Mutex<Option<PgListener>>>);

impl Listener {
    /// Gives the connection back to the pool (before the pool closes).
    pub(crate) async fn release(&self) {
        *self.0.lock().await = None;
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener(..)")
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait]
impl ChangeStore for SqlStore {
    async fn publish_change(&self, kind: &str, key: &str, at: OffsetDateTime) -> StoreResult<i64> {
        let id = self
            .db
            .opt(
                "INSERT INTO changes (kind, key, at) VALUES ($1, $2, $3) RETURNING id",
                args![kind, key, at],
            )
            .await?
            .ok_or(mlgate_core::store::StoreError::NotFound)?
            .int("id")?;
        if let Db::Pg(_) = self.db {
            // Delivered to the listeners when this (autocommitted) statement commits; a lost
            // notification only costs the listener its poll interval.
            self.db.opt("SELECT pg_notify($1, '') AS sent", args![CHANNEL]).await?;
        }
        Ok(id)
    }

    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeRecord>> {
        let rows = self
            .db
            .all(
                "SELECT id, kind, key, at FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
                args![after, i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChangeRecord {
                    id: r.int("id")?,
                    kind: r.text("kind")?,
                    key: r.text("key")?,
                    at: r.time("at")?,
                })
            })
            .collect()
    }

    async fn last_change_id(&self) -> StoreResult<i64> {
        let row = match self.db {
            // The sequence, not MAX(id): after every row was pruned a node still starts past
            // the ids already used.
            Db::Sqlite(_) => {
                self.db
                    .opt("SELECT seq AS id FROM sqlite_sequence WHERE name = 'changes'", args![])
                    .await?
            }
            Db::Pg(_) => {
                self.db
                    .opt(
                        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS id \
                         FROM changes_id_seq",
                        args![],
                    )
                    .await?
            }
        };
        row.map_or(Ok(0), |r| r.int("id"))
    }

    async fn prune_changes(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.db.exec("DELETE FROM changes WHERE at < $1", args![before]).await
    }

    async fn wait_for_change(&self, max_wait: Duration) {
        let Db::Pg(pool) = &self.db else {
            tokio::time::sleep(max_wait).await;
            return;
        };
        let started = tokio::time::Instant::now();
        let mut slot = self.listener.0.lock().await;
        if slot.is_none() {
            match PgListener::connect_with(pool).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => *slot = Some(l),
                    Err(e) => tracing::debug!(error = %e, "LISTEN failed; polling"),
                },
                Err(e) => tracing::debug!(error = %e, "no LISTEN connection; polling"),
            }
        }
        let rest = max_wait.saturating_sub(started.elapsed());
        let Some(listener) = slot.as_mut() else {
            tokio::time::sleep(rest).await;
            return;
        };
        match tokio::time::timeout(rest, listener.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the LISTEN connection broke; making another");
                *slot = None;
                tokio::time::sleep(max_wait.saturating_sub(started.elapsed())).await;
            }
        }
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = self.db.opt("SELECT value FROM settings WHERE name = $1", args![name]).await?;
        row.map(|r| r.bytes("value")).transpose()
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.db
            .exec(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                args![name, value.to_vec()],
            )
            .await?;
        let row = self.db.opt("SELECT value FROM settings WHERE name = $1", args![name]).await?;
        row.ok_or(mlgate_core::store::StoreError::NotFound)?.bytes("value")
    }
}

#[async_trait]
impl AttemptStore for SqlStore {
    async fn attempt_counts(
        &self,
        keys: &[[u8; 32]],
    ) -> StoreResult<Vec<Option<(u32, OffsetDateTime)>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let row = self
                .db
                .opt("SELECT failures, last_failure FROM login_attempts WHERE key = $1", args![key])
                .await?;
            out.push(match row {
                Some(r) => Some((count(r.int("failures")?), r.time("last_failure")?)),
                None => None,
            });
        }
        Ok(out)
    }

    async fn count_failure(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
        reset_before: OffsetDateTime,
    ) -> StoreResult<u32> {
        // One statement: nodes counting the same key at once each add one.
        let row = self
            .db
            .opt(
                "INSERT INTO login_attempts (key, failures, last_failure) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN login_attempts.last_failure < $3 THEN 1 \
                                   ELSE login_attempts.failures + 1 END, \
                   last_failure = $2 \
                 RETURNING failures",
                args![key, now, reset_before],
            )
            .await?
            .ok_or(mlgate_core::store::StoreError::NotFound)?;
        Ok(count(row.int("failures")?))
    }

    async fn forget_attempts(&self, key: &[u8; 32]) -> StoreResult<()> {
        self.db.exec("DELETE FROM login_attempts WHERE key = $1", args![key]).await.map(drop)
    }

    async fn is_familiar(&self, account: &[u8; 32], source: &[u8; 32]) -> StoreResult<bool> {
        let row = self
            .db
            .opt(
                "SELECT 1 AS one FROM familiar_sources WHERE account = $1 AND source = $2",
                args![account, source],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn add_familiar(
        &self,
        account: &[u8; 32],
        source: &[u8; 32],
        now: OffsetDateTime,
        keep: u32,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        tx.exec(
            "INSERT INTO familiar_sources (account, source, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account, source) DO UPDATE SET seen_at = excluded.seen_at",
            args![account, source, now],
        )
        .await?;
        // The most recent `keep` stay, this one always among them.
        tx.exec(
            "DELETE FROM familiar_sources WHERE account = $1 AND source <> $2 AND source NOT IN \
             (SELECT source FROM familiar_sources WHERE account = $1 AND source <> $2 \
              ORDER BY seen_at DESC, source DESC LIMIT $3)",
            args![account, source, i64::from(keep.saturating_sub(1))],
        )
        .await?;
        tx.commit().await
    }

    async fn prune_attempts(
        &self,
        failures_before: OffsetDateTime,
        familiar_before: OffsetDateTime,
    ) -> StoreResult<u64> {
        let a = self
            .db
            .exec("DELETE FROM login_attempts WHERE last_failure < $1", args![failures_before])
            .await?;
        let f = self
            .db
            .exec("DELETE FROM familiar_sources WHERE seen_at < $1", args![familiar_before])
            .await?;
        Ok(a + f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use mlgate_core::changes::ChangeStore;
    use mlgate_core::lockout::AttemptStore;
    use time::{Duration, OffsetDateTime};

    use crate::SqlStore;

    /// An SQLite store, and a PostgreSQL one when the test cluster is given.
    async fn stores() -> (Vec<SqlStore>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mlgate-shared-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut all = vec![SqlStore::open_sqlite(&dir.join("t.db")).await.unwrap()];
        if let Some(base) = crate::testing::postgres_url() {
            let url = crate::testing::fresh_postgres_database(&base).await.unwrap();
            all.push(SqlStore::open_postgres(&url).await.unwrap());
        }
        (all, dir)
    }

    #[tokio::test]
    async fn the_change_log_is_read_in_order_pruned_and_never_reuses_ids() {
        let (all, dir) = stores().await;
        for s in &all {
            let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
            assert_eq!(s.last_change_id().await.unwrap(), 0);
            let a = s.publish_change("rbac", "", t0).await.unwrap();
            let b = s.publish_change("service", "iris", t0 + Duration::hours(2)).await.unwrap();
            assert!(b > a);
            let rows = s.changes_after(0, 10).await.unwrap();
            assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
            assert_eq!((rows[1].kind.as_str(), rows[1].key.as_str()), ("service", "iris"));
            assert_eq!(s.changes_after(a, 10).await.unwrap().len(), 1);
            assert_eq!(s.changes_after(0, 1).await.unwrap().len(), 1, "the limit holds");
            assert_eq!(s.prune_changes(t0 + Duration::hours(3)).await.unwrap(), 2);
            // Everything pruned: a starting node still begins past the ids used.
            assert_eq!(s.last_change_id().await.unwrap(), b);
            assert!(s.publish_change("rbac", "", t0).await.unwrap() > b);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_setting_is_kept_by_the_first_writer() {
        let (all, dir) = stores().await;
        for s in &all {
            assert_eq!(s.setting("k").await.unwrap(), None);
            assert_eq!(s.init_setting("k", b"first").await.unwrap(), b"first");
            assert_eq!(s.init_setting("k", b"second").await.unwrap(), b"first");
            assert_eq!(s.setting("k").await.unwrap().as_deref(), Some(&b"first"[..]));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn failures_count_atomically_restart_after_quiet_and_prune() {
        let (all, dir) = stores().await;
        for s in &all {
            let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
            let key = [7u8; 32];
            let long_ago = now - Duration::hours(1);
            // Many at once (as several nodes would): none lost.
            let all = futures_join(s, &key, now, long_ago, 20).await;
            assert_eq!(all.iter().max(), Some(&20));
            assert_eq!(
                s.attempt_counts(&[key, [8u8; 32]]).await.unwrap()[0].map(|c| c.0),
                Some(20)
            );
            assert_eq!(s.attempt_counts(&[[8u8; 32]]).await.unwrap()[0], None);
            // An hour later the count starts again.
            let later = now + Duration::hours(2);
            assert_eq!(s.count_failure(&key, later, later - Duration::hours(1)).await.unwrap(), 1);
            assert_eq!(s.prune_attempts(later, now).await.unwrap(), 0);
            assert_eq!(s.prune_attempts(later + Duration::seconds(1), now).await.unwrap(), 1);
            s.count_failure(&key, later, later).await.unwrap();
            s.forget_attempts(&key).await.unwrap();
            assert_eq!(s.attempt_counts(&[key]).await.unwrap()[0], None);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn futures_join(
        s: &SqlStore,
        key: &[u8; 32],
        now: OffsetDateTime,
        reset_before: OffsetDateTime,
        n: usize,
    ) -> Vec<u32> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (s, key) = (s.clone(), *key);
            tasks.spawn(async move { s.count_failure(&key, now, reset_before).await.unwrap() });
        }
        tasks.join_all().await
    }

    #[tokio::test]
    async fn familiar_sources_are_bounded_per_account_and_forgotten() {
        let (all, dir) = stores().await;
        for s in &all {
            let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
            let account = [1u8; 32];
            for i in 0..20u8 {
                s.add_familiar(&account, &[100 + i; 32], t0 + Duration::seconds(i64::from(i)), 16)
                    .await
                    .unwrap();
            }
            let mut kept = 0;
            for i in 0..20u8 {
                kept += u32::from(s.is_familiar(&account, &[100 + i; 32]).await.unwrap());
            }
            assert_eq!(kept, 16);
            assert!(s.is_familiar(&account, &[119; 32]).await.unwrap(), "the newest stays");
            assert!(!s.is_familiar(&account, &[100; 32]).await.unwrap(), "the oldest went");
            assert!(!s.is_familiar(&[2u8; 32], &[119; 32]).await.unwrap(), "per account");
            assert_eq!(s.prune_attempts(t0, t0 + Duration::days(1)).await.unwrap(), 16);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
