//! The accept loop and the bounds on connections: what an unauthenticated client can hold open.
//!
//! Each accepted socket gets a task that runs the TLS handshake (rustls, ALPN `h2` and
//! `http/1.1`) under a deadline and then serves HTTP/1.1 or HTTP/2 (hyper's auto builder) with a
//! header-read deadline and an idle deadline. The number of connections is capped below the
//! process's descriptor limit; at the cap a new connection closes the connection that has been
//! idle longest (no request in flight), so a flood of silent sockets costs its sender the
//! sockets and never the service. Only when every connection is busy is a new one refused.
//!
//! Shutdown stops accepting, asks every connection to finish (HTTP/1.1: close after the
//! current response; HTTP/2: GOAWAY) and waits up to [`DRAIN`] before dropping the rest.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long open requests may take to finish once shutdown starts.
pub const DRAIN: Duration = Duration::from_secs(10);

/// How long an evicted or idle-timed-out connection may take to close after being asked.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The bounds on what clients can hold open; `serve` flags set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most (lowered further to fit the descriptor limit).
    pub max_connections: usize,
    /// From accept to a finished TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// From the first byte of a request's head to its last (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (keep-alive, or a client
    /// that connected and never asked anything).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns `(soft, hard)` afterwards.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    // An unlimited hard limit still stops at the kernel's `fs.nr_open`.
    let hard = now.maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    let soft = now.current.unwrap_or(hard);
    if soft < hard {
        setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: now.maximum })?;
        return Ok((hard, hard));
    }
    Ok((soft, hard))
}

/// The connection cap that leaves headroom under a descriptor limit of `fds` for everything
/// else the process opens (the database and its WAL, blobs being written, entry-script
/// workers' pipes, the listener): a tenth of the limit, at least 256.
pub fn connection_cap(configured: usize, fds: u64) -> usize {
    let fds = usize::try_from(fds).unwrap_or(usize::MAX);
    let headroom = (fds / 10).max(256);
    let fits = if fds > 2 * headroom { fds - headroom } else { fds / 2 };
    configured.min(fits).max(1)
}

/// One open connection, as the accept loop sees it. Everything a request touches is here, in
/// the connection's own memory: nothing shared by all connections is written (or reference
/// counted) per request, so the cores serving two connections never contend for a cache line.
struct Slot {
    id: u64,
    /// The registry's epoch, for `idle_since`.
    epoch: Instant,
    /// Requests in flight (a response counts until its body is sent).
    busy: AtomicUsize,
    /// Milliseconds since the registry's epoch at which the last request finished.
    idle_since: AtomicU64,
    /// Asked to close: evicted to make room for a new connection, or (with `stopping`) the
    /// server is shutting down. One `Notify` per connection rather than a channel all
    /// connections watch: a connection's task polls it on every wake-up.
    close: Notify,
    stopping: AtomicBool,
}

impl Slot {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    cap: usize,
    last_warning: AtomicU64,
}

impl Registry {
    fn new(cap: usize) -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            cap,
            last_warning: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection. At the cap, the connection idle longest is asked to close
    /// to make room; with every connection busy, `None` (the new one is refused).
    fn admit(&self) -> Option<Arc<Slot>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.cap {
            let victim = open
                .values()
                .filter(|s| s.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|s| s.idle_since.load(Ordering::Relaxed))
                .map(|s| s.id);
            let now = self.now_ms();
            if now.saturating_sub(self.last_warning.load(Ordering::Relaxed)) > 60_000 {
                self.last_warning.store(now, Ordering::Relaxed);
                tracing::warn!(
                    cap = self.cap,
                    "connection cap reached: closing the longest-idle connections to admit new ones"
                );
            }
            match victim.and_then(|id| open.remove(&id)) {
                Some(v) => v.close.notify_one(),
                None => return None,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        open.insert(id, slot.clone());
        Some(slot)
    }

    /// Asks every open connection to finish (shutdown). `notify_one` keeps the permit for a
    /// connection whose task is not waiting yet.
    fn stop_all(&self) {
        for slot in self.open.lock().unwrap_or_else(|p| p.into_inner()).values() {
            slot.stopping.store(true, Ordering::Release);
            slot.close.notify_one();
        }
    }

    fn release(&self, id: u64) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Frees the slot when the connection's task ends, however it ends.
struct Admitted {
    registry: Arc<Registry>,
    slot: Arc<Slot>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.release(self.slot.id);
    }
}

/// Marks a request in flight until its response body is done.
struct InFlight {
    slot: Arc<Slot>,
}

impl InFlight {
    fn new(slot: &Arc<Slot>) -> Self {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Self { slot: slot.clone() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.idle_since.store(self.slot.now_ms(), Ordering::Relaxed);
        self.slot.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections of one server: the cap and who holds a slot. Made at start-up (raising the
/// descriptor limit then), read by tests and benchmarks.
#[derive(Clone)]
pub struct Connections {
    registry: Arc<Registry>,
    limits: ConnectionLimits,
}

impl Connections {
    /// Raises the soft descriptor limit to the hard one and fits the cap under it.
    pub fn new(limits: ConnectionLimits) -> Self {
        let fds = match raise_fd_limit() {
            Ok((soft, _)) => soft,
            Err(e) => {
                tracing::warn!(error = %e, "could not raise the descriptor limit");
                rustix::process::getrlimit(rustix::process::Resource::Nofile)
                    .current
                    .unwrap_or(1024)
            }
        };
        let cap = connection_cap(limits.max_connections, fds);
        tracing::info!(max_connections = cap, descriptor_limit = fds, "connection limits");
        Self { registry: Arc::new(Registry::new(cap)), limits }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.registry.len()
    }

    /// The cap in force.
    pub fn cap(&self) -> usize {
        self.registry.cap
    }

    /// The limits it was made with.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Serves `app` on `listener` until `shutdown` resolves, then drains for up to [`DRAIN`].
    pub async fn serve<S>(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<TlsAcceptor>,
        app: S,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()>
    where
        S: App,
    {
        let Self { registry, limits } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(CheckedDeadlines)
            .header_read_timeout(limits.header_read_timeout)
            .http2()
            .timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors (or a connection reset before accept): back
                            // off briefly instead of spinning; the cap makes this rare.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let Some(slot) = registry.admit() else {
                        drop(tcp);
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let conn = Connection {
                        admitted: Admitted { registry: registry.clone(), slot },
                        peer,
                        app: app.clone(),
                        builder: builder.clone(),
                        limits,
                        hsts: false,
                    };
                    let tls = tls.clone();
                    tasks.spawn(async move {
                        match tls {
                            Some(acceptor) => conn.serve_tls(tcp, acceptor).await,
                            None => conn.serve_http(tcp).await,
                        }
                    });
                }
            }
        }
        drop(listener);
        registry.stop_all();
        let drained =
            tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "drain deadline passed; closing the remaining connections"
            );
            tasks.shutdown().await;
        }
        Ok(())
    }
}

/// hyper's HTTP/1.1 header-read deadline, checked rather than scheduled. hyper arms it before
/// every request head and drops it once the head is in; with tokio's timer, every request on a
/// kept-alive connection allocated a sleep and inserted and removed a timer-wheel entry, the
/// largest per-request cost the token endpoint had that the bare limit has not (BENCHMARKS.md,
/// issue 15). This sleep is only an instant: polling it reads the clock. It never wakes the
/// task itself: the connection's check timer (`serve_http`) does, at least every half deadline,
/// so a head that does not come is cut off between 1 and 1.5 deadlines after hyper armed it.
#[derive(Clone, Copy, Debug)]
struct CheckedDeadlines;

impl hyper::rt::Timer for CheckedDeadlines {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline(deadline))
    }
}

struct Deadline(Instant);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.0 { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl hyper::rt::Sleep for Deadline {}

/// How often a connection's check timer fires at least: often enough to enforce the
/// header-read deadline within half of it (see [`CheckedDeadlines`]).
fn check_every(limits: &ConnectionLimits) -> Duration {
    (limits.header_read_timeout / 2).max(Duration::from_millis(100))
}

/// What a server serves: the router, possibly wrapped (`lib.rs` rewrites ARM paths before
/// routing); generic rather than boxed, so a request costs no extra allocation here.
pub trait App:
    tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

struct Connection<S> {
    admitted: Admitted,
    peer: SocketAddr,
    app: S,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    /// Served over TLS: every answer carries HSTS (a browser that reached the server over
    /// TLS once never falls back to plain HTTP for it, RFC 6797). Plain-HTTP servers, behind
    /// a proxy, leave it to the proxy.
    hsts: bool,
}

impl<S: App> Connection<S> {
    async fn serve_tls(mut self, tcp: TcpStream, acceptor: TlsAcceptor) {
        let slot = self.admitted.slot.clone();
        let handshake =
            tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp));
        let stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                // A failed or timed-out handshake just closes the socket.
                _ => return,
            },
            () = slot.close.notified() => return,
        };
        self.hsts = true;
        self.serve_http(stream).await;
    }

    async fn serve_http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let slot = self.admitted.slot.clone();
        let peer = self.peer;
        let app = self.app.clone();
        let svc_slot = slot.clone();
        let hsts = self.hsts;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = InFlight::new(&svc_slot);
            let app = app.clone();
            async move {
                let mut resp = match app.oneshot(req.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                if hsts {
                    resp.headers_mut().insert(
                        axum::http::header::STRICT_TRANSPORT_SECURITY,
                        axum::http::HeaderValue::from_static("max-age=31536000"),
                    );
                }
                // The request stays in flight until hyper drops the body it has sent.
                Ok::<_, Infallible>(resp.map(|b| {
                    Body::new(b.map_frame(move |f| {
                        let _held = &in_flight;
                        f
                    }))
                }))
            }
        });
        let builder = self.builder.clone();
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let idle = self.limits.idle_timeout;
        let tick = check_every(&self.limits);
        let check = tokio::time::sleep(idle.min(tick));
        tokio::pin!(check);
        // Made once and kept registered: made anew in the loop, it would take the Notify's
        // lock twice on every wake-up of the connection.
        let closed = slot.close.notified();
        tokio::pin!(closed);
        let close_grace = loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = &mut check => {
                    let idle_ms = slot.now_ms()
                        .saturating_sub(slot.idle_since.load(Ordering::Relaxed));
                    let idle_for = Duration::from_millis(idle_ms);
                    if slot.busy.load(Ordering::Acquire) == 0 && idle_for >= idle {
                        break CLOSE_GRACE;
                    }
                    let next = if slot.busy.load(Ordering::Acquire) == 0 { idle - idle_for } else { idle };
                    // Waking the connection also lets hyper see a passed header deadline.
                    check.as_mut().reset(tokio::time::Instant::now() + next.min(tick));
                }
                () = closed.as_mut() => {
                    break if slot.stopping.load(Ordering::Acquire) { DRAIN } else { CLOSE_GRACE };
                }
            }
        };
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(close_grace, conn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_headroom_under_the_descriptor_limit() {
        assert_eq!(connection_cap(4096, 1024), 768);
        assert_eq!(connection_cap(4096, 20_000), 4096);
        assert_eq!(connection_cap(100_000, 20_000), 18_000);
        assert_eq!(connection_cap(4096, 300), 150);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let r = Registry::new(2);
        let a = r.admit().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = r.admit().unwrap();
        // `a` is idle longest: it is asked to close, and `c` is admitted.
        let c = r.admit().unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), a.close.notified()).await.is_ok());
        assert_eq!(r.len(), 2);
        // With every connection busy, a new one is refused.
        b.busy.fetch_add(1, Ordering::AcqRel);
        c.busy.fetch_add(1, Ordering::AcqRel);
        assert!(r.admit().is_none());
    }
}
