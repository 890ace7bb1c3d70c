//! `/metrics` in Prometheus' text format: what the server counts and how it shows it.
//!
//! Recording sits on the token and scoring paths, so it takes no lock and allocates nothing:
//! counters are atomics in fixed arrays (grant x result, status codes), latencies go into
//! [`LatencyHistogram`]s, and the per-route and per-service tables are maps that readers load
//! through an `ArcSwap` (a writer copies the map under a mutex the first time it sees a route
//! or service, which happens a bounded number of times). Gauges (connections, replicas,
//! queues, resident memory) are read when scraped. The text is written by the
//! `prometheus-client` crate's encoder from a collector over these tables.
//!
//! Cardinality is bounded: routes are axum's route templates (never the raw path), methods and
//! statuses come from fixed lists (others fold into `OTHER` and `4xx`-style classes), grant
//! types and OAuth results from fixed lists, and services are only named once the scoring
//! path found them running (at most [`MAX_SERVICES`]; an unknown name is `<unknown>`).
//!
//! Exposure (see `lib.rs`): on the main listener only when a bearer credential is configured
//! (compared in constant time), and/or on a separate `--metrics-listen` address.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::telemetry::{HistogramSnapshot, LatencyHistogram};
use mlgate_serving::ServingHost;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use crate::net::Connections;

/// Services named in the scoring series at most; past it they count as `<other>`.
pub const MAX_SERVICES: usize = 10_000;
/// Route templates at most (the router has about a hundred).
const MAX_ROUTES: usize = 1_000;

/// Status codes counted by their number; any other counts under its class (`4xx`).
const STATUSES: [u16; 31] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 409, 411,
    412, 413, 415, 416, 422, 429, 431, 500, 501, 502, 503, 504,
];
const STATUS_SLOTS: usize = STATUSES.len() + 6;

fn status_slot(code: u16) -> usize {
    match STATUSES.iter().position(|&s| s == code) {
        Some(i) => i,
        None => STATUSES.len() + usize::from((code / 100).min(5)),
    }
}

fn status_label(slot: usize) -> String {
    match STATUSES.get(slot) {
        Some(s) => s.to_string(),
        None => format!("{}xx", slot - STATUSES.len()),
    }
}

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"];

fn method_slot(m: &axum::http::Method) -> usize {
    METHODS[..7].iter().position(|s| *s == m.as_str()).unwrap_or(7)
}

/// Grant types of the token endpoint, as `grant_type` labels.
pub const GRANTS: [&str; 6] = [
    "client_credentials",
    "password",
    "refresh_token",
    "device_code",
    "authorization_code",
    // The request did not parse far enough to name a known grant.
    "unknown",
];

/// Results of a token request: `success` or the OAuth error code.
const RESULTS: [&str; 14] = [
    "success",
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_resource",
    "invalid_scope",
    "temporarily_unavailable",
    "server_error",
    "authorization_pending",
    "expired_token",
    "access_denied",
    "other",
];

/// Why a sign-in failed, as the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInFailure {
    /// A wrong, expired or disabled client's secret (`invalid_client`).
    ClientSecret = 0,
    /// A wrong password on the password grant.
    Password = 1,
    /// Refused unread because the account or address is locked out (AADSTS50053).
    Locked = 2,
    /// A sign-in page (device login, `/authorize`) refused the password or the code.
    Interactive = 3,
}

const SIGN_IN_KINDS: [&str; 4] = ["client_secret", "password", "locked", "interactive"];

/// Counts by status and a latency histogram: one route and method, or one service.
#[derive(Debug)]
struct Series {
    statuses: [AtomicU64; STATUS_SLOTS],
    latency: LatencyHistogram,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            statuses: [const { AtomicU64::new(0) }; STATUS_SLOTS],
            latency: LatencyHistogram::new(),
        }
    }
}

impl Series {
    fn record(&self, status: u16, took: Duration) {
        self.statuses[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }
}

#[derive(Debug, Default)]
struct RouteSeries {
    by_method: [Series; 8],
}

/// A map readers never lock: they load the current map; the first sight of a key copies the
/// map under `insert` (bounded by `cap`, past which keys share `overflow`).
struct SwapMap<V> {
    map: ArcSwap<HashMap<Box<str>, Arc<V>>>,
    insert: Mutex<()>,
    overflow: Arc<V>,
    cap: usize,
}

impl<V: Default> SwapMap<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
            insert: Mutex::new(()),
            overflow: Arc::new(V::default()),
            cap,
        }
    }

    fn with<R>(&self, key: &str, f: impl FnOnce(&V) -> R) -> R {
        if let Some(v) = self.map.load().get(key) {
            return f(v);
        }
        let v = {
            let _one_writer = self.insert.lock().unwrap_or_else(|p| p.into_inner());
            let current = self.map.load_full();
            match current.get(key) {
                Some(v) => v.clone(),
                None if current.len() >= self.cap => self.overflow.clone(),
                None => {
                    let v = Arc::new(V::default());
                    let mut next = (*current).clone();
                    next.insert(key.into(), v.clone());
                    self.map.store(Arc::new(next));
                    v
                }
            }
        };
        f(&v)
    }

    /// The entries, sorted by key, and the overflow under `overflow_label`.
    fn entries(&self, overflow_label: &str) -> Vec<(String, Arc<V>)> {
        let map = self.map.load_full();
        let mut out: Vec<(String, Arc<V>)> =
            map.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        if map.len() >= self.cap {
            out.push((overflow_label.to_string(), self.overflow.clone()));
        }
        out
    }
}

/// What the server counts; one per server, shared through `AppState`.
pub struct Metrics {
    http: SwapMap<RouteSeries>,
    tokens: [[AtomicU64; RESULTS.len()]; GRANTS.len()],
    sign_in_failures: [AtomicU64; SIGN_IN_KINDS.len()],
    scoring: SwapMap<Series>,
    scoring_unknown: Series,
    serving: Arc<ServingHost>,
    connections: Connections,
    started: std::time::SystemTime,
    /// Benchmarks turn recording off to measure what it costs; the binary never does.
    recording: bool,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    #[allow(clippy::disallowed_methods, reason = "the process start time is a wall-clock fact")]
    pub fn new(serving: Arc<ServingHost>, connections: Connections) -> Self {
        Self {
            http: SwapMap::new(MAX_ROUTES),
            tokens: [const { [const { AtomicU64::new(0) }; RESULTS.len()] }; GRANTS.len()],
            sign_in_failures: [const { AtomicU64::new(0) }; SIGN_IN_KINDS.len()],
            scoring: SwapMap::new(MAX_SERVICES),
            scoring_unknown: Series::default(),
            serving,
            connections,
            started: std::time::SystemTime::now(),
            recording: true,
        }
    }

    /// No recording at all (benchmarks' "metrics off" side), store timings included.
    #[doc(hidden)]
    pub fn without_recording(mut self) -> Self {
        self.recording = false;
        mlgate_store::db::timing::set_recording(false);
        self
    }

    /// One answered request (the access-log middleware calls it with the route template).
    pub fn http(&self, route: &str, method: &axum::http::Method, status: u16, took: Duration) {
        if !self.recording {
            return;
        }
        self.http.with(route, |r| r.by_method[method_slot(method)].record(status, took));
    }

    /// One token request: `grant` is an index into [`GRANTS`], `result` `success` or the
    /// OAuth error code.
    pub fn token(&self, grant: usize, result: &str) {
        if !self.recording {
            return;
        }
        let g = grant.min(GRANTS.len() - 1);
        let r = RESULTS.iter().position(|s| *s == result).unwrap_or(RESULTS.len() - 1);
        self.tokens[g][r].fetch_add(1, Ordering::Relaxed);
    }

    pub fn sign_in_failure(&self, kind: SignInFailure) {
        if !self.recording {
            return;
        }
        self.sign_in_failures[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One scoring request; `known` says the service was found running (else the name, which
    /// the caller chose, is not used as a label).
    pub fn scoring(&self, service: &str, known: bool, status: u16, took: Duration) {
        if !self.recording {
            return;
        }
        if known {
            self.scoring.with(service, |s| s.record(status, took));
        } else {
            self.scoring_unknown.record(status, took);
        }
    }

    /// The exposition text.
    pub fn render(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect(self.clone())));
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// Resident memory of this process in bytes (Linux: `VmRSS` in `/proc/self/status`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[derive(Debug)]
struct Collect(Arc<Metrics>);

/// One of a running service's gauges, read from its load.
type LoadGauge = fn(&mlgate_serving::ServiceLoad) -> usize;

fn histogram(
    enc: &mut prometheus_client::encoding::MetricEncoder<'_>,
    s: &HistogramSnapshot,
) -> fmt::Result {
    enc.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)
}

fn counter(enc: &mut prometheus_client::encoding::MetricEncoder<'_>, v: u64) -> fmt::Result {
    enc.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.0;
        // A family is written only when it has a sample (strict parsers refuse empty ones).
        let routes = m.http.entries("<other>");
        let mut requests = Vec::new();
        let mut latencies = Vec::new();
        for (route, r) in &routes {
            for (mi, s) in r.by_method.iter().enumerate() {
                for (si, c) in s.statuses.iter().enumerate() {
                    let v = c.load(Ordering::Relaxed);
                    if v > 0 {
                        requests.push((route.as_str(), METHODS[mi], status_label(si), v));
                    }
                }
                let snap = s.latency.snapshot();
                if snap.count > 0 {
                    latencies.push((route.as_str(), METHODS[mi], snap));
                }
            }
        }
        if !requests.is_empty() {
            let mut d = enc.encode_descriptor(
                "mlgate_http_requests",
                "HTTP requests answered, by route template, method and status.",
                None,
                MetricType::Counter,
            )?;
            for (route, method, status, v) in &requests {
                let labels = [("route", *route), ("method", *method), ("status", status.as_str())];
                counter(&mut d.encode_family(&labels)?, *v)?;
            }
        }
        if !latencies.is_empty() {
            let mut d = enc.encode_descriptor(
                "mlgate_http_request_duration_seconds",
                "Time from a request's head to its response's head, by route template and method.",
                None,
                MetricType::Histogram,
            )?;
            for (route, method, snap) in &latencies {
                let labels = [("route", *route), ("method", *method)];
                histogram(&mut d.encode_family(&labels)?, snap)?;
            }
        }

        let mut tokens = Vec::new();
        for (gi, row) in m.tokens.iter().enumerate() {
            for (ri, c) in row.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    tokens.push((GRANTS[gi], RESULTS[ri], v));
                }
            }
        }
        if !tokens.is_empty() {
            let mut d = enc.encode_descriptor(
                "mlgate_token_requests",
                "Token endpoint requests, by grant type and result (success or the OAuth error).",
                None,
                MetricType::Counter,
            )?;
            for (grant, result, v) in &tokens {
                let labels = [("grant_type", *grant), ("result", *result)];
                counter(&mut d.encode_family(&labels)?, *v)?;
            }
        }

        let mut d = enc.encode_descriptor(
            "mlgate_sign_in_failures",
            "Failed sign-ins: wrong client secrets, wrong passwords, locked-out attempts, \
             refusals on the sign-in pages.",
            None,
            MetricType::Counter,
        )?;
        for (i, c) in m.sign_in_failures.iter().enumerate() {
            let labels = [("kind", SIGN_IN_KINDS[i])];
            counter(&mut d.encode_family(&labels)?, c.load(Ordering::Relaxed))?;
        }

        let entries = m.scoring.entries("<other>");
        let mut services: Vec<(&str, &Series)> =
            entries.iter().map(|(n, s)| (n.as_str(), s.as_ref())).collect();
        services.push(("<unknown>", &m.scoring_unknown));
        let mut scored = Vec::new();
        let mut scoring_latencies = Vec::new();
        for (name, series) in &services {
            for (si, c) in series.statuses.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    scored.push((*name, status_label(si), v));
                }
            }
            let snap = series.latency.snapshot();
            if snap.count > 0 {
                scoring_latencies.push((*name, snap));
            }
        }
        if !scored.is_empty() {
            let mut d = enc.encode_descriptor(
                "mlgate_scoring_requests",
                "Scoring requests answered, by service and status (`<unknown>`: no such \
                 service running).",
                None,
                MetricType::Counter,
            )?;
            for (name, status, v) in &scored {
                let labels = [("service", *name), ("status", status.as_str())];
                counter(&mut d.encode_family(&labels)?, *v)?;
            }
        }
        if !scoring_latencies.is_empty() {
            let mut d = enc.encode_descriptor(
                "mlgate_scoring_duration_seconds",
                "Time to answer a scoring request (queue wait and model run included), by \
                 service.",
                None,
                MetricType::Histogram,
            )?;
            for (name, snap) in &scoring_latencies {
                let labels = [("service", *name)];
                histogram(&mut d.encode_family(&labels)?, snap)?;
            }
        }

        let load = m.serving.load();
        let gauges: [(&str, &str, LoadGauge); 4] = [
            ("mlgate_service_replicas", "Replicas of each running service.", |l| l.replicas),
            (
                "mlgate_service_replicas_healthy",
                "Replicas of each running service able to take requests.",
                |l| l.healthy_replicas,
            ),
            (
                "mlgate_scoring_queue_depth",
                "Scoring requests a service holds now, running or waiting for a worker.",
                |l| l.in_flight,
            ),
            (
                "mlgate_scoring_queue_capacity",
                "Scoring requests a service may hold at once (beyond: 503).",
                |l| l.capacity,
            ),
        ];
        for (name, help, value) in gauges {
            if load.is_empty() {
                break;
            }
            let mut d = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for l in &load {
                let labels = [("service", l.name.as_str())];
                d.encode_family(&labels)?.encode_gauge(&(value(l) as i64))?;
            }
        }

        let mut d = enc.encode_descriptor(
            "mlgate_store_operation_duration_seconds",
            "Store latency: reads, single writes, beginning a write transaction (waiting for \
             the write lock) and committing one.",
            None,
            MetricType::Histogram,
        )?;
        for (op, h) in mlgate_store::db::timing::all() {
            let labels = [("operation", op)];
            histogram(&mut d.encode_family(&labels)?, &h.snapshot())?;
        }

        enc.encode_descriptor(
            "mlgate_open_connections",
            "Client connections open now (TLS handshakes included).",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(m.connections.open() as i64))?;
        enc.encode_descriptor(
            "mlgate_max_connections",
            "The connection cap in force.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(m.connections.cap() as i64))?;
        if let Some(rss) = resident_bytes() {
            enc.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(rss as i64))?;
        }
        let start = m.started.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        enc.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&start.as_secs_f64())?;
        Ok(())
    }
}

/// Every metric name the server may expose (a test checks the Grafana dashboard against it).
pub const METRIC_NAMES: &[&str] = &[
    "mlgate_http_requests_total",
    "mlgate_http_request_duration_seconds",
    "mlgate_token_requests_total",
    "mlgate_sign_in_failures_total",
    "mlgate_scoring_requests_total",
    "mlgate_scoring_duration_seconds",
    "mlgate_service_replicas",
    "mlgate_service_replicas_healthy",
    "mlgate_scoring_queue_depth",
    "mlgate_scoring_queue_capacity",
    "mlgate_store_operation_duration_seconds",
    "mlgate_open_connections",
    "mlgate_max_connections",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

/// The bearer credential that opens `/metrics` (`--metrics-token-file`); never printed.
#[derive(Clone)]
pub struct MetricsToken(Arc<str>);

impl MetricsToken {
    /// At least 16 characters, no whitespace inside (it travels in a header).
    pub fn new(token: &str) -> Result<Self, String> {
        let t = token.trim();
        if t.len() < 16 {
            return Err("the metrics token must be at least 16 characters".into());
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) || !t.is_ascii() {
            return Err("the metrics token must be printable ASCII without spaces".into());
        }
        Ok(Self(t.into()))
    }

    /// Constant-time comparison of the presented `Authorization: Bearer` value.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        // Compare digests so the comparison takes the same time whatever the lengths.
        let a = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, presented);
        let b = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes());
        bool::from(a.as_ref().ct_eq(b.as_ref()))
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

/// What the `/metrics` handlers need.
#[derive(Clone)]
pub struct Exposition {
    pub metrics: Arc<Metrics>,
    pub token: Option<MetricsToken>,
}

/// `GET /metrics`: 401 with a Bearer challenge unless the configured token is presented (when
/// one is configured).
pub async fn scrape(State(x): State<Exposition>, headers: HeaderMap) -> Response {
    if let Some(token) = &x.token
        && !token.admits(&headers)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"mlgate-metrics\"")],
            "401 Unauthorized: /metrics needs the configured bearer token\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        x.metrics.render(),
    )
        .into_response()
}

/// The router of a `--metrics-listen` address: `/metrics` and nothing else.
pub fn router(x: Exposition) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_methods_fold_into_bounded_labels() {
        assert_eq!(status_label(status_slot(200)), "200");
        assert_eq!(status_label(status_slot(418)), "4xx");
        assert_eq!(status_label(status_slot(599)), "5xx");
        assert_eq!(status_label(status_slot(999)), "5xx");
        assert_eq!(
            METHODS[method_slot(&axum::http::Method::from_bytes(b"BREW").unwrap())],
            "OTHER"
        );
    }

    #[test]
    fn the_map_stops_naming_keys_at_its_cap() {
        let m: SwapMap<AtomicU64> = SwapMap::new(2);
        for k in ["a", "b", "c", "d", "a"] {
            m.with(k, |c| c.fetch_add(1, Ordering::Relaxed));
        }
        let e = m.entries("<other>");
        let names: Vec<_> =
            e.iter().map(|(k, v)| (k.as_str(), v.load(Ordering::Relaxed))).collect();
        assert_eq!(names, [("a", 2), ("b", 1), ("<other>", 2)]);
    }

    #[test]
    fn the_token_is_checked_and_never_shown() {
        assert!(MetricsToken::new("short").is_err());
        let t = MetricsToken::new("0123456789abcdef-secret\n").unwrap();
        assert!(!format!("{t:?}").contains("secret"));
        let mut h = HeaderMap::new();
        assert!(!t.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer 0123456789abcdef-secreT".parse().unwrap());
        assert!(!t.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer 0123456789abcdef-secret".parse().unwrap());
        assert!(t.admits(&h));
    }
}
