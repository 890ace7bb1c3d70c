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
    /// Everything the process printed on stdout before it said it was serving.
    stdout: String,
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
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = String::new();
            while out.read_line(&mut sink).await.unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        let ca_pem = std::fs::read(data.join("tls/ca.pem")).unwrap();
        Self { child, url: url.unwrap(), ca_pem, stdout, stderr, dir }
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
