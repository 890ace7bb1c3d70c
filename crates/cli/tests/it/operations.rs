//! Running mlgate in production: backup and restore of a live server, the systemd unit, the
//! log formats, and the TLS certificate reloaded on SIGHUP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use mlgate_proto::{CreateRoleAssignment, CreateServicePrincipal};
use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_mlgate");

/// `mlgate restore --from FILE --data-dir DIR [extra...]`.
async fn restore(
    file: &std::path::Path,
    data_dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut args = vec!["restore", "--from", file.to_str().unwrap(), "--data-dir"];
    args.push(data_dir.to_str().unwrap());
    args.extend_from_slice(extra);
    mlgate(&args, env).await
}

async fn mlgate(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("MLGATE_MASTER_KEY")
        .env_remove("MLGATE_BACKUP_PASSPHRASE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Scores `uri` with a key; the status.
async fn score(s: &TestServer, uri: &str, key: &str) -> u16 {
    s.http()
        .post(uri)
        .bearer_auth(key)
        .json(&json!({"data": [[1.0, 1.0, 1.0]]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn backup_of_a_live_server_under_writes_restores_every_principal_and_service() {
    let s = TestServer::start_with(TempDir::new(), sqlite_in_data_dir).await;
    let data = s.data_dir();
    let (ws, ws_scope) =
        crate::metrics::onnx_service(&s, "bk", "bk-svc", json!({"computeType": "cluster"})).await;
    let admin = s.admin_token().await;
    let c = s.client();
    let keys = c.service_keys(&admin, &ws, "bk-svc").await.unwrap();

    // A writer creating principals and giving each a role until told to stop; it records
    // when each one was done (before, during or after the backup).
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let writer = {
        let (stop, phase, c, admin, ws_scope) =
            (stop.clone(), phase.clone(), s.client(), admin.clone(), ws_scope.clone());
        tokio::spawn(async move {
            let mut made = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = phase.load(Ordering::SeqCst);
                let req = CreateServicePrincipal { display_name: format!("w{i}"), years: None };
                let sp = c.create_service_principal(&admin, &req).await.unwrap();
                let ra = CreateRoleAssignment {
                    assignee: sp.app_id.clone(),
                    role: "Reader".into(),
                    scope: ws_scope.clone(),
                };
                c.create_role_assignment(&admin, &ra).await.unwrap();
                let ended = phase.load(Ordering::SeqCst);
                made.push((sp, started, ended));
                i += 1;
            }
            made
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let file = s.dir.0.join("live.mlgate-backup");
    phase.store(1, Ordering::SeqCst);
    let (ok, out) = mlgate(
        &["backup", "--data-dir", data.to_str().unwrap(), "--to", file.to_str().unwrap()],
        &[],
    )
    .await;
    phase.store(2, Ordering::SeqCst);
    assert!(ok, "{out}");
    assert!(out.contains("master key is NOT in the backup"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let made = writer.await.unwrap();
    let before = made.iter().filter(|(_, _, ended)| *ended == 0).count();
    let after = made.iter().filter(|(_, started, _)| *started == 2).count();
    assert!(before > 0 && after > 0, "the writer ran before ({before}) and after ({after})");

    // The file alone reveals no secret: no client secret, service key, password or master key.
    let raw = std::fs::read(&file).unwrap();
    let master_text = std::fs::read_to_string(data.join("master.key")).unwrap();
    for secret in made
        .iter()
        .map(|(sp, _, _)| sp.password.as_str())
        .chain([keys.primary_key.as_str(), keys.secondary_key.as_str(), ADMIN_PASSWORD])
        .chain([master_text.trim()])
    {
        assert!(!contains(&raw, secret), "the backup holds a secret in clear");
    }
    assert!(!contains(&raw, "BEGIN PRIVATE KEY"), "a TLS key in clear");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // Never over an existing file; never without the master key; never with a wrong one.
    let (ok, out) = mlgate(
        &["backup", "--data-dir", data.to_str().unwrap(), "--to", file.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(!ok && out.contains("exists"), "{out}");
    let target = TempDir::new();
    let new_data = target.0.join("data");
    let (ok, out) = restore(&file, &new_data, &[], &[]).await;
    assert!(!ok && out.contains("does not hold the master key"), "{out}");
    let wrong_key = target.0.join("wrong.key");
    std::fs::write(&wrong_key, mlgate_core::keys::MasterKey::generate_encoded()).unwrap();
    let (ok, out) =
        restore(&file, &new_data, &["--master-key-file", wrong_key.to_str().unwrap()], &[]).await;
    assert!(!ok && out.contains("does not belong to this backup"), "{out}");
    assert!(!new_data.join("mlgate.db").exists(), "a failed restore leaves nothing behind");

    // With the old master key (kept apart from the backup, as the docs say).
    let (ok, out) = restore(
        &file,
        &new_data,
        &["--master-key-file", data.join("master.key").to_str().unwrap()],
        &[],
    )
    .await;
    assert!(ok, "{out}");
    // The local CA came back (clients keep trusting it), its key opened from the seal.
    for f in ["tls/ca.pem", "tls/ca-key.pem", "tls/server.pem", "tls/server-key.pem"] {
        assert_eq!(std::fs::read(new_data.join(f)).unwrap(), std::fs::read(data.join(f)).unwrap());
    }
    let _old = s.stop().await;

    let r = TestServer::start_with(target, sqlite_in_data_dir).await;
    // Every principal made before the backup began is there and signs in with its secret;
    // none made after it ended is; those made during it are there whole or not at all.
    let mut restored = 0;
    for (sp, started, ended) in &made {
        let (status, body) = r.client_credentials_grant(&sp.app_id, &sp.password).await;
        match (started, ended) {
            (_, 0) => assert_eq!(status, 200, "{body}"),
            (2, _) => assert_eq!(status, 401, "{body}"),
            _ => assert!(status == 200 || status == 401, "{body}"),
        }
        if status == 200 {
            restored += 1;
            if restored <= 3 {
                // Its role came with it.
                let token = body["access_token"].as_str().unwrap();
                assert!(r.client().service(token, &ws, "bk-svc").await.is_ok());
            }
        }
    }
    assert!(restored >= before);
    r.client().password(&r.tenant_id, ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();

    // The service comes back running and scores with its old keys.
    let uri = format!("{}/api/v1/service/bk-svc/score", r.url);
    let mut status = 0;
    for _ in 0..100 {
        status = score(&r, &uri, &keys.primary_key).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(score(&r, &uri, &keys.secondary_key).await, 200);
    assert_eq!(score(&r, &uri, "not-a-key").await, 401);
}

#[tokio::test]
async fn a_backup_with_the_master_key_opens_only_with_its_passphrase() {
    let s = TestServer::start_with(TempDir::new(), sqlite_in_data_dir).await;
    let sp = s.create_sp("escrowed").await;
    let data = s.data_dir();
    let dir = TempDir::new();
    let file = dir.0.join("with-key.backup");
    let pass = dir.0.join("pass");
    std::fs::write(&pass, "a long enough passphrase\n").unwrap();
    let (ok, out) = mlgate(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--to",
            file.to_str().unwrap(),
            "--with-master-key",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(ok, "{out}");
    let master_text = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert!(!contains(&std::fs::read(&file).unwrap(), master_text.trim()));

    let new_data = dir.0.join("restored");
    let (ok, out) =
        restore(&file, &new_data, &[], &[("MLGATE_BACKUP_PASSPHRASE", "a long enough passphrasE")])
            .await;
    assert!(!ok && out.contains("passphrase does not open"), "{out}");
    assert!(!new_data.join("mlgate.db").exists());
    let (ok, out) =
        restore(&file, &new_data, &["--passphrase-file", pass.to_str().unwrap()], &[]).await;
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(new_data.join("master.key")).unwrap().trim(),
        master_text.trim()
    );
    s.stop().await;

    // The restored directory serves the principal.
    let restored = TempDir::new();
    std::fs::rename(&new_data, restored.0.join("data")).unwrap();
    let r = TestServer::start_with(restored, sqlite_in_data_dir).await;
    r.client().client_credentials(&r.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE).await.unwrap();
}

#[tokio::test]
async fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/mlgate.service");
    let text = std::fs::read_to_string(unit).unwrap();
    for directive in [
        "User=mlgate",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/mlgate",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=landlock_create_ruleset landlock_add_rule landlock_restrict_self",
        "LockPersonality=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(directive), "the unit lacks {directive:?}");
    }
    assert!(!text.lines().any(|l| l.starts_with("MemoryDenyWriteExecute=yes")));
    let Ok(analyze) = which("systemd-analyze") else {
        // Only when the analyzer cannot be had at all (scripts/setup-test-deps.sh installs it).
        eprintln!(
            "\n\n!!! SKIPPED: systemd-analyze is not installed; deploy/mlgate.service was NOT \
             verified (run scripts/setup-test-deps.sh) !!!\n\n"
        );
        return;
    };
    // The unit names the installed binary; the check runs against this build's.
    let dir = TempDir::new();
    let copy = dir.0.join("mlgate.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/mlgate", BIN)).unwrap();
    let out = std::process::Command::new(&analyze).arg("verify").arg(&copy).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    // verify exits 0 on directives it ignores; any complaint is a failure here.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify complained:\n{stderr}");
    // The exposure score (0 safest, 10 worst): held at "OK" or better.
    let out = std::process::Command::new(&analyze)
        .args(["security", "--offline=true", "--threshold=25", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exposure above 2.5:\n{stdout}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// `mlgate serve` as a child process whose standard error goes to a file.
struct Logged {
    child: tokio::process::Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Logged {
    async fn start(dir: TempDir, args: &[&str], ca: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.0.join("stderr.log");
        let child = tokio::process::Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.0.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("MLGATE_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
            .env("MLGATE_LOG", "info")
            .env_remove("MLGATE_STORE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("https://127.0.0.1:{port}");
        let ca = if ca.as_os_str().is_empty() { dir.0.join("data/tls/ca.pem") } else { ca.into() };
        for _ in 0..300 {
            if let Ok(pem) = std::fs::read(&ca) {
                let http = client(&[&pem]);
                if http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                    return Self { child, url, log, _dir: dir };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mlgate serve did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    fn pid(&self) -> String {
        self.child.id().unwrap().to_string()
    }

    fn signal(&self, sig: &str) {
        assert!(
            std::process::Command::new("kill").args([sig, &self.pid()]).status().unwrap().success()
        );
    }

    /// Stops the server (SIGTERM: the log is flushed) and returns its standard error.
    async fn stop(mut self) -> String {
        self.signal("-TERM");
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A client that trusts these CAs, opens a new connection per request and reports the peer's
/// certificate.
fn client(cas: &[&[u8]]) -> reqwest::Client {
    let mut certs = Vec::new();
    for pem in cas {
        certs.extend(reqwest::Certificate::from_pem_bundle(pem).unwrap());
    }
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn json_logs_parse_and_hold_no_secret_and_text_logs_have_no_colours() {
    let dir = TempDir::new();
    let s = Logged::start(dir, &["--log-format", "json"], Path::new("")).await;
    let ca = std::fs::read(s._dir.0.join("data/tls/ca.pem")).unwrap();
    let http = client(&[&ca]);
    let token_url = format!("{}/mlgate.local/oauth2/v2.0/token", s.url);
    let form = |user: &str, pw: &str| {
        vec![
            ("grant_type".to_string(), "password".to_string()),
            ("username".into(), user.into()),
            ("password".into(), pw.into()),
            ("client_id".into(), "04b07795-8ddb-461a-bbee-02f9e1bf7b46".into()),
            ("scope".into(), ARM_SCOPE.into()),
        ]
    };
    let ok: Value = http
        .post(&token_url)
        .form(&form(ADMIN, ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = ok["access_token"].as_str().unwrap().to_string();
    let wrong = "Wrong-Pa55word-that-must-not-be-logged";
    let r = http.post(&token_url).form(&form(ADMIN, wrong)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let sp: Value = http
        .post(format!("{}/api/v1/servicePrincipals", s.url))
        .bearer_auth(&access)
        .json(&json!({"displayName": "logged"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = sp["password"].as_str().expect("a secret").to_string();
    let _ = http
        .get(format!("{}/api/v1/me?client_secret={secret}", s.url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let log = s.stop().await;

    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 5, "{log}");
    let mut access_lines = 0;
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        if v["target"] == "mlgate::access" {
            access_lines += 1;
            assert!(v["fields"]["route"].as_str().unwrap().starts_with('/'), "{l}");
        }
    }
    assert!(access_lines >= 4, "{log}");
    for needle in [ADMIN_PASSWORD, wrong, &access, &secret, &access[access.len() - 40..]] {
        assert!(!log.contains(needle), "the log holds a secret");
    }
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a JSON log");

    // Text: not a terminal, so no colours.
    let s = Logged::start(TempDir::new(), &[], Path::new("")).await;
    let ca = std::fs::read(s._dir.0.join("data/tls/ca.pem")).unwrap();
    let _ = client(&[&ca]).get(format!("{}/healthz", s.url)).send().await.unwrap();
    let log = s.stop().await;
    assert!(log.contains("mlgate::access"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log that is not a terminal:\n{log}");
    assert!(serde_json::from_str::<Value>(log.lines().next().unwrap()).is_err());
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

/// The certificate a new connection is shown. A new client each time: a client resuming a
/// TLS session is not shown a certificate again (rustls reports the first one).
async fn peer_certificate(cas: &[&[u8]], url: &str) -> Vec<u8> {
    let http = client(cas);
    let resp = http.get(format!("{url}/healthz")).send().await.unwrap();
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    info.peer_certificate().expect("a peer certificate").to_vec()
}

fn replace(path: &Path, data: &[u8]) {
    // As certbot and cp do not: a new file renamed over the old, so a reload never reads half.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let dir = TempDir::new();
    let a = mlgate_server::tls::ensure_local_ca(&dir.0.join("a"), None).unwrap();
    let b = mlgate_server::tls::ensure_local_ca(&dir.0.join("b"), None).unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let (ca_a, ca_b) = (std::fs::read(&a.ca).unwrap(), std::fs::read(&b.ca).unwrap());
    let s = Logged::start(
        dir,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &a.ca,
    )
    .await;
    let cas: [&[u8]; 2] = [&ca_a, &ca_b];
    let der_a = pem_der(&std::fs::read(&a.cert).unwrap());
    let der_b = pem_der(&std::fs::read(&b.cert).unwrap());
    assert_eq!(peer_certificate(&cas, &s.url).await, der_a);

    // An open connection keeps its certificate; new ones get B after SIGHUP.
    replace(&cert, &std::fs::read(&b.cert).unwrap());
    replace(&key, &std::fs::read(&b.key).unwrap());
    s.signal("-HUP");
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = peer_certificate(&cas, &s.url).await;
        if seen == der_b {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, der_b, "a new connection after SIGHUP sees certificate B");

    // A broken certificate file, and a key that is not the certificate's: B stays.
    replace(&cert, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
    s.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(peer_certificate(&cas, &s.url).await, der_b);
    replace(&cert, &std::fs::read(&a.cert).unwrap());
    s.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(peer_certificate(&cas, &s.url).await, der_b, "A's certificate with B's key");
    let log = s.stop().await;
    assert_eq!(log.matches("still serving the previous certificate").count(), 2, "{log}");
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(!log.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn tls_renew_issues_a_new_certificate_under_the_same_ca_and_sighup_serves_it() {
    let s = Logged::start(TempDir::new(), &[], Path::new("")).await;
    let data = s._dir.0.join("data");
    let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();
    let cas: [&[u8]; 1] = [&ca];
    let first = peer_certificate(&cas, &s.url).await;
    assert_eq!(first, pem_der(&std::fs::read(data.join("tls/server.pem")).unwrap()));
    let (ok, out) = mlgate(
        &["tls", "renew", "--data-dir", data.to_str().unwrap(), "--host", "mlgate.example.org"],
        &[],
    )
    .await;
    assert!(ok, "{out}");
    let renewed = pem_der(&std::fs::read(data.join("tls/server.pem")).unwrap());
    assert_ne!(renewed, first);
    assert_eq!(std::fs::read(data.join("tls/ca.pem")).unwrap(), ca, "the CA stays");
    s.signal("-HUP");
    let mut seen = Vec::new();
    for _ in 0..50 {
        // The same trust anchor verifies the renewed certificate.
        seen = peer_certificate(&cas, &s.url).await;
        if seen == renewed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, renewed);
    s.stop().await;
}

#[tokio::test]
async fn a_store_from_a_newer_mlgate_is_refused() {
    let dir = TempDir::new();
    let db = dir.0.join("mlgate.db");
    mlgate_store::SqlStore::open_sqlite(&db).await.unwrap().close().await;
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let Err(err) = mlgate_store::SqlStore::open_sqlite(&db).await else {
        panic!("a store from a newer mlgate was opened");
    };
    assert!(err.to_string().contains("downgrades are refused"), "{err}");
}
