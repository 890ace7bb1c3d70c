//! Issue 9's resource findings on the model and scoring paths, reproduced through real HTTP:
//! model uploads held whole in memory, an unbounded queue in front of a slow entry script,
//! and refusals that clients never saw (a broken HTTP/2 stream or a reset connection instead
//! of 401/413 when the request body was left unread).

use std::time::Duration;

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::DeployService;
use mlgate_serving::onnx::linear_regression_model;
use serde_json::json;

use crate::support::*;

async fn workspace(c: &mlgate_client::Client, admin: &str) -> WorkspaceAddress {
    let sub = c.subscriptions(admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(admin, &sub, "bounds", None).await.unwrap();
    c.put_workspace(admin, &sub, "bounds", "bounds-ws", None).await.unwrap();
    WorkspaceAddress {
        subscription_id: sub,
        resource_group: "bounds".into(),
        workspace: "bounds-ws".into(),
    }
}

#[tokio::test]
async fn model_uploads_stream_to_disk_instead_of_memory() {
    let p = ServeProcess::start(&[]).await;
    let admin = p.admin_token().await;
    let c = p.client();
    let ws = workspace(&c, &admin).await;
    const SIZE: usize = 128 * 1024 * 1024;
    // Three different files, uploaded at once: held in memory they would add 384 MiB.
    let files: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; SIZE]).collect();
    // Resident memory sampled while the uploads run (VmHWM is no use here: the kernel updates
    // it lazily, and it can read lower after the allocator returns memory).
    let before = p.status_kb("VmRSS");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), p.pid());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kb) =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    })
                {
                    peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let uploads = files.iter().map(|f| c.upload_blob(&admin, &ws, f.clone()));
    let shas: Vec<String> =
        futures_util::future::join_all(uploads).await.into_iter().map(Result::unwrap).collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let grown_mib = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 100,
        "the server's peak memory grew by {grown_mib} MiB for 384 MiB of uploads"
    );
    // What was stored is what was sent.
    let stored = p.dir.0.join("data/blobs/sha256").join(&shas[1][..2]).join(&shas[1]);
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), SIZE as u64);
    // A body that does not match its digest is refused and nothing stays behind.
    let wrong = "0".repeat(64);
    let resp = p
        .http()
        .put(format!(
            "{}/subscriptions/{}/resourceGroups/bounds/providers/Microsoft.MachineLearningServices/workspaces/bounds-ws/blobs/{wrong}",
            p.url, ws.subscription_id
        ))
        .bearer_auth(&admin)
        .body(vec![9u8; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!p.dir.0.join("data/blobs/sha256/00").join(&wrong).exists());
}

/// curl's answer to a scoring request: (exit code, status, headers).
async fn curl_score(
    s: &TestServer,
    uri: &str,
    http: &str,
    authorization: Option<&str>,
    body: &std::path::Path,
) -> (i32, u16, String) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", http, "-o", "/dev/null", "-D", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(&s.ca_file)
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()));
    if let Some(a) = authorization {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    let out = cmd.arg(uri).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    (out.status.code().unwrap_or(-1), status, text)
}

#[tokio::test]
async fn refusals_reach_the_client_on_http1_and_http2_whatever_the_body() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let ws = workspace(&c, &admin).await;
    let model = linear_regression_model(&[vec![1.0], vec![1.0]], &[0.0]);
    let dir = TempDir::new();
    std::fs::write(dir.0.join("m.onnx"), &model).unwrap();
    c.register_model_from_path(&admin, &ws, "lin", &dir.0.join("m.onnx"), "", Default::default())
        .await
        .unwrap();
    let req = DeployService {
        model: "lin:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: json!({"computeType": "cluster"}),
    };
    c.deploy(&admin, &ws, "keyed", &req).await.unwrap();
    let svc =
        c.wait_for_deployment(&admin, &ws, "keyed", Duration::from_secs(30), |_| {}).await.unwrap();
    let keys = c.service_keys(&admin, &ws, "keyed").await.unwrap();
    let small = dir.0.join("small.json");
    std::fs::write(&small, r#"{"data": [[1.0, 2.0]]}"#).unwrap();
    // 1.7 MB, as in the report: valid JSON, too big to sit in socket buffers.
    let large = dir.0.join("large.json");
    let row = "[1.0, 2.0],".repeat(170_000);
    std::fs::write(&large, format!(r#"{{"data": [{row}[1.0, 2.0]]}}"#)).unwrap();
    // Past the 8 MiB scoring limit.
    let huge = dir.0.join("huge.json");
    std::fs::write(&huge, vec![b' '; 9 * 1024 * 1024]).unwrap();
    let good = format!("Bearer {}", keys.primary_key);
    for http in ["--http1.1", "--http2"] {
        for body in [&small, &large] {
            for (auth, want) in
                [(None, 401), (Some("Bearer not-the-key"), 401), (Some(&*good), 200)]
            {
                let (rc, status, headers) =
                    curl_score(&s, &svc.scoring_uri, http, auth, body).await;
                let what = format!("{http} {} auth={}", body.display(), auth.is_some());
                assert_eq!((rc, status), (0, want), "{what}: {headers}");
                if want == 401 {
                    assert!(
                        headers.to_ascii_lowercase().contains("www-authenticate: bearer"),
                        "{what}: {headers}"
                    );
                }
            }
        }
        // Too large, with the right key: 413, delivered.
        let (rc, status, headers) =
            curl_score(&s, &svc.scoring_uri, http, Some(&good), &huge).await;
        assert_eq!((rc, status), (0, 413), "{http} huge: {headers}");
    }
    // A client that sends the whole body before reading (as Python's requests does).
    let resp = s
        .http()
        .post(&svc.scoring_uri)
        .header("authorization", "Bearer rotated-away")
        .header("content-type", "application/json")
        .body(std::fs::read(&large).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

const SLOW_PY: &str = r#"
import time

def init():
    pass

def run(raw):
    time.sleep(1.0)
    return "done"
"#;

#[tokio::test]
async fn a_slow_services_queue_is_bounded_and_answers_503_with_retry_after() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let ws = workspace(&c, &admin).await;
    let dir = TempDir::new();
    std::fs::write(dir.0.join("w.json"), "{}").unwrap();
    c.register_model_from_path(&admin, &ws, "slow", &dir.0.join("w.json"), "", Default::default())
        .await
        .unwrap();
    let sha = c.upload_blob(&admin, &ws, SLOW_PY.as_bytes().to_vec()).await.unwrap();
    let req = DeployService {
        model: "slow:1".into(),
        inference_config: json!({"runtime": "python", "entryScript": "score.py", "entryScriptSha256": sha}),
        deployment_config: json!({"computeType": "instance", "cpu_cores": 1, "maxQueueWaitMs": 300}),
    };
    c.deploy(&admin, &ws, "slow", &req).await.unwrap();
    let svc =
        c.wait_for_deployment(&admin, &ws, "slow", Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(svc.state, "Healthy");
    // One worker, a one-second run(): of 60 requests at once, one runs, 16 wait 300 ms and
    // give up, the rest are refused at the door. None waits longer than the queue allows.
    let http = s.http();
    let started = std::time::Instant::now();
    let requests = (0..60).map(|_| {
        let (http, uri) = (http.clone(), svc.scoring_uri.clone());
        async move {
            let t = std::time::Instant::now();
            let r = http.post(uri).json(&json!({})).send().await.unwrap();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry, t.elapsed())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(ok >= 1, "{answers:?}");
    assert_eq!(ok + busy.len(), 60, "{answers:?}");
    assert!(busy.len() >= 40, "{answers:?}");
    for (_, retry, waited) in &busy {
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(*waited < Duration::from_secs(3), "a refused request waited {waited:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // And once the crowd has gone, the service answers again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.score(&svc.scoring_uri, &json!({})).await.unwrap(), json!("done"));
}
