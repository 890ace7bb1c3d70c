//! Interactive sign-in for `mlgate login`: the browser with a loopback redirect and PKCE (as
//! `az login` does), or the device code when no browser is available.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_client::Client;
use mlgate_core::secrets::{random_bytes, sha256};
use mlgate_proto::TokenResponse;
use tokio::sync::oneshot;

/// How long the CLI waits for the browser to come back.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// Is there a way to open a browser here?
pub fn browser_available() -> bool {
    std::env::var_os("BROWSER").is_some()
        || ((std::env::var_os("DISPLAY").is_some()
            || std::env::var_os("WAYLAND_DISPLAY").is_some())
            && which("xdg-open"))
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn open_browser(url: &str) -> bool {
    let program = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

pub async fn device_code(client: &Client, tenant: &str, scope: &str) -> Result<TokenResponse> {
    let device = client.device_code(tenant, scope).await?;
    // The same words as `az login --use-device-code`, on stderr so stdout stays JSON.
    eprintln!("{}", device.message);
    Ok(client.wait_for_device_code(tenant, &device).await?)
}

/// The page the browser lands on back at the loopback address, in the sign-in pages' layout.
fn done_page() -> String {
    mlgate_server::web::pages::document(
        "Signed in",
        "<h1>You have signed in</h1><div class=\"ok\">The command line has your sign-in.</div>\
         <p>You can close this page and return to the terminal.</p>",
        "mlgate command-line sign-in",
    )
}

pub async fn browser(client: &Client, tenant: &str, scope: &str) -> Result<TokenResponse> {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.context("opening a loopback port")?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://localhost:{port}");
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    let state = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
    let nonce = URL_SAFE_NO_PAD.encode(random_bytes::<16>());

    let (tx, rx) = oneshot::channel::<HashMap<String, String>>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let app = Router::new().route(
        "/",
        get(move |Query(q): Query<HashMap<String, String>>| {
            let tx = tx.clone();
            async move {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(q);
                }
                Html(done_page())
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let query: String = form_pairs(&[
        ("client_id", mlgate_proto::CLI_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", &redirect_uri),
        ("scope", scope),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("prompt", "select_account"),
    ]);
    let url = format!("{}/{tenant}/oauth2/v2.0/authorize?{query}", client.base_url());
    if !open_browser(&url) {
        server.abort();
        bail!("could not open a browser; run 'mlgate login --use-device-code'");
    }
    eprintln!(
        "A web browser has been opened at {}/{tenant}/oauth2/v2.0/authorize. Please continue the \
         login in the web browser. If no web browser is available or if the web browser fails to \
         open, use device code flow with `mlgate login --use-device-code`.",
        client.base_url()
    );
    let answer = tokio::time::timeout(BROWSER_TIMEOUT, rx).await;
    server.abort();
    let q = answer
        .context("timed out waiting for the browser sign-in")?
        .context("the sign-in listener stopped")?;
    if let Some(e) = q.get("error") {
        bail!(
            "sign-in failed: {e}: {}",
            q.get("error_description").map(String::as_str).unwrap_or("")
        );
    }
    if q.get("state") != Some(&state) {
        bail!("the browser came back with a different 'state'; the sign-in was not completed");
    }
    let code = q.get("code").context("the browser came back without a code")?;
    Ok(client.authorization_code(tenant, code, &redirect_uri, &verifier, scope).await?)
}

fn form_pairs(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
