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
                self.db.opt("SELECT COALESCE(MAX(id), 0) AS id FROM changes", args![]).await?
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
