//! The running services of this server, and the scoring path: look the service up, take one of
//! its concurrency permits, run the model on a blocking thread under a deadline.
//!
//! An update replaces a service's model atomically: requests already running finish on the
//! model they started with (they hold an `Arc` to it), the next ones get the new model, so an
//! update fails no request.

use std::collections::{HashMap, VecDeque};
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
    Onnx { model: Arc<OnnxModel>, permits: Arc<Semaphore> },
    Python(Arc<PythonService>),
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

    /// Starts (or replaces) a service's model, allowing `concurrency` requests at once.
    pub fn start(&self, name: &str, model: OnnxModel, concurrency: usize) {
        let r = Arc::new(Running::Onnx {
            model: Arc::new(model),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        });
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), r);
    }

    /// Starts (or replaces) a service run by entry-script workers.
    pub fn start_python(&self, name: &str, service: PythonService) {
        let r = Arc::new(Running::Python(Arc::new(service)));
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
            Running::Python(p) => return p.score(request.to_string(), timeout).await,
            Running::Onnx { model, permits } => (model.clone(), permits.clone()),
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
