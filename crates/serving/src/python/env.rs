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
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
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

/// The interpreter of a virtualenv holding `requirements` on top of `python`, made if needed.
pub async fn ensure_env(
    python: &Path,
    envs: &Path,
    requirements: &[String],
    log: &LogSink,
) -> Result<PathBuf, String> {
    let dir = env_dir(envs, python, requirements);
    let interpreter = dir.join("bin").join("python");
    let ready = dir.join(".ready");
    let _one_at_a_time = BUILDING.lock().await;
    if tokio::fs::try_exists(&ready).await.unwrap_or(false) {
        log(&format!("Using the environment {} (requirements already installed)", dir.display()));
        return Ok(interpreter);
    }
    if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(&dir).await.map_err(|e| e.to_string())?;
    }
    tokio::fs::create_dir_all(envs).await.map_err(|e| e.to_string())?;
    log(&format!("Creating the environment {}", dir.display()));
    let mut venv = Command::new(python);
    venv.args(["-m", "venv", "--system-site-packages"]).arg(&dir);
    run_logged(venv, log, "python -m venv").await?;
    log(&format!("Installing {} requirement(s): {}", requirements.len(), requirements.join(" ")));
    let mut pip = Command::new(&interpreter);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--",
    ])
    .args(requirements);
    run_logged(pip, log, "pip install").await?;
    tokio::fs::write(&ready, requirements.join("\n")).await.map_err(|e| e.to_string())?;
    Ok(interpreter)
}
