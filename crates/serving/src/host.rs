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
//!
//! What a service may hold is bounded: [`ServingHost::admit`] lets at most
//! `running + queued` requests in (the rest get [`ServeError::Busy`] before their body is even
//! read), a queued request waits at most the service's `max_queue_wait` for a worker (then
//! Busy), and a running one at most its `timeout`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ServeError;
use crate::onnx::{OnnxModel, ScoreError};
use crate::python::PythonService;

const LOG_LINES: usize = 500;

/// How long requests may wait and run, and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest wait for a free worker (Azure's `maxQueueWaitMs`).
    pub queue_wait: Duration,
    /// The longest a request may run (Azure's `scoringTimeoutMs`).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { queue_wait: Duration::from_millis(500), timeout: Duration::from_secs(60) }
    }
}

/// Requests that may wait for a worker, per worker slot; at least [`MIN_QUEUE`]. Waiting is
/// bounded in time by `maxQueueWaitMs`; this bounds how many wait, so that a crowd of clients
/// (a load balancer's 32 or 64 connections) queues rather than being refused at once.
pub const QUEUE_PER_SLOT: usize = 16;
pub const MIN_QUEUE: usize = 256;
/// The request bodies a service holds, running and waiting, at most: 64 MiB plus the largest
/// body for each worker slot. A request is charged its declared length (the largest body when
/// it declares none), so many small requests may queue but few large ones.
pub const QUEUE_BODY_BYTES: u64 = 64 << 20;
/// The largest scoring body; requests without a length are charged this much.
pub const MAX_BODY_BYTES: u64 = 8 << 20;
/// Body memory is counted in units of this many bytes (a semaphore counts at most u32 permits).
const BODY_UNIT: u64 = 1024;

enum Models {
    Onnx { model: Arc<OnnxModel>, replicas: Vec<Arc<Semaphore>> },
    Python { replicas: Vec<Arc<PythonService>> },
}

struct Running {
    models: Models,
    next: AtomicUsize,
    limits: Limits,
    /// Requests in the service (running or waiting): its permits bound how many it holds.
    admission: Arc<Semaphore>,
    /// Their bodies, in [`BODY_UNIT`]s: bounds the memory they hold.
    body_memory: Arc<Semaphore>,
}

impl Running {
    fn new(models: Models, slots: usize, limits: Limits) -> Self {
        let queue = (slots * QUEUE_PER_SLOT).max(MIN_QUEUE);
        let body_bytes = QUEUE_BODY_BYTES + slots as u64 * MAX_BODY_BYTES;
        Self {
            models,
            next: AtomicUsize::new(0),
            limits,
            admission: Arc::new(Semaphore::new(slots + queue)),
            body_memory: Arc::new(Semaphore::new((body_bytes / BODY_UNIT) as usize)),
        }
    }
}

/// A request let into a service: holds its place (and its body's share of memory) until
/// dropped.
pub struct Admission {
    running: Arc<Running>,
    _place: OwnedSemaphorePermit,
    _body: OwnedSemaphorePermit,
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
    pub fn start(
        &self,
        name: &str,
        model: OnnxModel,
        concurrency: usize,
        replicas: usize,
        limits: Limits,
    ) {
        let (concurrency, replicas) = (concurrency.max(1), replicas.max(1));
        let models = Models::Onnx {
            model: Arc::new(model),
            replicas: (0..replicas).map(|_| Arc::new(Semaphore::new(concurrency))).collect(),
        };
        let r = Arc::new(Running::new(models, concurrency * replicas, limits));
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), r);
    }

    /// Starts (or replaces) a service run by entry-script workers, one set per replica.
    pub fn start_python(&self, name: &str, replicas: Vec<PythonService>, limits: Limits) {
        let slots = replicas.iter().map(PythonService::workers).sum::<usize>().max(1);
        let models = Models::Python { replicas: replicas.into_iter().map(Arc::new).collect() };
        let r = Arc::new(Running::new(models, slots, limits));
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
    #[allow(clippy::disallowed_methods, reason = "log lines carry the wall-clock time")]
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

    /// Lets a request into the named service, or refuses it at once: unknown, or every
    /// worker busy and the queue full (by count, or by the memory its body may take:
    /// `body_len` is the declared `Content-Length`, `None` when chunked). Call it before
    /// reading the request's body.
    pub fn admit(&self, name: &str, body_len: Option<u64>) -> Result<Admission, ServeError> {
        let running = self
            .running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or(ServeError::Unknown)?;
        let place = running
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServeError::Busy("its queue is full"))?;
        let units = body_len.unwrap_or(MAX_BODY_BYTES).min(MAX_BODY_BYTES).div_ceil(BODY_UNIT);
        let body = running
            .body_memory
            .clone()
            .try_acquire_many_owned(units.max(1) as u32)
            .map_err(|_| ServeError::Busy("its queue is full"))?;
        Ok(Admission { running, _place: place, _body: body })
    }

    /// Scores `request` on the service it was admitted to.
    pub async fn score(&self, admitted: Admission, request: Value) -> Result<Value, ServeError> {
        let running = &admitted.running;
        let Limits { queue_wait, timeout } = running.limits;
        let (model, permits) = match &running.models {
            Models::Python { replicas } => {
                let i = pick(replicas.len(), &running.next, |i| replicas[i].has_capacity());
                let replica = replicas.get(i).ok_or(ServeError::Unknown)?;
                return replica.score(request.to_string(), queue_wait, timeout).await;
            }
            Models::Onnx { model, replicas } => {
                let i =
                    pick(replicas.len(), &running.next, |i| replicas[i].available_permits() > 0);
                (model.clone(), replicas.get(i).ok_or(ServeError::Unknown)?.clone())
            }
        };
        let permit = tokio::time::timeout(queue_wait, permits.acquire_owned())
            .await
            .map_err(|_| ServeError::Busy("no worker became free in time"))?
            .map_err(|_| ServeError::Unknown)?;
        // The permit stays with the work: a request past its deadline still occupies its
        // worker thread until it ends, and must still count.
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            model.score(&request)
        });
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ServeError::Timeout)?
            .map_err(|e| ServeError::Runtime(e.to_string()))?
            .map_err(|e| match e {
                ScoreError::BadInput(m) => ServeError::BadInput(m),
                ScoreError::Runtime(m) => ServeError::Runtime(m),
            })
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
