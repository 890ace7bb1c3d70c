//! What the server benchmarks share: a plain-HTTP server in this process with a known admin
//! password, signed in, with resource group `bench-rg` and workspace `bench-ws`.

use std::path::Path;
use std::sync::Arc;

use mlgate_client::Client;
use mlgate_core::clock::SystemClock;
use mlgate_proto::Workspace;
use mlgate_server::state::AppState;
use mlgate_server::{Server, ServerConfig, TlsMode};

pub const PASSWORD: &str = "bench-password-123";

// Each benchmark uses some of the fields.
#[allow(dead_code)]
pub struct Bench {
    pub url: String,
    pub state: AppState,
    pub client: Client,
    /// The admin's token for `https://management.azure.com/`.
    pub token: String,
    pub subscription: String,
    pub workspace: Workspace,
}

/// Starts the server on `dir` (emptied first); `authorization: false` measures without it.
pub async fn start(dir: &Path, authorization: bool) -> Bench {
    let _ = std::fs::remove_dir_all(dir);
    let mut config = ServerConfig::new(dir);
    config.tls = TlsMode::Disabled;
    config.bootstrap_password = Some(PASSWORD.into());
    config.bench_disable_authorization = !authorization;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = Server::new(listener, config, Arc::new(SystemClock)).await.expect("server");
    let url = server.url().to_string();
    let state = server.state().clone();
    tokio::spawn(server.run(std::future::pending()));
    let client = Client::new(&url, None).expect("client");
    let token = client
        .password(
            "mlgate.local",
            "admin@mlgate.local",
            PASSWORD,
            "https://management.azure.com/.default",
        )
        .await
        .expect("token")
        .access_token;
    let subscription = client.subscriptions(&token).await.expect("subs")[0].subscription_id.clone();
    client.put_resource_group(&token, &subscription, "bench-rg", None).await.expect("rg");
    let workspace = client
        .put_workspace(&token, &subscription, "bench-rg", "bench-ws", None)
        .await
        .expect("ws");
    Bench { url, state, client, token, subscription, workspace }
}
