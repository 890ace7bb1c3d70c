//! The running services of this server, and the scoring path: look the service up, pick a
//! replica, take one of its concurrency permits, run the model on a blocking thread under a
//! deadline.
//!
//! A cluster deployment runs N replicas behind a balancer: round robin, skipping a replica
//! whose permits are all taken while another has one free. ONNX replicas share the immutable
//! optimised plan (copying it would only cost memory) and each has its own permits;
//! entry-script replicas are separate sets of worker processes, so a crash or a hung request
//! in one leaves the others serving.
//!
//! An update replaces a service's model atomically: requests already running finish on the
//! model they started with (they hold an `Arc` to it), the next ones get the new model, so an
//! update fails no request.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::onnx::{OnnxModel, ScoreError};
use crate::python::PythonService;

const LOG_LINES: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the service does not exist or is not running")]
    Unknown,
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Runtime(String),
    #[error("the request took longer than the service's timeout")]
    Timeout,
    /// The worker serving the request died; it is being replaced.
    #[error("the service's worker crashed while handling the request; retry")]
    Crashed,
}

enum Running {
    Onnx { model: Arc<OnnxModel>, replicas: Vec<Arc<Semaphore>>, next: AtomicUsize },
    Python { replicas: Vec<Arc<PythonService>>, next: AtomicUsize },
}

/// Round robin from `next`, preferring the first replica that has capacity now.
fn pick(n: usize, next: &AtomicUsize, has_capacity: impl Fn(usize) -> bool) -> usize {
    let start = next.fetch_add(1, Ordering::Relaxed) % n.max(1);
    (0..n).map(|i| (start + i) % n).find(|&i| has_capacity(i)).unwrap_or(start)
}

#[derive(Default)]
pub struct ServingHost {
    running: RwLock<HashMap<String, Arc<Running>>>,
    logs: Mutex<HashMap<String, VecDeque<String>>>,
}

impl ServingHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts (or replaces) a service's model on `replicas` replicas, each allowing
    /// `concurrency` requests at once.
    pub fn start(&self, name: &str, model: OnnxModel, concurrency: usize, replicas: usize) {
        let r = Arc::new(Running::Onnx {
            model: Arc::new(model),
            replicas: (0..replicas.max(1))
                .map(|_| Arc::new(Semaphore::new(concurrency.max(1))))
                .collect(),
            next: AtomicUsize::new(0),
        });
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), r);
    }

    /// Starts (or replaces) a service run by entry-script workers, one set per replica.
    pub fn start_python(&self, name: &str, replicas: Vec<PythonService>) {
        let r = Arc::new(Running::Python {
            replicas: replicas.into_iter().map(Arc::new).collect(),
            next: AtomicUsize::new(0),
        });
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), r);
    }

    pub fn stop(&self, name: &str) {
        self.running.write().unwrap_or_else(|p| p.into_inner()).remove(&name.to_ascii_lowercase());
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).remove(&name.to_ascii_lowercase());
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&name.to_ascii_lowercase())
    }

    /// Appends a line to the service's log (what `get-logs` shows).
    pub fn log(&self, name: &str, line: impl AsRef<str>) {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let buf = logs.entry(name.to_ascii_lowercase()).or_default();
        for l in line.as_ref().lines() {
            if buf.len() == LOG_LINES {
                buf.pop_front();
            }
            buf.push_back(format!("{stamp} {l}"));
        }
    }

    pub fn logs(&self, name: &str) -> Vec<String> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(&name.to_ascii_lowercase())
            .map(|b| b.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Scores `request` on the named service.
    pub async fn score(
        &self,
        name: &str,
        request: Value,
        timeout: Duration,
    ) -> Result<Value, ServeError> {
        let running = self
            .running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or(ServeError::Unknown)?;
        let (model, permits) = match running.as_ref() {
            Running::Python { replicas, next } => {
                let i = pick(replicas.len(), next, |i| replicas[i].has_capacity());
                let replica = replicas.get(i).ok_or(ServeError::Unknown)?;
                return replica.score(request.to_string(), timeout).await;
            }
            Running::Onnx { model, replicas, next } => {
                let i = pick(replicas.len(), next, |i| replicas[i].available_permits() > 0);
                (model.clone(), replicas.get(i).ok_or(ServeError::Unknown)?.clone())
            }
        };
        let work = async {
            let _permit = permits.acquire_owned().await.map_err(|_| ServeError::Unknown)?;
            tokio::task::spawn_blocking(move || model.score(&request))
                .await
                .map_err(|e| ServeError::Runtime(e.to_string()))?
                .map_err(|e| match e {
                    ScoreError::BadInput(m) => ServeError::BadInput(m),
                    ScoreError::Runtime(m) => ServeError::Runtime(m),
                })
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| ServeError::Timeout)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balancer_rotates_and_skips_busy_replicas() {
        let next = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..6).map(|_| pick(3, &next, |_| true)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // Replica 1 is full: its turn goes to the next one with room.
        let next = AtomicUsize::new(1);
        assert_eq!(pick(3, &next, |i| i != 1), 2);
        // All full: wait on the one whose turn it is.
        let next = AtomicUsize::new(2);
        assert_eq!(pick(3, &next, |_| false), 2);
    }
}
