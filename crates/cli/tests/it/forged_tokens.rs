//! A corpus of forged and damaged bearer tokens, each refused by the protected endpoint with
//! 401 and a `WWW-Authenticate: Bearer error="invalid_token"` challenge.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mlgate_core::clock::Clock;
use mlgate_core::tokens::AccessClaims;
use serde_json::json;
use time::Duration;

use crate::support::*;

fn jws(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

async fn assert_refused(s: &TestServer, label: &str, authorization: &str) {
    let resp = s.me_with(Some(authorization)).await;
    assert_eq!(resp.status(), 401, "{label} was accepted");
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer "), "{label}: {challenge}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"]["code"].as_str().is_some(), "{label}: {body}");
    if authorization.len() > 7 && authorization[..7].eq_ignore_ascii_case("bearer ") {
        assert!(challenge.contains(r#"error="invalid_token""#), "{label}: {challenge}");
    }
}

#[tokio::test]
async fn forged_and_damaged_tokens_are_all_refused() {
    let s = TestServer::start().await;
    let sp = s.create_sp("victim").await;
    let good = s
        .client()
        .client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap();
    let token = good.access_token;
    assert_eq!(
        s.me_with(Some(&format!("Bearer {token}"))).await.status(),
        200,
        "the control must pass"
    );

    let h = header(&token);
    let c = claims(&token);
    let kid = h["kid"].as_str().unwrap().to_string();
    let jwk = s.server_state.authority.jwks().into_iter().find(|k| k.kid == kid).unwrap();
    let mut corpus: Vec<(&str, String)> = Vec::new();

    // alg: none, with and without a signature part.
    let none = jws(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &c);
    corpus.push(("alg none", format!("{none}.")));
    corpus.push(("alg none, two parts", none.clone()));
    corpus.push(("alg NONE", format!("{}.", jws(&json!({"alg": "NONE", "kid": kid}), &c))));

    // HS256 keyed with the public key, in each form an attacker might try.
    let public_forms: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&jwk).unwrap(),
        [vec![4u8], B64.decode(&jwk.x).unwrap(), B64.decode(&jwk.y).unwrap()].concat(),
        jwk.x.as_bytes().to_vec(),
    ];
    for key in &public_forms {
        let msg = jws(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), &c);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg.as_bytes());
        corpus.push(("HS256 with the public key", format!("{msg}.{}", B64.encode(tag.as_ref()))));
    }

    // Tampered payload: another object id under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = c.clone();
    evil["oid"] = json!(uuid::Uuid::new_v4().to_string());
    corpus.push((
        "tampered payload",
        format!("{}.{}.{}", parts[0], B64.encode(evil.to_string()), parts[2]),
    ));
    // Tampered header (kid swapped) and signature bit flip.
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    corpus
        .push(("flipped signature bit", format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig))));

    // Signed with a key of the attacker's: unknown kid, and the server's kid.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let attacker =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    for (label, k) in
        [("unknown kid", "attacker-key"), ("attacker key under the real kid", kid.as_str())]
    {
        let msg = jws(&json!({"alg": "ES256", "typ": "JWT", "kid": k}), &c);
        let sig = attacker.sign(&rng, msg.as_bytes()).unwrap();
        corpus.push((label, format!("{msg}.{}", B64.encode(sig.as_ref()))));
    }
    corpus.push(("no kid", {
        let msg = jws(&json!({"alg": "ES256", "typ": "JWT"}), &c);
        format!("{msg}.{}", parts[2])
    }));

    // Genuine signatures over bad claims, minted with the server's own key.
    let keys = s.key_set().await;
    let base: AccessClaims = serde_json::from_value(c.clone()).unwrap();
    let now = s.clock.now().unix_timestamp();
    let mint = |f: &dyn Fn(&mut AccessClaims)| {
        let mut cl = base.clone();
        f(&mut cl);
        keys.signer.sign_jwt(&cl).unwrap()
    };
    // Positive control: the unmodified claims re-signed by the same helper are accepted, so
    // every refusal below is the claims' doing, not a broken signing helper's.
    let resigned = mint(&|_| {});
    assert_ne!(resigned, token);
    assert_eq!(s.me_with(Some(&format!("Bearer {resigned}"))).await.status(), 200, "re-signed");
    corpus.push((
        "expired",
        mint(&|cl| {
            cl.iat = now - 7200;
            cl.nbf = now - 7200;
            cl.exp = now - 3600;
        }),
    ));
    corpus.push((
        "not yet valid",
        mint(&|cl| {
            cl.nbf = now + 3600;
            cl.exp = now + 7200;
        }),
    ));
    corpus.push(("wrong audience", mint(&|cl| cl.aud = "https://graph.microsoft.com".into())));
    corpus.push((
        "wrong issuer",
        mint(&|cl| cl.iss = format!("https://evil.example/{}/v2.0", s.tenant_id)),
    ));
    corpus.push((
        "issuer of another tenant",
        mint(&|cl| {
            let other = uuid::Uuid::new_v4().to_string();
            cl.iss = format!("{}/{other}/v2.0", s.url);
            cl.tid = other;
        }),
    ));
    corpus.push((
        "tenant mismatch with issuer",
        mint(&|cl| cl.tid = uuid::Uuid::new_v4().to_string()),
    ));

    // Damaged and garbage values.
    corpus.push(("truncated", token[..token.len() - 12].to_string()));
    corpus.push(("truncated to two parts", format!("{}.{}", parts[0], parts[1])));
    corpus.push(("empty", String::new()));
    corpus.push(("garbage", "garbage".into()));
    corpus.push(("dots", "..".into()));
    corpus.push(("four parts", format!("{token}.extra")));
    corpus.push(("non-base64", "%%%.%%%.%%%".into()));
    corpus.push(("huge", "a".repeat(20_000)));
    corpus.push((
        "json header that is not an object",
        format!("{}.{}.{}", B64.encode("[]"), parts[1], parts[2]),
    ));

    for (label, t) in &corpus {
        assert_refused(&s, label, &format!("Bearer {t}")).await;
    }

    // Wrong schemes and shapes of the header itself.
    for auth in [
        format!("Basic {token}"),
        format!("Token {token}"),
        token.clone(),
        "Bearer".into(),
        "Bearer ".into(),
    ] {
        assert_refused(&s, &auth.chars().take(12).collect::<String>(), &auth).await;
    }
    // And no header at all: 401 with a challenge but no error code (RFC 6750 3.1).
    let resp = s.me_with(None).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer ") && !challenge.contains("error="), "{challenge}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthenticationFailed");
}

#[tokio::test]
async fn a_real_token_expires_after_its_lifetime() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    assert_eq!(s.me_with(Some(&format!("Bearer {token}"))).await.status(), 200);
    s.clock.advance(Duration::minutes(59));
    assert_eq!(s.me_with(Some(&format!("Bearer {token}"))).await.status(), 200);
    s.clock.advance(Duration::minutes(3));
    let resp = s.me_with(Some(&format!("Bearer {token}"))).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("expired"), "{challenge}");
}
