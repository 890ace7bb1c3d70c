//! The management API's read throughput with authorization on, against the same route with it
//! off, in one run: two servers in this process (plain HTTP, release build), loaded in turn by
//! `wrk` with `GET` of one workspace over keep-alive connections, rounds alternating.
//!
//! Run: `cargo bench -p mlgate-server --bench api_read` (needs `wrk`: `bench/setup.sh`).
//! Environment: ROUNDS (3), DURATION (10s), CONNS (32).

// A benchmark stops at the first failure; panicking is its error handling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

mod common;

struct Target {
    label: &'static str,
    url: String,
    token: String,
    path: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn start(label: &'static str, authorization: bool) -> Target {
    let dir = std::env::temp_dir().join(format!("mlgate-bench-{label}-{}", std::process::id()));
    let b = common::start(&dir, authorization).await;
    let (url, t, ws) = (b.url, b.token, b.workspace);
    Target {
        label,
        url,
        token: t,
        path: format!("{}?api-version=2024-04-01", ws.id),
        _dir: tempdir::Dir(dir),
    }
}

fn wrk(t: &Target, duration: &str, conns: &str) -> (f64, String) {
    let script = std::env::temp_dir().join(format!("mlgate-bench-{}.lua", std::process::id()));
    std::fs::write(&script, format!("wrk.headers[\"Authorization\"] = \"Bearer {}\"\n", t.token))
        .expect("lua");
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{conns}"), &format!("-d{duration}"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("{}{}", t.url, t.path))
        .output()
        .expect("wrk (install it with bench/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.contains("Non-2xx"), "{}: errors under load:\n{text}", t.label);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("wrk output");
    let p99 =
        text.lines().find(|l| l.trim_start().starts_with("99%")).unwrap_or("").trim().to_string();
    (rps, p99)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let duration = std::env::var("DURATION").unwrap_or_else(|_| "10s".into());
    let conns = std::env::var("CONNS").unwrap_or_else(|_| "32".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (on, off) =
        rt.block_on(async { (start("authz-on", true).await, start("authz-off", false).await) });
    // Warm-up.
    for t in [&on, &off] {
        wrk(t, "2s", &conns);
    }
    let (mut on_rps, mut off_rps) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 { [&on, &off] } else { [&off, &on] };
        for t in order {
            let (rps, p99) = wrk(t, &duration, &conns);
            println!("round {} {:<10} {rps:>10.0} req/s  p99 {p99}", round + 1, t.label);
            if t.label == "authz-on" { on_rps.push(rps) } else { off_rps.push(rps) }
        }
    }
    let (a, b) = (median(on_rps), median(off_rps));
    println!("median: authorization on {a:.0} req/s, off {b:.0} req/s, ratio on/off {:.3}", a / b);
    drop(rt);
}
