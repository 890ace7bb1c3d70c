//! Abuse by unauthenticated clients, reproduced through real HTTP against the real binary or an
//! in-process server: idle-connection floods, password-hashing floods, password guessing, the
//! lock-out of everyone, user-code guessing, and the smaller hardening items of issue 9.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

/// `mlgate serve` as a child process, on an ephemeral loopback port.
struct Spawned {
    child: tokio::process::Child,
    url: String,
    ca_pem: Vec<u8>,
    /// Everything the process has printed on stdout so far.
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    /// stderr, collected by a task until the process exits.
    stderr: tokio::task::JoinHandle<String>,
    dir: TempDir,
}

impl Spawned {
    /// Starts `mlgate serve` through `sh -c "ulimit ...; exec mlgate serve ..."`, so the
    /// server starts with the descriptor limits a service manager might give it.
    async fn start(ulimit: &str, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let dir = TempDir::new();
        let data = dir.0.join("data");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{ulimit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_mlgate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .env_remove("MLGATE_DATA_DIR")
            .env_remove("MLGATE_BOOTSTRAP_PASSWORD")
            .env("MLGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let stderr = tokio::spawn(async move {
            let mut all = String::new();
            let mut line = String::new();
            while err.read_line(&mut line).await.unwrap_or(0) > 0 {
                all.push_str(&line);
                line.clear();
            }
            all
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut stdout = String::new();
        let mut url = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while url.is_none() {
            let mut line = String::new();
            let n = tokio::time::timeout_at(deadline.into(), out.read_line(&mut line))
                .await
                .expect("the server did not start within 60 s")
                .unwrap();
            assert!(n > 0, "the server exited; stdout: {stdout}");
            stdout.push_str(&line);
            url = line.strip_prefix("mlgate listening on ").map(|u| u.trim().to_string());
        }
        // Keep reading stdout, so the server never blocks on a full pipe.
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(stdout));
        let collected = stdout.clone();
        tokio::spawn(async move {
            let mut line = String::new();
            while out.read_line(&mut line).await.unwrap_or(0) > 0 {
                collected.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let ca_pem = std::fs::read(data.join("tls/ca.pem")).unwrap();
        Self { child, url: url.unwrap(), ca_pem, stdout, stderr, dir }
    }

    /// stdout so far, once it contains `marker` (waiting up to 10 s for it).
    async fn stdout_with(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stdout.lock().unwrap().clone();
            if text.contains(marker) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.0.join("data")
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// A client that opens a fresh connection for every request.
    fn fresh_client(&self) -> reqwest::Client {
        let certs = reqwest::Certificate::from_pem_bundle(&self.ca_pem).unwrap();
        reqwest::Client::builder()
            .tls_certs_only(certs)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    /// Stops the server (SIGKILL) and returns what it wrote on stderr.
    async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        self.stderr.await.unwrap_or_default()
    }
}

/// Raises this test process's own descriptor limit: it holds the attacker's sockets.
fn raise_own_fd_limit(need: u64) {
    let (soft, hard) = mlgate_server::net::raise_fd_limit().unwrap();
    assert!(soft >= need, "this test needs {need} descriptors; the hard limit is {hard}");
}

/// Opens `n` TCP connections that never send a byte; returns those that connected.
async fn silent_sockets(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let c =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(("127.0.0.1", port)))
                .await;
        if let Ok(Ok(s)) = c {
            held.push(s);
        }
    }
    held
}

#[tokio::test]
async fn a_flood_of_idle_connections_does_not_stop_new_requests() {
    raise_own_fd_limit(2_500);
    // A service manager's classic limit, hard as well as soft: the server cannot raise it, so
    // 1,100 silent sockets are more than it may hold and it has to shed the oldest idle ones.
    let s = Spawned::start("ulimit -n 1024", &[("MLGATE_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)], &[])
        .await;
    let held = silent_sockets(s.port(), 1_100).await;
    assert!(held.len() >= 1_000, "only {} of 1,100 connections were made", held.len());
    // Give the server a moment to accept the whole backlog.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let http = s.fresh_client();
    let tenant = "mlgate.local";
    for i in 0..10 {
        let started = Instant::now();
        let r = http.get(format!("{}/healthz", s.url)).send().await;
        let took = started.elapsed();
        let r = r.unwrap_or_else(|e| panic!("healthz {i} failed with 1,100 idle sockets: {e:?}"));
        assert_eq!(r.status(), 200);
        assert!(took < Duration::from_secs(1), "healthz {i} took {took:?}");
    }
    let started = Instant::now();
    let r = http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", s.url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", mlgate_proto::CLI_CLIENT_ID),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("scope", ARM_SCOPE),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("the token grant failed with 1,100 idle sockets: {e:?}"));
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(5), "token grant took {:?}", started.elapsed());
    drop(held);
    s.stop().await;
}

/// A reqwest client whose connections come from `local` (127.0.0.N: a different source
/// address per simulated client), trusting `ca_pem`, not following redirects.
fn client_from(ca_pem: &[u8], local: &str) -> reqwest::Client {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A form-posting browser with its own cookies and source address.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    html: String,
    location: Option<String>,
    retry_after: Option<String>,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        self.html[at..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new(s: &TestServer, local: &str) -> Self {
        Self { http: client_from(&s.ca_pem, local), base: s.url.clone(), cookies: Vec::new() }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: String =
            self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let resp = req.header("cookie", cookie).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let kv = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            self.cookies.push((k.to_string(), v.to_string()));
        }
        let status = resp.status().as_u16();
        let header = |n: &str| resp.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        let (location, retry_after) = (header("location"), header("retry-after"));
        Page { status, location, retry_after, html: resp.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Opens the authorize page and posts a user name and password to it.
    async fn authorize(&mut self, tenant: &str, username: &str, password: &str) -> Page {
        let path = format!("/{tenant}/oauth2/v2.0/authorize");
        let (_, challenge) = pkce();
        let params = [
            ("client_id", mlgate_proto::CLI_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:47123"),
            ("scope", "https://management.azure.com/.default openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let q: String =
            form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let p = self.get(&format!("{path}?{q}")).await;
        assert_eq!(p.status, 200, "{}", p.html);
        let csrf = p.csrf();
        let mut form = params.to_vec();
        form.extend([("csrf", csrf.as_str()), ("username", username), ("password", password)]);
        self.post(&path, &form).await
    }
}

fn pkce() -> (String, String) {
    use base64::Engine;
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = enc.encode(mlgate_core::secrets::random_bytes::<32>());
    let challenge = enc.encode(mlgate_core::secrets::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

async fn create_user(s: &TestServer, upn: &str, password: &str) {
    let admin = s.admin_token().await;
    s.client()
        .create_user(
            &admin,
            &mlgate_proto::CreateUser {
                user_principal_name: upn.into(),
                display_name: upn.into(),
                password: password.into(),
                force_change_password_next_sign_in: false,
            },
        )
        .await
        .unwrap();
}

/// A password grant from `http`; returns status, the AADSTS code (0 on success) and headers.
async fn password_grant(
    s: &TestServer,
    http: &reqwest::Client,
    username: &str,
    password: &str,
    xff: Option<&str>,
) -> (u16, u64, reqwest::header::HeaderMap) {
    let mut req = http.post(s.token_url(true)).form(&[
        ("grant_type", "password"),
        ("client_id", mlgate_proto::CLI_CLIENT_ID),
        ("username", username),
        ("password", password),
        ("scope", ARM_SCOPE),
    ]);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body: serde_json::Value = resp.json().await.unwrap();
    let code =
        if status == 200 { 0 } else { assert_oauth_error(&body, body["error"].as_str().unwrap()) };
    (status, code, headers)
}

#[tokio::test]
async fn password_guessing_at_the_token_endpoint_locks_the_account_with_back_off() {
    let s = TestServer::start().await;
    let (victim, right) = ("victim@mlgate.local", "Victim-Passw0rd-1");
    create_user(&s, victim, right).await;
    let http = s.http();
    for i in 0..10 {
        let (status, code, _) =
            password_grant(&s, &http, victim, &format!("guess-{i}"), None).await;
        assert_eq!((status, code), (400, 50126), "guess {i}");
    }
    // Locked: even the right password is refused, unread, with Azure's lock-out error.
    let started = Instant::now();
    for pw in ["guess-10", right] {
        let (status, code, _) = password_grant(&s, &http, victim, pw, None).await;
        assert_eq!((status, code), (400, 50053), "{pw}");
    }
    assert!(started.elapsed() < Duration::from_millis(500), "a locked account costs no hashing");
    // The first lock lasts a minute; the next failure doubles it.
    s.clock.advance(time::Duration::seconds(61));
    assert_eq!(password_grant(&s, &http, victim, "guess-11", None).await.1, 50126);
    assert_eq!(password_grant(&s, &http, victim, right, None).await.1, 50053);
    s.clock.advance(time::Duration::seconds(61));
    assert_eq!(password_grant(&s, &http, victim, right, None).await.1, 50053, "two minutes now");
    s.clock.advance(time::Duration::seconds(60));
    assert_eq!(password_grant(&s, &http, victim, right, None).await.0, 200);
    // Another account is not affected by the victim's lock.
    assert_eq!(password_grant(&s, &http, ADMIN, ADMIN_PASSWORD, None).await.0, 200);
}

#[tokio::test]
async fn strangers_cannot_lock_the_real_user_out_and_forwarded_for_needs_a_trusted_proxy() {
    let s = TestServer::start_with(TempDir::new(), |c| {
        c.trusted_proxies = vec!["127.0.0.250/32".parse().unwrap()];
    })
    .await;
    let (alice, right) = ("alice@mlgate.local", "Alice-Passw0rd-1");
    create_user(&s, alice, right).await;
    // Alice has signed in from 127.0.0.1 before: a familiar source.
    let home = client_from(&s.ca_pem, "127.0.0.1");
    assert_eq!(password_grant(&s, &home, alice, right, None).await.0, 200);

    // 100 strangers, 9 wrong posts each on the sign-in page: 900 failures, each address under
    // its own limit, far over the account's.
    let mut refused = 0;
    let mut strangers = Vec::new();
    for n in 2..102 {
        let mut b = Browser::new(&s, &format!("127.0.0.{n}"));
        let tenant = s.tenant_id.clone();
        strangers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..9 {
                statuses.push(b.authorize(&tenant, alice, &format!("wrong-{n}-{i}")).await.status);
            }
            statuses
        }));
    }
    for t in strangers {
        for st in t.await.unwrap() {
            assert!(st == 401 || st == 429, "{st}");
            refused += usize::from(st == 429);
        }
    }
    assert!(refused > 800, "the account is locked for strangers ({refused} refused unread)");

    // The real user, from the familiar address, signs in on the page and at the token endpoint.
    let mut b = Browser::new(&s, "127.0.0.1");
    let p = b.authorize(&s.tenant_id, alice, right).await;
    assert_eq!(p.status, 302, "the real user is locked out: {}", p.html);
    assert!(p.location.unwrap().contains("code="));
    assert_eq!(password_grant(&s, &home, alice, right, None).await.0, 200);

    // A stranger is still refused, and X-Forwarded-For from an untrusted peer changes nothing.
    let stranger = client_from(&s.ca_pem, "127.0.0.3");
    assert_eq!(password_grant(&s, &stranger, alice, right, None).await.1, 50053);
    assert_eq!(password_grant(&s, &stranger, alice, right, Some("127.0.0.1")).await.1, 50053);
    let mut b = Browser::new(&s, "127.0.0.3");
    let p = b.authorize(&s.tenant_id, alice, right).await;
    assert_eq!(p.status, 429, "{}", p.html);
    assert!(p.html.contains("temporarily locked"), "{}", p.html);

    // From the trusted proxy, the forwarded address is the client's: the familiar one signs
    // in (the proxy's own address is a stranger's), a stranger behind the proxy does not.
    let proxy = client_from(&s.ca_pem, "127.0.0.250");
    assert_eq!(password_grant(&s, &proxy, alice, right, None).await.1, 50053);
    assert_eq!(password_grant(&s, &proxy, alice, right, Some("127.0.0.1")).await.0, 200);
    assert_eq!(
        password_grant(&s, &proxy, alice, right, Some("127.0.0.1, 127.0.0.7")).await.1,
        50053,
        "the proxy appends the address it saw; what the client wrote before it is not believed"
    );
}

/// Posts a code with empty credentials to the device-login sign-in step.
async fn signin(b: &mut Browser, code: String) -> (Page, String) {
    let p = b.get("/devicelogin").await;
    let csrf = p.csrf();
    let p = b
        .post(
            "/devicelogin/signin",
            &[("csrf", &csrf), ("code", &code), ("username", ""), ("password", "")],
        )
        .await;
    (p, code)
}

async fn start_device(s: &TestServer) -> String {
    let resp = s
        .http()
        .post(format!("{}/organizations/oauth2/v2.0/devicecode", s.url))
        .form(&[("client_id", mlgate_proto::CLI_CLIENT_ID), ("scope", ARM_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["user_code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn user_codes_guessed_at_the_sign_in_step_are_counted_and_tell_nothing() {
    let s = TestServer::start().await;
    let real = start_device(&s).await;

    // No oracle: with empty credentials, the real code and an unknown one get the same status
    // and the same page (but for the echoed code), from a fresh address each.
    let mut a = Browser::new(&s, "127.0.0.20");
    let (unknown, typed) = signin(&mut a, "BCDF-GHJK".into()).await;
    let mut b = Browser::new(&s, "127.0.0.21");
    b.cookies = a.cookies.clone();
    let (known, real_typed) = signin(&mut b, real.clone()).await;
    assert_eq!(unknown.status, 401, "{}", unknown.html);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.html.replace(&real_typed, "CODE"), unknown.html.replace(&typed, "CODE"));
    assert!(!known.html.contains("Azure CLI"), "the page does not name the code's application");

    // Guessing from one address: 10 wrong codes, then refused unread, with Retry-After, and
    // the real code is refused as well while the address is blocked.
    let mut g = Browser::new(&s, "127.0.0.22");
    let mut statuses = Vec::new();
    for i in 0..40u32 {
        let guess = format!("BCDF-{}", ["GHJK", "GHJL", "GHJM", "GHJN"][(i % 4) as usize]);
        let guess = format!(
            "{}{}",
            &guess[..8],
            ["B", "C", "D", "F", "G", "H", "J", "K", "L", "M"][(i / 4) as usize]
        );
        statuses.push(signin(&mut g, guess).await.0.status);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let (p, _) = signin(&mut g, real.clone()).await;
    assert_eq!(p.status, 429);
    assert!(p.retry_after.is_some());
    // The code page counts the same failures: the address is blocked there too.
    let p = g.get("/devicelogin").await;
    let csrf = p.csrf();
    let p = g.post("/devicelogin", &[("csrf", &csrf), ("code", &real)]).await;
    assert_eq!(p.status, 429);

    // The real user, elsewhere, still gets through with the real code.
    let mut user = Browser::new(&s, "127.0.0.23");
    let p = user.get("/devicelogin").await;
    let csrf = p.csrf();
    let p = user
        .post(
            "/devicelogin/signin",
            &[("csrf", &csrf), ("code", &real), ("username", ADMIN), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains("Are you trying to sign in?"));
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[tokio::test]
async fn a_flood_of_password_grants_keeps_memory_bounded_and_is_throttled() {
    raise_own_fd_limit(2_000);
    let s = Spawned::start("true", &[("MLGATE_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)], &[]).await;
    let pid = s.child.id().unwrap();
    let before = peak_rss_mib(pid);
    let token_url = format!("{}/mlgate.local/oauth2/v2.0/token", s.url);
    // 400 wrong grants at once for unknown users, from 200 addresses (under every lock-out
    // limit, so each one would cost a full argon2 verification).
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(400));
    let mut tasks = Vec::new();
    for i in 0..400u32 {
        let http = client_from(&s.ca_pem, &format!("127.0.{}.{}", 1 + i % 2, 2 + i / 2));
        let (url, barrier) = (token_url.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = http
                .post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", mlgate_proto::CLI_CLIENT_ID),
                    ("username", &format!("nobody-{i}@mlgate.local")),
                    ("password", "wrong"),
                    ("scope", ARM_SCOPE),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, retry, body)
        }));
    }
    // /healthz answers while the flood is being handled.
    let health = s.fresh_client();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(health.get(format!("{}/healthz", s.url)).send().await.unwrap().status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut wrong, mut throttled) = (0, 0);
    for t in tasks {
        let (status, retry, body) = t.await.unwrap();
        match status {
            400 => {
                assert_eq!(body["error_codes"][0], 50126, "{body}");
                wrong += 1;
            }
            429 => {
                assert!(retry, "429 without Retry-After");
                assert_eq!(assert_oauth_error(&body, "temporarily_unavailable"), 90055);
                throttled += 1;
            }
            other => panic!("status {other}: {body}"),
        }
    }
    let peak = peak_rss_mib(pid);
    s.stop().await;
    assert!(throttled > 0, "nothing was throttled ({wrong} checked)");
    assert!(wrong >= 2, "some were checked");
    // Unbounded, 400 argon2 verifications hold 400 x 19 MiB = 7.6 GiB.
    assert!(peak < before + 200, "peak RSS {peak} MiB (from {before} MiB)");
    assert!(slowest < Duration::from_secs(1), "healthz took {slowest:?} during the flood");
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed_on_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = mlgate_server::net::ConnectionLimits {
        max_connections: 4096,
        tls_handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
    };
    let s = TestServer::start_with(TempDir::new(), |c| c.limits = limits).await;
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    // Closed: the read returns 0 bytes (or a reset) before `within`.
    async fn closed_within(mut sock: TcpStream, within: Duration) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(within, sock.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("still open after {within:?}"),
            }
        }
    }
    // A socket that never starts TLS.
    let silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let took = closed_within(silent, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(900), "closed too early: {took:?}");

    // Plain HTTP (behind a proxy): a request head that never ends, and a kept-alive
    // connection that goes quiet.
    let p = TestServer::start_with(TempDir::new(), |c| {
        c.tls = mlgate_server::TlsMode::Disabled;
        c.limits = mlgate_server::net::ConnectionLimits {
            idle_timeout: Duration::from_secs(30),
            ..limits
        };
    })
    .await;
    let pport: u16 = p.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", pport)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let took = closed_within(slow, Duration::from_secs(5)).await;
    // Checked every half deadline (net::CheckedDeadlines): cut off within 1 to 1.5 s.
    assert!(took >= Duration::from_millis(900), "cut off before the deadline: {took:?}");
    assert!(took < Duration::from_secs(2), "the header-read deadline is 1 s, took {took:?}");

    let q = TestServer::start_with(TempDir::new(), |c| {
        c.tls = mlgate_server::TlsMode::Disabled;
        c.limits = mlgate_server::net::ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            ..limits
        };
    })
    .await;
    let qport: u16 = q.url.rsplit(':').next().unwrap().parse().unwrap();
    // Connected, never a byte: closed at the idle deadline (2 s).
    let mute = TcpStream::connect(("127.0.0.1", qport)).await.unwrap();
    let took = closed_within(mute, Duration::from_secs(6)).await;
    assert!(took >= Duration::from_millis(1500), "closed before the idle timeout: {took:?}");
    let mut kept = TcpStream::connect(("127.0.0.1", qport)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("strict-transport-security"), "no HSTS over HTTP");
    let took = closed_within(kept, Duration::from_secs(6)).await;
    assert!(took >= Duration::from_millis(1500), "closed before the idle timeout: {took:?}");
}

#[tokio::test]
async fn https_answers_carry_hsts_and_http2_is_offered() {
    let s = TestServer::start().await;
    // curl (nghttp2) asks for h2 by ALPN, as browsers do.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&s.ca_file)
        .arg(format!("{}/healthz", s.url))
        .output()
        .await
        .expect("curl is needed for this test");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("strict-transport-security: max-age=31536000"), "{head}");
    let r = s.http().get(format!("{}/no/such/page", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert!(r.headers().contains_key("strict-transport-security"), "errors carry it too");
}

#[tokio::test]
async fn a_generated_admin_password_goes_to_a_private_file_when_stdout_is_not_a_terminal() {
    use std::os::unix::fs::PermissionsExt;
    // No MLGATE_BOOTSTRAP_PASSWORD: the first start generates one. stdout is a pipe here, as
    // under a service manager.
    let s = Spawned::start("true", &[], &[]).await;
    let file = s.data_dir().join("initial-admin-password");
    let stdout = s.stdout_with(&file.display().to_string()).await;
    assert!(stdout.contains("does not exist: creating it"), "{stdout}");
    assert!(stdout.contains(&file.display().to_string()), "{stdout}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 16);
    // The password works...
    let http = s.fresh_client();
    let r = http
        .post(format!("{}/mlgate.local/oauth2/v2.0/token", s.url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", mlgate_proto::CLI_CLIENT_ID),
            ("username", ADMIN),
            ("password", &password),
            ("scope", ARM_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...and appears in neither stream.
    let stdout = s.stdout.lock().unwrap().clone();
    let stderr = s.stop().await;
    assert!(stderr.contains("initial-admin-password"), "the log names the file: {stderr}");
    assert!(!stdout.contains(&password), "the password is on stdout");
    assert!(!stderr.contains(&password), "the password is in the log");
}

#[tokio::test]
async fn commands_on_a_missing_data_directory_refuse_instead_of_making_an_empty_store() {
    let dir = TempDir::new();
    let missing = dir.0.join("not-here");
    for cmd in ["list", "rotate"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .args(["keys", cmd, "--data-dir"])
            .arg(&missing)
            .env_remove("MLGATE_DATA_DIR")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "keys {cmd} succeeded on a missing folder");
        assert!(stderr.contains("does not exist"), "keys {cmd}: {stderr}");
        assert!(stderr.contains("mlgate serve"), "keys {cmd} says who creates it: {stderr}");
        assert!(!missing.exists(), "keys {cmd} created the folder");
    }
    // An existing folder with no store is refused too.
    std::fs::create_dir_all(&missing).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
        .args(["keys", "list", "--data-dir"])
        .arg(&missing)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no mlgate store"));
    assert!(!missing.join("mlgate.db").exists());
}

#[tokio::test]
async fn registering_a_folder_refuses_links_that_leave_it_and_uploads_nothing() {
    use std::os::unix::fs::symlink;
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "links", None).await.unwrap();
    c.put_workspace(&admin, &sub, "links", "links-ws", None).await.unwrap();
    let ws = mlgate_client::models::WorkspaceAddress {
        subscription_id: sub,
        resource_group: "links".into(),
        workspace: "links-ws".into(),
    };
    // The parent holds a secret; the model folder holds a model and a link to the parent.
    let dir = TempDir::new();
    std::fs::write(dir.0.join("master.key"), b"the-parent-secret").unwrap();
    let model = dir.0.join("model");
    std::fs::create_dir_all(model.join("sub")).unwrap();
    std::fs::write(model.join("model.onnx"), b"weights").unwrap();
    symlink("..", model.join("escape")).unwrap();
    let blobs = s.data_dir().join("blobs");
    let count_blobs = || walk_count(&blobs);
    let register = |p: std::path::PathBuf| {
        let (c, admin, ws) = (c.clone(), admin.clone(), ws.clone());
        async move { c.register_model_from_path(&admin, &ws, "m", &p, "", Default::default()).await }
    };

    let e = register(model.clone()).await.unwrap_err().to_string();
    assert!(e.contains("escape") && e.contains("outside the folder"), "{e}");
    // A link to a file outside, and a link to a folder inside, are refused too.
    std::fs::remove_file(model.join("escape")).unwrap();
    symlink(dir.0.join("master.key"), model.join("key")).unwrap();
    let e = register(model.clone()).await.unwrap_err().to_string();
    assert!(e.contains("outside the folder"), "{e}");
    std::fs::remove_file(model.join("key")).unwrap();
    symlink("sub", model.join("subdir")).unwrap();
    let e = register(model.clone()).await.unwrap_err().to_string();
    assert!(e.contains("links to folders are refused"), "{e}");
    assert_eq!(count_blobs(), 0, "something was uploaded before the list was validated");

    // A link to a file inside the folder is read as that file.
    std::fs::remove_file(model.join("subdir")).unwrap();
    symlink("model.onnx", model.join("alias.onnx")).unwrap();
    let v = register(model.clone()).await.unwrap();
    let paths: Vec<&str> = v.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["alias.onnx", "model.onnx"]);
    assert_eq!(v.files[0].sha256, v.files[1].sha256);
    assert!(count_blobs() > 0, "the blob count sees uploads (a control)");
}

fn walk_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk_count(&p) } else { 1 }
        })
        .sum()
}
