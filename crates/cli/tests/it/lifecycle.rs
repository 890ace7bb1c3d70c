//! Start-up, restart, health and discovery.

use crate::support::*;

#[tokio::test]
async fn a_restart_changes_nothing() {
    let s = TestServer::start().await;
    let tenant = s.tenant_id.clone();
    let sp = s.create_sp("survivor").await;
    let keys_before: Vec<String> =
        s.server_state.authority.jwks().into_iter().map(|k| k.kid).collect();
    let ca_before = s.ca_pem.clone();
    let dir = s.stop().await;

    let s = TestServer::start_in(dir).await;
    assert_eq!(s.tenant_id, tenant);
    assert_eq!(s.ca_pem, ca_before, "the CA clients trust is kept");
    let keys_after: Vec<String> =
        s.server_state.authority.jwks().into_iter().map(|k| k.kid).collect();
    assert_eq!(keys_before, keys_after);
    let t = s.client().client_credentials(&tenant, &sp.app_id, &sp.password, ARM_SCOPE).await;
    assert!(t.is_ok(), "{t:?}");
    let tenants = s.server_state.authority.directory().tenants();
    assert_eq!(tenants.len(), 1, "no second tenant was bootstrapped");
}

#[tokio::test]
async fn health_readiness_and_discovery() {
    let s = TestServer::start().await;
    let http = s.http();
    assert_eq!(http.get(format!("{}/healthz", s.url)).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{}/readyz", s.url)).send().await.unwrap().status(), 200);

    for (path, issuer) in [
        (
            format!("{}/v2.0/.well-known/openid-configuration", s.tenant_id),
            format!("{}/{}/v2.0", s.url, s.tenant_id),
        ),
        (
            "mlgate.local/v2.0/.well-known/openid-configuration".into(),
            format!("{}/{}/v2.0", s.url, s.tenant_id),
        ),
        (
            "organizations/.well-known/openid-configuration".into(),
            format!("{}/{}/", s.url, s.tenant_id),
        ),
    ] {
        let doc: serde_json::Value =
            http.get(format!("{}/{path}", s.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["issuer"], issuer, "{path}");
        for f in [
            "authorization_endpoint",
            "token_endpoint",
            "device_authorization_endpoint",
            "jwks_uri",
        ] {
            assert!(
                doc[f].as_str().unwrap().starts_with(&format!("{}/{}/", s.url, s.tenant_id)),
                "{path} {f}"
            );
        }
    }
    let unknown = http
        .get(format!("{}/nope/v2.0/.well-known/openid-configuration", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    // Unknown routes answer in the API's JSON shape.
    let missing = http.get(format!("{}/api/v1/nothing-here", s.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NotFound");

    // Without its store, the server says it is not ready (and does not crash).
    s.store.close().await;
    assert_eq!(http.get(format!("{}/readyz", s.url)).send().await.unwrap().status(), 503);
    assert_eq!(http.get(format!("{}/healthz", s.url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_management_api_refuses_bad_bodies_and_strangers_with_clear_errors() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let http = s.http();
    let url = format!("{}/api/v1/servicePrincipals", s.url);
    for (ct, body, status) in [
        ("application/json", "{not json", 400),
        ("application/json", r#"{"displayName": ""}"#, 400),
        ("application/json", r#"{"displayName": 42}"#, 400),
        ("text/plain", r#"{"displayName": "x"}"#, 400),
    ] {
        let resp = http
            .post(&url)
            .bearer_auth(&admin)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{body}");
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["error"]["code"], "InvalidRequestContent", "{b}");
    }
    let huge = format!(r#"{{"displayName": "{}"}}"#, "a".repeat(3 * 1024 * 1024));
    let resp = http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // A service principal may not manage another's principal, nor create users.
    let a = s.create_sp("owner-a").await;
    let b = s.create_sp("other-b").await;
    let b_token = s
        .client()
        .client_credentials(&s.tenant_id, &b.app_id, &b.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let err = s.client().delete_service_principal(&b_token, &a.app_id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    let err = s
        .client()
        .create_user(
            &b_token,
            &mlgate_proto::CreateUser {
                user_principal_name: "x@mlgate.local".into(),
                display_name: "x".into(),
                password: "long-enough-pw".into(),
                force_change_password_next_sign_in: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    // Unknown ids are 404; a duplicate user is 409; a user outside the domain is 400.
    let err =
        s.client().service_principal(&admin, &uuid::Uuid::new_v4().to_string()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    let u = mlgate_proto::CreateUser {
        user_principal_name: "dup@mlgate.local".into(),
        display_name: "Dup".into(),
        password: "long-enough-pw".into(),
        force_change_password_next_sign_in: false,
    };
    s.client().create_user(&admin, &u).await.unwrap();
    assert_eq!(
        s.client().create_user(&admin, &u).await.unwrap_err().status().map(|s| s.as_u16()),
        Some(409)
    );
    let outside = mlgate_proto::CreateUser { user_principal_name: "x@evil.example".into(), ..u };
    assert_eq!(
        s.client().create_user(&admin, &outside).await.unwrap_err().status().map(|s| s.as_u16()),
        Some(400)
    );
    // The built-in CLI application cannot be disabled or deleted, even by the administrator.
    let err =
        s.client().delete_service_principal(&admin, mlgate_proto::CLI_CLIENT_ID).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
}

#[tokio::test]
async fn the_operators_own_certificate_is_served() {
    use std::sync::Arc;
    // Make a certificate chain the way an operator's CA would, in another folder.
    let dir = TempDir::new();
    let files = mlgate_server::tls::ensure_local_ca(&dir.0.join("own-ca"), None).unwrap();
    let mut config = mlgate_server::ServerConfig::new(dir.0.join("data"));
    config.tls = mlgate_server::TlsMode::Files { cert: files.cert.clone(), key: files.key.clone() };
    config.bootstrap_password = Some(ADMIN_PASSWORD.into());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server =
        mlgate_server::Server::new(listener, config, Arc::new(mlgate_core::clock::SystemClock))
            .await
            .unwrap();
    assert!(server.startup.ca_file.is_none(), "no local CA is made when the operator brings one");
    assert!(!dir.0.join("data/tls").exists());
    let url = server.url().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let ca = std::fs::read(&files.ca).unwrap();
    let client = mlgate_client::Client::new(&url, Some(&ca)).unwrap();
    let t = client.password("mlgate.local", ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();
    assert!(client.me(&t.access_token).await.is_ok());
    // A client that trusts another CA refuses the connection.
    let other = TempDir::new();
    let stranger = mlgate_server::tls::ensure_local_ca(&other.0, None).unwrap();
    let wrong =
        mlgate_client::Client::new(&url, Some(&std::fs::read(&stranger.ca).unwrap())).unwrap();
    assert!(matches!(wrong.me("x").await, Err(mlgate_client::ClientError::Transport(_))));
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn keys_rotate_through_the_cli_on_the_data_directory() {
    let s = TestServer::start().await;
    let before = s.admin_token().await;
    let run = |args: &[&str]| {
        let data = s.data_dir();
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if let Some(url) = &s.store_url {
            args.extend(["--store".to_string(), url.clone()]);
        }
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
                .args(&args)
                .arg("--data-dir")
                .arg(&data)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        }
    };
    let listed = run(&["keys", "list"]).await;
    let states: Vec<&str> =
        listed.as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&"active") && states.contains(&"next"));
    let next_kid =
        listed.as_array().unwrap().iter().find(|k| k["state"] == "next").unwrap()["kid"].clone();
    let rotated = run(&["keys", "rotate"]).await;
    assert_eq!(rotated.as_array().unwrap().len(), 3);
    // The running server picks the rotation up on its next reload.
    s.server_state.authority.reload_keys().await.unwrap();
    let after = s.admin_token().await;
    assert_eq!(header(&after)["kid"], next_kid, "the pre-published key now signs");
    assert_eq!(s.me_with(Some(&format!("Bearer {before}"))).await.status(), 200);
}
