//! Several nodes on one store: three real `mlgate serve` processes share a store (one SQLite
//! file in WAL mode, or PostgreSQL when `MLGATE_TEST_POSTGRES_URL` names one and the binary
//! has `--store`), the master key and the public URL, as behind a load balancer. Everything
//! goes through real HTTP: a change made on one node must take effect on the others within a
//! second (their followers read the change log every 250 ms).
//!
//! The store-outage part (scoring and verification go on from memory, token issuing answers
//! 503, all recovers) needs a store that can be stopped and started: it runs only with
//! `MLGATE_TEST_POSTGRES_URL` and `MLGATE_TEST_POSTGRES_STOP` / `MLGATE_TEST_POSTGRES_START`
//! (shell commands).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mlgate_client::Client;
use mlgate_client::models::WorkspaceAddress;
use mlgate_core::keys::MasterKey;
use mlgate_proto::{CreateRoleAssignment, CreateServicePrincipal, DeployService};
use mlgate_serving::onnx::linear_regression_model;
use serde_json::json;

use crate::support::*;

const INPUT: &str = r#"{"data": [[1.0, 1.0, 1.0]]}"#;
/// The promise: a change on one node is in force on every other within this.
const PROPAGATION: Duration = Duration::from_secs(1);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `--store` for the nodes: a fresh database of the test cluster when
/// `MLGATE_TEST_POSTGRES_URL` names one; none (the data directory's SQLite file) otherwise.
async fn store_args() -> Vec<String> {
    match mlgate_store::testing::postgres_url() {
        Some(base) => vec![
            "--store".into(),
            mlgate_store::testing::fresh_postgres_database(&base).await.unwrap(),
        ],
        None => vec![],
    }
}

/// One node: a `mlgate serve` process (killed on drop).
struct Node {
    url: String,
    child: tokio::process::Child,
}

impl Node {
    async fn spawn(
        data: &Path,
        store: &[String],
        port: u16,
        public_url: &str,
        master: &str,
    ) -> Self {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--insecure-http", "--public-url", public_url])
            .args(store)
            .env("MLGATE_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
            .env("MLGATE_MASTER_KEY", master)
            .env("MLGATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                return Self { url, child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node on {url} did not become ready");
    }

    fn client(&self) -> Client {
        Client::new(&self.url, None).unwrap()
    }
}

/// Three nodes over one store, one master key and one public URL (the balancer's).
struct Cluster {
    nodes: Vec<Node>,
    data: PathBuf,
    master: String,
    store: Vec<String>,
    _dir: TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let dir = TempDir::new();
        let data = dir.0.join("data");
        let master = MasterKey::generate_encoded();
        let ports = [free_port(), free_port(), free_port()];
        // Tokens name the public URL as issuer: every node behind one balancer shares it.
        let public = format!("http://127.0.0.1:{}", ports[0]);
        // The first node creates the store; the others join it.
        let store = store_args().await;
        let mut nodes = vec![Node::spawn(&data, &store, ports[0], &public, &master).await];
        for p in &ports[1..] {
            nodes.push(Node::spawn(&data, &store, *p, &public, &master).await);
        }
        Self { nodes, data, master, store, _dir: dir }
    }

    async fn admin_token(&self, node: usize) -> String {
        self.nodes[node]
            .client()
            .password("mlgate.local", ADMIN, ADMIN_PASSWORD, ARM_SCOPE)
            .await
            .unwrap()
            .access_token
    }
}

/// Polls `probe` until it is true; the time it took, or `None` after `limit`.
async fn time_until<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if probe().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn score(node: &Node, service: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/api/v1/service/{service}/score", node.url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(INPUT)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn three_nodes_see_each_others_changes_within_a_second() {
    let cluster = Cluster::start().await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];

    // A token from node A is accepted by B and C (same signing keys, same issuer).
    let admin = cluster.admin_token(0).await;
    for n in [b, c] {
        let me = n.client().me(&admin).await.unwrap();
        assert_eq!(me.user_principal_name.as_deref(), Some(ADMIN));
    }

    // A workspace and a model, made through A.
    let ca = a.client();
    let sub = ca.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    ca.put_resource_group(&admin, &sub, "mn", None).await.unwrap();
    let w = ca.put_workspace(&admin, &sub, "mn", "mn-ws", None).await.unwrap();
    let ws = WorkspaceAddress {
        subscription_id: sub.clone(),
        resource_group: "mn".into(),
        workspace: "mn-ws".into(),
    };
    let model = cluster.data.parent().unwrap().join("model.onnx");
    std::fs::write(&model, linear_regression_model(&[vec![1.0], vec![2.0], vec![3.0]], &[0.5]))
        .unwrap();
    ca.register_model_from_path(&admin, &ws, "linear", &model, "", Default::default())
        .await
        .unwrap();

    // A service deployed through A scores on B and C.
    let req = DeployService {
        model: "linear:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: json!({"computeType": "instance", "auth_enabled": true}),
    };
    ca.deploy(&admin, &ws, "mn-svc", &req).await.unwrap();
    ca.wait_for_deployment(&admin, &ws, "mn-svc", Duration::from_secs(60), |_| {}).await.unwrap();
    let keys = ca.service_keys(&admin, &ws, "mn-svc").await.unwrap();
    for n in [a, b, c] {
        let k = keys.primary_key.as_str();
        let took = time_until(Duration::from_secs(30), move || async move {
            score(n, "mn-svc", k).await == 200
        })
        .await;
        assert!(took.is_some(), "{} never scored the service deployed on A", n.url);
        assert_eq!(score(n, "mn-svc", &keys.secondary_key).await, 200);
    }

    // A key regenerated on A is refused by B and C within a second; the new one works there.
    let regen = ca.regenerate_service_key(&admin, &ws, "mn-svc", "Primary").await.unwrap();
    let old = keys.primary_key.as_str();
    for n in [b, c] {
        let took = time_until(Duration::from_secs(10), move || async move {
            score(n, "mn-svc", old).await == 401
        })
        .await
        .expect("the old key is still accepted after 10 s");
        assert!(took < PROPAGATION, "{} refused the old key only after {took:?}", n.url);
        assert_eq!(score(n, "mn-svc", &regen.primary_key).await, 200);
        assert_eq!(score(n, "mn-svc", &regen.secondary_key).await, 200, "the other key stays");
    }
    assert_eq!(score(a, "mn-svc", old).await, 401);

    // A role assignment removed on B denies on C within a second.
    let sp = ca
        .create_service_principal(
            &admin,
            &CreateServicePrincipal { display_name: "mn-reader".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let assignment = ca
        .create_role_assignment(
            &admin,
            &CreateRoleAssignment {
                assignee: sp.app_id.clone(),
                role: "Reader".into(),
                scope: w.id.clone(),
            },
        )
        .await
        .unwrap();
    let reader = c
        .client()
        .client_credentials(&sp.tenant, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let cc = c.client();
    let (cc, reader, subr) = (&cc, reader.as_str(), sub.as_str());
    let reads = move || async move { cc.workspace(reader, subr, "mn", "mn-ws").await.is_ok() };
    assert!(
        time_until(PROPAGATION, reads).await.is_some(),
        "the assignment made on A does not grant on C within a second"
    );
    // B knows it too before it is deleted there (a node answers for what it has read).
    let cb = b.client();
    let cb = &cb;
    let on_b = move || async move { cb.workspace(reader, subr, "mn", "mn-ws").await.is_ok() };
    assert!(time_until(PROPAGATION, on_b).await.is_some(), "nor on B");
    b.client().delete_role_assignment(&admin, &assignment.name).await.unwrap();
    let denied = move || async move {
        matches!(cc.workspace(reader, subr, "mn", "mn-ws").await, Err(e) if e.status().map(|s| s.as_u16()) == Some(403))
    };
    let took =
        time_until(Duration::from_secs(10), denied).await.expect("still granted on C after 10 s");
    assert!(took < PROPAGATION, "C denied only after {took:?}");

    // A disabled principal gets no token from any node within a second.
    ca.set_service_principal_enabled(&admin, &sp.app_id, false).await.unwrap();
    for n in [b, c] {
        let cl = n.client();
        let (cl, spr) = (&cl, &sp);
        let refused = move || async move {
            cl.client_credentials(&spr.tenant, &spr.app_id, &spr.password, ARM_SCOPE).await.is_err()
        };
        let took = time_until(Duration::from_secs(10), refused).await.expect("still issued");
        assert!(took < PROPAGATION, "{} issued tokens to a disabled principal for {took:?}", n.url);
    }

    // A signing key rotated "on C" (`mlgate keys rotate` beside it) verifies on A: C signs
    // with the new key within a second, and A already publishes the new next key.
    let kid_of = claims_header_kid;
    let before = kid_of(&cluster.admin_token(2).await);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
        .args(["keys", "rotate", "--data-dir"])
        .arg(&cluster.data)
        .args(&cluster.store)
        .env("MLGATE_MASTER_KEY", &cluster.master)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = std::sync::Mutex::new(String::new());
    let (cl, fr, was) = (&cluster, &fresh, before.as_str());
    let took = time_until(Duration::from_secs(10), move || async move {
        let t = cl.admin_token(2).await;
        let rotated = kid_of(&t) != was;
        *fr.lock().unwrap() = t;
        rotated
    })
    .await
    .expect("C still signs with the old key after 10 s");
    assert!(took < PROPAGATION + Duration::from_millis(500), "C rotated after {took:?}");
    let token = fresh.lock().unwrap().clone();
    assert!(a.client().me(&token).await.is_ok(), "A does not verify C's new key");
    let jwks_kids = move || async move {
        let doc: serde_json::Value = reqwest::get(format!("{}/common/discovery/v2.0/keys", a.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["keys"].as_array().map_or(0, |k| k.len())
    };
    // active + next + the retired one: the new next key is published by A too.
    assert!(
        time_until(PROPAGATION, move || async move { jwks_kids().await >= 3 }).await.is_some(),
        "A does not publish the rotated key set within a second"
    );

    // Deleted on C: B and A stop serving it within a second.
    c.client().delete_service(&admin, &ws, "mn-svc").await.unwrap();
    let second = regen.secondary_key.as_str();
    for n in [a, b] {
        let took = time_until(Duration::from_secs(10), move || async move {
            score(n, "mn-svc", second).await == 404
        })
        .await
        .expect("still served 10 s after its deletion");
        assert!(took < PROPAGATION, "{} served a deleted service for {took:?}", n.url);
    }

    // A workspace that B and C have read (and remember) is deleted on A: both answer 404
    // within a second.
    for n in [b, c] {
        assert!(n.client().workspace(&admin, &sub, "mn", "mn-ws").await.is_ok());
    }
    ca.delete_workspace(&admin, &sub, "mn", "mn-ws").await.unwrap();
    for n in [b, c] {
        let cl = n.client();
        let (cl, adm, subr) = (&cl, admin.as_str(), sub.as_str());
        let gone = move || async move {
            matches!(cl.workspace(adm, subr, "mn", "mn-ws").await, Err(e) if e.status().map(|s| s.as_u16()) == Some(404))
        };
        let took = time_until(Duration::from_secs(10), gone).await.expect("still read after 10 s");
        assert!(took < PROPAGATION, "{} read a deleted workspace for {took:?}", n.url);
    }
}

/// A password grant at `node`; the status and the AADSTS code of a refusal.
async fn password_grant(node: &Node, username: &str, password: &str) -> (u16, u64) {
    let resp = reqwest::Client::new()
        .post(format!("{}/mlgate.local/oauth2/v2.0/token", node.url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", mlgate_proto::CLI_CLIENT_ID),
            ("username", username),
            ("password", password),
            ("scope", ARM_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    let code = if status == 200 {
        0
    } else {
        // The shape of Azure's error body; the code is what the test compares.
        let error = body["error"].as_str().unwrap_or_default().to_string();
        assert_oauth_error(&body, &error)
    };
    (status, code)
}

#[tokio::test]
async fn wrong_passwords_spread_over_nodes_lock_the_account_on_all() {
    let cluster = Cluster::start().await;
    // Ten wrong passwords, round robin over the three nodes: the store counts them together
    // (each node alone saw at most four, under the threshold of ten).
    for i in 0..10 {
        let (status, code) =
            password_grant(&cluster.nodes[i % 3], "victim@mlgate.local", "guess").await;
        assert_eq!((status, code), (400, 50126), "attempt {i}");
    }
    for n in &cluster.nodes {
        assert_eq!(
            password_grant(n, "victim@mlgate.local", "guess").await,
            (400, 50053),
            "{} does not know the account is locked",
            n.url
        );
    }
    // The administrator, signing in from the same address, is another account.
    assert_eq!(password_grant(&cluster.nodes[1], ADMIN, ADMIN_PASSWORD).await.0, 200);
}

fn claims_header_kid(token: &str) -> String {
    header(token)["kid"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_node_killed_under_load_fails_no_request_sent_to_the_others() {
    let mut cluster = Cluster::start().await;
    let admin = cluster.admin_token(0).await;
    let sp = cluster.nodes[0]
        .client()
        .create_service_principal(
            &admin,
            &CreateServicePrincipal { display_name: "mn-load".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let sp = Arc::new(sp);
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let ok_others = Arc::new(AtomicU64::new(0));
    let failed_others = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..6usize {
        let (urls, sp, stop) = (urls.clone(), sp.clone(), stop.clone());
        let (ok_others, failed_others) = (ok_others.clone(), failed_others.clone());
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let node = i % urls.len();
                i += 1;
                let resp = http
                    .post(format!("{}/{}/oauth2/v2.0/token", urls[node], sp.tenant))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", sp.app_id.as_str()),
                        ("client_secret", sp.password.as_str()),
                        ("scope", ARM_SCOPE),
                    ])
                    .send()
                    .await;
                if node == 0 {
                    continue; // A dies: its requests may fail.
                }
                match resp {
                    Ok(r) if r.status() == 200 => {
                        ok_others.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed_others.lock().unwrap().push(format!(
                        "{}: {}",
                        urls[node],
                        r.status()
                    )),
                    Err(e) => failed_others.lock().unwrap().push(format!("{}: {e}", urls[node])),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = ok_others.load(Ordering::Relaxed);
    // kill -9, not a graceful shutdown.
    let pid = cluster.nodes[0].child.id().unwrap();
    let killed =
        std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    cluster.nodes[0].child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let after = ok_others.load(Ordering::Relaxed);
    assert!(failed_others.lock().unwrap().is_empty(), "{:?}", failed_others.lock().unwrap());
    assert!(before > 0 && after > before, "B and C kept answering: {before} then {after}");
}

#[tokio::test]
async fn a_node_with_another_master_key_refuses_to_start() {
    let cluster = Cluster::start().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&cluster.data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--insecure-http"])
        .args(&cluster.store)
        .env("MLGATE_MASTER_KEY", MasterKey::generate_encoded())
        .env("MLGATE_LOG", "warn")
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(30), out).await.expect("it started").unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not the one this store was sealed with"), "{err}");
    assert!(!err.contains(&cluster.master), "the message never shows a key");
}

/// PostgreSQL only: with the store stopped, scoring and verification go on from memory and
/// issuing answers 503; after it returns, everything works again.
#[tokio::test]
async fn the_store_going_away_leaves_scoring_and_verification_running() {
    let (Ok(_), Ok(stop_cmd), Ok(start_cmd)) = (
        std::env::var("MLGATE_TEST_POSTGRES_URL"),
        std::env::var("MLGATE_TEST_POSTGRES_STOP"),
        std::env::var("MLGATE_TEST_POSTGRES_START"),
    ) else {
        eprintln!("skipped: needs MLGATE_TEST_POSTGRES_URL, _STOP and _START");
        return;
    };
    let cluster = Cluster::start().await;
    let admin = cluster.admin_token(0).await;
    let ca = cluster.nodes[0].client();
    let sub = ca.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    ca.put_resource_group(&admin, &sub, "out", None).await.unwrap();
    ca.put_workspace(&admin, &sub, "out", "out-ws", None).await.unwrap();
    let ws = WorkspaceAddress {
        subscription_id: sub,
        resource_group: "out".into(),
        workspace: "out-ws".into(),
    };
    let model = cluster.data.parent().unwrap().join("model.onnx");
    std::fs::write(&model, linear_regression_model(&[vec![1.0], vec![2.0], vec![3.0]], &[0.5]))
        .unwrap();
    ca.register_model_from_path(&admin, &ws, "linear", &model, "", Default::default())
        .await
        .unwrap();
    let req = DeployService {
        model: "linear:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: json!({"computeType": "instance", "auth_enabled": true}),
    };
    ca.deploy(&admin, &ws, "out-svc", &req).await.unwrap();
    ca.wait_for_deployment(&admin, &ws, "out-svc", Duration::from_secs(60), |_| {}).await.unwrap();
    let keys = ca.service_keys(&admin, &ws, "out-svc").await.unwrap();
    let k = keys.primary_key.as_str();
    for n in &cluster.nodes {
        let ok = time_until(Duration::from_secs(30), move || async move {
            score(n, "out-svc", k).await == 200
        });
        assert!(ok.await.is_some());
    }

    let sh = |cmd: &str| std::process::Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(sh(&stop_cmd).success());
    for n in &cluster.nodes {
        assert_eq!(score(n, "out-svc", &keys.primary_key).await, 200, "scoring from memory");
        assert_eq!(score(n, "out-svc", "wrong").await, 401);
        assert!(n.client().me(&admin).await.is_ok(), "verification from memory");
        let issued = reqwest::Client::new()
            .post(format!("{}/mlgate.local/oauth2/v2.0/token", n.url))
            .form(&[
                ("grant_type", "password"),
                ("client_id", mlgate_proto::CLI_CLIENT_ID),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
                ("scope", ARM_SCOPE),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 503, "issuing needs the store");
    }
    assert!(sh(&start_cmd).success());
    for n in &cluster.nodes {
        let back = time_until(Duration::from_secs(30), move || async move {
            n.client().password("mlgate.local", ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.is_ok()
        })
        .await;
        assert!(back.is_some(), "{} did not recover", n.url);
        assert_eq!(score(n, "out-svc", &keys.primary_key).await, 200);
    }
}
