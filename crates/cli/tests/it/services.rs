//! Models as web services: deploy a generated ONNX model, score it, update it under load,
//! watch failures stay contained, restart the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mlgate_client::Client;
use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::{CreateRoleAssignment, DeployService};
use mlgate_serving::onnx::linear_regression_model;
use serde_json::{Value, json};

use crate::support::*;

async fn setup(s: &TestServer) -> (String, WorkspaceAddress, String) {
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "serve", None).await.unwrap();
    let ws = c.put_workspace(&admin, &sub, "serve", "serve-ws", None).await.unwrap();
    (
        admin,
        WorkspaceAddress {
            subscription_id: sub,
            resource_group: "serve".into(),
            workspace: "serve-ws".into(),
        },
        ws.id,
    )
}

async fn register(c: &Client, token: &str, ws: &WorkspaceAddress, name: &str, bytes: &[u8]) -> i64 {
    let dir = TempDir::new();
    let file = dir.0.join("model.onnx");
    std::fs::write(&file, bytes).unwrap();
    c.register_model_from_path(token, ws, name, &file, "", Default::default())
        .await
        .unwrap()
        .version
}

fn deploy_req(model: &str, dc: Value) -> DeployService {
    DeployService {
        model: model.into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: dc,
    }
}

async fn deploy(
    c: &Client,
    token: &str,
    ws: &WorkspaceAddress,
    name: &str,
    model: &str,
) -> mlgate_proto::Service {
    let started = c
        .deploy(
            token,
            ws,
            name,
            &deploy_req(model, json!({"computeType": "instance", "cpu_cores": 2})),
        )
        .await
        .unwrap();
    assert_eq!(started.state, "Transitioning");
    c.wait_for_deployment(token, ws, name, Duration::from_secs(30), |_| {}).await.unwrap()
}

#[tokio::test]
async fn deploy_score_update_without_failures_and_restart() {
    let s = TestServer::start().await;
    let (admin, ws, _) = setup(&s).await;
    let c = s.client();
    let v1 = linear_regression_model(&[vec![1.0], vec![2.0], vec![3.0]], &[0.5]);
    assert_eq!(register(&c, &admin, &ws, "linear", &v1).await, 1);
    let svc = deploy(&c, &admin, &ws, "linear-svc", "linear:1").await;
    assert_eq!(svc.state, "Healthy", "{svc:?}");
    assert_eq!(svc.scoring_uri, format!("{}/api/v1/service/linear-svc/score", s.url));
    let out = c
        .score(&svc.scoring_uri, &json!({"data": [[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]]}))
        .await
        .unwrap();
    assert_eq!(out, json!({"result": [[6.5], [6.5]]}));
    let logs = c.service_logs(&admin, &ws, "linear-svc").await.unwrap();
    assert!(logs.iter().any(|l| l.contains("Service state: Healthy")), "{logs:?}");

    // Update to version 2 while a client keeps scoring: no request fails.
    let v2 = linear_regression_model(&[vec![10.0], vec![0.0], vec![0.0]], &[0.0]);
    assert_eq!(register(&c, &admin, &ws, "linear", &v2).await, 2);
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scorer = {
        let (c, uri, failures, done) =
            (c.clone(), svc.scoring_uri.clone(), failures.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                if c.score(&uri, &json!({"data": [[1.0, 1.0, 1.0]]})).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let updated =
        c.deploy(&admin, &ws, "linear-svc", &deploy_req("linear:2", json!({}))).await.unwrap();
    assert_eq!(updated.model, "linear:2");
    c.wait_for_deployment(&admin, &ws, "linear-svc", Duration::from_secs(30), |_| {})
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, Ordering::Relaxed);
    let requests = scorer.await.unwrap();
    assert!(requests > 10, "the client kept scoring ({requests} requests)");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no request failed during the update");
    let out = c.score(&svc.scoring_uri, &json!({"data": [[1.0, 1.0, 1.0]]})).await.unwrap();
    assert_eq!(out, json!({"result": [[10.0]]}), "the new version answers");

    // A restart brings the service back.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let c = s.client();
    let admin = s.admin_token().await;
    let back = c
        .wait_for_deployment(&admin, &ws, "linear-svc", Duration::from_secs(30), |_| {})
        .await
        .unwrap();
    assert_eq!(back.state, "Healthy");
    let uri = format!("{}/api/v1/service/linear-svc/score", s.url);
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(v) = c.score(&uri, &json!({"data": [[1.0, 1.0, 1.0]]})).await {
            answer = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, Some(json!({"result": [[10.0]]})));
}

#[tokio::test]
async fn bad_requests_and_broken_models_stay_contained() {
    let s = TestServer::start().await;
    let (admin, ws, ws_id) = setup(&s).await;
    let c = s.client();
    register(&c, &admin, &ws, "good", &linear_regression_model(&[vec![1.0], vec![1.0]], &[0.0]))
        .await;
    let good = deploy(&c, &admin, &ws, "good-svc", "good:1").await;
    assert_eq!(good.state, "Healthy");

    // A corrupt model file: the deployment ends Failed, with the reason in the logs.
    register(&c, &admin, &ws, "broken", b"this is not an onnx model").await;
    let broken = deploy(&c, &admin, &ws, "broken-svc", "broken:1").await;
    assert_eq!(broken.state, "Failed");
    assert!(broken.error.as_deref().unwrap_or_default().contains("cannot be loaded"), "{broken:?}");
    let logs = c.service_logs(&admin, &ws, "broken-svc").await.unwrap();
    assert!(logs.iter().any(|l| l.contains("Deployment failed")), "{logs:?}");

    let http = s.http();
    let post = |uri: String, body: Vec<u8>| {
        let http = http.clone();
        async move {
            let r = http
                .post(uri)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let uri = good.scoring_uri.clone();
    assert_eq!(post(uri.clone(), b"{not json".to_vec()).await.0, 400);
    let (st, body) = post(uri.clone(), br#"{"data": [[1.0, 2.0, 3.0]]}"#.to_vec()).await;
    assert_eq!(st, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("dimension 1 must be 2"), "{body}");
    assert_eq!(post(uri.clone(), vec![b' '; 9 * 1024 * 1024]).await.0, 413);
    assert_eq!(post(format!("{}/api/v1/service/nope/score", s.url), b"{}".to_vec()).await.0, 404);
    assert_eq!(post(broken.scoring_uri.clone(), br#"{"data": [[1.0]]}"#.to_vec()).await.0, 404);
    // The good service kept serving throughout.
    assert_eq!(
        c.score(&uri, &json!({"data": [[2.0, 3.0]]})).await.unwrap(),
        json!({"result": [[5.0]]})
    );

    // Bad deployment requests.
    let bad = |model: &str, ic: Value, dc: Value| DeployService {
        model: model.into(),
        inference_config: ic,
        deployment_config: dc,
    };
    for (name, req) in [
        ("Bad_Name", bad("good:1", json!({"runtime": "onnx"}), json!({}))),
        ("svc-x", bad("good:9", json!({"runtime": "onnx"}), json!({}))),
        ("svc-x", bad("good", json!({"runtime": "onnx"}), json!({}))),
        ("svc-x", bad("good:1", json!({"runtime": "tensorflow"}), json!({}))),
        (
            "svc-x",
            bad(
                "good:1",
                json!({"runtime": "onnx"}),
                json!({"computeType": "instance", "replicas": 3}),
            ),
        ),
    ] {
        let err = c.deploy(&admin, &ws, name, &req).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{name} {req:?}");
    }

    // A Reader cannot deploy, but can read the service.
    let sp = s.create_sp("reader").await;
    c.create_role_assignment(
        &admin,
        &CreateRoleAssignment { assignee: sp.app_id.clone(), role: "Reader".into(), scope: ws_id },
    )
    .await
    .unwrap();
    let rt = c
        .client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    assert_eq!(
        c.deploy(&rt, &ws, "reader-svc", &bad("good:1", json!({"runtime": "onnx"}), json!({})))
            .await
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(403)
    );
    assert_eq!(c.service(&rt, &ws, "good-svc").await.unwrap().state, "Healthy");
    assert_eq!(c.services(&admin, &ws).await.unwrap().len(), 2);

    // Deleting stops scoring at once.
    c.delete_service(&admin, &ws, "good-svc").await.unwrap();
    assert_eq!(post(uri, br#"{"data": [[1.0, 1.0]]}"#.to_vec()).await.0, 404);
}

const SCORE_PY: &str = r#"
import json, os

model = None

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "coef.json")) as f:
        model = json.load(f)
    print("init done, coefficients loaded")

def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == "crash":
        os._exit(1)
    if data == "boom":
        raise ValueError("boom")
    if data == "pid":
        return os.getpid()
    return [sum(c * x for c, x in zip(model["coef"], row)) + model["bias"] for row in data]
"#;

/// Writes a minimal wheel (one module, `VALUE = "probe 1.0"`) to argv[1].
const MAKE_WHEEL: &str = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("mlgate_probe/__init__.py", 'VALUE = "probe 1.0"\n')
    z.writestr("mlgate_probe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: mlgate-probe\nVersion: 1.0\n")
    z.writestr("mlgate_probe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: mlgate-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("mlgate_probe-1.0.dist-info/RECORD", "")
"#;

#[tokio::test]
async fn score_py_entry_scripts_run_in_long_lived_workers() {
    // The test's folder is the server's wheelhouse: pip may install the wheel made there.
    let dir = TempDir::new();
    let wheelhouse = dir.0.clone();
    let s = TestServer::start_with(TempDir::new(), |c| c.wheelhouses = vec![wheelhouse]).await;
    let (admin, ws, _) = setup(&s).await;
    let c = s.client();
    std::fs::create_dir_all(dir.0.join("model")).unwrap();
    std::fs::write(dir.0.join("model/coef.json"), r#"{"coef": [1.0, 2.0], "bias": 0.5}"#).unwrap();
    c.register_model_from_path(&admin, &ws, "coef", &dir.0.join("model"), "", Default::default())
        .await
        .unwrap();
    std::fs::write(dir.0.join("score.py"), SCORE_PY).unwrap();
    std::fs::write(dir.0.join("ic.json"), r#"{"runtime": "python", "entryScript": "score.py"}"#)
        .unwrap();
    std::fs::write(
        dir.0.join("dc.json"),
        r#"{"computeType": "instance", "cpu_cores": 1, "memory_gb": 1}"#,
    )
    .unwrap();

    // Deployed through the CLI, which uploads the entry script and waits with progress.
    let cli = |args: Vec<String>| {
        let (url, ca, cfg) = (s.url.clone(), s.ca_file.clone(), dir.0.join("cli"));
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
                .args(&args)
                .env("MLGATE_CONFIG_DIR", cfg)
                .env("MLGATE_SERVER", url)
                .env("MLGATE_CA_FILE", ca)
                .output()
                .await
                .unwrap()
        }
    };
    let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(cli(args(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD])).await.status.success());
    let d = dir.0.to_str().unwrap().to_string();
    let ic = format!("{d}/ic.json");
    let dc = format!("{d}/dc.json");
    let out = cli(args(&[
        "ml", "model", "deploy", "-n", "py-svc", "-m", "coef:1", "--ic", &ic, "--dc", &dc, "-w",
        "serve-ws", "-g", "serve",
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("py-svc deployment: Healthy"), "{stderr}");
    let svc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = svc["scoringUri"].as_str().unwrap().to_string();

    assert_eq!(
        c.score(&uri, &json!({"data": [[1.0, 1.0], [2.0, 0.0]]})).await.unwrap(),
        json!([3.5, 2.5])
    );
    let scored = cli(args(&[
        "ml",
        "service",
        "score",
        "-n",
        "py-svc",
        "--input-data",
        r#"{"data": [[3.0, 0.0]]}"#,
        "-w",
        "serve-ws",
        "-g",
        "serve",
    ]))
    .await;
    assert!(scored.status.success(), "{}", String::from_utf8_lossy(&scored.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&scored.stdout).unwrap(),
        json!([3.5]),
        "via the CLI"
    );
    // run() raising: 500, the traceback in the logs, and the worker goes on.
    let err = c.score(&uri, &json!({"data": "boom"})).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(c.score(&uri, &json!({"data": [[0.0, 1.0]]})).await.unwrap(), json!([2.5]));
    // The worker crashing: that request is 503, the worker is restarted, scoring resumes.
    let err = c.score(&uri, &json!({"data": "crash"})).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    let mut back = None;
    for _ in 0..100 {
        if let Ok(v) = c.score(&uri, &json!({"data": [[1.0, 0.0]]})).await {
            back = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back, Some(json!([1.5])));
    let logs =
        cli(args(&["ml", "service", "get-logs", "-n", "py-svc", "-w", "serve-ws", "-g", "serve"]))
            .await;
    let logs = String::from_utf8_lossy(&logs.stdout).to_string();
    for expected in ["init done", "ValueError: boom", "worker restarted"] {
        assert!(logs.contains(expected), "{expected} missing from:\n{logs}");
    }

    // A failing init() ends in Failed with its traceback.
    std::fs::write(
        dir.0.join("score.py"),
        "def init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    return 1\n",
    )
    .unwrap();
    let out = cli(args(&[
        "ml", "model", "deploy", "-n", "bad-init", "-m", "coef:1", "--ic", &ic, "--dc", &dc, "-w",
        "serve-ws", "-g", "serve",
    ]))
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Failed") && stderr.contains("RuntimeError: no model here"),
        "{stderr}"
    );
    let svc = c.service(&admin, &ws, "bad-init").await.unwrap();
    assert_eq!(svc.state, "Failed");
    assert!(svc.error.unwrap().contains("Traceback"));
    // The first service kept serving.
    assert_eq!(c.score(&uri, &json!({"data": [[1.0, 1.0]]})).await.unwrap(), json!([3.5]));

    // Requirements installed at deploy time into a virtualenv: a wheel made here (so no
    // network is needed), named in a requirements file next to the inference configuration.
    let wheel = dir.0.join("mlgate_probe-1.0-py3-none-any.whl");
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(MAKE_WHEEL)
        .arg(&wheel)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(dir.0.join("requirements.txt"), format!("# the probe\n{}\n", wheel.display()))
        .unwrap();
    std::fs::write(
        dir.0.join("score_reqs.py"),
        "import mlgate_probe\n\ndef init():\n    pass\n\ndef run(raw):\n    return mlgate_probe.VALUE\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("ic_reqs.json"),
        r#"{"runtime": "python", "entryScript": "score_reqs.py", "requirementsFile": "requirements.txt"}"#,
    )
    .unwrap();
    let ic_reqs = format!("{d}/ic_reqs.json");
    let out = cli(args(&[
        "ml", "model", "deploy", "-n", "py-reqs", "-m", "coef:1", "--ic", &ic_reqs, "--dc", &dc,
        "-w", "serve-ws", "-g", "serve",
    ]))
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ruri = format!("{}/api/v1/service/py-reqs/score", s.url);
    assert_eq!(c.score(&ruri, &json!({})).await.unwrap(), json!("probe 1.0"));
    let logs = c.service_logs(&admin, &ws, "py-reqs").await.unwrap().join("\n");
    assert!(logs.contains("Installing 1 requirement(s)"), "{logs}");
    // A requirement pip cannot install: Failed, with pip's complaint in the logs.
    std::fs::write(dir.0.join("requirements.txt"), "/nonexistent/nothing-1.0-py3-none-any.whl\n")
        .unwrap();
    let out = cli(args(&[
        "ml",
        "model",
        "deploy",
        "-n",
        "py-badreqs",
        "-m",
        "coef:1",
        "--ic",
        &ic_reqs,
        "--dc",
        &dc,
        "-w",
        "serve-ws",
        "-g",
        "serve",
    ]))
    .await;
    assert!(!out.status.success());
    let svc = c.service(&admin, &ws, "py-badreqs").await.unwrap();
    assert_eq!(svc.state, "Failed");
    assert!(svc.error.unwrap().contains("pip install failed"));
    assert_eq!(c.score(&ruri, &json!({})).await.unwrap(), json!("probe 1.0"), "others serve on");

    // A service's own interpreter, by absolute path; a missing one fails the deployment.
    std::fs::write(dir.0.join("score.py"), SCORE_PY).unwrap();
    let exe = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let exe = String::from_utf8(exe.stdout).unwrap().trim().to_string();
    for (name, interpreter, healthy) in
        [("py-own", exe.as_str(), true), ("py-noexe", "/nonexistent/bin/python", false)]
    {
        let ic = json!({"runtime": "python", "entryScript": "score.py", "pythonInterpreter": interpreter});
        std::fs::write(dir.0.join("ic_own.json"), ic.to_string()).unwrap();
        let out = cli(args(&[
            "ml",
            "model",
            "deploy",
            "-n",
            name,
            "-m",
            "coef:1",
            "--ic",
            &format!("{d}/ic_own.json"),
            "--dc",
            &dc,
            "-w",
            "serve-ws",
            "-g",
            "serve",
        ]))
        .await;
        assert_eq!(out.status.success(), healthy, "{}", String::from_utf8_lossy(&out.stderr));
    }
    let err = c.service(&admin, &ws, "py-noexe").await.unwrap().error.unwrap();
    assert!(err.contains("/nonexistent/bin/python does not exist"), "{err}");

    // A cluster: three replicas of one worker each behind the balancer. Requests rotate over
    // three worker processes; a crash in one replica leaves the other two serving at once.
    std::fs::write(dir.0.join("score.py"), SCORE_PY).unwrap();
    std::fs::write(
        dir.0.join("cluster.json"),
        r#"{"computeType": "cluster", "replicas": 3, "cpu_cores": 1, "auth_enabled": false}"#,
    )
    .unwrap();
    let cdc = format!("{d}/cluster.json");
    let out = cli(args(&[
        "ml",
        "model",
        "deploy",
        "-n",
        "py-cluster",
        "-m",
        "coef:1",
        "--ic",
        &ic,
        "--dc",
        &cdc,
        "-w",
        "serve-ws",
        "-g",
        "serve",
    ]))
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let curi = format!("{}/api/v1/service/py-cluster/score", s.url);
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..9 {
        pids.insert(c.score(&curi, &json!({"data": "pid"})).await.unwrap().as_i64().unwrap());
    }
    assert_eq!(pids.len(), 3, "three replicas took turns: {pids:?}");
    let err = c.score(&curi, &json!({"data": "crash"})).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    for _ in 0..6 {
        assert_eq!(
            c.score(&curi, &json!({"data": [[1.0, 1.0]]})).await.unwrap(),
            json!([3.5]),
            "the other replicas serve while one restarts"
        );
    }
}
