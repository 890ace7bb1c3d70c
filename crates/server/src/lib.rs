//! # mlgate-server: the HTTP front end
//!
//! - [`Server::new`] opens the store, bootstraps it on first start, loads keys, prepares TLS.
//! - [`Server::run`] serves until the shutdown future resolves, then drains connections.
//! - [`net`]: the accept loop, TLS, HTTP/1.1 and HTTP/2, deadlines and the connection cap.
//! - [`routes`]: one module per flow (OAuth, discovery, directory, RBAC, resources, models,
//!   services, scoring) and per Microsoft client's face (`metadata`, `graph`,
//!   `authorization`, `inventory`, `mms`, `online`, `assets`, `blobstore`).
//! - [`web`]: the sign-in pages (device login, authorize), their cookies and CSRF.
//! - [`auth`]: the bearer-token extractor; [`error`]: the one error-to-response map;
//!   [`client_addr`]: the client's address behind trusted proxies; [`drain`]: refused bodies
//!   drained so the refusal reaches the client.
//! - [`deployments`]: starting and swapping services below the routes; [`follower`]: other
//!   nodes' changes; [`tls`]: certificates and the local CA; [`state`]: what handlers share.
//!
//! The listener, the clock and the shutdown signal are passed in, so tests run several servers
//! in one process on ephemeral ports.

pub mod audit;
pub mod auth;
pub mod client_addr;
pub mod deployments;
pub mod drain;
pub mod error;
pub mod follower;
pub mod metrics;
pub mod net;
pub mod routes;
pub mod state;
pub mod tls;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use axum::Router;
use mlgate_core::access::Access;
use mlgate_core::authority::{Authority, AuthorityConfig, BUILTIN_RESOURCES};
use mlgate_core::clock::Clock;
use mlgate_core::directory::{BootstrapReport, Directory, bootstrap};
use mlgate_core::keys::MasterKey;
use mlgate_core::resources::Resources;
use mlgate_core::store::Store;
use mlgate_store::SqlStore;
use time::Duration;

use crate::state::AppState;

#[derive(Debug, Clone)]
pub enum TlsMode {
    /// A local CA and server certificate in `{data_dir}/tls`, created on first start.
    LocalCa,
    /// The operator's own PEM certificate chain and key.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP, for running behind a TLS-terminating proxy.
    Disabled,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// The store (`--store`, `MLGATE_STORE`): `postgres://...` for several nodes on one
    /// database, `sqlite://PATH` or a path; `None` is SQLite in `{data_dir}/mlgate.db`.
    pub store: Option<String>,
    pub tls: TlsMode,
    /// The URL clients reach this server at; derived from the listener when `None`.
    pub public_url: Option<String>,
    /// The bootstrap tenant's domain.
    pub domain: String,
    pub bootstrap_password: Option<String>,
    /// Base64 master key; `None` reads or creates `{data_dir}/master.key`.
    pub master_key: Option<String>,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// How long another node's change to a client (disable, new secret) may take to be seen.
    pub client_cache_ttl: Duration,
    /// How often signing keys are re-read (a rotation by `mlgate keys rotate` or another node).
    pub key_reload_interval: StdDuration,
    /// How often the change log of the store is read (other nodes' changes take effect
    /// within this, plus the time to reload).
    pub change_poll_interval: StdDuration,
    /// How often everything other nodes may change is reloaded whole, for changes missed.
    pub reconcile_interval: StdDuration,
    /// Resources (audiences) accepted beyond the built-in ones.
    pub extra_resources: Vec<String>,
    /// The Python interpreter (or virtualenv's) that runs `score.py` entry scripts.
    pub python: PathBuf,
    /// The `mlgate` binary whose `sandbox-exec` confines entry scripts; `None`: entry scripts
    /// cannot run unless `allow_unconfined_entry_scripts`.
    pub sandbox_launcher: Option<PathBuf>,
    /// Run entry scripts unconfined where confinement is unavailable (an explicit opt-out).
    pub allow_unconfined_entry_scripts: bool,
    /// Folders pip may install local wheels from.
    pub wheelhouses: Vec<PathBuf>,
    /// Lifetime of web-service tokens (`ml service get-token`).
    pub service_token_lifetime: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`); none by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connection cap and timeouts (`--max-connections`, `--idle-timeout`, ...).
    pub limits: net::ConnectionLimits,
    /// The bearer credential that opens `/metrics` on the main listener
    /// (`--metrics-token-file`); without it the main listener has no `/metrics`.
    pub metrics_token: Option<metrics::MetricsToken>,
    /// A separate plain-HTTP listener serving only `/metrics` (`--metrics-listen`); it
    /// requires `metrics_token` too when one is set.
    pub metrics_listen: Option<SocketAddr>,
    /// Benchmarks set this to measure what authorization costs; the binary never does.
    #[doc(hidden)]
    pub bench_disable_authorization: bool,
    /// Benchmarks set this (`MLGATE_BENCH_DISABLE_METRICS=1`) to measure what recording
    /// metrics costs.
    #[doc(hidden)]
    pub bench_disable_metrics: bool,
    /// How long the activity and sign-in logs keep records (`--activity-retention-days`,
    /// `--signin-retention-days`).
    pub log_retention: audit::Retention,
    /// Record sign-ins (`--signin-log on|off`; off only to measure what the log costs).
    pub signin_log: bool,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store: None,
            tls: TlsMode::LocalCa,
            public_url: None,
            domain: "mlgate.local".into(),
            bootstrap_password: None,
            master_key: None,
            access_token_lifetime: Duration::hours(1),
            refresh_token_lifetime: Duration::days(90),
            client_cache_ttl: Duration::seconds(5),
            key_reload_interval: StdDuration::from_secs(30),
            change_poll_interval: StdDuration::from_millis(250),
            reconcile_interval: StdDuration::from_secs(30),
            extra_resources: Vec::new(),
            bench_disable_authorization: false,
            bench_disable_metrics: false,
            python: PathBuf::from("python3"),
            sandbox_launcher: None,
            allow_unconfined_entry_scripts: false,
            wheelhouses: Vec::new(),
            service_token_lifetime: Duration::hours(1),
            limits: net::ConnectionLimits::default(),
            trusted_proxies: Vec::new(),
            metrics_token: None,
            metrics_listen: None,
            log_retention: audit::Retention {
                activity: Duration::days(90),
                sign_ins: Duration::days(30),
            },
            signin_log: true,
        }
    }
}

/// What the first start did, for the operator to read once.
#[derive(Debug)]
pub struct Startup {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub bootstrap: BootstrapReport,
}

pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("mlgate.db")
}

/// Reads the master key from `explicit`, or from `{data_dir}/master.key`, creating it (mode
/// 0600) when the store holds no sealed key yet.
pub fn load_master_key(
    data_dir: &Path,
    explicit: Option<&str>,
    store_has_keys: bool,
) -> Result<MasterKey> {
    if let Some(k) = explicit {
        return MasterKey::from_encoded(k).context("MLGATE_MASTER_KEY");
    }
    let path = data_dir.join("master.key");
    if !path.exists() {
        if store_has_keys {
            bail!(
                "{} is missing but the store holds sealed keys: without it the signing keys cannot be \
                 opened (restore it, or set MLGATE_MASTER_KEY)",
                path.display()
            );
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, MasterKey::generate_encoded().as_bytes())?;
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    MasterKey::from_encoded(&text).with_context(|| format!("{}", path.display()))
}

/// Opens the store of an existing data directory (every command but `serve`): a missing
/// folder or database is an error rather than a new, empty store.
pub async fn open_existing_store(data_dir: &Path) -> Result<SqlStore> {
    if !data_dir.is_dir() {
        bail!(
            "the data directory {} does not exist (check --data-dir or MLGATE_DATA_DIR; only \
             `mlgate serve` creates one)",
            data_dir.display()
        );
    }
    let db = database_path(data_dir);
    if !db.is_file() {
        bail!("{} holds no mlgate store ({} is missing)", data_dir.display(), db.display());
    }
    SqlStore::open_sqlite(&db).await.map_err(|e| anyhow::anyhow!("opening the store: {e}"))
}

/// Opens the store, creating the data directory (mode 0700) if needed: `serve` only.
pub async fn open_store(data_dir: &Path) -> Result<SqlStore> {
    open_store_at(data_dir, None).await
}

/// Opens the store `url` names (see [`mlgate_store::StoreUrl`]), or SQLite in the data
/// directory, creating the data directory (mode 0700), which keeps the master key and TLS
/// files whatever the store.
pub async fn open_store_at(data_dir: &Path, url: Option<&str>) -> Result<SqlStore> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let location = match url {
        Some(u) => mlgate_store::StoreUrl::parse(u).map_err(|e| anyhow::anyhow!("--store: {e}"))?,
        None => mlgate_store::StoreUrl::Sqlite(database_path(data_dir)),
    };
    let store = SqlStore::open(&location)
        .await
        .map_err(|e| anyhow::anyhow!("opening the store {location}: {e}"))?;
    tracing::info!(store = %location, "store open");
    Ok(store)
}

pub struct Server {
    listener: std::net::TcpListener,
    app: routes::App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: net::Connections,
    /// `--metrics-listen`: its listener and router.
    metrics_listener: Option<(std::net::TcpListener, Router)>,
    cert_reloader: Option<Arc<tls::CertReloader>>,
    state: AppState,
    key_reload_interval: StdDuration,
    follow: (StdDuration, StdDuration),
    /// The logs' retention, and the clock that ages their records.
    retention: (audit::Retention, Arc<dyn Clock>),
    pub startup: Startup,
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    if host_port.starts_with('[') {
        return host_port.split(']').next().map(|h| h.trim_start_matches('['));
    }
    host_port.split(':').next()
}

impl Server {
    pub async fn new(
        listener: std::net::TcpListener,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let store = Arc::new(open_store_at(&config.data_dir, config.store.as_deref()).await?);
        Self::with_store(listener, config, clock, store).await
    }

    /// Like [`Server::new`] over a store the caller opened (tests keep a handle to it).
    pub async fn with_store(
        listener: std::net::TcpListener,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Result<Self> {
        // rustls needs one process-wide crypto provider; a second install is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let addr: SocketAddr = listener.local_addr()?;
        let scheme = if matches!(config.tls, TlsMode::Disabled) { "http" } else { "https" };
        let url = match &config.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if addr.ip().is_unspecified() => format!("{scheme}://127.0.0.1:{}", addr.port()),
            None => format!("{scheme}://{addr}"),
        };

        let has_keys = !store
            .signing_keys()
            .await
            .map_err(|e| anyhow::anyhow!("reading the store: {e}"))?
            .is_empty();
        let master = load_master_key(&config.data_dir, config.master_key.as_deref(), has_keys)?;
        follower::check_master_key(store.as_ref(), &master, config.master_key.is_some()).await?;
        let report = bootstrap(
            store.as_ref(),
            &master,
            clock.as_ref(),
            &config.domain,
            config.bootstrap_password.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?;

        let (tls, ca_file) = match &config.tls {
            TlsMode::Disabled => (None, None),
            TlsMode::Files { cert, key } => {
                (Some(tls::server_config(cert, key).context("loading TLS files")?), None)
            }
            TlsMode::LocalCa => {
                let files = tls::ensure_local_ca(&config.data_dir.join("tls"), host_of(&url))?;
                let cfg = tls::server_config(&files.cert, &files.key)
                    .context("loading the local certificate")?;
                (Some(cfg), Some(files.ca))
            }
        };
        let (tls, cert_reloader) = match tls {
            Some((cfg, reloader)) => (Some(cfg), Some(reloader)),
            None => (None, None),
        };

        let directory =
            Arc::new(Directory::new(store.clone(), clock.clone(), config.client_cache_ttl).await?);
        // The web console is a first-party client of every tenant (stores from before it too).
        mlgate_core::first_party::ensure_console_everywhere(&directory).await?;
        let mut resources: Vec<String> = BUILTIN_RESOURCES.iter().map(|s| s.to_string()).collect();
        resources.push(format!("{url}/"));
        resources.extend(config.extra_resources.iter().cloned());
        let authority = Authority::new(
            directory.clone(),
            clock.clone(),
            master,
            AuthorityConfig {
                public_url: url.clone(),
                access_token_lifetime: config.access_token_lifetime,
                refresh_token_lifetime: config.refresh_token_lifetime,
                resources,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("loading signing keys: {e}"))?;

        let mut access = Access::load(directory.clone(), clock.clone()).await?;
        if config.bench_disable_authorization {
            access = access.without_enforcement();
        }
        let access = Arc::new(access);
        access.ensure_bootstrap_owners().await?;
        let blobs = Arc::new(mlgate_store::FileBlobStore::new(config.data_dir.join("blobs")));
        let models = Arc::new(mlgate_core::model_registry::Models::new(
            directory.clone(),
            access.clone(),
            blobs.clone(),
            clock.clone(),
        ));
        let authority = Arc::new(authority);
        let services = Arc::new(mlgate_core::services::Services::new(
            directory.clone(),
            access.clone(),
            authority.clone(),
            clock.clone(),
            config.service_token_lifetime,
        )?);
        let code = Arc::new(mlgate_core::code::CodeAssets::new(
            directory.clone(),
            access.clone(),
            authority.clone(),
            blobs,
            clock.clone(),
        ));
        let endpoints = Arc::new(mlgate_core::endpoints::OnlineEndpoints::new(
            directory.clone(),
            access.clone(),
            services.clone(),
            code.clone(),
            clock.clone(),
        ));
        let applications = Arc::new(mlgate_core::applications::Applications::new(
            directory.clone(),
            clock.clone(),
        ));
        let monitor = Arc::new(mlgate_core::monitor::Monitor::new(
            directory.clone(),
            access.clone(),
            clock.clone(),
        ));
        let signins = if config.signin_log {
            audit::SignInLog::start(store.clone(), clock.clone(), audit::SIGNIN_QUEUE)
        } else {
            tracing::warn!("the sign-in log is off (--signin-log off)");
            audit::SignInLog::off()
        };
        let resources = Arc::new(Resources::new(directory, access.clone(), clock.clone()));
        let sandbox = mlgate_serving::sandbox::Sandbox::probe(
            config.sandbox_launcher.as_deref(),
            config.allow_unconfined_entry_scripts,
        )
        .await;
        match &sandbox {
            mlgate_serving::sandbox::Sandbox::Confined { .. } => {
                tracing::info!("entry scripts run confined (Landlock, no capabilities)")
            }
            mlgate_serving::sandbox::Sandbox::Unconfined => tracing::warn!(
                "entry scripts run UNCONFINED (--allow-unconfined-entry-scripts): a deployed \
                 score.py can read this server's keys"
            ),
            mlgate_serving::sandbox::Sandbox::Unavailable { reason } => {
                tracing::warn!(%reason, "entry-script services cannot run")
            }
        }
        let serving = Arc::new(mlgate_serving::ServingHost::new());
        let connections = net::Connections::new(config.limits);
        let mut metrics = metrics::Metrics::new(serving.clone(), connections.clone());
        if config.bench_disable_metrics {
            metrics = metrics.without_recording();
        }
        let metrics = Arc::new(metrics);
        let mut protected = Vec::new();
        if let TlsMode::Files { cert, key } = &config.tls {
            protected.push(cert.clone());
            protected.push(key.clone());
        }
        let deployer = Arc::new(
            deployments::Deployer::new(
                services.clone(),
                models.clone(),
                serving.clone(),
                Arc::new(sandbox),
                deployments::DeployerConfig {
                    data_dir: config.data_dir.clone(),
                    python: config.python.clone(),
                    protected,
                    wheelhouses: config.wheelhouses.clone(),
                },
            )
            .context("creating the folder entry scripts run in")?,
        );
        let state = AppState::new(state::Shared {
            authority,
            access,
            resources,
            models,
            services,
            serving,
            deployer,
            applications,
            operations: Arc::new(routes::mms::Operations::default()),
            endpoints,
            code,
            arm_operations: Arc::new(routes::online::ArmOperations::default()),
            store,
            public_url: url.clone().into(),
            secure_cookies: url.starts_with("https://"),
            trusted_proxies: config.trusted_proxies.clone().into(),
            monitor,
            signins,
            console: Arc::default(),
            metrics: metrics.clone(),
        });
        let mut app = routes::router(state.clone());
        let exposition =
            metrics::Exposition { metrics: metrics.clone(), token: config.metrics_token.clone() };
        if config.metrics_token.is_some() {
            // Outside the access log and the request metrics: a scrape is not traffic.
            app = app.route(
                "/metrics",
                axum::routing::get(metrics::scrape).with_state(exposition.clone()),
            );
        }
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
                l.set_nonblocking(true)?;
                Some((l, metrics::router(exposition)))
            }
            None => None,
        };
        let app = routes::normalized(app);
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            app,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            connections,
            metrics_listener,
            cert_reloader,
            state,
            key_reload_interval: config.key_reload_interval,
            follow: (config.change_poll_interval, config.reconcile_interval),
            retention: (config.log_retention, clock),
            startup: Startup { url, ca_file, bootstrap: report },
        })
    }

    pub fn url(&self) -> &str {
        &self.startup.url
    }

    /// Reloads the TLS certificate files (what `SIGHUP` does); `None` on plain HTTP.
    pub fn cert_reloader(&self) -> Option<Arc<tls::CertReloader>> {
        self.cert_reloader.clone()
    }

    /// `http://addr` of the `--metrics-listen` listener, when there is one.
    pub fn metrics_url(&self) -> Option<String> {
        let (l, _) = self.metrics_listener.as_ref()?;
        l.local_addr().ok().map(|a| format!("http://{a}"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The connections this server holds, and its cap.
    pub fn connections(&self) -> net::Connections {
        self.connections.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains open requests for up
    /// to ten seconds.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down");
        };
        // Services deployed before a restart start again.
        self.state.deployer.restore();
        let authority = self.state.authority.clone();
        let every = self.key_reload_interval;
        let reloader = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = authority.reload_keys().await {
                    tracing::warn!(error = %e, "could not reload signing keys; keeping the current ones");
                }
            }
        });
        // Other nodes' changes to what this one holds in memory.
        let (poll, reconcile) = self.follow;
        let follower =
            tokio::spawn(follower::Follower::new(self.state.clone(), poll, reconcile).run());
        // The metrics listener: plain HTTP, its own small connection cap, same deadlines.
        let (metrics_stop, metrics_stopped) = tokio::sync::watch::channel(false);
        let metrics_task = match self.metrics_listener {
            Some((l, router)) => {
                let l = tokio::net::TcpListener::from_std(l)?;
                let limits = net::ConnectionLimits {
                    max_connections: METRICS_MAX_CONNECTIONS,
                    ..self.connections.limits()
                };
                let mut stopped = metrics_stopped;
                let until = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                Some(tokio::spawn(net::Connections::new(limits).serve(l, None, router, until)))
            }
            None => None,
        };
        let (keep, clock) = self.retention;
        let pruner = tokio::spawn(audit::prune(self.state.store.clone(), clock, keep));
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let served = self.connections.serve(listener, self.tls, self.app, shutdown).await;
        let _ = metrics_stop.send(true);
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        reloader.abort();
        follower.abort();
        pruner.abort();
        // Requests have drained: what they logged is written before the process ends.
        self.state.signins.close().await;
        served.context("serving")
    }
}

/// Connections at most on the `--metrics-listen` address (scrapers are few).
const METRICS_MAX_CONNECTIONS: usize = 32;
