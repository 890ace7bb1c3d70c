//! The activity log's and the sign-in log's HTTP side.
//!
//! - [`record_activity`] (a middleware) names the operation of every management write and
//!   key/token read from its method and path, as ARM does (`PUT .../workspaces/w` is
//!   `Microsoft.MachineLearningServices/workspaces/write`, `POST .../services/s/listKeys` is
//!   `.../services/listKeys/action`), opens the request's activity scope (the store then
//!   commits the record with the request's first write, see `mlgate_core::activity`), and
//!   afterwards writes on its own whatever was not recorded that way: denials (403), failures
//!   that rolled back, and reads. Reads other than keys and tokens are not recorded.
//! - [`SignInLog`] takes sign-in records off the request path. Token grants are counted into
//!   their minute's aggregated record in memory (`mlgate_core::signins` says what is
//!   aggregated), written every second; interactive sign-ins go through a bounded channel, one
//!   record each. One writer task inserts both in batches. When the channel or the pending
//!   grants are full a record is dropped and counted (and the count logged), never waited for:
//!   a flood of grants must not be slowed, or grow memory, because the log's disk is slow.
//! - [`prune`] deletes records past their retention, in the background.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use mlgate_core::activity::{self, ActivityRecord, ActivityStatus, Pending};
use mlgate_core::signins::{AGGREGATION_WINDOW_SECS, SignInRecord};
use mlgate_core::store::Store;
use time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::state::AppState;

/// The error code a response carried, for the activity record of a failure (`error.rs` sets
/// it on every error body).
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// An operation and the resource id it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub name: String,
    pub scope: String,
}

/// POST actions under ARM and model management (everything else POSTed there creates).
const ACTIONS: &[&str] =
    &["listKeys", "regenerateKeys", "token", "startPendingUpload", "getLogs", "listSecrets"];

/// The operation a request performs, or `None` when it is not recorded (reads other than keys
/// and tokens, the token endpoints and sign-in pages, scoring, uploads through signed URLs).
pub fn operation(method: &Method, path: &str) -> Option<Operation> {
    let verb = match *method {
        Method::PUT | Method::PATCH => "write",
        Method::DELETE => "delete",
        Method::POST => "post",
        _ => return None,
    };
    if let Some(rest) = path.strip_prefix("/subscriptions/") {
        return arm_operation(verb, rest);
    }
    if let Some(rest) = path.strip_prefix("/modelmanagement/v1.0/subscriptions/") {
        return arm_operation(verb, rest);
    }
    if verb == "post" && (path == "/api/v1/changePassword" || path == "/changepassword") {
        // A user's own change: the caller is known once the current password is checked.
        return Some(Operation {
            name: "microsoft.directory/users/password/update".into(),
            scope: path.to_string(),
        });
    }
    if let Some(rest) = path.strip_prefix("/v1.0/") {
        return directory_operation(verb, rest, path);
    }
    let rest = path.strip_prefix("/api/v1/")?;
    let seg: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let is = |i: usize, w: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    if is(0, "roleAssignments") || is(0, "roleDefinitions") {
        let kind = if is(0, "roleAssignments") { "roleAssignments" } else { "roleDefinitions" };
        let v = if verb == "post" { "write" } else { verb };
        return Some(Operation {
            name: format!("Microsoft.Authorization/{kind}/{v}"),
            scope: path.to_string(),
        });
    }
    if is(0, "servicePrincipals") || is(0, "users") || is(0, "tenants") {
        return directory_operation(verb, rest, path);
    }
    None
}

/// `microsoft.directory/{type}/{create|update|delete}`, Azure AD's permission names;
/// `.../credentials/update` for secrets, `.../members/update` for memberships.
fn directory_operation(verb: &str, rest: &str, path: &str) -> Option<Operation> {
    let seg: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let kind = *seg.first()?;
    let action = seg.get(2).or_else(|| (kind == "tenants").then(|| seg.get(1)).flatten());
    // Graph's reads by POST (`getByIds`, `checkMemberGroups`), and batches.
    if seg[1..].iter().any(|s| s.starts_with("get") || s.starts_with("check")) {
        return None;
    }
    let name = match (verb, action) {
        _ if kind.starts_with('$') || kind == "me" || kind == "auditLogs" => return None,
        (_, Some(a))
            if a.eq_ignore_ascii_case("addPassword")
                || a.eq_ignore_ascii_case("removePassword")
                || a.eq_ignore_ascii_case("reset")
                || a.eq_ignore_ascii_case("credentials") =>
        {
            format!("microsoft.directory/{kind}/credentials/update")
        }
        (_, Some(a)) if a.eq_ignore_ascii_case("members") => {
            format!("microsoft.directory/{kind}/members/update")
        }
        (_, Some(a)) if a.eq_ignore_ascii_case("changePassword") => {
            format!("microsoft.directory/{kind}/password/update")
        }
        ("post", _) => format!("microsoft.directory/{kind}/create"),
        ("write", _) => format!("microsoft.directory/{kind}/update"),
        ("delete", _) => format!("microsoft.directory/{kind}/delete"),
        _ => return None,
    };
    Some(Operation { name, scope: path.to_string() })
}

/// ARM's rule: the provider namespace and the resource types along the path, then `write`,
/// `delete` or `{action}/action`; the scope is the resource id (without a trailing action).
fn arm_operation(verb: &str, rest: &str) -> Option<Operation> {
    let seg: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    seg.first()?;
    let provider_at = seg.iter().rposition(|s| s.eq_ignore_ascii_case("providers"));
    let (name, scope_len) = match provider_at {
        None => {
            // The subscription, or a resource group.
            let is_rg = seg.get(1).is_some_and(|s| s.eq_ignore_ascii_case("resourceGroups"));
            match seg.len() {
                3 if is_rg && verb != "post" => {
                    (format!("Microsoft.Resources/subscriptions/resourceGroups/{verb}"), 3)
                }
                _ => return None,
            }
        }
        Some(p) => {
            let ns = *seg.get(p + 1)?;
            let tail = &seg[p + 2..];
            if tail.is_empty() {
                return None;
            }
            let types: Vec<&str> = tail.iter().step_by(2).copied().collect();
            let last_unnamed = tail.len() % 2 == 1;
            let (types, what, len) = if verb == "post" {
                match (last_unnamed, types.last()) {
                    (true, Some(a)) if types.len() > 1 && is_action(a) => {
                        let a = ACTIONS.iter().find(|k| k.eq_ignore_ascii_case(a)).unwrap_or(a);
                        (&types[..types.len() - 1], format!("{a}/action"), seg.len() - 1)
                    }
                    // POST to a collection creates in it.
                    _ => (&types[..], "write".to_string(), seg.len()),
                }
            } else {
                (&types[..], verb.to_string(), seg.len())
            };
            (format!("{ns}/{}/{what}", types.join("/")), len)
        }
    };
    Some(Operation { name, scope: format!("/subscriptions/{}", seg[..scope_len].join("/")) })
}

fn is_action(segment: &str) -> bool {
    ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(segment))
}

/// The correlation id a client sent (`x-ms-correlation-request-id`, `x-ms-client-request-id`),
/// if it is a plausible id; otherwise a new GUID.
pub fn correlation_id(headers: &HeaderMap) -> String {
    ["x-ms-correlation-request-id", "x-ms-client-request-id", "client-request-id"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .find(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_string)
}

/// Runs the handler (`next`) and records the activity: see the module's documentation (part
/// of the router's one middleware, `routes::around`).
pub async fn record_activity<F, Fut>(state: &AppState, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(op) = operation(req.method(), req.uri().path()) else {
        return next(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = crate::client_addr::client_ip(peer, req.headers(), &state.trusted_proxies);
    let correlation = correlation_id(req.headers());
    let mut record = ActivityRecord {
        id: Uuid::new_v4(),
        at: state.authority.clock().now(),
        tenant_id: None,
        subscription_id: None,
        resource_group: None,
        caller_id: None,
        caller_type: String::new(),
        caller: String::new(),
        caller_display_name: String::new(),
        operation: op.name,
        scope: String::new(),
        method: req.method().as_str().to_string(),
        status: ActivityStatus::Succeeded,
        sub_status: None,
        error_code: None,
        correlation_id: correlation.clone(),
        client_address: Some(client.to_string()),
    };
    record.set_scope(&op.scope);
    let pending = Pending { record, caller_known: false, recorded: false };
    let (mut resp, pending) = activity::scope(pending, next(req)).await;
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        resp.headers_mut().insert("x-ms-correlation-request-id", v);
    }
    if pending.recorded || !pending.caller_known {
        return resp;
    }
    let mut record = pending.record;
    let status = resp.status();
    record.sub_status = Some(activity::sub_status(status.as_u16()).to_string())
        .filter(|s| !s.is_empty() && !status.is_success());
    if !status.is_success() {
        record.status = ActivityStatus::Failed;
        record.error_code = Some(
            resp.extensions()
                .get::<ErrorCode>()
                .map(|c| c.0.clone())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("Failed").to_string()),
        );
    }
    if let Err(e) = state.store.insert_activity(&record).await {
        tracing::error!(error = %e, operation = %record.operation, "could not write an activity record");
    }
    resp
}

/// Interactive sign-in records queued for the writer, at most.
pub const SIGNIN_QUEUE: usize = 16 * 1024;
/// Distinct aggregated grants (attempt and minute) waiting for the next write, at most.
pub const SIGNIN_PENDING_GRANTS: usize = 16 * 1024;
/// Records per insert, at most.
const SIGNIN_BATCH: usize = 512;
/// How often the aggregated grants are written.
const SIGNIN_FLUSH: StdDuration = StdDuration::from_secs(1);
/// How long a shutdown waits for the last write.
const SIGNIN_CLOSE: StdDuration = StdDuration::from_secs(5);

/// The sign-in log's writer (see the module's documentation). Cloned handles share it.
#[derive(Clone)]
pub struct SignInLog {
    inner: Option<Arc<SignInInner>>,
}

struct SignInInner {
    /// Interactive sign-ins, one record each.
    tx: mpsc::Sender<SignInRecord>,
    /// Token grants of the current minutes, aggregated as `mlgate_core::signins` describes.
    grants: Mutex<HashMap<GrantKey, PendingGrant>>,
    dropped: AtomicU64,
    /// A grant unlike any pending one arrived: write it now, not at the next tick.
    fresh: Notify,
    stop: Notify,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl SignInInner {
    fn new(tx: mpsc::Sender<SignInRecord>) -> Self {
        Self {
            tx,
            grants: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
            fresh: Notify::new(),
            stop: Notify::new(),
            writer: Mutex::new(None),
        }
    }
}

/// An aggregated grant record (`count` is every attempt so far) and how many of its attempts
/// the store has.
struct PendingGrant {
    record: SignInRecord,
    written: u32,
    /// Attempted since the last tick: an idle grant is forgotten (the store has it all) and,
    /// should it come again, starts a new pending record that adds into the same row.
    recent: bool,
}

/// What makes two token requests the same attempt: everything a sign-in record names but the
/// time, the ids and the failure's wording; and the minute they fell in.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GrantKey {
    window: i64,
    tenant: Option<mlgate_core::ids::TenantId>,
    grant: &'static str,
    client_id: Option<String>,
    username: Option<String>,
    user_id: Option<String>,
    service_principal_id: Option<String>,
    resource: Option<String>,
    client: IpAddr,
    error_code: u32,
}

impl SignInLog {
    /// A log that records nothing (`--signin-log off`).
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Starts the writer task on the current runtime.
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn mlgate_core::clock::Clock>,
        capacity: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<SignInRecord>(capacity.max(1));
        let inner = Arc::new(SignInInner::new(tx));
        let writer = tokio::spawn(write_sign_ins(inner.clone(), rx, store, clock));
        *lock(&inner.writer) = Some(writer);
        Self { inner: Some(inner) }
    }

    /// Queues an interactive sign-in's record; never waits. A full queue drops it and counts.
    pub fn record(&self, record: SignInRecord) {
        if let Some(inner) = &self.inner
            && inner.tx.try_send(record).is_err()
        {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a token request into its minute's aggregated record (made on the minute's first
    /// such request); never waits. `error` is `(AADSTS code, description)` for a failure.
    pub fn record_grant(
        &self,
        attempt: Attempt,
        at: time::OffsetDateTime,
        client: IpAddr,
        correlation_id: Option<String>,
        error: Option<(u32, &str)>,
    ) {
        let Some(inner) = &self.inner else { return };
        let Attempt {
            tenant,
            grant,
            interactive: _,
            client_id,
            app_display_name,
            username,
            user_id,
            service_principal_id,
            resource,
        } = attempt;
        let key = GrantKey {
            window: at.unix_timestamp().div_euclid(AGGREGATION_WINDOW_SECS),
            tenant,
            grant,
            client_id,
            username,
            user_id,
            service_principal_id,
            resource,
            client,
            error_code: error.map_or(0, |(c, _)| c),
        };
        let mut grants = lock(&inner.grants);
        if let Some(p) = grants.get_mut(&key) {
            p.record.count = p.record.count.saturating_add(1);
            p.record.last_at = p.record.last_at.max(at);
            p.recent = true;
            return;
        }
        if grants.len() >= SIGNIN_PENDING_GRANTS {
            drop(grants);
            inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let attempt = Attempt {
            tenant: key.tenant,
            grant: key.grant,
            interactive: false,
            client_id: key.client_id.clone(),
            app_display_name,
            username: key.username.clone(),
            user_id: key.user_id.clone(),
            service_principal_id: key.service_principal_id.clone(),
            resource: key.resource.clone(),
        };
        let record = attempt.record(at, client, correlation_id, error);
        grants.insert(key, PendingGrant { record, written: 0, recent: true });
        drop(grants);
        inner.fresh.notify_one();
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Records dropped because the queue or the pending grants were full, since start.
    pub fn dropped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Writes what is queued and stops the writer (at shutdown, once requests have drained).
    pub async fn close(&self) {
        let Some(inner) = &self.inner else { return };
        inner.stop.notify_one();
        let writer = lock(&inner.writer).take();
        if let Some(writer) = writer
            && tokio::time::timeout(SIGNIN_CLOSE, writer).await.is_err()
        {
            tracing::warn!("the sign-in log's last write did not finish in time");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer task: interactive records as they come (in batches); for the aggregated grants,
/// a new one at once (so a first failure shows without delay) and the attempts since the last
/// write every [`SIGNIN_FLUSH`]; everything left when [`SignInLog::close`] asks.
async fn write_sign_ins(
    inner: Arc<SignInInner>,
    mut rx: mpsc::Receiver<SignInRecord>,
    store: Arc<dyn Store>,
    clock: Arc<dyn mlgate_core::clock::Clock>,
) {
    let mut batch = Vec::with_capacity(SIGNIN_BATCH);
    let mut tick = tokio::time::interval(SIGNIN_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    let write = async |records: &mut Vec<SignInRecord>| {
        if records.is_empty() {
            return;
        }
        if let Err(e) = store.insert_sign_ins(records).await {
            tracing::error!(error = %e, records = records.len(), "could not write sign-in records");
        }
        records.clear();
    };
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, SIGNIN_BATCH) => {
                if n == 0 {
                    break;
                }
            }
            () = inner.fresh.notified() => unwritten(&inner, &mut batch, None),
            _ = tick.tick() => {
                let window = clock.now().unix_timestamp().div_euclid(AGGREGATION_WINDOW_SECS);
                unwritten(&inner, &mut batch, Some(window));
            }
            () = inner.stop.notified() => break,
        }
        write(&mut batch).await;
        let now = inner.dropped.load(Ordering::Relaxed);
        if now > reported {
            tracing::warn!(dropped = now - reported, "sign-in log full; records dropped");
            reported = now;
        }
    }
    while let Ok(r) = rx.try_recv() {
        batch.push(r);
    }
    unwritten(&inner, &mut batch, Some(i64::MAX));
    write(&mut batch).await;
}

/// Moves the attempts not yet written of every pending grant into `out` (one record each,
/// counting only those). At a tick (`current` is the minute), also forgets the grants of past
/// minutes and those not attempted since the last tick: all they counted is written now.
fn unwritten(inner: &SignInInner, out: &mut Vec<SignInRecord>, current: Option<i64>) {
    let mut grants = lock(&inner.grants);
    for p in grants.values_mut() {
        if p.record.count > p.written {
            let mut delta = p.record.clone();
            delta.count = p.record.count - p.written;
            p.written = p.record.count;
            out.push(delta);
        }
    }
    if let Some(current) = current {
        grants.retain(|k, p| k.window >= current && std::mem::take(&mut p.recent));
    }
}

/// What a sign-in record says about one attempt, before it is known how it ended.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub tenant: Option<mlgate_core::ids::TenantId>,
    pub grant: &'static str,
    pub interactive: bool,
    pub client_id: Option<String>,
    pub app_display_name: Option<String>,
    /// The user name as typed, or the signed-in user's.
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub service_principal_id: Option<String>,
    pub resource: Option<String>,
}

impl Attempt {
    /// The record of this attempt: `error` is `(AADSTS code, description)` for a failure.
    pub fn record(
        self,
        at: time::OffsetDateTime,
        client: std::net::IpAddr,
        correlation_id: Option<String>,
        error: Option<(u32, &str)>,
    ) -> SignInRecord {
        use mlgate_core::signins::clip;
        SignInRecord {
            id: Uuid::new_v4(),
            at,
            tenant_id: self.tenant,
            user_id: self.user_id,
            user_principal_name: self.username.map(|u| clip(&u, 128)),
            app_id: self.client_id.map(|c| clip(&c, 64)),
            app_display_name: self.app_display_name,
            service_principal_id: self.service_principal_id,
            client_address: client.to_string(),
            interactive: self.interactive,
            grant: self.grant.to_string(),
            resource: self.resource.map(|r| clip(&r, 256)),
            error_code: error.map_or(0, |(c, _)| c),
            failure_reason: error.map(|(_, d)| {
                // `AADSTS50126: Error validating ...` -> the words alone.
                let words = d.split_once(": ").filter(|(p, _)| p.starts_with("AADSTS"));
                clip(words.map_or(d, |(_, w)| w), 256)
            }),
            correlation_id: correlation_id.unwrap_or_else(|| Uuid::new_v4().to_string()),
            count: 1,
            last_at: at,
        }
    }
}

/// Deletes activity and sign-in records past their retention, now and then every hour.
pub async fn prune(
    store: Arc<dyn Store>,
    clock: Arc<dyn mlgate_core::clock::Clock>,
    keep: Retention,
) {
    let mut tick = tokio::time::interval(StdDuration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = clock.now();
        match store.prune_activity(now - keep.activity).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "pruned the activity log"),
            Err(e) => tracing::warn!(error = %e, "could not prune the activity log"),
        }
        match store.prune_sign_ins(now - keep.sign_ins).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "pruned the sign-in log"),
            Err(e) => tracing::warn!(error = %e, "could not prune the sign-in log"),
        }
    }
}

/// How long each log keeps its records.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub activity: Duration,
    pub sign_ins: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log without its writer task: the test plays the writer with `unwritten`.
    fn unstarted() -> SignInLog {
        queued(1).0
    }

    fn queued(capacity: usize) -> (SignInLog, mpsc::Receiver<SignInRecord>) {
        let (tx, rx) = mpsc::channel(capacity);
        let log = SignInLog { inner: Some(Arc::new(SignInInner::new(tx))) };
        (log, rx)
    }

    fn attempt(client_id: &str) -> Attempt {
        Attempt {
            grant: "client_credentials",
            client_id: Some(client_id.into()),
            service_principal_id: Some("sp".into()),
            ..Default::default()
        }
    }

    fn at(s: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    #[test]
    fn grants_are_counted_per_minute_and_written_as_deltas() {
        let log = unstarted();
        let inner = log.inner.clone().unwrap();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let summary = |out: &[SignInRecord]| {
            let mut v: Vec<_> = out
                .iter()
                .map(|r| {
                    let app = r.app_id.clone().unwrap();
                    (app, r.error_code, r.count, r.at.unix_timestamp(), r.last_at.unix_timestamp())
                })
                .collect();
            v.sort();
            v
        };
        for s in [120, 121, 125] {
            log.record_grant(attempt("a"), at(s), ip, None, None);
        }
        log.record_grant(attempt("a"), at(126), ip, None, Some((7000215, "AADSTS7000215: no")));
        log.record_grant(attempt("b"), at(126), ip, None, None);
        let mut out = Vec::new();
        unwritten(&inner, &mut out, None);
        assert_eq!(
            summary(&out),
            vec![
                ("a".into(), 0, 3, 120, 125),
                ("a".into(), 7000215, 1, 126, 126),
                ("b".into(), 0, 1, 126, 126)
            ]
        );
        let failure = out.iter().find(|r| r.error_code != 0).unwrap();
        assert_eq!(failure.failure_reason.as_deref(), Some("no"));
        // Only what came since: two more of "a", none of the others.
        log.record_grant(attempt("a"), at(130), ip, None, None);
        log.record_grant(attempt("a"), at(131), ip, None, None);
        out.clear();
        unwritten(&inner, &mut out, Some(2));
        assert_eq!(summary(&out), vec![("a".into(), 0, 2, 120, 131)]);
        // Every grant was attempted since the last tick: all stay for now. At the next tick
        // the idle ones go, and the next minute's attempt is a record of its own.
        assert_eq!(lock(&inner.grants).len(), 3);
        log.record_grant(attempt("a"), at(131), ip, None, None);
        out.clear();
        unwritten(&inner, &mut out, Some(2));
        assert_eq!(lock(&inner.grants).len(), 1, "only 'a' was attempted since");
        log.record_grant(attempt("a"), at(180), ip, None, None);
        out.clear();
        unwritten(&inner, &mut out, Some(3));
        assert_eq!(summary(&out), vec![("a".into(), 0, 1, 180, 180)]);
        assert_eq!(lock(&inner.grants).len(), 1, "minute 2's record is forgotten");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn pending_grants_are_bounded() {
        let log = unstarted();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        for i in 0..SIGNIN_PENDING_GRANTS + 10 {
            log.record_grant(attempt(&format!("app-{i}")), at(60), ip, None, None);
        }
        // A known grant is still counted when full; an unknown one is dropped and counted.
        log.record_grant(attempt("app-0"), at(61), ip, None, None);
        let inner = log.inner.clone().unwrap();
        assert_eq!(lock(&inner.grants).len(), SIGNIN_PENDING_GRANTS);
        assert_eq!(log.dropped(), 10);
    }

    fn op(m: Method, p: &str) -> Option<(String, String)> {
        operation(&m, p).map(|o| (o.name, o.scope))
    }

    #[test]
    fn operations_are_named_as_azure_names_them() {
        let ws = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w";
        assert_eq!(
            op(Method::PUT, ws),
            Some(("Microsoft.MachineLearningServices/workspaces/write".into(), ws.into()))
        );
        assert_eq!(
            op(Method::POST, &format!("{ws}/services/svc/regenerateKeys")),
            Some((
                "Microsoft.MachineLearningServices/workspaces/services/regenerateKeys/action"
                    .into(),
                format!("{ws}/services/svc")
            ))
        );
        assert_eq!(
            op(Method::POST, &format!("{ws}/onlineEndpoints/e/listkeys")).unwrap().0,
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action"
        );
        assert_eq!(
            op(Method::DELETE, &format!("{ws}/models/m/versions/1")).unwrap().0,
            "Microsoft.MachineLearningServices/workspaces/models/versions/delete"
        );
        assert_eq!(
            op(Method::PUT, "/subscriptions/s/resourceGroups/rg"),
            Some((
                "Microsoft.Resources/subscriptions/resourceGroups/write".into(),
                "/subscriptions/s/resourceGroups/rg".into()
            ))
        );
        assert_eq!(
            op(Method::PUT, "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a")
                .unwrap()
                .0,
            "Microsoft.Authorization/roleAssignments/write"
        );
        assert_eq!(
            op(
                Method::POST,
                "/modelmanagement/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/services"
            )
            .unwrap(),
            (
                "Microsoft.MachineLearningServices/workspaces/services/write".into(),
                format!("{ws}/services")
            )
        );
        assert_eq!(
            op(Method::POST, "/v1.0/servicePrincipals").unwrap().0,
            "microsoft.directory/servicePrincipals/create"
        );
        assert_eq!(
            op(Method::POST, "/v1.0/applications/x/addPassword").unwrap().0,
            "microsoft.directory/applications/credentials/update"
        );
        assert_eq!(
            op(Method::PATCH, "/api/v1/users/u").unwrap().0,
            "microsoft.directory/users/update"
        );
        assert_eq!(op(Method::POST, "/v1.0/directoryObjects/getByIds"), None);
        assert_eq!(op(Method::GET, ws), None);
        assert_eq!(op(Method::POST, "/t/oauth2/v2.0/token"), None);
        assert_eq!(op(Method::POST, "/api/v1/service/x/score"), None);
        assert_eq!(op(Method::POST, "/api/v1/authorization/check"), None);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let (log, mut rx) = queued(4);
        let attempt = || Attempt { grant: "password", ..Default::default() };
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            log.record(attempt().record(at, ip, None, Some((50126, "AADSTS50126: Wrong."))));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "never waits");
        assert_eq!(log.dropped(), 996, "the queue holds 4, the rest are counted");
        let first = rx.recv().await.unwrap();
        assert_eq!(first.error_code, 50126);
        assert_eq!(first.failure_reason.as_deref(), Some("Wrong."));
        assert!(SignInLog::off().dropped() == 0 && !SignInLog::off().enabled());
    }

    #[test]
    fn correlation_ids_are_taken_when_plausible() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-client-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(correlation_id(&h), "abc-123");
        h.insert("x-ms-correlation-request-id", HeaderValue::from_static("bad value!"));
        assert_eq!(correlation_id(&h), "abc-123");
        let fresh = correlation_id(&HeaderMap::new());
        assert!(Uuid::parse_str(&fresh).is_ok());
    }
}
