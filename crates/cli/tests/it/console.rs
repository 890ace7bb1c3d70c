//! The web console over HTTP, as a browser would use it (the real-browser flows, axe-core and
//! screenshots are in tests/compat/python/test_console.py): its sign-in through the authorize
//! page and the redirect-URI rule, the session cookie, CSRF, sign-out revoking, the bounds.

use std::collections::HashMap;

use crate::support::*;

const CONSOLE: &str = mlgate_proto::CONSOLE_CLIENT_ID;

/// A cookie-keeping client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    html: String,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        self.html[at..].split('"').next().unwrap().to_string()
    }

    fn set_cookie(&self, name: &str) -> String {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie"))
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
            let (k, v) = c.to_str().unwrap().split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.insert(k.to_string(), v.to_string());
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let location = headers.get("location").map(|l| l.to_str().unwrap().to_string());
        Page { status, location, headers, html: resp.text().await.unwrap() }
    }

    /// `path` on the server, or an absolute URL.
    async fn get(&mut self, path: &str) -> Page {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let req = self.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Signs in to the console as the administrator; returns the home page.
    async fn sign_in(&mut self, s: &TestServer) -> Page {
        let p = self.get("/console").await;
        assert_eq!((p.status, p.location.as_deref()), (303, Some("/console/signin")));
        let p = self.get("/console/signin").await;
        assert_eq!(p.status, 303);
        let login = p.set_cookie("mlgate_console_login");
        assert!(
            login.contains("HttpOnly")
                && login.contains("SameSite=Strict")
                && login.contains("Secure"),
            "{login}"
        );
        let authorize = p.location.unwrap();
        assert!(
            authorize.starts_with(&format!("/{}/oauth2/v2.0/authorize?", s.tenant_id)),
            "{authorize}"
        );
        let query: HashMap<String, String> =
            form_urlencoded::parse(authorize.split_once('?').unwrap().1.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        assert_eq!(query["client_id"], CONSOLE);
        assert_eq!(query["redirect_uri"], format!("{}/console/callback", s.url));
        assert_eq!(query["code_challenge_method"], "S256");
        let page = self.get(&authorize).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("mlgate console"));
        let mut form: Vec<(&str, &str)> =
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let csrf = page.csrf();
        form.extend([("csrf", csrf.as_str()), ("username", ADMIN), ("password", ADMIN_PASSWORD)]);
        let path = authorize.split_once('?').unwrap().0.to_string();
        let p = self.post(&path, &form).await;
        assert_eq!(p.status, 302, "{}", p.html);
        let callback = p.location.unwrap();
        assert!(callback.starts_with(&format!("{}/console/callback?code=", s.url)), "{callback}");
        let p = self.get(&callback).await;
        assert_eq!((p.status, p.location.as_deref()), (303, Some("/console")), "{}", p.html);
        let session = p.set_cookie("mlgate_console");
        assert!(
            session.contains("HttpOnly")
                && session.contains("SameSite=Strict")
                && session.contains("Secure"),
            "{session}"
        );
        assert!(session.contains("Path=/console;"), "the API and scoring never get it: {session}");
        // The code was spent: the same callback again starts nothing.
        let again = self.get(&callback).await;
        assert_eq!(again.status, 400);
        let home = self.get("/console").await;
        assert_eq!(home.status, 200, "{}", home.html);
        assert!(home.html.contains(ADMIN));
        home
    }
}

fn authorize_path(s: &TestServer, client: &str, redirect: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", "https://management.azure.com/.default openid"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    format!("/{}/oauth2/v2.0/authorize?{q}", s.tenant_id)
}

#[tokio::test]
async fn only_the_console_may_use_its_callback_and_it_may_use_nothing_else() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let callback = format!("{}/console/callback", s.url);
    let ok = b.get(&authorize_path(&s, CONSOLE, &callback)).await;
    assert_eq!(ok.status, 200, "{}", ok.html);
    for (client, redirect) in [
        (mlgate_proto::CLI_CLIENT_ID, callback.as_str()),
        (CONSOLE, "http://localhost:47123"),
        (CONSOLE, &format!("{callback}/x")),
        (CONSOLE, &format!("{callback}?next=https://evil.example")),
        (CONSOLE, "https://evil.example/console/callback"),
    ] {
        let p = b.get(&authorize_path(&s, client, redirect)).await;
        assert_eq!(p.status, 400, "{client} {redirect}");
        assert!(p.location.is_none() && p.html.contains("redirect URI"), "{}", p.html);
    }
    // The CLI keeps its loopback redirects.
    let cli =
        b.get(&authorize_path(&s, mlgate_proto::CLI_CLIENT_ID, "http://localhost:47123")).await;
    assert_eq!(cli.status, 200);
}

#[tokio::test]
async fn console_sign_in_session_csrf_and_sign_out() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let home = b.sign_in(&s).await;
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["cache-control"], "no-store");
    let sub =
        s.client().subscriptions(&s.admin_token().await).await.unwrap()[0].subscription_id.clone();

    // A form post needs the session and this browser's CSRF token.
    let mut stranger = Browser::new(&s);
    let p = stranger
        .post("/console/groups", &[("group_subscription", &sub), ("group_name", "no-session")])
        .await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/console/signin")));
    for csrf in [None, Some("forged")] {
        let mut form = vec![("group_subscription", sub.as_str()), ("group_name", "forged-rg")];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let p = b.post("/console/groups", &form).await;
        assert_eq!(p.status, 403, "{}", p.html);
        assert!(p.html.contains("nothing was done"));
    }
    let csrf = home.csrf();
    let p = b
        .post(
            "/console/groups",
            &[("csrf", &csrf), ("group_subscription", &sub), ("group_name", "real-rg")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains("Resource group &#39;real-rg&#39; is ready."), "{}", p.html);
    let token = s.admin_token().await;
    let groups: serde_json::Value = s
        .http()
        .get(format!("{}/subscriptions/{sub}/resourcegroups?api-version=2021-04-01", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> =
        groups["value"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["real-rg"], "the refused posts made nothing");

    // What core refuses comes with its status and words: a missing workspace is a 404.
    let p = b.get(&format!("/console/ws/{sub}/real-rg/missing-ws")).await;
    assert_eq!(p.status, 404, "{}", p.html);
    assert!(p.html.contains("missing-ws"), "{}", p.html);

    // Sign-out forgets the session and revokes its refresh token.
    let cookie = b.cookies["mlgate_console"].clone();
    let now = mlgate_core::clock::Clock::now(s.clock.as_ref());
    let session = s.server_state.console.get(&cookie, now).expect("a session");
    let refresh_token = session.lock().await.refresh_token.clone();
    let p = b.post("/console/signout", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 200);
    assert!(p.html.contains("signed out"));
    assert!(s.server_state.console.get(&cookie, now).is_none());
    let mut old = Browser::new(&s);
    old.cookies.insert("mlgate_console".into(), cookie);
    let p = old.get("/console").await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/console/signin")));
    let (status, body) = s
        .post_token(
            true,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CONSOLE),
                ("refresh_token", &refresh_token),
                ("scope", "https://management.azure.com/.default"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("revoked"), "{body}");
}

#[tokio::test]
async fn console_forms_and_sign_ins_are_bounded() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let home = b.sign_in(&s).await;
    // A form body over 256 KiB is refused unread.
    let big = "x".repeat(300 * 1024);
    let p = b.post("/console/roles", &[("csrf", &home.csrf()), ("definition", &big)]).await;
    assert_eq!(p.status, 413);
    // A callback without the sign-in's cookie, or with another state, starts nothing.
    let mut other = Browser::new(&s);
    let p = other.get("/console/callback?code=abc&state=def").await;
    assert_eq!(p.status, 400);
    assert!(!other.cookies.contains_key("mlgate_console"));
    let _ = other.get("/console/signin").await;
    let p = other.get("/console/callback?code=abc&state=not-the-state").await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("not started here"), "{}", p.html);
    // A session cookie that names no session leads to the sign-in.
    other.cookies.insert("mlgate_console".into(), "A".repeat(43));
    let p = other.get("/console/directory").await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/console/signin")));
}

#[tokio::test]
async fn the_tenant_picker_switches_the_session_to_a_tenant_of_the_person() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let other = s
        .client()
        .create_tenant(
            &token,
            &mlgate_proto::CreateTenant {
                domain: "second.example".into(),
                display_name: "Second".into(),
            },
        )
        .await
        .unwrap();
    let mut b = Browser::new(&s);
    let home = b.sign_in(&s).await;
    assert!(
        home.html.contains("id=\"switch-tenant\"") && home.html.contains("second.example"),
        "{}",
        home.html
    );
    let csrf = home.csrf();
    // Not a tenant of the person: refused, and the session (its refresh token) still works.
    let p = b
        .post("/console/tenant", &[("csrf", &csrf), ("tenant", &uuid::Uuid::new_v4().to_string())])
        .await;
    assert_eq!(p.status, 403, "{}", p.html);
    let p = b.post("/console/tenant", &[("csrf", &csrf), ("tenant", &other.tenant_id)]).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/console")), "{}", p.html);
    let home = b.get("/console").await;
    assert!(home.html.contains("Signed in to <strong>Second</strong>"), "{}", home.html);
    assert!(home.html.contains("Second subscription"), "{}", home.html);
    // And back, through a renewal in the first tenant.
    let p = b.post("/console/tenant", &[("csrf", &csrf), ("tenant", &s.tenant_id)]).await;
    assert_eq!(p.status, 303);
    let home = b.get("/console").await;
    assert!(home.html.contains("Signed in to <strong>Default Directory</strong>"), "{}", home.html);
}

#[tokio::test]
async fn the_service_page_on_an_instance_reloads_while_transitioning_and_tests_as_the_person() {
    use mlgate_serving::onnx::linear_regression_model;
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "con", None).await.unwrap();
    c.put_workspace(&admin, &sub, "con", "con-ws", None).await.unwrap();
    let ws = mlgate_client::models::WorkspaceAddress {
        subscription_id: sub.clone(),
        resource_group: "con".into(),
        workspace: "con-ws".into(),
    };
    let dir = TempDir::new();
    let file = dir.0.join("model.onnx");
    std::fs::write(&file, linear_regression_model(&[vec![1.0], vec![2.0], vec![3.0]], &[0.5]))
        .unwrap();
    c.register_model_from_path(&admin, &ws, "linear", &file, "", Default::default()).await.unwrap();
    let req = mlgate_proto::DeployService {
        model: "linear:1".into(),
        inference_config: serde_json::json!({"runtime": "onnx"}),
        deployment_config: serde_json::json!({"computeType": "instance"}),
    };
    c.deploy(&admin, &ws, "con-svc", &req).await.unwrap();
    c.wait_for_deployment(&admin, &ws, "con-svc", std::time::Duration::from_secs(30), |_| {})
        .await
        .unwrap();

    let mut b = Browser::new(&s);
    b.sign_in(&s).await;
    let page = format!("/console/ws/{sub}/con/con-ws/services/con-svc");
    let p = b.get(&page).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(p.html.contains(">Healthy<") && !p.html.contains("http-equiv=\"refresh\""));
    // An instance offers no service tokens.
    assert!(p.html.contains("value=\"key\"") && !p.html.contains("value=\"aml_token\""));
    let csrf = p.csrf();
    let refused = b.post(&format!("{page}/auth"), &[("csrf", &csrf), ("mode", "aml_token")]).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("not supported on an instance"), "{}", refused.html);

    // The Test form runs the model as the signed-in person.
    let t = b
        .post(
            &format!("{page}/test"),
            &[("csrf", &csrf), ("body", r#"{"data": [[1.0, 1.0, 1.0]]}"#)],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.html);
    assert!(t.html.contains("id=\"test-result\""), "{}", t.html);
    assert!(t.html.replace([' ', '\n'], "").contains("6.5"), "{}", t.html);
    let bad = b.post(&format!("{page}/test"), &[("csrf", &csrf), ("body", "{not json")]).await;
    assert!(bad.html.contains("not JSON"), "{}", bad.html);

    // While Transitioning the page reloads itself.
    s.server_state
        .services
        .set_state("con-svc", mlgate_core::records::ServiceState::Transitioning, None)
        .await
        .unwrap();
    let p = b.get(&page).await;
    assert!(p.html.contains("<meta http-equiv=\"refresh\" content=\"3\">"), "{}", p.html);
}

/// The directory page manages users as `az ad user update` does: disable (sign-in refused with
/// AADSTS50057), enable again, and reset the password with a change at next sign-in (the new
/// password is accepted and then AADSTS50055 asks for the change); the administrator cannot
/// disable themself, and a forged post changes nothing.
#[tokio::test]
async fn the_directory_page_disables_enables_and_resets_users() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let home = b.sign_in(&s).await;
    let csrf = home.csrf();
    let upn = "carol@mlgate.local";
    let p = b
        .post(
            "/console/directory/users",
            &[
                ("csrf", &csrf),
                ("user_name", upn),
                ("user_display", "Carol"),
                ("user_password", "Carol-Pa55word-1"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.html);
    let id = s.client().user(&s.admin_token().await, upn).await.unwrap().id;
    let page = b.get("/console/directory").await;
    assert!(page.html.contains(&format!("/console/directory/users/{id}")), "no manage form");
    let grant = |pw: &'static str| {
        let s = &s;
        async move {
            let form = [
                ("grant_type", "password"),
                ("client_id", mlgate_proto::CLI_CLIENT_ID),
                ("username", upn),
                ("password", pw),
                ("scope", ARM_SCOPE),
            ];
            let (st, body) = s.post_token(true, &form).await;
            (st, body["error_codes"][0].as_u64().unwrap_or(0))
        }
    };
    assert_eq!(grant("Carol-Pa55word-1").await.0, 200);
    let action = format!("/console/directory/users/{id}");

    let forged = b.post(&action, &[("csrf", "forged"), ("action", "disable")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(grant("Carol-Pa55word-1").await.0, 200, "a forged post changed nothing");

    let p = b.post(&action, &[("csrf", &csrf), ("action", "disable")]).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert_eq!(grant("Carol-Pa55word-1").await, (400, 50057));
    let p = b.post(&action, &[("csrf", &csrf), ("action", "enable")]).await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert_eq!(grant("Carol-Pa55word-1").await.0, 200);

    let p = b
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("action", "reset"),
                ("new_password", "Carol-New-Pa55word-2"),
                ("force_change", "1"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert_eq!(grant("Carol-Pa55word-1").await, (400, 50126), "the old password is gone");
    assert_eq!(grant("Carol-New-Pa55word-2").await, (400, 50055), "the change is asked for");

    // The administrator cannot lock themself out.
    let me = s.client().user(&s.admin_token().await, ADMIN).await.unwrap().id;
    let p = b
        .post(&format!("/console/directory/users/{me}"), &[("csrf", &csrf), ("action", "disable")])
        .await;
    assert_eq!(p.status, 409, "{}", p.html);

    // The logs page: the refused sign-ins (disabled, old password, change required), for an
    // administrator, with the failures-only filter; and the subscription's activity log.
    let logs = b.get("/console/logs?failures=1").await;
    assert_eq!(logs.status, 200, "{}", logs.html);
    assert!(logs.html.contains("id=\"signin-table\""), "{}", logs.html);
    for code in ["AADSTS50057", "AADSTS50126", "AADSTS50055"] {
        assert!(logs.html.contains(code), "{code} missing from the sign-in log page");
    }
    assert!(logs.html.contains(upn));
    assert!(!logs.html.contains("Carol-New-Pa55word-2"), "a password reached the page");
    assert!(logs.html.contains("id=\"activity\""));
}
