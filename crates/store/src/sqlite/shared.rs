//! What several nodes on one store share beyond the records: the change log they follow,
//! settings (the master key's check value), and the password lock-out's counters.
//! SQLite's single writer makes each statement atomic; every statement here is also valid
//! PostgreSQL but for the placeholders and the BLOB type.

use std::time::Duration;

use async_trait::async_trait;
use mlgate_core::changes::{ChangeRecord, ChangeStore};
use mlgate_core::lockout::AttemptStore;
use mlgate_core::store::StoreResult;
use sqlx::Row;
use time::OffsetDateTime;

use super::{SqliteStore, from_ts, map_err, ts};

#[async_trait]
impl ChangeStore for SqliteStore {
    async fn publish_change(&self, kind: &str, key: &str, at: OffsetDateTime) -> StoreResult<i64> {
        sqlx::query_scalar("INSERT INTO changes (kind, key, at) VALUES (?, ?, ?) RETURNING id")
            .bind(kind)
            .bind(key)
            .bind(ts(at))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeRecord>> {
        let rows =
            sqlx::query("SELECT id, kind, key, at FROM changes WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(ChangeRecord {
                    id: r.try_get("id").map_err(map_err)?,
                    kind: r.try_get("kind").map_err(map_err)?,
                    key: r.try_get("key").map_err(map_err)?,
                    at: from_ts(r.try_get("at").map_err(map_err)?)?,
                })
            })
            .collect()
    }

    async fn last_change_id(&self) -> StoreResult<i64> {
        // The sequence, not MAX(id): after pruning every row the next node still starts
        // past the ids already used.
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(seq.unwrap_or(0))
    }

    async fn prune_changes(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM changes WHERE at < ?")
            .bind(ts(before))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn wait_for_change(&self, max_wait: Duration) {
        // SQLite cannot push: the follower polls.
        tokio::time::sleep(max_wait).await;
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn attempt_counts(
        &self,
        keys: &[[u8; 32]],
    ) -> StoreResult<Vec<Option<(u32, OffsetDateTime)>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT failures, last_failure FROM login_attempts WHERE key = ?")
                    .bind(&key[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
            out.push(match row {
                Some((n, at)) => Some((u32::try_from(n).unwrap_or(u32::MAX), from_ts(at)?)),
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
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO login_attempts (key, failures, last_failure) VALUES (?1, 1, ?2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_attempts.last_failure < ?3 THEN 1 \
                               ELSE login_attempts.failures + 1 END, \
               last_failure = ?2 \
             RETURNING failures",
        )
        .bind(&key[..])
        .bind(ts(now))
        .bind(ts(reset_before))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn forget_attempts(&self, key: &[u8; 32]) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_attempts WHERE key = ?")
            .bind(&key[..])
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn is_familiar(&self, account: &[u8; 32], source: &[u8; 32]) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM familiar_sources WHERE account = ? AND source = ?")
                .bind(&account[..])
                .bind(&source[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn add_familiar(
        &self,
        account: &[u8; 32],
        source: &[u8; 32],
        now: OffsetDateTime,
        keep: u32,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO familiar_sources (account, source, seen_at) VALUES (?, ?, ?) \
             ON CONFLICT (account, source) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(&account[..])
        .bind(&source[..])
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // The most recent `keep` stay, this one always among them.
        sqlx::query(
            "DELETE FROM familiar_sources WHERE account = ?1 AND source <> ?2 AND source NOT IN \
             (SELECT source FROM familiar_sources WHERE account = ?1 AND source <> ?2 \
              ORDER BY seen_at DESC, source DESC LIMIT ?3)",
        )
        .bind(&account[..])
        .bind(&source[..])
        .bind(i64::from(keep.saturating_sub(1)))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn prune_attempts(
        &self,
        failures_before: OffsetDateTime,
        familiar_before: OffsetDateTime,
    ) -> StoreResult<u64> {
        let a = sqlx::query("DELETE FROM login_attempts WHERE last_failure < ?")
            .bind(ts(failures_before))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let f = sqlx::query("DELETE FROM familiar_sources WHERE seen_at < ?")
            .bind(ts(familiar_before))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(a.rows_affected() + f.rows_affected())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use mlgate_core::changes::ChangeStore;
    use mlgate_core::lockout::AttemptStore;
    use time::{Duration, OffsetDateTime};

    use crate::SqliteStore;

    async fn store() -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mlgate-shared-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        (SqliteStore::open(&dir.join("t.db")).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn the_change_log_is_read_in_order_pruned_and_never_reuses_ids() {
        let (s, dir) = store().await;
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
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_setting_is_kept_by_the_first_writer() {
        let (s, dir) = store().await;
        assert_eq!(s.setting("k").await.unwrap(), None);
        assert_eq!(s.init_setting("k", b"first").await.unwrap(), b"first");
        assert_eq!(s.init_setting("k", b"second").await.unwrap(), b"first");
        assert_eq!(s.setting("k").await.unwrap().as_deref(), Some(&b"first"[..]));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn failures_count_atomically_restart_after_quiet_and_prune() {
        let (s, dir) = store().await;
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let key = [7u8; 32];
        let long_ago = now - Duration::hours(1);
        // Many at once (as several nodes would): none lost.
        let all = futures_join(&s, &key, now, long_ago, 20).await;
        assert_eq!(all.iter().max(), Some(&20));
        assert_eq!(s.attempt_counts(&[key, [8u8; 32]]).await.unwrap()[0].map(|c| c.0), Some(20));
        assert_eq!(s.attempt_counts(&[[8u8; 32]]).await.unwrap()[0], None);
        // An hour later the count starts again.
        let later = now + Duration::hours(2);
        assert_eq!(s.count_failure(&key, later, later - Duration::hours(1)).await.unwrap(), 1);
        assert_eq!(s.prune_attempts(later, now).await.unwrap(), 0);
        assert_eq!(s.prune_attempts(later + Duration::seconds(1), now).await.unwrap(), 1);
        s.count_failure(&key, later, later).await.unwrap();
        s.forget_attempts(&key).await.unwrap();
        assert_eq!(s.attempt_counts(&[key]).await.unwrap()[0], None);
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn futures_join(
        s: &SqliteStore,
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
        let (s, dir) = store().await;
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
        let _ = std::fs::remove_dir_all(dir);
    }
}
