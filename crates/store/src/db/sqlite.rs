//! SQLite: one file in the data directory, WAL mode, one writer at a time (`BEGIN IMMEDIATE`),
//! versioned migrations (`migrations/sqlite`) applied at open, each in its own transaction.

use std::path::Path;
use std::time::Duration;

use mlgate_core::store::StoreResult;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{SqlStr, Sqlite, SqliteExecutor};
use time::OffsetDateTime;

use super::{Val, map_err};

/// Versioned migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_directory.sql")),
    (2, include_str!("../../migrations/sqlite/0002_resources_rbac.sql")),
    (3, include_str!("../../migrations/sqlite/0003_interactive.sql")),
    (4, include_str!("../../migrations/sqlite/0004_tenant_members.sql")),
    (5, include_str!("../../migrations/sqlite/0005_models.sql")),
    (6, include_str!("../../migrations/sqlite/0006_services.sql")),
    (7, include_str!("../../migrations/sqlite/0007_service_keys.sql")),
    (8, include_str!("../../migrations/sqlite/0008_applications.sql")),
    (9, include_str!("../../migrations/sqlite/0009_user_code_digest.sql")),
    (10, include_str!("../../migrations/sqlite/0010_online_endpoints.sql")),
    (11, include_str!("../../migrations/sqlite/0011_changes.sql")),
    (12, include_str!("../../migrations/sqlite/0012_activity_signins_users.sql")),
    (13, include_str!("../../migrations/sqlite/0013_signin_aggregation.sql")),
];

fn query(sql: SqlStr, args: Vec<Val>) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Val::Text(v) => q.bind(v),
            Val::Int(v) => q.bind(v),
            Val::Bool(v) => q.bind(v),
            Val::Bytes(v) => q.bind(v),
        };
    }
    q
}

pub(super) async fn exec<'e, E: SqliteExecutor<'e>>(
    e: E,
    sql: SqlStr,
    args: Vec<Val>,
) -> StoreResult<u64> {
    Ok(query(sql, args).execute(e).await.map_err(map_err)?.rows_affected())
}

pub(super) async fn opt<'e, E: SqliteExecutor<'e>>(
    e: E,
    sql: SqlStr,
    args: Vec<Val>,
) -> StoreResult<Option<SqliteRow>> {
    query(sql, args).fetch_optional(e).await.map_err(map_err)
}

pub(super) async fn all<'e, E: SqliteExecutor<'e>>(
    e: E,
    sql: SqlStr,
    args: Vec<Val>,
) -> StoreResult<Vec<SqliteRow>> {
    query(sql, args).fetch_all(e).await.map_err(map_err)
}

pub(super) async fn begin(pool: &SqlitePool) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
}

/// Opens (creating if needed) the database file and applies pending migrations.
pub(crate) async fn open(path: &Path) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(map_err)?;
    migrate(&pool).await?;
    Ok(pool)
}

#[allow(clippy::disallowed_methods, reason = "when a migration was applied is a wall-clock fact")]
async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
         applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(map_err)?;
    // A store a newer mlgate migrated is refused: this binary does not know its tables.
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(v) = newest.filter(|v| *v > known) {
        return Err(super::newer_schema(v, known));
    }
    for (version, sql) in MIGRATIONS {
        let mut tx = begin(pool).await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(map_err)?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}
