//! A test server: in-process, real TLS from its own local CA, a real SQLite file, and a
//! manual clock the test can move.

use std::path::PathBuf;
use std::sync::Arc;

use mlgate_client::Client;
use mlgate_core::clock::ManualClock;
use mlgate_core::keys::KeySet;
use mlgate_core::store::KeyStore;
use mlgate_proto::{CreateServicePrincipal, ServicePrincipalSecret};
use mlgate_server::{Server, ServerConfig};
use mlgate_store::SqlStore;
use serde_json::Value;
use tokio::sync::oneshot;

pub const ADMIN: &str = "admin@mlgate.local";
pub const ADMIN_PASSWORD: &str = "Bootstrap-Pa55word-for-tests";
pub const ARM: &str = "https://management.azure.com/";
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("mlgate-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// With `MLGATE_IT_STORE=postgres` (and `MLGATE_TEST_POSTGRES_URL` naming a cluster), every
/// test server keeps its store in a fresh PostgreSQL database of its own (remembered in the
/// test's folder, so that a restart finds it again); otherwise SQLite in the data directory.
pub async fn postgres_store() -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let base = mlgate_store::testing::postgres_url()
        .expect("MLGATE_IT_STORE=postgres needs MLGATE_TEST_POSTGRES_URL");
    Some(mlgate_store::testing::fresh_postgres_database(&base).await.unwrap())
}

/// For tests about the SQLite file itself (what is in it at rest, its migrations, what a
/// confined script can open in the data directory): SQLite in the data directory whatever
/// the run's backend.
pub fn sqlite_in_data_dir(c: &mut ServerConfig) {
    c.store = Some(c.data_dir.join("mlgate.db").display().to_string());
}

/// Whether this run keeps test servers' stores in PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("MLGATE_IT_STORE").is_ok_and(|v| v == "postgres")
}

pub struct TestServer {
    pub url: String,
    pub ca_pem: Vec<u8>,
    pub ca_file: PathBuf,
    pub clock: Arc<ManualClock>,
    pub store: Arc<SqlStore>,
    /// The store's URL when it is not the data directory's SQLite file.
    pub store_url: Option<String>,
    pub tenant_id: String,
    pub server_state: mlgate_server::state::AppState,
    /// `http://addr` of the `--metrics-listen` listener, when configured.
    pub metrics_url: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Last, so the folder outlives the server.
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(TempDir::new()).await
    }

    pub async fn start_in(dir: TempDir) -> Self {
        Self::start_with(dir, |_| {}).await
    }

    /// Starts with a configuration the test adjusts (limits, trusted proxies, plain HTTP,
    /// the sandbox).
    pub async fn start_with(dir: TempDir, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::new(dir.0.join("data"));
        config.bootstrap_password = Some(ADMIN_PASSWORD.into());
        config.sandbox_launcher = Some(env!("CARGO_BIN_EXE_mlgate").into());
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // A restart in the same folder finds the store the first start used.
        let remembered = dir.0.join("store-url");
        if config.store.is_none() {
            config.store = match std::fs::read_to_string(&remembered) {
                Ok(url) => Some(url),
                Err(_) => postgres_store().await,
            };
        }
        if let Some(url) = &config.store {
            std::fs::write(&remembered, url).unwrap();
        }
        let store = Arc::new(
            mlgate_server::open_store_at(&config.data_dir, config.store.as_deref()).await.unwrap(),
        );
        let store_url = config.store.clone();
        let server =
            Server::with_store(listener, config, clock.clone(), store.clone()).await.unwrap();
        let url = server.url().to_string();
        // A plain-HTTP server has no CA: tests then use the data dir's path, which is absent.
        let ca_file = server.startup.ca_file.clone().unwrap_or_else(|| dir.0.join("no-ca.pem"));
        let ca_pem = std::fs::read(&ca_file).unwrap_or_default();
        let tenant_id = server.state().authority.directory().tenants()[0].id.to_string();
        let server_state = server.state().clone();
        let metrics_url = server.metrics_url();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            url,
            ca_pem,
            ca_file,
            clock,
            store,
            store_url,
            tenant_id,
            server_state,
            metrics_url,
            shutdown: Some(tx),
            task: Some(task),
            dir,
        }
    }

    /// Stops the server gracefully and waits for it; returns the folder for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.store.close().await;
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, Some(&self.ca_pem)).unwrap()
    }

    /// A raw HTTP client trusting the server's CA, for requests the SDK would not send.
    pub fn http(&self) -> reqwest::Client {
        let certs = reqwest::Certificate::from_pem_bundle(&self.ca_pem).unwrap();
        reqwest::Client::builder().tls_certs_only(certs).build().unwrap()
    }

    pub async fn admin_token(&self) -> String {
        self.client()
            .password(&self.tenant_id, ADMIN, ADMIN_PASSWORD, ARM_SCOPE)
            .await
            .unwrap()
            .access_token
    }

    pub async fn create_sp(&self, name: &str) -> ServicePrincipalSecret {
        let req = CreateServicePrincipal { display_name: name.into(), years: None };
        self.client().create_service_principal(&self.admin_token().await, &req).await.unwrap()
    }

    pub fn token_url(&self, v2: bool) -> String {
        if v2 {
            format!("{}/{}/oauth2/v2.0/token", self.url, self.tenant_id)
        } else {
            format!("{}/{}/oauth2/token", self.url, self.tenant_id)
        }
    }

    /// A v2 client-credentials grant for ARM, by form post: status and body.
    pub async fn client_credentials_grant(&self, client_id: &str, secret: &str) -> (u16, Value) {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", ARM_SCOPE),
        ];
        self.post_token(true, &form).await
    }

    /// POSTs a form to a token endpoint; returns status and JSON body.
    pub async fn post_token(&self, v2: bool, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self.http().post(self.token_url(v2)).form(form).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// GET /api/v1/me with an Authorization header value.
    pub async fn me_with(&self, authorization: Option<&str>) -> reqwest::Response {
        let mut req = self.http().get(format!("{}/api/v1/me", self.url));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap()
    }

    /// The server's signing keys, opened with its master key: lets tests mint tokens with a
    /// genuine signature and chosen claims.
    pub async fn key_set(&self) -> KeySet {
        let master = mlgate_server::load_master_key(&self.data_dir(), None, true).unwrap();
        KeySet::load(&self.store.signing_keys().await.unwrap(), &master).unwrap()
    }
}

/// Decodes a JWT's payload without verifying it.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
    )
    .unwrap()
}

pub fn header(token: &str) -> Value {
    use base64::Engine;
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap())
        .unwrap()
}

/// Asserts Azure AD's error shape and returns the AADSTS code.
pub fn assert_oauth_error(body: &Value, error: &str) -> u64 {
    assert_eq!(body["error"], error, "body: {body}");
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS"), "body: {body}");
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(!body[field].as_str().unwrap().is_empty(), "missing {field}: {body}");
    }
    body["error_codes"][0].as_u64().unwrap()
}

/// A real `mlgate serve` process (for what only a separate process shows: its memory, its
/// environment, its file descriptors), on a free loopback port, killed on drop.
pub struct ServeProcess {
    pub url: String,
    pub ca_pem: Vec<u8>,
    pub child: tokio::process::Child,
    pub dir: TempDir,
}

impl ServeProcess {
    pub async fn start(extra_args: &[&str]) -> Self {
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = dir.0.join("data");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra_args)
            .env("MLGATE_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
            .env("MLGATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("https://127.0.0.1:{port}");
        let ca_file = data.join("tls/ca.pem");
        for _ in 0..200 {
            if let Ok(ca_pem) = std::fs::read(&ca_file) {
                let certs = reqwest::Certificate::from_pem_bundle(&ca_pem).unwrap();
                let http = reqwest::Client::builder().tls_certs_only(certs).build().unwrap();
                let ready = http.get(format!("{url}/readyz")).send().await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return Self { url, ca_pem, child, dir };
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.start_kill();
        panic!("mlgate serve did not become ready on {url}");
    }

    /// A raw HTTP client trusting the server's CA.
    pub fn http(&self) -> reqwest::Client {
        let certs = reqwest::Certificate::from_pem_bundle(&self.ca_pem).unwrap();
        reqwest::Client::builder().tls_certs_only(certs).build().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, Some(&self.ca_pem)).unwrap()
    }

    /// A field of /proc/<pid>/status in kB (VmRSS, VmHWM, ...).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub async fn admin_token(&self) -> String {
        self.client()
            .password("mlgate.local", ADMIN, ADMIN_PASSWORD, ARM_SCOPE)
            .await
            .unwrap()
            .access_token
    }
}
