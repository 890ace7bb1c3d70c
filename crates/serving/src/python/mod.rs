//! The entry-script runtime: Azure ML's `score.py` contract (`init()` once per worker,
//! `run(raw_data)` per request, `AZUREML_MODEL_DIR` pointing at the model's files), run by
//! long-lived Python worker processes fed one JSON line per request over a pipe.
//!
//! A worker that dies mid-request answers that request 503 and is replaced in the background;
//! a request past its deadline kills its worker. Workers run confined ([`crate::sandbox`]):
//! a cleared environment, a working directory outside the data directory, read-only access to
//! their own service's files, a private scratch folder, no capabilities, the deployment's
//! memory limit (RLIMIT_AS), and no inherited descriptors.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, Semaphore};

use crate::error::ServeError;
use crate::sandbox::{Policy, Sandbox};

pub mod env;

/// The worker program, written next to the model when a service starts.
pub const WORKER_PY: &str = include_str!("worker.py");
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
pub struct PythonConfig {
    pub python: PathBuf,
    pub worker_script: PathBuf,
    pub entry_script: PathBuf,
    pub memory_bytes: Option<u64>,
    pub workers: usize,
    pub log: LogSink,
    pub sandbox: Arc<Sandbox>,
    /// What the workers may touch (its working directory is the app folder).
    pub policy: Policy,
    /// The workers' whole environment (`AZUREML_MODEL_DIR`, `PATH`, ...).
    pub env: Vec<(String, String)>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

async fn spawn_worker(cfg: &PythonConfig) -> Result<Worker, String> {
    let mut policy = cfg.policy.clone();
    policy.memory_bytes = cfg.memory_bytes;
    let args: Vec<OsString> = vec![
        "-u".into(),
        cfg.worker_script.clone().into(),
        cfg.entry_script.clone().into(),
        cfg.memory_bytes.unwrap_or(0).to_string().into(),
    ];
    let mut cmd: Command = cfg.sandbox.command(&policy, &cfg.python, &args, &cfg.env)?;
    let mut child =
        cmd.spawn().map_err(|e| format!("cannot start {}: {e}", cfg.python.display()))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    if let Some(stderr) = child.stderr.take() {
        let log = cfg.log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                log(&l);
            }
        });
    }
    let mut w = Worker { child, stdin, stdout };
    let first = tokio::time::timeout(READY_TIMEOUT, w.stdout.next_line())
        .await
        .map_err(|_| "init() did not finish in time".to_string())?
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the worker exited before init() finished".to_string())?;
    let v: Value =
        serde_json::from_str(&first).map_err(|_| format!("unexpected worker output: {first}"))?;
    if v.get("ready").is_some() {
        return Ok(w);
    }
    let tb = v.get("init_error").and_then(Value::as_str).unwrap_or("init() failed");
    Err(format!("init() failed:\n{tb}"))
}

pub struct PythonService {
    cfg: PythonConfig,
    idle: Arc<Mutex<Vec<Worker>>>,
    permits: Arc<Semaphore>,
}

impl PythonService {
    /// Starts the workers; fails with init()'s traceback if any worker cannot start.
    pub async fn start(cfg: PythonConfig) -> Result<Self, String> {
        let mut workers = Vec::new();
        for _ in 0..cfg.workers.max(1) {
            workers.push(spawn_worker(&cfg).await?);
        }
        let permits = Arc::new(Semaphore::new(workers.len()));
        Ok(Self { cfg, idle: Arc::new(Mutex::new(workers)), permits })
    }

    /// Starts a worker in place of a dead one. The dead worker's permit was forgotten, so
    /// requests wait for (or, across replicas, route around) the missing worker instead of
    /// failing; the replacement brings the permit back.
    fn replace_in_background(&self) {
        let (cfg, idle, permits) = (self.cfg.clone(), self.idle.clone(), self.permits.clone());
        tokio::spawn(async move {
            match spawn_worker(&cfg).await {
                Ok(w) => {
                    (cfg.log)("worker restarted");
                    idle.lock().await.push(w);
                    permits.add_permits(1);
                }
                Err(e) => (cfg.log)(&format!("worker restart failed: {e}")),
            }
        });
    }

    /// Whether a request would find a free worker now.
    pub fn has_capacity(&self) -> bool {
        self.permits.available_permits() > 0
    }

    /// How many requests this replica runs at once.
    pub fn workers(&self) -> usize {
        self.cfg.workers.max(1)
    }

    /// Runs `run(raw)` on an idle worker, waiting at most `queue_wait` for one.
    pub async fn score(
        &self,
        raw: String,
        queue_wait: Duration,
        timeout: Duration,
    ) -> Result<Value, ServeError> {
        let permit = tokio::time::timeout(queue_wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ServeError::Busy("no worker became free in time"))?
            .map_err(|_| ServeError::Unknown)?;
        let worker = self.idle.lock().await.pop();
        let Some(mut w) = worker else {
            // A worker is being replaced; the caller may retry.
            drop(permit);
            return Err(ServeError::Crashed);
        };
        let line = serde_json::json!({ "body": raw }).to_string() + "\n";
        let exchange = async {
            w.stdin.write_all(line.as_bytes()).await?;
            w.stdin.flush().await?;
            w.stdout.next_line().await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Some(answer))) => {
                self.idle.lock().await.push(w);
                drop(permit);
                let v: Value = serde_json::from_str(&answer)
                    .map_err(|e| ServeError::Runtime(e.to_string()))?;
                if let Some(text) = v.get("result").and_then(Value::as_str) {
                    return serde_json::from_str(text)
                        .map_err(|e| ServeError::Runtime(e.to_string()));
                }
                let tb = v.get("error").and_then(Value::as_str).unwrap_or("run() failed");
                (self.cfg.log)(tb);
                Err(ServeError::Runtime(tb.lines().last().unwrap_or("run() failed").to_string()))
            }
            Ok(_) => {
                // The worker died (crash, os._exit, out of memory): this request fails, the
                // next ones get a fresh worker.
                let status = match w.child.wait().await {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("status unknown: {e}"),
                };
                (self.cfg.log)(&format!(
                    "worker exited ({status}) while running a request; restarting"
                ));
                permit.forget();
                self.replace_in_background();
                Err(ServeError::Crashed)
            }
            Err(_) => {
                let _ = w.child.kill().await;
                (self.cfg.log)("a request exceeded the timeout; the worker was restarted");
                permit.forget();
                self.replace_in_background();
                Err(ServeError::Timeout)
            }
        }
    }
}
