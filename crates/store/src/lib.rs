//! # mlgate-store: storage implementations
//!
//! One implementation of mlgate-core's storage traits, [`SqlStore`], over two databases:
//! SQLite (the embedded default, one file in the data directory) and PostgreSQL (several
//! nodes on one database). [`open`] picks the backend from a URL.
//!
//! - one module per aggregate (`directory`, `keys`, `flows`, `rbac`, `resources`, `models`,
//!   `services`, `endpoints`, `code`, `applications`): each statement is written once, in the
//!   SQL both databases accept, and each row is mapped once;
//! - [`db`]: the thin per-backend part (connecting, migrations, transactions and locking,
//!   error mapping), `db/sqlite.rs` and `db/postgres.rs`;
//! - `shared`: what several nodes share beyond records (the change log, with PostgreSQL's
//!   `LISTEN/NOTIFY`; settings; the password lock-out's counts);
//! - `audit`: the activity log (also written by a write transaction's commit, see `db::Tx`)
//!   and the sign-in log;
//! - [`copy`]: `mlgate store migrate`, every record from one store into another;
//! - [`blobs`]: the content-addressed file store (model files, uploads).
//!
//! The conformance suite (`tests/conformance`) runs the same tests, races included, against
//! both backends.

mod applications;
mod audit;
pub mod backup;
pub mod blobs;
mod code;
pub mod copy;
pub mod db;
mod directory;
mod endpoints;
mod flows;
mod keys;
mod models;
mod rbac;
mod resources;
mod services;
mod shared;
pub mod testing;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mlgate_core::store::{Store, StoreError, StoreResult};

pub use blobs::FileBlobStore;
pub use db::Backend;
use db::{Db, args};

/// The storage traits over SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) db: Db,
    /// PostgreSQL: the connection that LISTENs for other nodes' changes (made on first wait).
    pub(crate) listener: shared::Listener,
}

/// Where a store lives, as the operator names it (`--store`, `MLGATE_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:///path/to/mlgate.db`, `sqlite://relative.db` or a plain path.
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database?...` (or `postgresql://`).
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> StoreResult<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_string()));
        }
        let path =
            url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
            return Err(StoreError::Unavailable(format!(
                "unsupported store '{}': use sqlite://PATH, a path, or postgres://...",
                redact(url)
            )));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            StoreUrl::Sqlite(_) => Backend::Sqlite,
            StoreUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

impl std::fmt::Display for StoreUrl {
    /// The URL without its password, for logs and messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => f.write_str(&redact(u)),
        }
    }
}

/// `scheme://user:secret@host/...` without the secret.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let path = path.map(|p| p.split('?').next().unwrap_or(p));
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

/// Opens the store `url` names (see [`StoreUrl`]), creating and migrating it as needed.
pub async fn open(url: &str) -> StoreResult<SqlStore> {
    SqlStore::open(&StoreUrl::parse(url)?).await
}

impl SqlStore {
    pub async fn open(url: &StoreUrl) -> StoreResult<Self> {
        match url {
            StoreUrl::Sqlite(path) => Self::open_sqlite(path).await,
            StoreUrl::Postgres(u) => Self::open_postgres(u).await,
        }
    }

    /// Opens (creating if needed) an SQLite file and applies pending migrations.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Self> {
        Ok(Self { db: Db::Sqlite(db::sqlite::open(path).await?), listener: Default::default() })
    }

    /// Connects to PostgreSQL and applies pending migrations (once, whatever the number of
    /// nodes starting together).
    pub async fn open_postgres(url: &str) -> StoreResult<Self> {
        let pool = db::postgres::open(url, db::postgres::DEFAULT_POOL_SIZE).await?;
        Ok(Self { db: Db::Pg(pool), listener: Default::default() })
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Closes every connection; later calls fail with `Unavailable` (tests use this to take
    /// the store away).
    pub async fn close(&self) {
        // The LISTEN connection came from the pool: closing waits for it to be returned.
        self.listener.release().await;
        self.db.close().await;
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db.opt("SELECT 1 AS one", args![]).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            StoreUrl::parse("postgres://u:p@localhost:5432/db").ok(),
            Some(StoreUrl::Postgres("postgres://u:p@localhost:5432/db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/mlgate.db").ok(),
            Some(StoreUrl::Sqlite("/var/lib/mlgate.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("data/mlgate.db").ok(),
            Some(StoreUrl::Sqlite("data/mlgate.db".into()))
        );
        assert!(StoreUrl::parse("mysql://x/y").is_err());
        assert!(StoreUrl::parse("").is_err());
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        let u = StoreUrl::parse("postgres://mlgate:s3cret@db:5432/mlgate?sslmode=require")
            .unwrap_or(StoreUrl::Sqlite("x".into()));
        assert_eq!(u.to_string(), "postgres://mlgate:***@db:5432/mlgate");
        assert!(!redact("postgres://a:s3cret@h/d").contains("s3cret"));
    }
}
