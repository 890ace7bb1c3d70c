//! Web-service authentication: the seed's key and token flows through the CLI and the SDK,
//! the defaults and refusals of the two compute types, a corpus of forged credentials at the
//! scoring endpoint, and scoring that goes on with the store taken away.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mlgate_client::models::WorkspaceAddress;
use mlgate_client::webservice::{InferenceConfig, Model, Webservice};
use mlgate_client::workspace::{Authentication, Workspace};
use mlgate_core::clock::Clock;
use mlgate_proto::{CreateRoleAssignment, DeployService};
use mlgate_serving::onnx::linear_regression_model;
use serde_json::{Value, json};

use crate::support::*;

const ML_SCOPE: &str = "https://ml.azure.com/.default";
const INPUT: &str = r#"{"data": [[1.0, 1.0, 1.0]]}"#;

struct Fixture {
    s: TestServer,
    admin: String,
    ws: WorkspaceAddress,
    ws_id: String,
    dir: TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let s = TestServer::start().await;
        let admin = s.admin_token().await;
        let c = s.client();
        let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
        c.put_resource_group(&admin, &sub, "auth", None).await.unwrap();
        let w = c.put_workspace(&admin, &sub, "auth", "auth-ws", None).await.unwrap();
        let ws = WorkspaceAddress {
            subscription_id: sub,
            resource_group: "auth".into(),
            workspace: "auth-ws".into(),
        };
        let dir = TempDir::new();
        let model = dir.0.join("model.onnx");
        std::fs::write(&model, linear_regression_model(&[vec![1.0], vec![2.0], vec![3.0]], &[0.5]))
            .unwrap();
        c.register_model_from_path(&admin, &ws, "linear", &model, "", Default::default())
            .await
            .unwrap();
        Self { s, admin, ws, ws_id: w.id, dir }
    }

    /// Deploys through the API; `Err` carries the refusal's status and message.
    async fn deploy(&self, name: &str, dc: Value) -> Result<mlgate_proto::Service, (u16, String)> {
        let c = self.s.client();
        // A fresh token: tests move the clock.
        let admin = self.s.admin_token().await;
        let req = DeployService {
            model: "linear:1".into(),
            inference_config: json!({"runtime": "onnx"}),
            deployment_config: dc,
        };
        match c.deploy(&admin, &self.ws, name, &req).await {
            Ok(_) => Ok(c
                .wait_for_deployment(&admin, &self.ws, name, Duration::from_secs(30), |_| {})
                .await
                .unwrap()),
            Err(e) => Err((e.status().map_or(0, |s| s.as_u16()), e.to_string())),
        }
    }

    fn uri(&self, name: &str) -> String {
        format!("{}/api/v1/service/{name}/score", self.s.url)
    }

    /// Scores with a raw `Authorization` header (or none); returns the status and body.
    async fn score(&self, name: &str, authorization: Option<&str>) -> (u16, Value) {
        let mut req = self
            .s
            .http()
            .post(self.uri(name))
            .header("content-type", "application/json")
            .body(INPUT);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 401 {
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
            assert!(challenge.starts_with("Bearer realm="), "{challenge}");
        }
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn cli(&self, args: &[&str]) -> (bool, Value, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .args(args)
            .args(["-w", "auth-ws", "-g", "auth"].iter().filter(|_| args[0] == "ml"))
            .env("MLGATE_CONFIG_DIR", self.dir.0.join("cli"))
            .env("MLGATE_SERVER", &self.s.url)
            .env("MLGATE_CA_FILE", &self.s.ca_file)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), stdout, stderr)
    }

    async fn reader(&self) -> (String, String) {
        let sp = self.s.create_sp("scoring-reader").await;
        let c = self.s.client();
        let req = CreateRoleAssignment {
            assignee: sp.app_id.clone(),
            role: "Reader".into(),
            scope: self.ws_id.clone(),
        };
        c.create_role_assignment(&self.s.admin_token().await, &req).await.unwrap();
        let arm = c.client_credentials(&self.s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE);
        let ml = c.client_credentials(&self.s.tenant_id, &sp.app_id, &sp.password, ML_SCOPE);
        (arm.await.unwrap().access_token, ml.await.unwrap().access_token)
    }
}

fn bearer(credential: &str) -> String {
    format!("Bearer {credential}")
}

#[tokio::test]
async fn instance_key_auth_the_seed_flow_through_the_cli_and_the_sdk() {
    let f = Fixture::new().await;
    // An instance serves without auth unless asked.
    let open = f.deploy("open-svc", json!({"computeType": "instance"})).await.unwrap();
    assert_eq!((open.auth_enabled, open.auth_mode.as_str()), (false, "none"));
    assert_eq!(f.score("open-svc", None).await.0, 200);

    // The CLI deploys with auth_enabled, then the seed: get-keys, score with both, regen.
    assert!(f.cli(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD]).await.0);
    let dc = f.dir.0.join("dc.json");
    std::fs::write(&dc, r#"{"computeType": "instance", "auth_enabled": true}"#).unwrap();
    let ic = f.dir.0.join("ic.json");
    std::fs::write(&ic, r#"{"runtime": "onnx"}"#).unwrap();
    let (ok, svc, err) = f
        .cli(&[
            "ml",
            "model",
            "deploy",
            "-n",
            "key-svc",
            "-m",
            "linear:1",
            "--ic",
            ic.to_str().unwrap(),
            "--dc",
            dc.to_str().unwrap(),
        ])
        .await;
    assert!(ok, "{err}");
    assert_eq!((svc["authEnabled"].as_bool(), svc["authMode"].as_str()), (Some(true), Some("key")));

    let (status, body) = f.score("key-svc", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "AuthenticationFailed");

    let (ok, keys, err) = f.cli(&["ml", "service", "get-keys", "-n", "key-svc"]).await;
    assert!(ok, "{err}");
    let primary = keys["primaryKey"].as_str().unwrap().to_string();
    let secondary = keys["secondaryKey"].as_str().unwrap().to_string();
    assert_ne!(primary, secondary);
    for k in [&primary, &secondary] {
        assert!(B64.decode(k).unwrap().len() >= 32, "at least 256 bits");
    }
    let (status, body) = f.score("key-svc", Some(&bearer(&primary))).await;
    assert_eq!((status, &body), (200, &json!({"result": [[6.5]]})));
    assert_eq!(f.score("key-svc", Some(&bearer(&secondary))).await.0, 200);

    let (ok, regen, err) =
        f.cli(&["ml", "service", "regen-key", "-n", "key-svc", "--key", "Primary"]).await;
    assert!(ok, "{err}");
    let new_primary = regen["primaryKey"].as_str().unwrap().to_string();
    assert_ne!(new_primary, primary);
    assert_eq!(regen["secondaryKey"], secondary.as_str(), "the other key is kept");
    let (status, body) = f.score("key-svc", Some(&bearer(&primary))).await;
    assert_eq!(status, 401, "the old primary fails from the next request on: {body}");
    assert_eq!(f.score("key-svc", Some(&bearer(&secondary))).await.0, 200);
    assert_eq!(f.score("key-svc", Some(&bearer(&new_primary))).await.0, 200);
    let (ok, _, err) =
        f.cli(&["ml", "service", "regen-key", "-n", "key-svc", "--key", "Tertiary"]).await;
    assert!(!ok && err.contains("Primary or Secondary"), "{err}");

    // `ml service score` finds the key itself.
    let (ok, scored, err) =
        f.cli(&["ml", "service", "score", "-n", "key-svc", "--input-data", INPUT]).await;
    assert!(ok, "{err}");
    assert_eq!(scored, json!({"result": [[6.5]]}));

    // The SDK, as the seed writes it.
    let ws = Workspace::get(
        f.s.client(),
        "auth-ws",
        Authentication::Token(f.admin.clone()),
        &f.ws.subscription_id,
        Some("auth"),
    )
    .await
    .unwrap();
    let service = Webservice::get(&ws, "key-svc").await.unwrap();
    let (p, s) = service.get_keys().await.unwrap();
    assert_eq!((p.as_str(), s.as_str()), (new_primary.as_str(), secondary.as_str()));
    service.regen_key("Secondary").await.unwrap();
    assert_eq!(f.score("key-svc", Some(&bearer(&secondary))).await.0, 401);
    assert_eq!(
        service.run(&serde_json::from_str(INPUT).unwrap()).await.unwrap()["result"],
        json!([[6.5]])
    );

    // Model::deploy + wait_for_deployment + scoring_uri, the seed's calls.
    let model = Model::get(&ws, "linear", None).await.unwrap();
    let mut svc = Model::deploy(
        &ws,
        "sdk-svc",
        &[model],
        &InferenceConfig::Onnx,
        json!({"computeType": "instance", "auth_enabled": true}),
    )
    .await
    .unwrap();
    svc.wait_for_deployment(false).await.unwrap();
    assert_eq!(svc.state(), "Healthy");
    assert_eq!(svc.scoring_uri(), f.uri("sdk-svc"));
    assert!(svc.get_logs().await.unwrap().iter().any(|l| l.contains("Healthy")));
    assert_eq!(
        f.score("sdk-svc", Some(&bearer(&new_primary))).await.0,
        401,
        "keys are per service"
    );
    assert_eq!(
        svc.run(&serde_json::from_str(INPUT).unwrap()).await.unwrap()["result"],
        json!([[6.5]])
    );

    // The keys are sealed at rest: not in the database file.
    let (p, _) = service.get_keys().await.unwrap();
    if !on_postgres() {
        let mut raw = std::fs::read(f.s.data_dir().join("mlgate.db")).unwrap();
        if let Ok(wal) = std::fs::read(f.s.data_dir().join("mlgate.db-wal")) {
            raw.extend(wal);
        }
        for k in [&p, &new_primary, &secondary] {
            assert!(!raw.windows(k.len()).any(|w| w == k.as_bytes()), "a key is in the database");
        }
    }

    // A workspace (or its group) with services is not deleted from under them.
    let c = f.s.client();
    let sub = &f.ws.subscription_id;
    let e = c.delete_workspace(&f.admin, sub, "auth", "auth-ws").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(409), "{e}");
    assert!(e.to_string().contains("delete them first"), "{e}");
    let e = c.delete_resource_group(&f.admin, sub, "auth").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(409), "{e}");
    for name in ["open-svc", "key-svc", "sdk-svc"] {
        c.delete_service(&f.admin, &f.ws, name).await.unwrap();
    }
    assert_eq!(f.score("key-svc", Some(&bearer(&p))).await.0, 404, "deleted means gone");
    c.delete_workspace(&f.admin, sub, "auth", "auth-ws").await.unwrap();
}

#[tokio::test]
async fn cluster_defaults_token_auth_modes_and_their_refusals() {
    let f = Fixture::new().await;
    // A cluster has key auth by default.
    let svc = f.deploy("cluster-key", json!({"computeType": "cluster"})).await.unwrap();
    assert_eq!(svc.auth_mode, "key");
    assert_eq!(f.score("cluster-key", None).await.0, 401);

    // The conflicting configurations, refused with clear errors.
    let (status, msg) = f
        .deploy(
            "both",
            json!({"computeType": "cluster", "auth_enabled": true, "token_auth_enabled": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(status, 400);
    assert!(msg.contains("key and token auth cannot be enabled at the same time"), "{msg}");
    let (status, msg) = f
        .deploy("aci-token", json!({"computeType": "instance", "token_auth_enabled": true}))
        .await
        .unwrap_err();
    assert_eq!(status, 400);
    assert!(msg.contains("token auth is not supported on an instance"), "{msg}");
    let (status, _) = f
        .deploy("bad-flag", json!({"computeType": "cluster", "auth_enabled": "yes"}))
        .await
        .unwrap_err();
    assert_eq!(status, 400);

    // Token auth on a cluster; a Reader gets a token and scores with it.
    let svc = f
        .deploy("tok-svc", json!({"computeType": "cluster", "token_auth_enabled": true, "auth_enabled": false, "replicas": 2}))
        .await
        .unwrap();
    assert_eq!(
        (svc.token_auth_enabled, svc.auth_enabled, svc.auth_mode.as_str()),
        (true, false, "token")
    );
    f.deploy("tok-other", json!({"computeType": "cluster", "token_auth_enabled": true}))
        .await
        .unwrap();
    let (reader_arm, _) = f.reader().await;
    let c = f.s.client();
    let t = c.service_token(&reader_arm, &f.ws, "tok-svc").await.unwrap();
    let now = f.s.clock.now().unix_timestamp();
    assert!(t.expiry_on > now && t.refresh_after > now && t.refresh_after < t.expiry_on, "{t:?}");
    assert_eq!(t.token_type, "Bearer");
    let (status, body) = f.score("tok-svc", Some(&bearer(&t.access_token))).await;
    assert_eq!((status, &body), (200, &json!({"result": [[6.5]]})));
    // Bound to its service; and a token is no key.
    assert_eq!(f.score("tok-other", Some(&bearer(&t.access_token))).await.0, 401);
    assert_eq!(f.score("cluster-key", Some(&bearer(&t.access_token))).await.0, 401);
    // Reader may not read or replace keys.
    let e = c.service_keys(&reader_arm, &f.ws, "tok-svc").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
    assert!(e.to_string().contains("listKeys/action"), "{e}");
    let e = c.regenerate_service_key(&reader_arm, &f.ws, "tok-svc", "Primary").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
    // No token from a key service.
    let e = c.service_token(&f.admin, &f.ws, "cluster-key").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");

    // Expired: the cached verification expires with the token.
    f.s.clock.advance(time::Duration::hours(1) + time::Duration::minutes(2));
    let (status, body) = f.score("tok-svc", Some(&bearer(&t.access_token))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
    let fresh = c.service_token(&f.s.admin_token().await, &f.ws, "tok-svc").await.unwrap();
    assert_eq!(f.score("tok-svc", Some(&bearer(&fresh.access_token))).await.0, 200);

    // The mode changes by update, without redeploying the model.
    let admin = f.s.admin_token().await;
    let req = DeployService {
        model: "linear:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: json!({"computeType": "cluster", "replicas": 2, "auth_enabled": true}),
    };
    let updated = c.deploy(&admin, &f.ws, "tok-svc", &req).await.unwrap();
    assert_eq!((updated.state.as_str(), updated.auth_mode.as_str()), ("Healthy", "key"));
    assert_eq!(f.score("tok-svc", Some(&bearer(&fresh.access_token))).await.0, 401);
    let keys = c.service_keys(&admin, &f.ws, "tok-svc").await.unwrap();
    assert_eq!(f.score("tok-svc", Some(&bearer(&keys.primary_key))).await.0, 200);
    let logs = c.service_logs(&admin, &f.ws, "tok-svc").await.unwrap();
    assert_eq!(logs.iter().filter(|l| l.contains("Deploying model")).count(), 1, "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("2 replica(s)")), "{logs:?}");

    // The third mode: an identity token for https://ml.azure.com plus services/score/action.
    let svc = f
        .deploy("aad-svc", json!({"computeType": "cluster", "auth_mode": "aad_token"}))
        .await
        .unwrap();
    assert_eq!(svc.auth_mode, "aad_token");
    // The clock moved past the first tokens' expiry: a new Reader, with fresh tokens.
    let (reader_arm, reader_ml) = f.reader().await;
    let (status, body) = f.score("aad-svc", Some(&bearer(&reader_ml))).await;
    assert_eq!(status, 403, "Reader has no score/action: {body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("services/score/action") && msg.contains("/services/aad-svc"), "{msg}");
    let (status, _) = f.score("aad-svc", Some(&bearer(&reader_arm))).await;
    assert_eq!(status, 401, "an ARM token is not for scoring");
    let admin_ml =
        c.password(&f.s.tenant_id, ADMIN, ADMIN_PASSWORD, ML_SCOPE).await.unwrap().access_token;
    assert_eq!(f.score("aad-svc", Some(&bearer(&admin_ml))).await.0, 200);

    // The same through the CLI: switch tok-svc back to tokens by update, get one, score; then
    // a new model version.
    assert!(f.cli(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD]).await.0);
    let (ok, svc, err) = f
        .cli(&[
            "ml",
            "service",
            "update",
            "-n",
            "tok-svc",
            "--auth-enabled",
            "false",
            "--token-auth-enabled",
            "true",
        ])
        .await;
    assert!(ok, "{err}");
    assert_eq!((svc["authMode"].as_str(), svc["state"].as_str()), (Some("token"), Some("Healthy")));
    assert_eq!(f.score("tok-svc", Some(&bearer(&keys.primary_key))).await.0, 401);
    let (ok, t, err) = f.cli(&["ml", "service", "get-token", "-n", "tok-svc"]).await;
    assert!(ok, "{err}");
    assert!(t["refreshAfter"].as_i64().unwrap() < t["expiryOn"].as_i64().unwrap());
    let tok = t["accessToken"].as_str().unwrap();
    assert_eq!(f.score("tok-svc", Some(&bearer(tok))).await.0, 200);
    let (ok, scored, err) =
        f.cli(&["ml", "service", "score", "-n", "tok-svc", "--input-data", INPUT]).await;
    assert!(ok, "{err}");
    assert_eq!(scored, json!({"result": [[6.5]]}));
    let model = f.dir.0.join("v2.onnx");
    std::fs::write(&model, linear_regression_model(&[vec![10.0], vec![0.0], vec![0.0]], &[0.0]))
        .unwrap();
    let (ok, _, err) =
        f.cli(&["ml", "model", "register", "-n", "linear", "-p", model.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let (ok, svc, err) =
        f.cli(&["ml", "service", "update", "-n", "tok-svc", "-m", "linear:2"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        (svc["model"].as_str(), svc["authMode"].as_str()),
        (Some("linear:2"), Some("token"))
    );
    assert!(err.contains("tok-svc update: Healthy"), "{err}");
    assert!(!err.contains("creation"), "an update is not a creation: {err}");
    let (status, body) = f.score("tok-svc", Some(&bearer(tok))).await;
    assert_eq!((status, body), (200, json!({"result": [[10.0]]})), "same token, new model");
}

#[tokio::test]
async fn forged_credentials_are_refused_at_the_scoring_endpoint() {
    let f = Fixture::new().await;
    f.deploy("key-a", json!({"computeType": "cluster"})).await.unwrap();
    f.deploy("key-b", json!({"computeType": "cluster"})).await.unwrap();
    f.deploy("tok-a", json!({"computeType": "cluster", "token_auth_enabled": true})).await.unwrap();
    f.deploy("tok-b", json!({"computeType": "cluster", "token_auth_enabled": true})).await.unwrap();
    let c = f.s.client();
    let key = c.service_keys(&f.admin, &f.ws, "key-a").await.unwrap().primary_key;
    let other_key = c.service_keys(&f.admin, &f.ws, "key-b").await.unwrap().primary_key;
    let token = c.service_token(&f.admin, &f.ws, "tok-a").await.unwrap().access_token;
    let other_token = c.service_token(&f.admin, &f.ws, "tok-b").await.unwrap().access_token;
    assert_eq!(f.score("key-a", Some(&bearer(&key))).await.0, 200, "control");
    assert_eq!(f.score("tok-a", Some(&bearer(&token))).await.0, 200, "control");

    let key_corpus: Vec<(&str, String)> = vec![
        ("another service's key", bearer(&other_key)),
        ("truncated key", bearer(&key[..key.len() - 1])),
        ("a prefix of the key", bearer(&key[..8])),
        ("key with a character changed", bearer(&format!("{}A", &key[..key.len() - 1]))),
        ("key with an extra space before it", format!("Bearer  {key}")),
        ("key with a space inside", bearer(&format!("{} {}", &key[..10], &key[10..]))),
        ("key doubled", bearer(&format!("{key}{key}"))),
        ("wrong scheme: Basic", format!("Basic {}", B64.encode(format!("x:{key}")))),
        ("wrong scheme: Key", format!("Key {key}")),
        ("no scheme", key.clone()),
        ("a service token", bearer(&token)),
        ("the admin's access token", bearer(&f.admin)),
        ("empty", "Bearer ".into()),
    ];
    for (label, h) in &key_corpus {
        let (status, body) = f.score("key-a", Some(h)).await;
        assert_eq!(status, 401, "{label} was accepted: {body}");
        assert!(!body.to_string().contains(&key), "{label}: the key is echoed");
    }

    // Tokens: forged with the server's genuine signing key where a signature is needed.
    let keyset = f.s.key_set().await;
    let h = header(&token);
    let c0 = claims(&token);
    let kid = h["kid"].as_str().unwrap().to_string();
    let sign = |claims: &Value| keyset.signer.sign_jwt(claims).unwrap();
    let jws = |header: &Value, claims: &Value| {
        format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()))
    };
    let with = |k: &str, v: Value| {
        let mut c = c0.clone();
        c[k] = v;
        c
    };
    let now = f.s.clock.now().unix_timestamp();
    let jwk = f.s.server_state.authority.jwks().into_iter().find(|k| k.kid == kid).unwrap();
    let hs_msg = jws(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), &c0);
    let hs_tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &serde_json::to_vec(&jwk).unwrap()),
        hs_msg.as_bytes(),
    );
    // Positive control: the genuine claims re-signed by the same helper score, so the
    // refusals below are the claims' doing, not a broken signing helper's.
    let resigned = sign(&c0);
    assert_ne!(resigned, token);
    assert_eq!(f.score("tok-a", Some(&bearer(&resigned))).await.0, 200, "re-signed control");
    let parts: Vec<&str> = token.split('.').collect();
    let token_corpus: Vec<(&str, String)> = vec![
        ("alg none", format!("{}.", jws(&json!({"alg": "none", "kid": kid}), &c0))),
        ("HS256 with the public key", format!("{hs_msg}.{}", B64.encode(hs_tag.as_ref()))),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(with("sub", json!(uuid::Uuid::new_v4().to_string())).to_string()),
                parts[2]
            ),
        ),
        ("unknown kid", {
            let mut p = token.splitn(2, '.');
            let _ = p.next();
            format!(
                "{}.{}",
                B64.encode(json!({"alg": "ES256", "typ": "JWT", "kid": "nope"}).to_string()),
                p.next().unwrap()
            )
        }),
        ("expired", sign(&with("exp", json!(now - 3600)))),
        ("not yet valid", sign(&with("nbf", json!(now + 3600)))),
        ("another service's token", other_token.clone()),
        ("audience of another service", sign(&with("aud", json!(f.uri("tok-b"))))),
        (
            "wrong issuer",
            sign(&with("iss", json!(format!("{}/workspaces/{}", f.s.url, uuid::Uuid::new_v4())))),
        ),
        ("another workspace", sign(&with("ws", json!(uuid::Uuid::new_v4().to_string())))),
        ("an access token's version", sign(&with("ver", json!("2.0")))),
        ("truncated", token[..token.len() - 10].to_string()),
        ("garbage", "not.a.token".into()),
        ("a key", key.clone()),
        ("the admin's access token", f.admin.clone()),
    ];
    for (label, t) in &token_corpus {
        let (status, body) = f.score("tok-a", Some(&bearer(t))).await;
        assert_eq!(status, 401, "{label} was accepted: {body}");
    }
    for (label, h) in [("wrong scheme", format!("Basic {token}")), ("no scheme", token.clone())] {
        assert_eq!(f.score("tok-a", Some(&h)).await.0, 401, "{label} was accepted");
    }
    // The genuine token still works after all that.
    assert_eq!(f.score("tok-a", Some(&bearer(&token))).await.0, 200);
}

#[tokio::test]
async fn scoring_goes_on_with_the_store_taken_away() {
    let f = Fixture::new().await;
    f.deploy("key-svc", json!({"computeType": "instance", "auth_enabled": true})).await.unwrap();
    f.deploy("tok-svc", json!({"computeType": "cluster", "token_auth_enabled": true}))
        .await
        .unwrap();
    let c = f.s.client();
    let keys = c.service_keys(&f.admin, &f.ws, "key-svc").await.unwrap();
    let used = c.service_token(&f.admin, &f.ws, "tok-svc").await.unwrap().access_token;
    f.s.clock.advance(time::Duration::seconds(1));
    let unused = c.service_token(&f.admin, &f.ws, "tok-svc").await.unwrap().access_token;
    assert_ne!(used, unused);
    assert_eq!(f.score("tok-svc", Some(&bearer(&used))).await.0, 200);

    f.s.store.close().await;
    // The control plane is down...
    let e = c.service(&f.admin, &f.ws, "key-svc").await.unwrap_err();
    assert!(e.status().is_some_and(|s| s.is_server_error()), "{e}");
    // ...scoring is not: valid keys and tokens (one never seen before) pass, bad ones fail.
    for _ in 0..3 {
        assert_eq!(f.score("key-svc", Some(&bearer(&keys.primary_key))).await.0, 200);
        assert_eq!(f.score("key-svc", Some(&bearer(&keys.secondary_key))).await.0, 200);
        assert_eq!(f.score("key-svc", Some(&bearer(&keys.primary_key[1..]))).await.0, 401);
        assert_eq!(f.score("key-svc", None).await.0, 401);
        assert_eq!(f.score("tok-svc", Some(&bearer(&used))).await.0, 200);
        assert_eq!(f.score("tok-svc", Some(&bearer(&unused))).await.0, 200);
        assert_eq!(f.score("tok-svc", Some(&bearer(&unused[..unused.len() - 4]))).await.0, 401);
        assert_eq!(f.score("tok-svc", Some(&bearer(&keys.primary_key))).await.0, 401);
    }
}
