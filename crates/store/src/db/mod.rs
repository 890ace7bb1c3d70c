//! The one place that knows there are two databases.
//!
//! The aggregate modules write each statement once, in the SQL both SQLite and PostgreSQL
//! accept (`$N` placeholders, `ON CONFLICT`, `RETURNING`, row values), pass their arguments as
//! [`Val`]s and read columns through [`Row`]. What differs stays here and in the two backend
//! files: connecting, migrations, how a write transaction begins (`BEGIN IMMEDIATE` vs
//! `BEGIN`), how writers of one thing are serialised ([`Tx::lock`], [`Tx::lock_rows`]) and how
//! errors map. Values are bound with each backend's own types (no `sqlx::Any`): text, 64-bit
//! integers, booleans and byte strings, which both schemas use for every column.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::str::FromStr;
use std::time::Instant;

use mlgate_core::ids::{
    AppId, GrantFamilyId, ObjectId, RoleAssignmentId, RoleDefinitionId, SecretId, SubscriptionId,
    TenantId, WorkspaceId,
};
use mlgate_core::store::{StoreError, StoreResult};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Decode, Postgres, Row as _, SqlSafeStr, SqlStr, Sqlite, Type};
use time::OffsetDateTime;

/// How long the store's statements take, process-wide (every store this process opened):
/// reads (`SELECT`s outside a write transaction), writes (single statements outside one),
/// beginning a write transaction (for SQLite: waiting for its one write lock) and committing
/// one (the fsync). The server's `/metrics` reads them.
pub mod timing {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use mlgate_core::telemetry::LatencyHistogram;

    static RECORDING: AtomicBool = AtomicBool::new(true);

    /// Benchmarks turn the timing off to measure what it costs.
    #[doc(hidden)]
    pub fn set_recording(on: bool) {
        RECORDING.store(on, Ordering::Relaxed);
    }

    pub(crate) fn observe(h: &LatencyHistogram, started: Instant) {
        if RECORDING.load(Ordering::Relaxed) {
            h.observe(started.elapsed());
        }
    }

    pub static READ: LatencyHistogram = LatencyHistogram::new();
    pub static WRITE: LatencyHistogram = LatencyHistogram::new();
    pub static BEGIN: LatencyHistogram = LatencyHistogram::new();
    pub static COMMIT: LatencyHistogram = LatencyHistogram::new();

    /// `(operation label, histogram)` for each.
    pub fn all() -> [(&'static str, &'static LatencyHistogram); 4] {
        [("read", &READ), ("write", &WRITE), ("begin", &BEGIN), ("commit", &COMMIT)]
    }
}

/// One bound argument.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Option<Vec<u8>>),
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(Some(v))
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Text(Some(v.clone()))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(Some(v.to_string()))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::Text(v)
    }
}
impl From<&Option<String>> for Val {
    fn from(v: &Option<String>) -> Self {
        Val::Text(v.clone())
    }
}
impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Self {
        Val::Text(v.map(str::to_string))
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::Bool(v)
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Self {
        Val::Bytes(Some(v))
    }
}
impl From<&Vec<u8>> for Val {
    fn from(v: &Vec<u8>) -> Self {
        Val::Bytes(Some(v.clone()))
    }
}
impl From<&[u8; 32]> for Val {
    fn from(v: &[u8; 32]) -> Self {
        Val::Bytes(Some(v.to_vec()))
    }
}
/// Times are stored as unix seconds.
impl From<OffsetDateTime> for Val {
    fn from(v: OffsetDateTime) -> Self {
        Val::Int(Some(v.unix_timestamp()))
    }
}
impl From<Option<OffsetDateTime>> for Val {
    fn from(v: Option<OffsetDateTime>) -> Self {
        Val::Int(v.map(|t| t.unix_timestamp()))
    }
}

/// Ids are stored as their lower-case text.
macro_rules! id_vals {
    ($($id:ty),*) => {$(
        impl From<$id> for Val {
            fn from(v: $id) -> Self {
                Val::Text(Some(v.to_string()))
            }
        }
        impl From<Option<$id>> for Val {
            fn from(v: Option<$id>) -> Self {
                Val::Text(v.map(|v| v.to_string()))
            }
        }
    )*};
}
id_vals!(
    AppId,
    GrantFamilyId,
    ObjectId,
    RoleAssignmentId,
    RoleDefinitionId,
    SecretId,
    SubscriptionId,
    TenantId,
    WorkspaceId
);

/// `args![a, b, c]`: the bound arguments of one statement, `$1`, `$2`, `$3`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Val::from($v)),*] };
}
pub(crate) use args;

/// A row of either backend; columns are read by name into types both decode alike.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

/// A type both backends decode the same way.
pub(crate) trait Col:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Col for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl Row {
    pub fn get<T: Col>(&self, col: &str) -> StoreResult<T> {
        match self {
            Row::Sqlite(r) => r.try_get(col).map_err(map_err),
            Row::Pg(r) => r.try_get(col).map_err(map_err),
        }
    }

    pub fn text(&self, col: &str) -> StoreResult<String> {
        self.get(col)
    }

    pub fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.get(col)
    }

    pub fn int(&self, col: &str) -> StoreResult<i64> {
        self.get(col)
    }

    pub fn bool(&self, col: &str) -> StoreResult<bool> {
        self.get(col)
    }

    pub fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        self.get(col)
    }

    /// A text column parsed into a typed value (ids, states).
    pub fn parse<T: FromStr>(&self, col: &str) -> StoreResult<T> {
        let text = self.text(col)?;
        text.parse().map_err(|_| StoreError::Corrupt(format!("{col}: '{text}'")))
    }

    pub fn opt_parse<T: FromStr>(&self, col: &str) -> StoreResult<Option<T>> {
        self.opt_text(col)?
            .map(|t| t.parse().map_err(|_| StoreError::Corrupt(format!("{col}: '{t}'"))))
            .transpose()
    }

    pub fn time(&self, col: &str) -> StoreResult<OffsetDateTime> {
        from_ts(self.int(col)?)
    }

    pub fn opt_time(&self, col: &str) -> StoreResult<Option<OffsetDateTime>> {
        self.get::<Option<i64>>(col)?.map(from_ts).transpose()
    }

    pub fn digest(&self, col: &str) -> StoreResult<[u8; 32]> {
        self.bytes(col)?
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("{col} is not 32 bytes")))
    }

    /// A JSON text column.
    pub fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> StoreResult<T> {
        let text = self.text(col)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}

fn from_ts(secs: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The database errors the traits name; anything else is `Unavailable` (the caller answers
/// 503 and logs the cause).
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("already exists".into())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict("refers to a missing record".into())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// The refusal to open a store whose schema a newer mlgate migrated (a downgrade).
pub(crate) fn newer_schema(found: i64, known: i64) -> StoreError {
    StoreError::Unavailable(format!(
        "the store's schema is at version {found}, made by a newer mlgate (this one knows up to \
         {known}): downgrades are refused; run the newer binary, or restore a backup taken \
         before the upgrade"
    ))
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

impl Db {
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// Runs one statement; returns the rows it changed. While the current request has an
    /// activity record pending, the statement runs in a transaction that carries the record
    /// (see [`Tx::commit`]).
    pub async fn exec(&self, sql: &'static str, args: Vec<Val>) -> StoreResult<u64> {
        if mlgate_core::activity::for_commit().is_some() {
            let mut tx = self.begin().await?;
            let n = tx.exec(sql, args).await?;
            tx.commit().await?;
            return Ok(n);
        }
        let started = Instant::now();
        let r = match self {
            Db::Sqlite(p) => sqlite::exec(p, sql.into_sql_str(), args).await,
            Db::Pg(p) => postgres::exec(p, sql.into_sql_str(), args).await,
        };
        timing::observe(&timing::WRITE, started);
        r
    }

    pub async fn opt(&self, sql: &'static str, args: Vec<Val>) -> StoreResult<Option<Row>> {
        let started = Instant::now();
        let r = match self {
            Db::Sqlite(p) => sqlite::opt(p, sql.into_sql_str(), args).await?.map(Row::Sqlite),
            Db::Pg(p) => postgres::opt(p, sql.into_sql_str(), args).await?.map(Row::Pg),
        };
        timing::observe(&timing::READ, started);
        Ok(r)
    }

    pub async fn all(&self, sql: &'static str, args: Vec<Val>) -> StoreResult<Vec<Row>> {
        self.all_sql(sql.into_sql_str(), args).await
    }

    /// Like [`Db::all`] for a statement built at run time from the crate's own constants
    /// (`copy` names tables and columns); never from a caller's text.
    pub async fn all_built(&self, sql: String, args: Vec<Val>) -> StoreResult<Vec<Row>> {
        self.all_sql(AssertSqlSafe(sql).into_sql_str(), args).await
    }

    async fn all_sql(&self, sql: SqlStr, args: Vec<Val>) -> StoreResult<Vec<Row>> {
        let started = Instant::now();
        let rows = match self {
            Db::Sqlite(p) => {
                sqlite::all(p, sql, args).await?.into_iter().map(Row::Sqlite).collect()
            }
            Db::Pg(p) => postgres::all(p, sql, args).await?.into_iter().map(Row::Pg).collect(),
        };
        timing::observe(&timing::READ, started);
        Ok(rows)
    }

    /// Begins a write transaction: SQLite takes its one write lock at once (`BEGIN
    /// IMMEDIATE`, so a reader never has to upgrade and fail), PostgreSQL runs at READ
    /// COMMITTED and serialises through [`Tx::lock`] and [`Tx::lock_rows`].
    pub async fn begin(&self) -> StoreResult<Tx> {
        let started = Instant::now();
        let inner = match self {
            Db::Sqlite(p) => TxInner::Sqlite(sqlite::begin(p).await?),
            Db::Pg(p) => TxInner::Pg(p.begin().await.map_err(map_err)?),
        };
        timing::observe(&timing::BEGIN, started);
        Ok(Tx { inner, changed: 0 })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Pg(p) => p.close().await,
        }
    }
}

/// A write transaction; dropped without [`Tx::commit`], it rolls back.
pub(crate) struct Tx {
    inner: TxInner,
    /// Rows changed so far: a transaction that changed nothing carries no activity record.
    changed: u64,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Pg(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn exec(&mut self, sql: &'static str, args: Vec<Val>) -> StoreResult<u64> {
        self.exec_sql(sql.into_sql_str(), args).await
    }

    /// Like [`Tx::exec`] for a statement built at run time from the crate's own constants.
    pub async fn exec_built(&mut self, sql: String, args: Vec<Val>) -> StoreResult<u64> {
        self.exec_sql(AssertSqlSafe(sql).into_sql_str(), args).await
    }

    async fn exec_sql(&mut self, sql: SqlStr, args: Vec<Val>) -> StoreResult<u64> {
        let n = match &mut self.inner {
            TxInner::Sqlite(t) => sqlite::exec(&mut **t, sql, args).await,
            TxInner::Pg(t) => postgres::exec(&mut **t, sql, args).await,
        }?;
        self.changed += n;
        Ok(n)
    }

    pub async fn opt(&mut self, sql: &'static str, args: Vec<Val>) -> StoreResult<Option<Row>> {
        let row = match &mut self.inner {
            TxInner::Sqlite(t) => {
                sqlite::opt(&mut **t, sql.into_sql_str(), args).await?.map(Row::Sqlite)
            }
            TxInner::Pg(t) => postgres::opt(&mut **t, sql.into_sql_str(), args).await?.map(Row::Pg),
        };
        // `INSERT/UPDATE/DELETE ... RETURNING` that returned a row changed one.
        if row.is_some()
            && !sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select"))
        {
            self.changed += 1;
        }
        Ok(row)
    }

    pub async fn one(&mut self, sql: &'static str, args: Vec<Val>) -> StoreResult<Row> {
        self.opt(sql, args).await?.ok_or(StoreError::NotFound)
    }

    /// Serialises the transactions that take the same `key` until they end. SQLite's
    /// `BEGIN IMMEDIATE` already serialises every writer, so only PostgreSQL takes a
    /// transaction-scoped advisory lock (on a 64-bit hash of the key: a collision only makes
    /// two unrelated writers wait for each other).
    pub async fn lock(&mut self, key: &str) -> StoreResult<()> {
        match &mut self.inner {
            TxInner::Sqlite(_) => Ok(()),
            TxInner::Pg(t) => postgres::exec(
                &mut **t,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))".into_sql_str(),
                args![key],
            )
            .await
            .map(drop),
        }
    }

    /// Locks the rows `select` returns until the transaction ends: PostgreSQL runs it (the
    /// statement ends in `FOR UPDATE`); SQLite needs nothing more than its write lock.
    pub async fn lock_rows(&mut self, select: &'static str, args: Vec<Val>) -> StoreResult<()> {
        match &mut self.inner {
            TxInner::Sqlite(_) => Ok(()),
            TxInner::Pg(t) => postgres::all(&mut **t, select.into_sql_str(), args).await.map(drop),
        }
    }

    /// Commits; when the current request has an activity record pending and this
    /// transaction changed something, the record is inserted first, so the change and its
    /// record commit together (`mlgate_core::activity`).
    pub async fn commit(mut self) -> StoreResult<()> {
        let record = if self.changed > 0 { mlgate_core::activity::for_commit() } else { None };
        if let Some(r) = &record {
            crate::audit::insert_activity(&mut self, r).await?;
        }
        let started = Instant::now();
        let r = match self.inner {
            TxInner::Sqlite(t) => t.commit().await.map_err(map_err),
            TxInner::Pg(t) => t.commit().await.map_err(map_err),
        };
        timing::observe(&timing::COMMIT, started);
        r?;
        if record.is_some() {
            mlgate_core::activity::committed();
        }
        Ok(())
    }
}
