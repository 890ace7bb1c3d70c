//! `mlgate serve`: configuration from flags and environment, logging, signals.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mlgate_core::clock::SystemClock;
use mlgate_server::{Server, ServerConfig, TlsMode};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServeArgs};

/// `$MLGATE_DATA_DIR`, else `$XDG_DATA_HOME/mlgate`, else `~/.local/share/mlgate`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MLGATE_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("mlgate");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/mlgate")
}

/// Logs go to stderr through a writer thread, so a request never waits for the terminal or the
/// journal (the access log writes one line per request). The queue holds 128k lines; a full
/// queue makes the request wait rather than lose lines. The guard flushes at exit.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("MLGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("mlgate-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    crate::alloc::keep_code_pages_small();
    let _log_guard = init_logging(args.log_format);
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let mut config = ServerConfig::new(&data_dir);
    config.store = args.store;
    config.tls = if args.insecure_http {
        TlsMode::Disabled
    } else if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        TlsMode::Files { cert, key }
    } else {
        TlsMode::LocalCa
    };
    config.public_url = args.public_url;
    config.domain = args.domain;
    config.bootstrap_password = std::env::var("MLGATE_BOOTSTRAP_PASSWORD").ok();
    config.master_key = std::env::var("MLGATE_MASTER_KEY").ok();
    config.access_token_lifetime = time::Duration::seconds(args.token_lifetime);
    config.client_cache_ttl = time::Duration::seconds(args.client_cache_ttl);
    config.extra_resources = args.resources;
    config.service_token_lifetime = time::Duration::seconds(args.service_token_lifetime);
    config.python = args.python;
    config.allow_unconfined_entry_scripts = args.allow_unconfined_entry_scripts;
    config.wheelhouses = args.wheelhouses;
    // Entry scripts are confined by this same binary's `sandbox-exec`.
    config.sandbox_launcher = std::env::current_exe().ok();
    config.trusted_proxies = args.trusted_proxies;
    if let Some(file) = &args.metrics_token_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading --metrics-token-file {}", file.display()))?;
        let token = mlgate_server::metrics::MetricsToken::new(&text)
            .map_err(|e| anyhow::anyhow!("--metrics-token-file {}: {e}", file.display()))?;
        config.metrics_token = Some(token);
    }
    config.metrics_listen = args.metrics_listen;
    // Benchmarks only (bench/metrics.sh): the "metrics off" side of a paired comparison.
    config.bench_disable_metrics = std::env::var_os("MLGATE_BENCH_DISABLE_METRICS").is_some();
    config.log_retention = mlgate_server::audit::Retention {
        activity: time::Duration::days(args.activity_retention_days),
        sign_ins: time::Duration::days(args.signin_retention_days),
    };
    config.signin_log = args.signin_log == crate::cli::Switch::On;
    config.limits = mlgate_server::net::ConnectionLimits {
        max_connections: args.max_connections as usize,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        tls_handshake_timeout: Duration::from_secs(args.tls_handshake_timeout),
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
    };

    // Only `serve` creates a data directory; every other command needs an existing one.
    if !data_dir.exists() {
        println!("data directory {} does not exist: creating it", data_dir.display());
    }
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let server = Server::new(listener, config, Arc::new(SystemClock)).await?;

    // Operator-facing facts go to stdout once, outside the structured log.
    let s = &server.startup;
    println!("mlgate listening on {}", s.url);
    println!("data directory: {}", data_dir.display());
    if let Some(ca) = &s.ca_file {
        println!("clients must trust the CA at: {}", ca.display());
        print!("{}", crate::commands::tls::how_to_trust(ca));
    }
    if s.bootstrap.created {
        if let (Some(t), Some(upn)) = (&s.bootstrap.tenant, &s.bootstrap.admin_user_principal_name)
        {
            println!("created tenant {} ({}) and administrator {upn}", t.id, t.domain);
        }
        if let Some(pw) = &s.bootstrap.generated_password {
            show_generated_password(&data_dir, pw)?;
        }
    }
    if let Some(m) = server.metrics_url() {
        println!("metrics at {m}/metrics");
    }
    if let Some(reloader) = server.cert_reloader() {
        tokio::spawn(reload_tls_on_sighup(reloader));
    }
    tracing::info!(url = %s.url, tls = s.url.starts_with("https"), "serving");
    server.run(shutdown_signal()).await
}

/// `SIGHUP` reloads the certificate and key files: new handshakes use them, open connections
/// keep theirs; files that do not load leave the current certificate serving.
async fn reload_tls_on_sighup(reloader: Arc<mlgate_server::tls::CertReloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: TLS files reload only at restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let (cert, key) = reloader.files();
        match reloader.reload() {
            Ok(()) => tracing::info!(cert = %cert.display(), "SIGHUP: TLS certificate reloaded"),
            Err(e) => tracing::error!(
                cert = %cert.display(),
                key = %key.display(),
                error = format!("{e:#}"),
                "SIGHUP: the TLS files did not load; still serving the previous certificate"
            ),
        }
    }
}

/// The generated administrator password goes to a person, never to log storage: printed when
/// stdout is a terminal; otherwise (a service manager's journal, a pipe, a file) written once
/// to `{data-dir}/initial-admin-password` (0600), and only that path is printed and logged.
fn show_generated_password(data_dir: &std::path::Path, password: &str) -> Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!("generated administrator password (shown once): {password}");
        return Ok(());
    }
    let path = data_dir.join("initial-admin-password");
    crate::commands::write_secret_file(&path, password)?;
    println!(
        "generated administrator password written to {} (mode 0600): read it, then delete the file",
        path.display()
    );
    tracing::info!(path = %path.display(), "generated administrator password written to a file");
    Ok(())
}
