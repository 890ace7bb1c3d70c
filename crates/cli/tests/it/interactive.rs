//! Interactive sign-in over HTTP, as a browser would post the forms (the real-browser tests
//! with Chromium live in tests/compat/python): device code, authorization code + PKCE, and
//! every way those can go wrong.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_core::secrets::sha256;
use serde_json::Value;
use time::Duration;

use crate::support::*;

const CLI: &str = mlgate_proto::CLI_CLIENT_ID;
const SCOPE: &str = "https://management.azure.com/.default offline_access openid profile";

/// A cookie-keeping form poster that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    html: String,
    location: Option<String>,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        self.html[at..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new(s: &TestServer) -> Self {
        let certs = reqwest::Certificate::from_pem_bundle(&s.ca_pem).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only(certs)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { http, base: s.url.clone(), cookies: HashMap::new() }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: String =
            self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let resp = req.header("cookie", cookie).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let kv = c.split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.insert(k.to_string(), v.to_string());
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        Page { status, location, html: resp.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }
}

async fn start_device(s: &TestServer) -> Value {
    let resp = s
        .http()
        .post(format!("{}/organizations/oauth2/v2.0/devicecode", s.url))
        .form(&[("client_id", CLI), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn poll(s: &TestServer, device_code: &str) -> (u16, Value) {
    s.post_token(
        true,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", CLI),
            ("device_code", device_code),
        ],
    )
    .await
}

/// Enters the code, signs in and decides; returns the last page.
async fn approve(b: &mut Browser, code: &str, user: &str, password: &str, decision: &str) -> Page {
    let p = b.get("/devicelogin").await;
    assert_eq!(p.status, 200);
    let p = b.post("/devicelogin", &[("csrf", &p.csrf()), ("code", code)]).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains("Microsoft Azure CLI"), "the page names the application");
    assert!(
        p.html.contains("Directory") && p.html.contains(".example")
            || p.html.contains("mlgate.local"),
        "the page names the directory"
    );
    let p = b
        .post(
            "/devicelogin/signin",
            &[("csrf", &p.csrf()), ("code", code), ("username", user), ("password", password)],
        )
        .await;
    if p.status != 200 {
        return p;
    }
    b.post("/devicelogin/consent", &[("csrf", &p.csrf()), ("code", code), ("decision", decision)])
        .await
}

#[tokio::test]
async fn device_code_flow_end_to_end_and_its_failures() {
    let s = TestServer::start().await;
    let d = start_device(&s).await;
    let device_code = d["device_code"].as_str().unwrap().to_string();
    let user_code = d["user_code"].as_str().unwrap().to_string();
    assert_eq!(d["verification_uri"], format!("{}/devicelogin", s.url));
    assert_eq!(d["expires_in"], 900);
    assert!(d["interval"].as_i64().unwrap() > 0);
    assert!(d["message"].as_str().unwrap().contains(&user_code));
    assert!(
        user_code.chars().all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );

    // Pending while nobody approved: 400 authorization_pending, never slow_down.
    for _ in 0..3 {
        let (st, body) = poll(&s, &device_code).await;
        assert_eq!(st, 400);
        assert_eq!(assert_oauth_error(&body, "authorization_pending"), 70016);
    }

    let mut b = Browser::new(&s);
    // A wrong password is refused (in the same words as an unknown code), then the right one.
    let p = approve(&mut b, &user_code, ADMIN, "wrong-password", "approve").await;
    assert_eq!(p.status, 401);
    assert!(p.html.contains("Check the code, your user name and your password"), "{}", p.html);
    assert!(!p.html.contains("wrong-password"), "the password is not echoed");
    // Typing the code in lower case and without the dash works too.
    let typed = user_code.replace('-', "").to_lowercase();
    let p = approve(&mut b, &typed, ADMIN, ADMIN_PASSWORD, "approve").await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains("signed in"), "{}", p.html);

    let (st, tokens) = poll(&s, &device_code).await;
    assert_eq!(st, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["preferred_username"], ADMIN);
    let me = s.client().me(tokens["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(me.user_principal_name.as_deref(), Some(ADMIN));

    // The device code works once; the user code cannot be used again.
    let (st, body) = poll(&s, &device_code).await;
    assert_eq!(st, 400);
    assert_eq!(body["error"], "invalid_grant");
    let p = b.get("/devicelogin").await;
    let p = b.post("/devicelogin", &[("csrf", &p.csrf()), ("code", &user_code)]).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("already been used"), "{}", p.html);

    // A made-up code.
    let p = b.post("/devicelogin", &[("csrf", &p.csrf()), ("code", "BBBB-BBBB")]).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("recognised"), "{}", p.html);

    // Denied consent: the client hears access_denied.
    let d2 = start_device(&s).await;
    let p = approve(&mut b, d2["user_code"].as_str().unwrap(), ADMIN, ADMIN_PASSWORD, "deny").await;
    assert!(p.html.contains("denied"), "{}", p.html);
    let (st, body) = poll(&s, d2["device_code"].as_str().unwrap()).await;
    assert_eq!(st, 400);
    assert_eq!(body["error"], "access_denied");

    // Expiry: the page says so, and polling answers expired_token.
    let d3 = start_device(&s).await;
    s.clock.advance(Duration::minutes(16));
    let p = b.get("/devicelogin").await;
    let p = b
        .post("/devicelogin", &[("csrf", &p.csrf()), ("code", d3["user_code"].as_str().unwrap())])
        .await;
    assert!(p.html.contains("expired"), "{}", p.html);
    let (st, body) = poll(&s, d3["device_code"].as_str().unwrap()).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "expired_token"), 70020);
    let (st, body) = poll(&s, "not-a-device-code").await;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn forms_without_a_matching_csrf_token_are_refused() {
    let s = TestServer::start().await;
    let d = start_device(&s).await;
    let mut b = Browser::new(&s);
    let code = d["user_code"].as_str().unwrap();
    // No CSRF cookie at all (a cross-site post), then a forged token with a real cookie.
    let p = b.post("/devicelogin", &[("csrf", "x"), ("code", code)]).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("Start again"));
    let _ = b.get("/devicelogin").await;
    let p = b.post("/devicelogin", &[("csrf", "forged"), ("code", code)]).await;
    assert_eq!(p.status, 400);
    // Consent without having signed in.
    let p = b.get("/devicelogin").await;
    let p = b
        .post(
            "/devicelogin/consent",
            &[("csrf", &p.csrf()), ("code", code), ("decision", "approve")],
        )
        .await;
    assert_eq!(p.status, 401);
    // Pages carry the security headers.
    let resp = s.http().get(format!("{}/devicelogin", s.url)).send().await.unwrap();
    let h = resp.headers();
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn guessing_user_codes_is_rate_limited() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let mut statuses = Vec::new();
    for i in 0..12 {
        let p = b.get("/devicelogin").await;
        let guess = format!("BCDF-{:04}", i).replace(|c: char| c.is_ascii_digit(), "G");
        let p = b.post("/devicelogin", &[("csrf", &p.csrf()), ("code", &guess)]).await;
        statuses.push(p.status);
    }
    assert_eq!(&statuses[..10], &[400; 10]);
    assert_eq!(statuses[10], 429, "{statuses:?}");
    // Even a real code is refused while the address is blocked.
    let d = start_device(&s).await;
    let p = b.get("/devicelogin").await;
    let p = b
        .post("/devicelogin", &[("csrf", &p.csrf()), ("code", d["user_code"].as_str().unwrap())])
        .await;
    assert_eq!(p.status, 429);
    assert!(p.html.contains("Too many attempts"));
}

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(mlgate_core::secrets::random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_query(redirect: &str, challenge: &str) -> String {
    let pairs = [
        ("client_id", CLI),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("scope", SCOPE),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    pairs.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&")
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signs in on the authorize page; returns the redirect's query parameters.
async fn authorize(
    b: &mut Browser,
    s: &TestServer,
    redirect: &str,
    challenge: &str,
) -> HashMap<String, String> {
    let path = format!("/{}/oauth2/v2.0/authorize", s.tenant_id);
    let q = authorize_query(redirect, challenge);
    let p = b.get(&format!("{path}?{q}")).await;
    assert_eq!(p.status, 200, "{}", p.html);
    let mut form: Vec<(String, String)> = q
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (
                k.to_string(),
                form_urlencoded::parse(format!("v={v}").as_bytes()).next().unwrap().1.into_owned(),
            )
        })
        .collect();
    form.push(("csrf".into(), p.csrf()));
    form.push(("username".into(), ADMIN.into()));
    form.push(("password".into(), ADMIN_PASSWORD.into()));
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let p = b.post(&path, &refs).await;
    assert_eq!(p.status, 302, "{}", p.html);
    let loc = p.location.unwrap();
    assert!(loc.starts_with(redirect), "{loc}");
    let query = loc.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn authorization_code_with_pkce_and_its_failures() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let redirect = "http://localhost:47123";
    let (verifier, challenge) = pkce();
    let q = authorize(&mut b, &s, redirect, &challenge).await;
    assert_eq!(q["state"], "st4te");
    let code = q["code"].clone();
    let exchange = |code: String, redirect: String, verifier: String| {
        let s = &s;
        async move {
            s.post_token(
                true,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", CLI),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &verifier),
                    ("scope", SCOPE),
                ],
            )
            .await
        }
    };
    // Wrong verifier: refused, and the code is spent (a second try with the right one fails too).
    let (st, body) = exchange(code.clone(), redirect.into(), pkce().0).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_grant"), 50148);
    let (st, _) = exchange(code, redirect.into(), verifier.clone()).await;
    assert_eq!(st, 400);

    // A fresh code, the right verifier but another redirect URI: refused.
    let q = authorize(&mut b, &s, redirect, &challenge).await;
    let (st, body) =
        exchange(q["code"].clone(), "http://localhost:1".into(), verifier.clone()).await;
    assert_eq!(st, 400);
    assert_eq!(assert_oauth_error(&body, "invalid_grant"), 500112);

    // And the happy path, with the nonce in the id_token; then the code is single-use.
    let q = authorize(&mut b, &s, redirect, &challenge).await;
    let (st, tokens) = exchange(q["code"].clone(), redirect.into(), verifier.clone()).await;
    assert_eq!(st, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n0nce");
    assert_eq!(id["aud"], CLI);
    let (st, body) = exchange(q["code"].clone(), redirect.into(), verifier).await;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));

    // A redirect URI that is not a loopback one: an error page, never a redirect.
    let path = format!("/{}/oauth2/v2.0/authorize", s.tenant_id);
    for bad in ["https://evil.example/cb", "http://localhost.evil.example:80", "http://example.com"]
    {
        let p = b.get(&format!("{path}?{}", authorize_query(bad, &challenge))).await;
        assert_eq!(p.status, 400, "{bad}");
        assert!(p.location.is_none());
        assert!(p.html.contains("redirect URI"), "{}", p.html);
    }
    // No PKCE: back to the client with invalid_request.
    let q = format!(
        "client_id={CLI}&response_type=code&redirect_uri={}&state=s1&scope=openid",
        urlencode(redirect)
    );
    let p = b.get(&format!("{path}?{q}")).await;
    assert_eq!(p.status, 302);
    let loc = p.location.unwrap();
    assert!(loc.contains("error=invalid_request") && loc.contains("state=s1"), "{loc}");
    // An unknown client: an error page.
    let p = b.get(&format!("{path}?client_id={}&response_type=code", uuid::Uuid::new_v4())).await;
    assert_eq!(p.status, 400);
}

#[tokio::test]
async fn revocation_and_introspection() {
    let s = TestServer::start().await;
    let c = s.client();
    let t = c.password(&s.tenant_id, ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();
    let rt = t.refresh_token.unwrap();
    let sp = s.create_sp("introspector").await;
    let introspect = |token: String| {
        let s = &s;
        let sp = &sp;
        async move {
            let resp = s
                .http()
                .post(format!("{}/{}/oauth2/v2.0/introspect", s.url, s.tenant_id))
                .form(&[
                    ("token", token.as_str()),
                    ("client_id", &sp.app_id),
                    ("client_secret", &sp.password),
                ])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (st, body) = introspect(t.access_token.clone()).await;
    assert_eq!(st, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["username"], ADMIN);
    let (_, body) = introspect(rt.clone()).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");
    let (_, body) = introspect("garbage".into()).await;
    assert_eq!(body, serde_json::json!({"active": false}));
    // Introspection needs a confidential client.
    let resp = s
        .http()
        .post(format!("{}/{}/oauth2/v2.0/introspect", s.url, s.tenant_id))
        .form(&[("token", t.access_token.as_str()), ("client_id", CLI)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    c.revoke(&s.tenant_id, &rt).await.unwrap();
    let (_, body) = introspect(rt.clone()).await;
    assert_eq!(body["active"], false);
    assert!(c.refresh(&s.tenant_id, &rt, ARM_SCOPE).await.is_err());
    // Revoking an unknown token is not an error (RFC 7009 2.2).
    c.revoke(&s.tenant_id, "unknown-token").await.unwrap();
}

#[tokio::test]
async fn users_belong_to_several_tenants_and_tid_says_which() {
    use mlgate_proto::{AddMember, CreateTenant, CreateUser};
    let s = TestServer::start().await;
    let c = s.client();
    let admin = s.admin_token().await;
    let home = s.tenant_id.clone();
    let other = c
        .create_tenant(
            &admin,
            &CreateTenant { domain: "contoso.example".into(), display_name: "Contoso".into() },
        )
        .await
        .unwrap();
    assert_ne!(other.tenant_id, home);
    c.create_user(
        &admin,
        &CreateUser {
            user_principal_name: "dana@mlgate.local".into(),
            display_name: "Dana".into(),
            password: "Dana-Passw0rd!".into(),
            force_change_password_next_sign_in: false,
        },
    )
    .await
    .unwrap();

    // Not a member yet: refused in Contoso, fine at home.
    let err = c
        .password("contoso.example", "dana@mlgate.local", "Dana-Passw0rd!", ARM_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    let at_home =
        c.password(&home, "dana@mlgate.local", "Dana-Passw0rd!", ARM_SCOPE).await.unwrap();

    // The creator administers Contoso and adds Dana.
    let admin_in_contoso =
        c.password("contoso.example", ADMIN, ADMIN_PASSWORD, ARM_SCOPE).await.unwrap();
    assert_eq!(claims(&admin_in_contoso.access_token)["tid"], other.tenant_id);
    let dana_token = at_home.access_token.clone();
    let refused = c
        .add_member(&dana_token, &AddMember { user: "dana@mlgate.local".into(), admin: false })
        .await;
    assert_eq!(
        refused.unwrap_err().status().map(|s| s.as_u16()),
        Some(403),
        "only administrators add members"
    );
    c.add_member(
        &admin_in_contoso.access_token,
        &AddMember { user: "dana@mlgate.local".into(), admin: false },
    )
    .await
    .unwrap();

    // --tenant picks the tenant, and tid says which; the refresh token crosses tenants.
    let t = c
        .password("contoso.example", "dana@mlgate.local", "Dana-Passw0rd!", ARM_SCOPE)
        .await
        .unwrap();
    assert_eq!(claims(&t.access_token)["tid"], other.tenant_id);
    let crossed = c
        .refresh(&other.tenant_id, at_home.refresh_token.as_deref().unwrap(), ARM_SCOPE)
        .await
        .unwrap();
    assert_eq!(claims(&crossed.access_token)["tid"], other.tenant_id);
    let tenants = c.tenants(&t.access_token).await.unwrap();
    assert_eq!(tenants.len(), 2);
    // The creator owns Contoso's subscription; Dana sees none there until given a role.
    assert_eq!(c.subscriptions(&admin_in_contoso.access_token).await.unwrap().len(), 1);
    assert!(c.subscriptions(&t.access_token).await.unwrap().is_empty());
    assert_eq!(
        c.create_tenant(
            &admin,
            &CreateTenant { domain: "contoso.example".into(), display_name: "x".into() }
        )
        .await
        .unwrap_err()
        .status()
        .map(|s| s.as_u16()),
        Some(409)
    );

    // A device code issued in Contoso cannot be approved by someone who is not its member.
    c.create_user(
        &admin,
        &CreateUser {
            user_principal_name: "eve@mlgate.local".into(),
            display_name: "Eve".into(),
            password: "Eve-Passw0rd!".into(),
            force_change_password_next_sign_in: false,
        },
    )
    .await
    .unwrap();
    let d = s
        .http()
        .post(format!("{}/contoso.example/oauth2/v2.0/devicecode", s.url))
        .form(&[("client_id", CLI), ("scope", SCOPE)])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut b = Browser::new(&s);
    let p = approve(
        &mut b,
        d["user_code"].as_str().unwrap(),
        "eve@mlgate.local",
        "Eve-Passw0rd!",
        "approve",
    )
    .await;
    assert_eq!(p.status, 401, "Eve is not a user of Contoso: {}", p.html);
    let p = approve(
        &mut b,
        d["user_code"].as_str().unwrap(),
        "dana@mlgate.local",
        "Dana-Passw0rd!",
        "approve",
    )
    .await;
    assert_eq!(p.status, 200);
    let (st, tokens) = s
        .post_token(
            true,
            &[
                ("grant_type", "device_code"),
                ("client_id", CLI),
                ("code", d["device_code"].as_str().unwrap()),
            ],
        )
        .await;
    // (The tenant in the token path must be the one the code was issued in.)
    assert_eq!(st, 400, "issued in Contoso, redeemed at home: {tokens}");
    let resp = s
        .http()
        .post(format!("{}/contoso.example/oauth2/v2.0/token", s.url))
        .form(&[
            ("grant_type", "device_code"),
            ("client_id", CLI),
            ("code", d["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["tid"], other.tenant_id);
}

#[tokio::test]
async fn the_sdk_signs_a_person_in_with_a_device_code() {
    use mlgate_client::workspace::{Authentication, InteractiveLoginAuthentication, Workspace};
    let s = TestServer::start().await;
    let c = s.client();
    let admin = s.admin_token().await;
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "rg", None).await.unwrap();
    c.put_workspace(&admin, &sub, "rg", "ws1", None).await.unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let auth = InteractiveLoginAuthentication::with_prompt(&s.tenant_id, move |d| {
        let _ = tx.send(d.user_code.clone());
    });
    let client = s.client();
    let sub2 = sub.clone();
    let handle = tokio::spawn(async move {
        Workspace::get(client, "ws1", Authentication::Interactive(auth), &sub2, Some("rg")).await
    });
    let code = rx.recv().await.unwrap();
    let mut b = Browser::new(&s);
    let p = approve(&mut b, &code, ADMIN, ADMIN_PASSWORD, "approve").await;
    assert_eq!(p.status, 200);
    let ws = handle.await.unwrap().unwrap();
    assert_eq!(ws.name, "ws1");
    // The next token comes from the cache, without another prompt.
    let t1 = ws.token().await.unwrap();
    assert_eq!(claims(&t1)["preferred_username"], ADMIN);
    assert!(rx.try_recv().is_err());
}
