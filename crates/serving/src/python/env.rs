//! Virtualenvs for entry scripts' requirements, made at deploy time.
//!
//! One environment per (base interpreter, requirement list), under `envs/<sha256>/` in the data
//! directory, shared by every service that asks for the same list and reused across restarts
//! (a `.ready` marker is written last, so a half-made environment is made again). The venv
//! sees the base interpreter's site-packages, so only what is missing is installed. pip runs
//! with a deadline; its output goes to the service's logs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Mutex;

use super::LogSink;
use crate::sandbox::{Policy, Sandbox};

/// Where and how pip runs.
pub struct EnvContext<'a> {
    pub sandbox: &'a Sandbox,
    /// Paths pip must not read (the data directory, key files).
    pub protected: &'a [PathBuf],
    /// Folders local wheels may be installed from.
    pub wheelhouses: &'a [PathBuf],
    /// A private folder pip may write (its cache, temporary builds).
    pub scratch: &'a Path,
}

/// The operator's variables pip honours (index, proxies, certificates), passed through.
const PIP_VARIABLES: &[&str] = &[
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_FIND_LINKS",
    "PIP_CERT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "LANG",
    "LC_ALL",
];

fn confined(
    ctx: &EnvContext<'_>,
    python: &Path,
    dir: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<Command, String> {
    let read: Vec<PathBuf> = ctx.wheelhouses.to_vec();
    let write = vec![dir.to_path_buf(), ctx.scratch.to_path_buf()];
    let policy = Policy::for_python(
        python,
        &read,
        &write,
        ctx.scratch,
        ctx.protected,
        &[dir.to_path_buf()],
    )?;
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), ctx.scratch.display().to_string()),
        ("TMPDIR".into(), ctx.scratch.display().to_string()),
        ("PIP_NO_CACHE_DIR".into(), "1".into()),
    ];
    for v in PIP_VARIABLES {
        if let Ok(value) = std::env::var(v) {
            env.push((v.to_string(), value));
        }
    }
    let args: Vec<std::ffi::OsString> = args.iter().map(|a| a.to_os_string()).collect();
    let mut cmd = ctx.sandbox.command(&policy, python, &args, &env)?;
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

const PIP_TIMEOUT: Duration = Duration::from_secs(900);
/// Environments are built one at a time: two deployments asking for the same list must not
/// build it into the same folder at once, and pip on 2 cores gains nothing from parallelism.
static BUILDING: Mutex<()> = Mutex::const_new(());

fn env_dir(envs: &Path, python: &Path, requirements: &[String]) -> PathBuf {
    let mut text = python.display().to_string();
    for r in requirements {
        text.push('\n');
        text.push_str(r);
    }
    let d = digest(&SHA256, text.as_bytes());
    let hex: String = d.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
    envs.join(hex)
}

async fn run_logged(mut cmd: Command, log: &LogSink, what: &str) -> Result<(), String> {
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
    let mut tail = Vec::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let work = async {
        let (mut out_done, mut err_done) = (false, false);
        while !(out_done && err_done) {
            let line = tokio::select! {
                l = out.next_line(), if !out_done => l.map_err(|e| e.to_string())?.or_else(|| { out_done = true; None }),
                l = err.next_line(), if !err_done => l.map_err(|e| e.to_string())?.or_else(|| { err_done = true; None }),
            };
            if let Some(l) = line {
                log(&l);
                tail.push(l);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
        }
        child.wait().await.map_err(|e| e.to_string())
    };
    let status = tokio::time::timeout(PIP_TIMEOUT, work)
        .await
        .map_err(|_| format!("{what} did not finish within {PIP_TIMEOUT:?}"))??;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status}):\n{}", tail.join("\n")))
    }
}

/// The interpreter of a virtualenv holding `requirements` on top of `python`, made if needed,
/// and the virtualenv's folder.
pub async fn ensure_env(
    python: &Path,
    envs: &Path,
    requirements: &[String],
    log: &LogSink,
    ctx: &EnvContext<'_>,
) -> Result<(PathBuf, PathBuf), String> {
    let dir = env_dir(envs, python, requirements);
    let interpreter = dir.join("bin").join("python");
    let ready = dir.join(".ready");
    let _one_at_a_time = BUILDING.lock().await;
    if tokio::fs::try_exists(&ready).await.unwrap_or(false) {
        log(&format!("Using the environment {} (requirements already installed)", dir.display()));
        return Ok((interpreter, dir));
    }
    if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(&dir).await.map_err(|e| e.to_string())?;
    }
    tokio::fs::create_dir_all(&dir).await.map_err(|e| e.to_string())?;
    log(&format!("Creating the environment {}", dir.display()));
    let venv_args: Vec<&std::ffi::OsStr> =
        vec!["-m".as_ref(), "venv".as_ref(), "--system-site-packages".as_ref(), dir.as_os_str()];
    run_logged(confined(ctx, python, &dir, &venv_args)?, log, "python -m venv").await?;
    log(&format!("Installing {} requirement(s): {}", requirements.len(), requirements.join(" ")));
    let mut pip_args: Vec<&std::ffi::OsStr> = [
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--",
    ]
    .iter()
    .map(|a| std::ffi::OsStr::new(*a))
    .collect();
    pip_args.extend(requirements.iter().map(|r| std::ffi::OsStr::new(r.as_str())));
    run_logged(confined(ctx, &interpreter, &dir, &pip_args)?, log, "pip install").await?;
    tokio::fs::write(&ready, requirements.join("\n")).await.map_err(|e| e.to_string())?;
    Ok((interpreter, dir))
}
