//! What the scoring gate adds to a scoring request, measured in process without HTTP (whose
//! noise on a shared 2-core machine is larger than the gate's cost): one server, one ONNX model
//! (64 -> 16) deployed three times with no auth, key auth and token auth; then, in alternating
//! batches, `ScoringGate::check` for each mode and `ServingHost::score` (the model's own work)
//! are timed. The report gives the median per call and the ratio score / (score + check), the
//! throughput a CPU-bound server keeps with that mode.
//!
//! Run: `cargo bench -p mlgate-server --bench scoring_gate`. Environment: BATCHES (40),
//! PER_BATCH (2000).

// A benchmark stops at the first failure; panicking is its error handling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::DeployService;
use serde_json::json;

mod common;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let batches: usize = std::env::var("BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let per: usize = std::env::var("PER_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("mlgate-bench-gate-{}", std::process::id()));
    let (state, key, token) = rt.block_on(async {
        let b = common::start(&dir, true).await;
        let (state, c, t, sub) = (b.state, b.client, b.token, b.subscription);
        let ws = WorkspaceAddress {
            subscription_id: sub,
            resource_group: "bench-rg".into(),
            workspace: "bench-ws".into(),
        };
        let weights: Vec<Vec<f32>> =
            (0..64).map(|i| (0..16).map(|j| ((i * 16 + j) % 7) as f32 / 7.0).collect()).collect();
        let model = dir.join("model.onnx");
        std::fs::write(&model, mlgate_serving::onnx::linear_regression_model(&weights, &[0.5; 16]))
            .expect("model");
        c.register_model_from_path(&t, &ws, "linear", &model, "", Default::default())
            .await
            .expect("register");
        for (name, dc) in [
            ("svc-none", json!({"computeType": "instance", "cpu_cores": 2})),
            ("svc-key", json!({"computeType": "instance", "cpu_cores": 2, "auth_enabled": true})),
            (
                "svc-token",
                json!({"computeType": "cluster", "cpu_cores": 2, "token_auth_enabled": true}),
            ),
        ] {
            let req = DeployService {
                model: "linear:1".into(),
                inference_config: json!({"runtime": "onnx"}),
                deployment_config: dc,
            };
            c.deploy(&t, &ws, name, &req).await.expect("deploy");
            let s = c
                .wait_for_deployment(&t, &ws, name, Duration::from_secs(60), |_| {})
                .await
                .expect("wait");
            assert_eq!(s.state, "Healthy");
        }
        let key = c.service_keys(&t, &ws, "svc-key").await.expect("keys").primary_key;
        let token = c.service_token(&t, &ws, "svc-token").await.expect("token").access_token;
        (state, format!("Bearer {key}"), format!("Bearer {token}"))
    });
    let gate = state.services.gate().clone();
    let input = json!({"data": [(0..64).map(|i| (i % 7) as f64 / 7.0).collect::<Vec<_>>()]});
    let cases: [(&str, &str, Option<&[u8]>); 3] = [
        ("none", "svc-none", None),
        ("key", "svc-key", Some(key.as_bytes())),
        ("token", "svc-token", Some(token.as_bytes())),
    ];
    for (_, svc, h) in cases {
        gate.check(svc, h).expect("the control credential passes");
    }
    let (mut checks, mut scores): (Vec<Vec<f64>>, Vec<f64>) = (vec![Vec::new(); 3], Vec::new());
    for b in 0..batches {
        for i in 0..3 {
            let (_, svc, h) = cases[(i + b) % 3];
            let t = Instant::now();
            for _ in 0..per {
                std::hint::black_box(gate.check(std::hint::black_box(svc), h)).unwrap();
            }
            checks[(i + b) % 3].push(t.elapsed().as_nanos() as f64 / per as f64);
        }
        let n = per / 10;
        let t = Instant::now();
        rt.block_on(async {
            for _ in 0..n {
                let admitted = state.serving.admit("svc-none", Some(300)).expect("admitted");
                let v = state.serving.score(admitted, input.clone()).await.expect("score");
                std::hint::black_box(v);
            }
        });
        scores.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let score = median(scores);
    println!(
        "scoring the model (ServingHost::admit + score, 64->16, one row): {:>9.0} ns/request",
        score
    );
    for (i, (label, _, _)) in cases.iter().enumerate() {
        let c = median(checks[i].clone());
        println!(
            "gate check, {label:<5}: {c:>9.0} ns/request   score/(score+check) = {:.4}",
            score / (score + c)
        );
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
