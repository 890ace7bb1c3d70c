//! `mlgate backup` and `mlgate restore`: a consistent copy of a running server's data
//! directory in one file, and a new data directory made from it.
//!
//! What goes into the file (see `mlgate_store::backup` for the format):
//! - the store, snapshotted online with SQLite's `VACUUM INTO` (one read transaction; the
//!   server keeps serving and writing). In it, secrets are already safe at rest: client
//!   secrets and refresh tokens are SHA-256 digests, passwords argon2id hashes, device codes
//!   HMACs, signing keys and web-service keys AES-256-GCM-sealed under the master key;
//! - the blobs (model files, code assets), checked against their names;
//! - the TLS files of the local CA: certificates in clear, private keys sealed under the
//!   master key (they are in clear in the data directory);
//! - the master key itself ONLY with `--with-master-key`, wrapped under a passphrase
//!   (argon2id + AES-256-GCM). Otherwise the operator keeps `master.key` (or
//!   MLGATE_MASTER_KEY) separately, and restore asks for it: the file alone opens nothing.
//!
//! PostgreSQL stores are backed up with `pg_dump` (docs/operations.md); this command then
//! refuses, rather than copying only the data directory's part.

use std::io::IsTerminal;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlgate_core::escrow;
use mlgate_core::keys::MasterKey;
use mlgate_store::backup::{BackupReader, BackupWriter};

use crate::cli::{BackupArgs, RestoreArgs};

/// The backup's format version, in its manifest.
const FORMAT: &str = "mlgate-backup-1";
/// TLS files of the local CA: `(name, secret)`.
const TLS_FILES: &[(&str, bool)] = &[
    ("tls/ca.pem", false),
    ("tls/server.pem", false),
    ("tls/ca-key.pem", true),
    ("tls/server-key.pem", true),
];
const WRAPPED_KEY: &str = "master.key.wrapped";

fn sealed_name(name: &str) -> String {
    format!("{name}.sealed")
}

fn aad(name: &str) -> Vec<u8> {
    format!("mlgate backup file {name}").into_bytes()
}

/// The passphrase from `--passphrase-file`, MLGATE_BACKUP_PASSPHRASE, or asked for (twice
/// when choosing one) on a terminal.
fn passphrase(file: Option<&Path>, choosing: bool) -> Result<String> {
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    if let Ok(p) = std::env::var("MLGATE_BACKUP_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "a passphrase is needed: give --passphrase-file or set MLGATE_BACKUP_PASSPHRASE \
             (no terminal to ask on)"
        );
    }
    let first = rpassword::prompt_password("Passphrase for the master key: ")?;
    if choosing {
        let again = rpassword::prompt_password("Again: ")?;
        if again != first {
            bail!("the passphrases differ");
        }
    }
    Ok(first)
}

fn master_key_text(data_dir: &Path) -> Result<String> {
    if let Ok(k) = std::env::var("MLGATE_MASTER_KEY") {
        return Ok(k);
    }
    let path = data_dir.join("master.key");
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (or set MLGATE_MASTER_KEY): the TLS keys are sealed under it",
            path.display()
        )
    })
}

#[allow(clippy::disallowed_methods, reason = "a backup is stamped with the wall-clock time")]
pub async fn backup(args: BackupArgs) -> Result<()> {
    let data_dir = args.dir.data_dir.unwrap_or_else(crate::serve::default_data_dir);
    if let Some(url) = args.store.as_deref()
        && !matches!(mlgate_store::StoreUrl::parse(url), Ok(mlgate_store::StoreUrl::Sqlite(_)))
    {
        bail!(
            "--store is not SQLite: back a PostgreSQL store up with pg_dump, and the data \
             directory (blobs, tls) and the master key separately (docs/operations.md)"
        );
    }
    let db = match args.store.as_deref().map(mlgate_store::StoreUrl::parse) {
        Some(Ok(mlgate_store::StoreUrl::Sqlite(p))) => p,
        _ => mlgate_server::database_path(&data_dir),
    };
    if !db.is_file() {
        bail!("{} holds no mlgate store ({} is missing)", data_dir.display(), db.display());
    }
    if args.to.exists() {
        bail!("{} exists: a backup never overwrites a file", args.to.display());
    }
    let master_text = master_key_text(&data_dir)?;
    let master = MasterKey::from_encoded(&master_text).context("the master key")?;
    let wrapped = if args.with_master_key {
        let p = passphrase(args.passphrase_file.as_deref(), true)?;
        Some(escrow::wrap(&master_text, &p)?)
    } else {
        None
    };

    let w = BackupWriter::snapshot(&db, &args.to)
        .await
        .map_err(|e| anyhow::anyhow!("snapshotting {}: {e}", db.display()))?;
    let filled = async {
        w.set("format", FORMAT).await?;
        w.set("created_at", &time::OffsetDateTime::now_utc().unix_timestamp().to_string()).await?;
        w.set("mlgate_version", env!("CARGO_PKG_VERSION")).await?;
        w.set("master_key_included", if wrapped.is_some() { "wrapped" } else { "no" }).await?;
        for (name, secret) in TLS_FILES {
            let Ok(data) = std::fs::read(data_dir.join(name)) else { continue };
            if *secret {
                let sealed = master.seal(&aad(name), &data).map_err(|e| {
                    mlgate_core::store::StoreError::Unavailable(format!("sealing {name}: {e}"))
                })?;
                w.add_file(&sealed_name(name), 0o600, &sealed).await?;
            } else {
                w.add_file(name, 0o644, &data).await?;
            }
        }
        if let Some(k) = &wrapped {
            let json = serde_json::to_vec(k).unwrap_or_default();
            w.add_file(WRAPPED_KEY, 0o600, &json).await?;
        }
        w.add_blobs(&data_dir.join("blobs")).await
    }
    .await;
    let (blobs, bytes) = match filled {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&args.to);
            bail!("writing {}: {e}", args.to.display());
        }
    };
    let path = w.finish().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "backed up {} and {blobs} blobs ({bytes} bytes) into {} (mode 0600)",
        db.display(),
        path.display()
    );
    if wrapped.is_some() {
        eprintln!("the master key is in the backup, wrapped under your passphrase");
    } else {
        eprintln!(
            "the master key is NOT in the backup: keep {} (or MLGATE_MASTER_KEY) safe \
             separately; restore needs it",
            data_dir.join("master.key").display()
        );
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut f, data)?;
    f.sync_all()?;
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<()> {
    let target = args.dir.data_dir.clone().unwrap_or_else(crate::serve::default_data_dir);
    if target.exists() && std::fs::read_dir(&target)?.next().is_some() {
        bail!("{} exists and is not empty: restore into a new data directory", target.display());
    }
    let reader = BackupReader::open(&args.from)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.from.display()))?;
    if reader.get("format").await.map_err(|e| anyhow::anyhow!("{e}"))?.as_deref() != Some(FORMAT) {
        bail!("{} is not a backup this version reads", args.from.display());
    }
    let files = reader.files().await.map_err(|e| anyhow::anyhow!("{e}"))?;

    // The master key: a file, the environment, or the backup's wrapped copy.
    let (master_text, write_key_file) = if let Some(f) = &args.master_key_file {
        (std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?, true)
    } else if let Ok(k) = std::env::var("MLGATE_MASTER_KEY") {
        (k, false)
    } else if let Some((_, _, data)) = files.iter().find(|(n, _, _)| n == WRAPPED_KEY) {
        let wrapped: escrow::WrappedKey =
            serde_json::from_slice(data).context("the wrapped master key")?;
        let p = passphrase(args.passphrase_file.as_deref(), false)?;
        (escrow::unwrap(&wrapped, &p)?, true)
    } else {
        bail!(
            "the backup does not hold the master key: give --master-key-file (a copy of the \
             old data directory's master.key) or set MLGATE_MASTER_KEY"
        );
    };
    let master = MasterKey::from_encoded(&master_text).context("the master key")?;

    let created = !target.exists();
    let result =
        restore_into(&reader, &files, &target, &master, &master_text, write_key_file).await;
    reader.close().await;
    if let Err(e) = result {
        // Leave nothing half-made behind.
        if created {
            let _ = std::fs::remove_dir_all(&target);
        } else if let Ok(entries) = std::fs::read_dir(&target) {
            for e in entries.flatten() {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        return Err(e);
    }
    eprintln!("restored {} into {}", args.from.display(), target.display());
    if !write_key_file {
        eprintln!("the master key stays in MLGATE_MASTER_KEY (no master.key written)");
    }
    Ok(())
}

async fn restore_into(
    reader: &BackupReader,
    files: &[(String, u32, Vec<u8>)],
    target: &Path,
    master: &MasterKey,
    master_text: &str,
    write_key_file: bool,
) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700))?;
    let db = mlgate_server::database_path(target);
    reader.restore_store(&db).await.map_err(|e| anyhow::anyhow!("restoring the store: {e}"))?;
    // The key must be the store's: checked before anything else is written.
    let store = mlgate_store::SqlStore::open_sqlite(&db)
        .await
        .map_err(|e| anyhow::anyhow!("opening the restored store: {e}"))?;
    let checked = mlgate_server::follower::check_master_key(&store, master, false).await;
    store.close().await;
    checked.context("the master key given does not belong to this backup")?;
    for (name, mode, data) in files {
        if name == WRAPPED_KEY {
            continue;
        }
        // Names come from the file: only the ones this version writes are accepted.
        let (plain_name, data) = match name.strip_suffix(".sealed") {
            Some(n) if TLS_FILES.iter().any(|(t, s)| *t == n && *s) => {
                let opened = master
                    .open(&aad(n), data)
                    .map_err(|_| anyhow::anyhow!("{n} in the backup does not open"))?;
                (n.to_string(), opened)
            }
            None if TLS_FILES.iter().any(|(t, s)| *t == name && !*s) => {
                (name.clone(), data.clone())
            }
            _ => bail!("the backup holds an unexpected file {name:?}"),
        };
        write_private(&target.join(&plain_name), &data, *mode & 0o644)?;
    }
    let blobs = reader
        .extract_blobs(&target.join("blobs"))
        .await
        .map_err(|e| anyhow::anyhow!("restoring the blobs: {e}"))?;
    if write_key_file {
        write_private(&target.join("master.key"), master_text.trim().as_bytes(), 0o600)?;
    }
    eprintln!("{blobs} blobs restored");
    Ok(())
}
