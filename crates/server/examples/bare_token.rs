//! The limit the token endpoint is measured against (bench/token-limit.sh): a bare axum
//! endpoint that does the irreducible work of a client-credentials grant and nothing else —
//! parse the same url-encoded form, compare the client secret's SHA-256 in constant time, build
//! the same v2 access-token claims mlgate issues, sign them with a cached ES256 key pair, answer
//! the same JSON. No store, no cache, no tenant resolution, no logging, no middleware.
//!
//! usage: cargo run --release -p mlgate-server --example bare_token -- LISTEN CLIENT_ID SECRET
//!        [CERT_PEM KEY_PEM]   (with a certificate: HTTPS, HTTP/1.1 and HTTP/2 by ALPN)
#![allow(clippy::disallowed_methods, reason = "a benchmark baseline signs with wall-clock times")]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_core::keys::{MasterKey, Signer, new_signing_key};
use mlgate_core::records::KeyState;
use mlgate_core::secrets::{random_bytes, sha256};
use mlgate_core::tokens::AccessClaims;
use mlgate_proto::TokenResponse;
use subtle::ConstantTimeEq;

struct Bare {
    signer: Signer,
    client_id: String,
    secret_digest: [u8; 32],
    object_id: String,
    issuer_base: String,
}

async fn token(
    State(b): State<Arc<Bare>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" || field("client_id") != b.client_id {
        return (StatusCode::BAD_REQUEST, "unsupported").into_response();
    }
    if !bool::from(sha256(field("client_secret").as_bytes()).ct_eq(&b.secret_digest)) {
        return (StatusCode::UNAUTHORIZED, "invalid_client").into_response();
    }
    let scope = field("scope");
    let resource = scope.strip_suffix(".default").unwrap_or(scope).to_string();
    let iat = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = AccessClaims {
        aud: resource,
        iss: format!("{}/{tenant}/v2.0", b.issuer_base),
        iat,
        nbf: iat,
        exp: iat + 3600,
        appid: None,
        appidacr: None,
        azp: Some(b.client_id.clone()),
        azpacr: Some("1".into()),
        idtyp: "app".into(),
        name: None,
        app_displayname: Some("bench".into()),
        oid: b.object_id.clone(),
        sub: b.object_id.clone(),
        tid: tenant,
        uti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        ver: "2.0".into(),
        scp: None,
        upn: None,
        unique_name: None,
        preferred_username: None,
    };
    match b.signer.sign_jwt(&claims) {
        Ok(access_token) => Json(TokenResponse {
            token_type: "Bearer".into(),
            access_token,
            expires_in: 3599,
            ext_expires_in: Some(3599),
            expires_on: None,
            not_before: None,
            resource: None,
            scope: Some(scope.to_string()),
            refresh_token: None,
            id_token: None,
            client_info: None,
        })
        .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, client_id, secret) = match &args[1..] {
        [l, c, s, ..] => (l.clone(), c.clone(), s.clone()),
        _ => anyhow::bail!("usage: bare_token LISTEN CLIENT_ID SECRET [CERT_PEM KEY_PEM]"),
    };
    let master = MasterKey::from_encoded(&MasterKey::generate_encoded())?;
    let record = new_signing_key(&master, KeyState::Active, time::OffsetDateTime::now_utc())?;
    let signer = Signer::open(&record, &master)?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let scheme = if args.len() >= 6 { "https" } else { "http" };
    let bare = Arc::new(Bare {
        signer,
        client_id,
        secret_digest: sha256(secret.as_bytes()),
        object_id: uuid::Uuid::new_v4().to_string(),
        issuer_base: format!("{scheme}://{}", listener.local_addr()?),
    });
    let app = Router::new().route("/{tenant}/oauth2/v2.0/token", post(token)).with_state(bare);
    println!("bare token endpoint on {scheme}://{}", listener.local_addr()?);
    if args.len() < 6 {
        axum::serve(listener, app).await?;
        return Ok(());
    }
    // The same TLS configuration mlgate serves (rustls over aws-lc, h2 and http/1.1 by ALPN).
    let tls = mlgate_server::tls::server_config(args[4].as_ref(), args[5].as_ref())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { tower::ServiceExt::oneshot(app, req).await }
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}
