//! The backup file of an SQLite store: one SQLite database that is the store's consistent
//! snapshot (`VACUUM INTO`, taken in one read transaction while the server keeps writing; never
//! a copy of the live file and its WAL) plus three tables of its own:
//!
//! - `backup_manifest(key, value)`: what made it and when;
//! - `backup_files(name, mode, data)`: small files of the data directory (certificates, keys
//!   the caller sealed, the passphrase-wrapped master key when asked for);
//! - `backup_blob_chunks(sha256, seq, data)`: the content-addressed blobs (model files, code
//!   assets) in 8 MiB chunks (SQLite's values stop short of 1 GiB, a model may not).
//!
//! Restoring `VACUUM`s the snapshot into the new data directory's `mlgate.db` and drops the
//! three tables there. What is sealed, hashed or in clear is the caller's decision
//! (`mlgate backup`); this module only moves bytes.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest;
use mlgate_core::store::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::db::map_err;

/// Blob bytes per row.
const CHUNK: usize = 8 << 20;

fn io(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

async fn connect(path: &Path, create: bool) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(map_err)
}

/// Creates `path` empty with mode 0600 (`VACUUM INTO` fills an empty file and keeps its mode).
fn create_private(path: &Path) -> StoreResult<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", path.display())))?;
    Ok(())
}

/// A backup file being written.
pub struct BackupWriter {
    pool: SqlitePool,
    path: PathBuf,
}

impl BackupWriter {
    /// Snapshots the SQLite store `db` (a live server may be writing it) into a new file `to`
    /// (which must not exist; made 0600).
    pub async fn snapshot(db: &Path, to: &Path) -> StoreResult<Self> {
        if !db.is_file() {
            return Err(StoreError::NotFound);
        }
        create_private(to)?;
        let result = async {
            // The source in WAL mode (as the server opened it): the snapshot is one read
            // transaction, which the server's writers do not block and which blocks none.
            let options = SqliteConnectOptions::new()
                .filename(db)
                .create_if_missing(false)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            let mut source =
                sqlx::SqliteConnection::connect_with(&options).await.map_err(map_err)?;
            let target = to.to_str().ok_or_else(|| {
                StoreError::Unavailable("the backup path is not valid UTF-8".into())
            })?;
            sqlx::query("VACUUM INTO $1")
                .bind(target)
                .execute(&mut source)
                .await
                .map_err(map_err)?;
            source.close().await.map_err(map_err)?;
            let pool = connect(to, false).await?;
            sqlx::raw_sql(
                "CREATE TABLE backup_manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE backup_files (name TEXT PRIMARY KEY, mode INTEGER NOT NULL,
                                            data BLOB NOT NULL);
                 CREATE TABLE backup_blob_chunks (sha256 TEXT NOT NULL, seq INTEGER NOT NULL,
                                                  data BLOB NOT NULL,
                                                  PRIMARY KEY (sha256, seq));",
            )
            .execute(&pool)
            .await
            .map_err(map_err)?;
            Ok(pool)
        }
        .await;
        match result {
            Ok(pool) => Ok(Self { pool, path: to.to_path_buf() }),
            Err(e) => {
                let _ = std::fs::remove_file(to);
                Err(e)
            }
        }
    }

    pub async fn set(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query("INSERT OR REPLACE INTO backup_manifest (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(map_err)
            .map(drop)
    }

    /// Adds a small file under `name` (a relative path in the data directory).
    pub async fn add_file(&self, name: &str, mode: u32, data: &[u8]) -> StoreResult<()> {
        sqlx::query("INSERT INTO backup_files (name, mode, data) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(i64::from(mode))
            .bind(data)
            .execute(&self.pool)
            .await
            .map_err(map_err)
            .map(drop)
    }

    /// Adds every complete blob under `root` (`sha256/xx/{hex}`; a blob being written is a
    /// dot-file and skipped), checking each against its name. Returns `(blobs, bytes)`.
    pub async fn add_blobs(&self, root: &Path) -> StoreResult<(u64, u64)> {
        let (mut blobs, mut bytes) = (0u64, 0u64);
        let base = root.join("sha256");
        let Ok(mut dirs) = tokio::fs::read_dir(&base).await else {
            return Ok((0, 0));
        };
        while let Some(d) = dirs.next_entry().await.map_err(io)? {
            let Ok(mut files) = tokio::fs::read_dir(d.path()).await else { continue };
            while let Some(f) = files.next_entry().await.map_err(io)? {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                bytes += self.add_blob(&name, &f.path()).await?;
                blobs += 1;
            }
        }
        Ok((blobs, bytes))
    }

    async fn add_blob(&self, sha: &str, path: &Path) -> StoreResult<u64> {
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut hash = digest::Context::new(&digest::SHA256);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut buf = vec![0u8; CHUNK];
        let (mut seq, mut total) = (0i64, 0u64);
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                let n = file.read(&mut buf[filled..]).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 && seq > 0 {
                break;
            }
            hash.update(&buf[..filled]);
            sqlx::query("INSERT INTO backup_blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)")
                .bind(sha)
                .bind(seq)
                .bind(&buf[..filled])
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            seq += 1;
            total += filled as u64;
            if filled < CHUNK {
                break;
            }
        }
        let got: String = hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        if got != sha {
            return Err(StoreError::Corrupt(format!(
                "the blob {} does not match its name (the data directory is damaged)",
                path.display()
            )));
        }
        tx.commit().await.map_err(map_err)?;
        Ok(total)
    }

    /// Compacts nothing, closes the file; returns its path.
    pub async fn finish(self) -> StoreResult<PathBuf> {
        self.pool.close().await;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(self.path)
    }
}

/// A backup file being read.
pub struct BackupReader {
    pool: SqlitePool,
    path: PathBuf,
}

impl BackupReader {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if !path.is_file() {
            return Err(StoreError::NotFound);
        }
        let pool = connect(path, false).await?;
        let has: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'backup_manifest'",
        )
        .fetch_optional(&pool)
        .await
        .map_err(|_| StoreError::Corrupt("not an SQLite file".into()))?;
        if has.is_none() {
            return Err(StoreError::Corrupt("not an mlgate backup (no manifest)".into()));
        }
        Ok(Self { pool, path: path.to_path_buf() })
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM backup_manifest WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    /// `(name, mode, data)` of every file.
    pub async fn files(&self) -> StoreResult<Vec<(String, u32, Vec<u8>)>> {
        let rows = sqlx::query("SELECT name, mode, data FROM backup_files ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let mode: i64 = r.try_get("mode").map_err(map_err)?;
                Ok((
                    r.try_get("name").map_err(map_err)?,
                    u32::try_from(mode).unwrap_or(0o600),
                    r.try_get("data").map_err(map_err)?,
                ))
            })
            .collect()
    }

    /// Writes every blob under `root` in the blob store's layout, checking each against its
    /// name. Returns how many.
    pub async fn extract_blobs(&self, root: &Path) -> StoreResult<u64> {
        let shas: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT sha256 FROM backup_blob_chunks ORDER BY sha256")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        for sha in &shas {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::Corrupt(format!("a blob named {sha:?}")));
            }
            let dir = root.join("sha256").join(&sha[..2]);
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            let tmp = dir.join(format!(".{sha}.restore"));
            let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
            let mut hash = digest::Context::new(&digest::SHA256);
            let mut seq = 0i64;
            loop {
                let chunk: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT data FROM backup_blob_chunks WHERE sha256 = $1 AND seq = $2",
                )
                .bind(sha)
                .bind(seq)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                let Some(chunk) = chunk else { break };
                hash.update(&chunk);
                out.write_all(&chunk).await.map_err(io)?;
                seq += 1;
            }
            out.sync_all().await.map_err(io)?;
            let got: String = hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
            if &got != sha {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(StoreError::Corrupt(format!(
                    "the blob {sha} in the backup is damaged"
                )));
            }
            tokio::fs::rename(&tmp, dir.join(sha)).await.map_err(io)?;
        }
        Ok(shas.len() as u64)
    }

    /// Writes the store's snapshot to `db` (a new file, 0600) without the backup's own tables.
    pub async fn restore_store(&self, db: &Path) -> StoreResult<()> {
        create_private(db)?;
        let target = db
            .to_str()
            .ok_or_else(|| StoreError::Unavailable("the path is not valid UTF-8".into()))?;
        let copy = async {
            sqlx::query("VACUUM INTO $1")
                .bind(target)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            let pool = connect(db, false).await?;
            sqlx::raw_sql(
                "DROP TABLE backup_blob_chunks; DROP TABLE backup_files; \
                 DROP TABLE backup_manifest; VACUUM;",
            )
            .execute(&pool)
            .await
            .map_err(map_err)?;
            pool.close().await;
            Ok(())
        }
        .await;
        if copy.is_err() {
            let _ = std::fs::remove_file(db);
        }
        copy
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}
