//! PostgreSQL: a pool of connections to a database several mlgate nodes share. Migrations
//! (`migrations/postgres`) are applied at open under a session advisory lock, so nodes that
//! start together migrate once: the first takes the lock and migrates, the others wait for it,
//! then find nothing left to do.

use std::time::Duration;

use mlgate_core::store::StoreResult;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Postgres, SqlStr};
use time::OffsetDateTime;

use super::{Val, map_err};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_schema.sql")),
    (2, include_str!("../../migrations/postgres/0002_changes.sql")),
    (3, include_str!("../../migrations/postgres/0003_activity_signins_users.sql")),
    (4, include_str!("../../migrations/postgres/0004_signin_aggregation.sql")),
];

/// The advisory lock migrations run under (any constant both nodes agree on: "mlgate" in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x6d6c_6761_7465;

/// Connections per node; PostgreSQL's default limit is 100 for all nodes together.
pub(crate) const DEFAULT_POOL_SIZE: u32 = 16;

fn query(sql: SqlStr, args: Vec<Val>) -> sqlx::query::Query<'static, Postgres, PgArguments> {
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

pub(super) async fn exec<'e, E: PgExecutor<'e>>(
    e: E,
    sql: SqlStr,
    args: Vec<Val>,
) -> StoreResult<u64> {
    Ok(query(sql, args).execute(e).await.map_err(map_err)?.rows_affected())
}

pub(super) async fn opt<'e, E: PgExecutor<'e>>(
    e: E,
    sql: SqlStr,
    args: Vec<Val>,
) -> StoreResult<Option<PgRow>> {
    query(sql, args).fetch_optional(e).await.map_err(map_err)
}

pub(super) async fn all<'e, E: PgExecutor<'e>>(
    e: E,
    sql: SqlStr,
    args: Vec<Val>,
) -> StoreResult<Vec<PgRow>> {
    query(sql, args).fetch_all(e).await.map_err(map_err)
}

/// Connects (`postgres://user:password@host:port/database?sslmode=...`) and migrates.
pub(crate) async fn open(url: &str, pool_size: u32) -> StoreResult<PgPool> {
    let options: PgConnectOptions = url.parse().map_err(map_err)?;
    let options = options.application_name("mlgate");
    let pool = PgPoolOptions::new()
        .max_connections(pool_size.max(2))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(map_err)?;
    migrate(&pool).await?;
    Ok(pool)
}

async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let result = apply(&mut conn).await;
    // The lock is the session's: release it before the connection goes back to the pool.
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(map_err);
    result.and(unlocked.map(drop))
}

#[allow(clippy::disallowed_methods, reason = "when a migration was applied is a wall-clock fact")]
async fn apply(conn: &mut sqlx::PgConnection) -> StoreResult<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
         applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    // A store a newer mlgate migrated is refused: this binary does not know its tables.
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(v) = newest.filter(|v| *v > known) {
        return Err(super::newer_schema(v, known));
    }
    for (version, sql) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
        if done.is_some() {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
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
