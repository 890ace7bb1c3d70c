//! For test suites: a fresh, empty PostgreSQL database per test, so tests running at once
//! never see each other's rows. The databases are named `mlgate_t_{random}`;
//! `scripts/postgres.sh` drops those left from earlier runs when it starts the cluster.

use mlgate_core::store::StoreResult;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::db::map_err;

/// The environment variable that names the test cluster (a database the tests may connect to
/// and create databases from).
pub const POSTGRES_URL_VAR: &str = "MLGATE_TEST_POSTGRES_URL";

/// The test cluster's URL when one is given.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.trim().is_empty())
}

/// Creates an empty database on the server `base_url` names and returns its URL.
pub async fn fresh_postgres_database(base_url: &str) -> StoreResult<String> {
    let name = format!("mlgate_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(base_url).await.map_err(map_err)?;
    // The name is ours (hex digits), never a caller's: no quoting issue.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(map_err)?;
    conn.close().await.map_err(map_err)?;
    Ok(with_database(base_url, &name))
}

/// `base_url` with its database replaced by `name` (query parameters kept).
pub fn with_database(base_url: &str, name: &str) -> String {
    let (head, query) = match base_url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base_url, None),
    };
    let (scheme, rest) = head.split_once("://").unwrap_or(("postgres", head));
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_replaced_and_the_options_kept() {
        assert_eq!(
            super::with_database("postgres://u:p@127.0.0.1:5433/mlgate?sslmode=disable", "t1"),
            "postgres://u:p@127.0.0.1:5433/t1?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "t2"), "postgres://h/t2");
    }
}
