//! Signing-key rotation: the next key is published before it signs; retired keys keep
//! verifying until their tokens have expired, then leave the JWKS.

use std::collections::HashSet;

use mlgate_core::authority::rotate_signing_keys;
use mlgate_core::clock::Clock;
use time::Duration;

use crate::support::*;

fn kids(s: &TestServer) -> HashSet<String> {
    s.server_state.authority.jwks().into_iter().map(|k| k.kid).collect()
}

#[tokio::test]
async fn rotation_publishes_before_signing_and_retires_after_expiry() {
    let s = TestServer::start().await;
    let master = mlgate_server::load_master_key(&s.data_dir(), None, true).unwrap();
    let before = s.admin_token().await;
    let old_kid = header(&before)["kid"].as_str().unwrap().to_string();
    let published = kids(&s);
    assert_eq!(published.len(), 2, "active and next are both published");

    rotate_signing_keys(s.store.as_ref(), &master, s.clock.now(), Duration::hours(1))
        .await
        .unwrap();
    s.server_state.authority.reload_keys().await.unwrap();

    let after = s.admin_token().await;
    let new_kid = header(&after)["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    assert!(published.contains(&new_kid), "the key that now signs was published beforehand");
    let now_published = kids(&s);
    assert_eq!(now_published.len(), 3, "retired, active and a new next");
    // Tokens of both keys verify.
    for t in [&before, &after] {
        assert_eq!(s.me_with(Some(&format!("Bearer {t}"))).await.status(), 200);
    }

    // Two hours on, a second rotation prunes the first key: its tokens have all expired.
    s.clock.advance(Duration::hours(2));
    rotate_signing_keys(s.store.as_ref(), &master, s.clock.now(), Duration::hours(1))
        .await
        .unwrap();
    s.server_state.authority.reload_keys().await.unwrap();
    let finally = kids(&s);
    assert!(!finally.contains(&old_kid), "the expired key left the JWKS");
    assert!(finally.contains(&new_kid), "the just-retired key stays published");
    assert_eq!(s.me_with(Some(&format!("Bearer {before}"))).await.status(), 401);
}

#[tokio::test]
async fn the_jwks_endpoint_serves_the_published_keys_by_any_tenant_name() {
    let s = TestServer::start().await;
    for path in [
        format!("{}/discovery/v2.0/keys", s.tenant_id),
        "mlgate.local/discovery/keys".to_string(),
        "common/discovery/v2.0/keys".to_string(),
    ] {
        let jwks: serde_json::Value =
            s.http().get(format!("{}/{path}", s.url)).send().await.unwrap().json().await.unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "{path}");
        for k in keys {
            assert_eq!(k["kty"], "EC");
            assert_eq!(k["crv"], "P-256");
            assert_eq!(k["alg"], "ES256");
            assert!(k.get("d").is_none(), "a private part is published!");
        }
    }
    let resp = s
        .http()
        .get(format!("{}/nowhere.example/discovery/v2.0/keys", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
