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
        // The most recent `keep` stay; this one is among them (ties go to the newest row).
        sqlx::query(
            "DELETE FROM familiar_sources WHERE account = ?1 AND source <> ?2 AND source NOT IN \
             (SELECT source FROM familiar_sources WHERE account = ?1 \
              ORDER BY seen_at DESC, rowid DESC LIMIT ?3)",
        )
        .bind(&account[..])
        .bind(&source[..])
        .bind(i64::from(keep))
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
