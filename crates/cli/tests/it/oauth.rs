//! The token endpoints: grants, response shapes, and every kind of bad input.

use mlgate_proto::ResetCredential;
use time::Duration;

use crate::support::*;

#[tokio::test]
async fn client_credentials_v1_and_v2_answer_in_the_shapes_adal_and_msal_need() {
    let s = TestServer::start().await;
    let sp = s.create_sp("shapes").await;

    let (status, v1) = s
        .post_token(
            false,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &sp.app_id),
                ("client_secret", &sp.password),
                ("resource", ARM),
            ],
        )
        .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["token_type"], "Bearer");
    assert_eq!(v1["expires_in"], 3600);
    assert_eq!(v1["resource"], ARM);
    for f in ["expires_on", "not_before", "ext_expires_in"] {
        assert!(!v1[f].is_null(), "v1 lacks {f}");
    }
    assert!(v1.get("refresh_token").is_none(), "client credentials never get a refresh token");
    let c = claims(v1["access_token"].as_str().unwrap());
    assert_eq!(c["iss"], format!("{}/{}/", s.url, s.tenant_id));
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["appid"], sp.app_id);
    assert_eq!(c["oid"], sp.object_id);
    assert_eq!(c["aud"], ARM);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    let h = header(v1["access_token"].as_str().unwrap());
    assert_eq!(h["alg"], "ES256");
    assert!(h["kid"].as_str().is_some_and(|k| !k.is_empty()));

    let (status, v2) = s
        .post_token(
            true,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &sp.app_id),
                ("client_secret", &sp.password),
                ("scope", ARM_SCOPE),
                ("client_info", "1"),
                ("x-client-SKU", "MSAL.Python"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["scope"], ARM_SCOPE);
    assert!(v2.get("resource").is_none());
    let c = claims(v2["access_token"].as_str().unwrap());
    assert_eq!(c["iss"], format!("{}/{}/v2.0", s.url, s.tenant_id));
    assert_eq!(c["azp"], sp.app_id);
    assert_eq!(c["idtyp"], "app");

    // Both tokens open the protected endpoint, which says who called.
    for t in [&v1["access_token"], &v2["access_token"]] {
        let me = s.client().me(t.as_str().unwrap()).await.unwrap();
        assert_eq!(me.kind, "ServicePrincipal");
        assert_eq!(me.app_id.as_deref(), Some(sp.app_id.as_str()));
        assert_eq!(me.object_id, sp.object_id);
    }
}

#[tokio::test]
async fn the_tenant_is_found_by_guid_domain_or_common_and_unknown_tenants_are_refused() {
    let s = TestServer::start().await;
    let sp = s.create_sp("tenants").await;
    for tenant in [s.tenant_id.as_str(), "mlgate.local", "MLGATE.LOCAL"] {
        let t = s.client().client_credentials(tenant, &sp.app_id, &sp.password, ARM_SCOPE).await;
        assert!(t.is_ok(), "tenant {tenant}: {t:?}");
    }
    let url = format!("{}/no-such.example/oauth2/v2.0/token", s.url);
    let resp = s
        .http()
        .post(url)
        .form(&[("grant_type", "client_credentials"), ("client_id", &sp.app_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(assert_oauth_error(&body, "invalid_request"), 90002);
}

#[tokio::test]
async fn bad_clients_get_invalid_client_with_401_and_azure_codes() {
    let s = TestServer::start().await;
    let sp = s.create_sp("bad-clients").await;
    let form = |id: &str, secret: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), id.to_string()),
            ("client_secret".to_string(), secret.to_string()),
            ("scope".to_string(), ARM_SCOPE.to_string()),
        ]
    };
    let post = |f: Vec<(String, String)>| {
        let s = &s;
        async move {
            let resp = s.http().post(s.token_url(true)).form(&f).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };

    // Wrong secret: 401, and the secret that was sent is not echoed.
    let wrong = format!("{}x", sp.password);
    let (st, body) = post(form(&sp.app_id, &wrong)).await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 7000215);
    assert!(!body.to_string().contains(&wrong));

    // Unknown client, and a client id that is not even a GUID.
    let (st, body) = post(form(&uuid::Uuid::new_v4().to_string(), &sp.password)).await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 700016);
    let (st, body) = post(form("not-a-guid", &sp.password)).await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 700016);

    // Missing secret.
    let (st, body) = post(form(&sp.app_id, "")).await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 7000218);

    // Disabled principal: refused at once (the local cache is invalidated), then enabled again.
    let admin = s.admin_token().await;
    s.client().set_service_principal_enabled(&admin, &sp.app_id, false).await.unwrap();
    let (st, body) = post(form(&sp.app_id, &sp.password)).await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 7000112);
    s.client().set_service_principal_enabled(&admin, &sp.app_id, true).await.unwrap();
    assert_eq!(post(form(&sp.app_id, &sp.password)).await.0, 200);

    // The CLI's public client cannot use client credentials.
    let (st, body) = post(form(mlgate_proto::CLI_CLIENT_ID, "")).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "unauthorized_client"), 700025);
}

#[tokio::test]
async fn an_expired_secret_is_refused_while_a_fresh_appended_one_works() {
    let s = TestServer::start().await;
    let sp = s.create_sp("expiry").await;
    let admin = s.admin_token().await;
    let newer = s
        .client()
        .reset_credential(
            &admin,
            &sp.app_id,
            &ResetCredential { append: true, years: Some(3), end_date: None },
        )
        .await
        .unwrap();
    // Both secrets work side by side: rotation without downtime.
    for secret in [&sp.password, &newer.password] {
        let ok = s.client().client_credentials(&s.tenant_id, &sp.app_id, secret, ARM_SCOPE).await;
        assert!(ok.is_ok(), "{ok:?}");
    }
    // Two years later the first (one-year) secret has expired; the second has not.
    s.clock.advance(Duration::days(730));
    let (st, body) = s.client_credentials_grant(&sp.app_id, &sp.password).await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 7000222);
    let ok =
        s.client().client_credentials(&s.tenant_id, &sp.app_id, &newer.password, ARM_SCOPE).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn malformed_requests_get_the_right_oauth_error_and_never_a_500() {
    let s = TestServer::start().await;
    let sp = s.create_sp("bad-input").await;
    let base = [("client_id", sp.app_id.as_str()), ("client_secret", sp.password.as_str())];

    let (st, body) = s.post_token(true, &[base[0], base[1], ("scope", ARM_SCOPE)]).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_request"), 900144);

    let (st, body) = s
        .post_token(true, &[("grant_type", "implicit"), base[0], base[1], ("scope", ARM_SCOPE)])
        .await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "unsupported_grant_type"), 70003);

    let cc = ("grant_type", "client_credentials");
    let (st, body) =
        s.post_token(false, &[cc, base[0], base[1], ("resource", "https://graph.example/")]).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_resource"), 500011);
    let (st, body) = s
        .post_token(true, &[cc, base[0], base[1], ("scope", "https://graph.example/.default")])
        .await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_resource"), 500011);
    let (st, body) = s.post_token(true, &[cc, base[0], base[1], ("scope", "not-a-scope")]).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_scope"), 70011);

    // A repeated parameter is ambiguous and refused.
    let (st, body) = s.post_token(true, &[cc, cc, base[0], base[1], ("scope", ARM_SCOPE)]).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_request"), 900144);

    // Not a form: JSON, garbage bytes, no content type.
    let http = s.http();
    for (ct, body) in [
        (Some("application/json"), b"{\"grant_type\":\"client_credentials\"}".to_vec()),
        (Some("application/x-www-form-urlencoded"), vec![0xff, 0xfe, b'%', b'%', 0x00, b'=']),
        (None, b"grant_type=client_credentials".to_vec()),
    ] {
        let mut req = http.post(s.token_url(true)).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["error"], "invalid_request", "{b}");
    }

    // Oversized: refused unread with 413 and an OAuth body.
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(200 * 1024));
    let resp = http
        .post(s.token_url(true))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request");

    // Certificate credentials are not offered; said plainly.
    let (st, body) = s
        .post_token(true, &[cc, base[0], ("client_assertion", "x.y.z"), ("scope", ARM_SCOPE)])
        .await;
    assert_eq!(st, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 700027);
}

#[tokio::test]
async fn http_basic_client_authentication_works_and_failure_carries_a_challenge() {
    let s = TestServer::start().await;
    let sp = s.create_sp("basic").await;
    let http = s.http();
    let ok = http
        .post(s.token_url(true))
        .basic_auth(&sp.app_id, Some(&sp.password))
        .form(&[("grant_type", "client_credentials"), ("scope", ARM_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = http
        .post(s.token_url(true))
        .basic_auth(&sp.app_id, Some("wrong"))
        .form(&[("grant_type", "client_credentials"), ("scope", ARM_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
}

#[tokio::test]
async fn password_grant_signs_users_in_and_refuses_wrong_passwords_alike() {
    let s = TestServer::start().await;
    let c = s.client();
    let t = c.password("organizations", ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();
    assert!(t.refresh_token.is_some());
    let id = claims(t.id_token.as_deref().unwrap());
    assert_eq!(id["aud"], mlgate_proto::CLI_CLIENT_ID);
    assert_eq!(id["preferred_username"], ADMIN);
    assert_eq!(id["tid"], s.tenant_id);
    let me = c.me(&t.access_token).await.unwrap();
    assert_eq!(me.kind, "User");
    assert_eq!(me.user_principal_name.as_deref(), Some(ADMIN));

    for (user, pw) in [(ADMIN, "wrong-password"), ("nobody@mlgate.local", ADMIN_PASSWORD)] {
        let (st, body) = s
            .post_token(
                true,
                &[
                    ("grant_type", "password"),
                    ("client_id", mlgate_proto::CLI_CLIENT_ID),
                    ("username", user),
                    ("password", pw),
                    ("scope", ARM_SCOPE),
                ],
            )
            .await;
        assert_eq!(st, 400);
        assert_eq!(assert_oauth_error(&body, "invalid_grant"), 50126);
        assert!(!body.to_string().contains(pw));
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_whole_family() {
    let s = TestServer::start().await;
    let c = s.client();
    let first = c.password(&s.tenant_id, ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();
    let rt1 = first.refresh_token.unwrap();
    let second = c.refresh(&s.tenant_id, &rt1, ARM_SCOPE).await.unwrap();
    let rt2 = second.refresh_token.unwrap();
    assert_ne!(rt1, rt2);
    assert!(c.me(&second.access_token).await.is_ok());

    // rt1 again: reuse. It fails, and so does rt2, which descends from the same sign-in.
    let reuse = c.refresh(&s.tenant_id, &rt1, ARM_SCOPE).await.unwrap_err();
    assert_eq!(reuse.status().map(|s| s.as_u16()), Some(400));
    let after = c.refresh(&s.tenant_id, &rt2, ARM_SCOPE).await.unwrap_err();
    match after {
        mlgate_client::ClientError::OAuth { body, .. } => assert_eq!(body.error, "invalid_grant"),
        other => panic!("{other:?}"),
    }
    // A made-up refresh token is simply invalid.
    let bogus = c.refresh(&s.tenant_id, "bogus", ARM_SCOPE).await.unwrap_err();
    assert_eq!(bogus.status().map(|s| s.as_u16()), Some(400));
}

#[tokio::test]
async fn refresh_tokens_expire_after_their_sliding_lifetime() {
    let s = TestServer::start().await;
    let c = s.client();
    let t = c.password(&s.tenant_id, ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();
    s.clock.advance(Duration::days(60));
    let t2 = c.refresh(&s.tenant_id, &t.refresh_token.unwrap(), ARM_SCOPE).await.unwrap();
    // 60 + 60 days: beyond 90 from sign-in, but within 90 of the last use.
    s.clock.advance(Duration::days(60));
    let t3 = c.refresh(&s.tenant_id, &t2.refresh_token.unwrap(), ARM_SCOPE).await.unwrap();
    s.clock.advance(Duration::days(91));
    let err = c.refresh(&s.tenant_id, &t3.refresh_token.unwrap(), ARM_SCOPE).await.unwrap_err();
    match err {
        mlgate_client::ClientError::OAuth { body, .. } => {
            assert_eq!(body.error_codes, vec![700082])
        }
        other => panic!("{other:?}"),
    }
}
