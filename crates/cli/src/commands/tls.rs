//! `mlgate tls trust|show`: make this machine trust the local CA that `serve` made, so that
//! curl, Python, browsers and the CLI accept the server's certificate without flags;
//! `mlgate tls renew`: a new server certificate under the same CA.
//!
//! The system store takes the CA through the OS's own tool (`update-ca-certificates` on
//! Debian and Ubuntu, `update-ca-trust` on Fedora and RHEL); Chromium and Firefox on Linux read
//! an NSS database instead (`~/.pki/nssdb` for Chromium), which `certutil` from libnss3-tools
//! writes. Each CA is installed under a name carrying its fingerprint, so two servers' CAs
//! sit side by side and installing again changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cli::TlsCommand;
use crate::serve::default_data_dir;

/// Debian's folder for locally added CAs (files must end in `.crt`).
const DEBIAN_ANCHORS: &str = "/usr/local/share/ca-certificates";
/// Fedora's and RHEL's.
const FEDORA_ANCHORS: &str = "/etc/pki/ca-trust/source/anchors";

pub fn run(cmd: TlsCommand) -> Result<()> {
    match cmd {
        TlsCommand::Renew { dir, host } => {
            let data_dir = dir.data_dir.unwrap_or_else(default_data_dir);
            let files = mlgate_server::tls::renew_local_certificate(
                &data_dir.join("tls"),
                host.as_deref(),
            )?;
            println!(
                "issued a new server certificate {} under the local CA {}; reload the server \
                 (SIGHUP, `systemctl reload mlgate`) to serve it",
                files.cert.display(),
                files.ca.display()
            );
            Ok(())
        }
        TlsCommand::Show { dir } => {
            let ca = ca_path(dir.data_dir, None)?;
            print!("{}", how_to_trust(&ca));
            Ok(())
        }
        TlsCommand::Trust { dir, ca_file, no_system, nss_db, no_nss } => {
            let ca = ca_path(dir.data_dir, ca_file)?;
            let pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                bail!("{} is not a PEM certificate", ca.display());
            }
            let name = nickname(&pem);
            if !no_system {
                let where_ = install_system(&ca, &name)?;
                println!("installed the CA in the system trust store: {where_}");
            }
            if !no_nss {
                let db = nss_db.unwrap_or_else(default_nss_db);
                match install_nss(&ca, &name, &db)? {
                    true => println!(
                        "installed the CA for Chromium in the NSS database {}",
                        db.display()
                    ),
                    false => println!(
                        "certutil was not found, so browsers were left alone: install \
                         libnss3-tools (apt-get install libnss3-tools) and run this again, or \
                         see 'mlgate tls show'"
                    ),
                }
            }
            Ok(())
        }
    }
}

fn ca_path(data_dir: Option<PathBuf>, file: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(f) = file {
        return Ok(f);
    }
    let dir = data_dir.unwrap_or_else(default_data_dir);
    let ca = dir.join("tls/ca.pem");
    if !ca.exists() {
        bail!(
            "{} does not exist: 'mlgate serve --data-dir {}' makes it on its first start (pass \
             --data-dir or --ca-file for another server)",
            ca.display(),
            dir.display()
        );
    }
    Ok(ca)
}

/// `mlgate-local-ca-<first 8 hex digits of the PEM's SHA-256>`.
fn nickname(pem: &[u8]) -> String {
    let digest = mlgate_core::secrets::sha256(pem);
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("mlgate-local-ca-{hex}")
}

fn default_nss_db() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".pki/nssdb")
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn run_tool(program: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn copy_anchor(ca: &Path, target: &Path) -> Result<()> {
    match std::fs::copy(ca, target) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "writing {} needs root: run 'sudo mlgate tls trust --ca-file {}' (or --no-system to \
             install it for browsers only)",
            target.display(),
            ca.display()
        ),
        Err(e) => Err(e).with_context(|| format!("writing {}", target.display())),
    }
}

fn install_system(ca: &Path, name: &str) -> Result<String> {
    if let Some(tool) = which("update-ca-certificates") {
        let target = Path::new(DEBIAN_ANCHORS).join(format!("{name}.crt"));
        std::fs::create_dir_all(DEBIAN_ANCHORS).ok();
        copy_anchor(ca, &target)?;
        run_tool(&tool, &[])?;
        return Ok(format!("{} (update-ca-certificates)", target.display()));
    }
    if let Some(tool) = which("update-ca-trust") {
        let target = Path::new(FEDORA_ANCHORS).join(format!("{name}.pem"));
        copy_anchor(ca, &target)?;
        run_tool(&tool, &["extract"])?;
        return Ok(format!("{} (update-ca-trust)", target.display()));
    }
    bail!(
        "neither update-ca-certificates nor update-ca-trust is here; add {} to this system's \
         trust store by hand, or pass --no-system",
        ca.display()
    )
}

/// Adds the CA to an NSS database (made when missing); false when certutil is not installed.
fn install_nss(ca: &Path, name: &str, db: &Path) -> Result<bool> {
    let Some(certutil) = which("certutil") else { return Ok(false) };
    let spec = format!("sql:{}", db.display());
    if !db.join("cert9.db").exists() {
        std::fs::create_dir_all(db).with_context(|| format!("creating {}", db.display()))?;
        run_tool(&certutil, &["-d", &spec, "-N", "--empty-password"])?;
    }
    let ca = ca.to_string_lossy();
    // "C,,": a CA trusted to issue server certificates.
    run_tool(&certutil, &["-d", &spec, "-A", "-t", "C,,", "-n", name, "-i", &ca])?;
    Ok(true)
}

/// What `serve` prints at start and `tls show` prints: the ways to trust the CA.
pub fn how_to_trust(ca: &Path) -> String {
    let ca = ca.display();
    format!(
        "To trust this server's CA:\n\
         \x20 this machine (curl, the CLI, most programs):  sudo mlgate tls trust --ca-file {ca}\n\
         \x20 Chromium and Firefox's NSS database only:      mlgate tls trust --no-system --ca-file {ca}\n\
         \x20 one command:  curl --cacert {ca} ...   mlgate login --ca-file {ca} ...\n\
         \x20 Python:       REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca}\n\
         \x20 Node.js:      NODE_EXTRA_CA_CERTS={ca}\n"
    )
}
