//! `/metrics`: a Prometheus text-format parser reads the scrape, and the counters move as the
//! test drives tokens, sign-in failures and scoring. The main listener needs the bearer token;
//! the separate metrics listener serves the same text; without a token the main listener has
//! no `/metrics`. The Grafana dashboard only names metrics the server exposes.

use std::time::Duration;

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::DeployService;
use mlgate_serving::onnx::linear_regression_model;
use serde_json::json;

use crate::support::*;

const TOKEN: &str = "metrics-test-token-0123456789";

/// Registers a tiny ONNX model in a new workspace and deploys it as `name` (`dc`: the
/// deployment configuration); returns the workspace's address and ARM id.
pub async fn onnx_service(
    s: &TestServer,
    group: &str,
    name: &str,
    dc: serde_json::Value,
) -> (WorkspaceAddress, String) {
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, group, None).await.unwrap();
    let ws_name = format!("{group}-ws");
    let ws_id = c.put_workspace(&admin, &sub, group, &ws_name, None).await.unwrap().id;
    let ws =
        WorkspaceAddress { subscription_id: sub, resource_group: group.into(), workspace: ws_name };
    let dir = TempDir::new();
    let model = dir.0.join("model.onnx");
    std::fs::write(&model, linear_regression_model(&[vec![1.0], vec![2.0], vec![3.0]], &[0.5]))
        .unwrap();
    c.register_model_from_path(&admin, &ws, "linear", &model, "", Default::default())
        .await
        .unwrap();
    let req = DeployService {
        model: "linear:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: dc,
    };
    c.deploy(&admin, &ws, name, &req).await.unwrap();
    c.wait_for_deployment(&admin, &ws, name, Duration::from_secs(30), |_| {}).await.unwrap();
    (ws, ws_id)
}

/// One line of the scrape: its series name (a histogram's with `_bucket`, `_sum`, `_count`),
/// labels and value.
struct Sample {
    metric: String,
    family: String,
    labels: std::collections::HashMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    use prom_text_format_parser::{Scrape, Type, ValueType};
    let scrape = Scrape::parse(text).expect("the scrape parses as Prometheus text");
    let mut out = Vec::new();
    for m in scrape.metrics {
        for s in m.samples {
            let suffix = match (m.kind, s.value.value_type) {
                (Type::Histogram, ValueType::Sample) => "_bucket",
                (Type::Histogram, ValueType::Sum) => "_sum",
                (Type::Histogram, ValueType::Count) => "_count",
                _ => "",
            };
            out.push(Sample {
                metric: format!("{}{suffix}", m.name),
                family: m.name.clone(),
                labels: s.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect(),
                value: s.value.value.as_f64(),
            });
        }
    }
    out
}

fn matching<'a>(
    samples: &'a [Sample],
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> {
    samples.iter().filter(move |s| {
        s.metric == name
            && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// The sum of the values of series `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(samples, name, labels).map(|s| s.value).sum()
}

/// The observation count of histogram `name` with `labels`.
fn histogram_count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> u64 {
    value(samples, &format!("{name}_count"), labels) as u64
}

async fn scrape(s: &TestServer) -> Vec<Sample> {
    let resp = s.http().get(format!("{}/metrics", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    if std::env::var_os("MLGATE_TEST_DUMP_METRICS").is_some() {
        eprintln!("{text}");
    }
    parse(&text)
}

#[tokio::test]
async fn counters_move_with_traffic_and_the_scrape_needs_the_token() {
    let dir = TempDir::new();
    let s = TestServer::start_with(dir, |c| {
        c.metrics_token = Some(mlgate_server::metrics::MetricsToken::new(TOKEN).unwrap());
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;

    // No token, a wrong token: 401 with a challenge, and nothing of the text.
    for auth in [None, Some("Bearer metrics-test-token-012345678X")] {
        let mut req = s.http().get(format!("{}/metrics", s.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        assert!(!resp.text().await.unwrap().contains("mlgate_"));
    }

    let before = scrape(&s).await;
    let ok = |m: &[Sample]| {
        value(
            m,
            "mlgate_token_requests_total",
            &[("grant_type", "client_credentials"), ("result", "success")],
        )
    };
    let bad_client = |m: &[Sample]| {
        value(
            m,
            "mlgate_token_requests_total",
            &[("grant_type", "client_credentials"), ("result", "invalid_client")],
        )
    };

    let sp = s.create_sp("metrics-sp").await;
    for _ in 0..3 {
        let (status, _) = s.client_credentials_grant(&sp.app_id, &sp.password).await;
        assert_eq!(status, 200);
    }
    let (status, _) = s.client_credentials_grant(&sp.app_id, "wrong-secret").await;
    assert_eq!(status, 401);
    let (status, _) = s
        .post_token(
            true,
            &[
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", "not-the-password"),
                ("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
                ("scope", ARM_SCOPE),
            ],
        )
        .await;
    assert_eq!(status, 400);

    // A service, scored twice; a name that is not a service, scored once.
    onnx_service(&s, "metrics", "metrics-svc", json!({"computeType": "instance"})).await;
    let uri = format!("{}/api/v1/service/metrics-svc/score", s.url);
    for _ in 0..2 {
        let r = s.http().post(&uri).json(&json!({"data": [[1.0, 1.0, 1.0]]})).send().await;
        assert_eq!(r.unwrap().status(), 200);
    }
    let r = s
        .http()
        .post(format!("{}/api/v1/service/no-such-svc-x1/score", s.url))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(r.unwrap().status(), 404);

    let after = scrape(&s).await;
    assert_eq!(ok(&after) - ok(&before), 3.0);
    assert_eq!(bad_client(&after) - bad_client(&before), 1.0);
    assert_eq!(
        value(
            &after,
            "mlgate_token_requests_total",
            &[("grant_type", "password"), ("result", "invalid_grant")]
        ),
        1.0
    );
    assert_eq!(value(&after, "mlgate_sign_in_failures_total", &[("kind", "client_secret")]), 1.0);
    assert_eq!(value(&after, "mlgate_sign_in_failures_total", &[("kind", "password")]), 1.0);

    // Requests by route template (never the raw path), method and status, with latencies.
    let token_route = [("route", "/{tenant}/oauth2/v2.0/token"), ("method", "POST")];
    let route_ok = [token_route[0], token_route[1], ("status", "200")];
    assert!(value(&after, "mlgate_http_requests_total", &route_ok) >= 3.0);
    assert!(histogram_count(&after, "mlgate_http_request_duration_seconds", &token_route) >= 4);
    assert!(!after.iter().any(|x| x.labels.get("route").is_some_and(|r| r.contains(&s.tenant_id))));
    // The buckets are cumulative and end with +Inf, equal to the count.
    let inf = [token_route[0], token_route[1], ("le", "+Inf")];
    assert_eq!(
        value(&after, "mlgate_http_request_duration_seconds_bucket", &inf),
        value(&after, "mlgate_http_request_duration_seconds_count", &token_route)
    );
    assert!(
        !after.iter().any(|x| x
            .labels
            .values()
            .any(|v| v.contains("no-such-svc") || v.contains(&sp.app_id)))
    );

    // Scoring by service and status, the unknown name folded away; replicas and queue.
    let svc = [("service", "metrics-svc"), ("status", "200")];
    assert_eq!(value(&after, "mlgate_scoring_requests_total", &svc), 2.0);
    assert_eq!(
        value(
            &after,
            "mlgate_scoring_requests_total",
            &[("service", "<unknown>"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(histogram_count(&after, "mlgate_scoring_duration_seconds", &[svc[0]]), 2);
    assert_eq!(value(&after, "mlgate_service_replicas_healthy", &[svc[0]]), 1.0);
    assert_eq!(value(&after, "mlgate_service_replicas", &[svc[0]]), 1.0);
    assert_eq!(value(&after, "mlgate_scoring_queue_depth", &[svc[0]]), 0.0);
    assert!(value(&after, "mlgate_scoring_queue_capacity", &[svc[0]]) >= 1.0);

    // The store's latency, memory, connections.
    assert!(
        histogram_count(
            &after,
            "mlgate_store_operation_duration_seconds",
            &[("operation", "read")]
        ) > 0
    );
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&after, "mlgate_open_connections", &[]) >= 1.0);
    assert!(value(&after, "mlgate_max_connections", &[]) >= 16.0);

    // Every metric the server has is in the published list, and the other way round.
    let names: std::collections::BTreeSet<&str> = after.iter().map(|s| s.family.as_str()).collect();
    for n in &names {
        assert!(mlgate_server::metrics::METRIC_NAMES.contains(n), "{n} is not listed");
    }
    for n in mlgate_server::metrics::METRIC_NAMES {
        assert!(names.contains(n), "{n} is listed but was not scraped");
    }

    // The separate listener: plain HTTP, the same text, and it wants the token too.
    let murl = s.metrics_url.clone().expect("a metrics listener");
    let plain = reqwest::Client::new();
    assert_eq!(plain.get(format!("{murl}/metrics")).send().await.unwrap().status(), 401);
    let resp = plain.get(format!("{murl}/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let side = parse(&resp.text().await.unwrap());
    assert_eq!(ok(&side), ok(&after));
    assert_eq!(plain.get(format!("{murl}/healthz")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn without_a_token_the_main_listener_has_no_metrics() {
    let s = TestServer::start().await;
    let resp = s.http().get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // A separate listener without a token serves the text to whoever reaches it.
    let dir = TempDir::new();
    let s2 = TestServer::start_with(dir, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let murl = s2.metrics_url.clone().unwrap();
    let resp = reqwest::get(format!("{murl}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let samples = parse(&resp.text().await.unwrap());
    assert!(value(&samples, "mlgate_max_connections", &[]) >= 16.0);
    assert_eq!(s2.http().get(format!("{}/metrics", s2.url)).send().await.unwrap().status(), 404);
}

#[test]
fn the_grafana_dashboard_reads_only_exposed_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/mlgate.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "expr"
                        && let Some(e) = v.as_str()
                    {
                        out.push(e.to_string());
                    }
                    walk(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "the dashboard has {} queries", exprs.len());
    let known = mlgate_server::metrics::METRIC_NAMES;
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        // Metric names: identifiers starting `mlgate_` or `process_`; histogram series add
        // `_bucket`, `_sum` or `_count` to the family's name.
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !(word.starts_with("mlgate_") || word.starts_with("process_")) {
                continue;
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix).filter(|f| known.contains(f)))
                .unwrap_or(word);
            assert!(known.contains(&family), "the dashboard uses {word}, which is not exposed");
            used.insert(family.to_string());
        }
    }
    // The dashboard covers the important families.
    for must in [
        "mlgate_http_requests_total",
        "mlgate_token_requests_total",
        "mlgate_scoring_requests_total",
        "mlgate_scoring_queue_depth",
        "mlgate_store_operation_duration_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(must), "the dashboard does not show {must}");
    }
}
