//! A web service: state and logs (the page reloads itself while Transitioning), scoring URI,
//! the authentication mode, keys (masked; reveal, copy, regenerate after a confirmation),
//! a service token with its refresh-by time, the Consume panel and the Test form.
//!
//! Keys and tokens appear only in the page answering the POST that asked for them (never in a
//! URL, never logged, `no-store`).

use axum::extract::{Form, Path, Query};
use axum::response::{IntoResponse, Response};
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::rbac::catalog::{
    SERVICE_LIST_KEYS, SERVICE_REGENERATE_KEYS, SERVICE_SCORE, SERVICE_WRITE,
};
use mlgate_core::resources::workspace_scope;
use mlgate_core::services::{
    AuthMode, ComputeType, KeySlot, Rollout, ServiceKeys, ServiceToken, deployment_config,
};

use super::layout::{Nav, button_form, csrf_field, error_box, ok_box, seg};
use super::{Ctx, field, see_other, select, unix_time};
use crate::web::pages::esc;

pub type SvcPath = (String, String, String, String);

/// What a POST adds to the page.
#[derive(Default)]
struct Extra {
    notice: String,
    keys: Option<ServiceKeys>,
    token: Option<ServiceToken>,
    test: Option<String>,
    test_body: Option<String>,
}

/// `GET .../services/{name}`.
#[derive(serde::Deserialize)]
pub struct ShowQuery {
    /// What the POST that redirected here did (a fixed notice, never text from the URL).
    done: Option<String>,
}

pub async fn show(ctx: Ctx, Path(path): Path<SvcPath>, Query(q): Query<ShowQuery>) -> Response {
    let notice = match q.done.as_deref() {
        Some(slot @ ("primary" | "secondary")) => ok_box(&format!(
            "The {slot} key was regenerated; the old one is refused from now on. Reveal the keys \
             to copy the new one."
        )),
        _ => String::new(),
    };
    render(&ctx, &path, Extra { notice, ..Extra::default() }).await
}

fn wref((sub, rg, ws, _): &SvcPath) -> WorkspaceRef<'_> {
    WorkspaceRef { subscription: sub, resource_group: rg, workspace: ws }
}

/// The service's scope, for asking what the person may do there.
fn svc_scope((sub, rg, ws, name): &SvcPath) -> String {
    sub.parse()
        .ok()
        .and_then(|s| workspace_scope(s, rg, ws).ok())
        .map(|s| format!("{}/services/{name}", s.as_str()))
        .unwrap_or_default()
}

fn base((sub, rg, ws, name): &SvcPath) -> String {
    format!("/console/ws/{}/{}/{}/services/{}", seg(sub), seg(rg), seg(ws), seg(name))
}

fn copy_button(target: &str) -> String {
    format!(
        "<button type=\"button\" class=\"secondary small\" data-copy=\"{target}\" aria-label=\"Copy {target}\">Copy</button>"
    )
}

async fn render(ctx: &Ctx, path: &SvcPath, x: Extra) -> Response {
    let p = &ctx.principal;
    let st = &ctx.state;
    let name = &path.3;
    let s = match st.services.get(p, wref(path), name).await {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let dc = deployment_config(&s.deployment_config).ok();
    let compute = dc.as_ref().map_or(ComputeType::Instance, |c| c.compute_type);
    let auth = dc.as_ref().map_or(AuthMode::None, |c| c.auth);
    let uri = st.services.scoring_uri(&s.name);
    let scope = svc_scope(path);
    let base = base(path);
    let (sub, rg, ws, _) = path;
    let mut body = format!(
        "<div class=\"crumbs\"><a href=\"/console\">Home</a> › {} › <a href=\"/console/ws/{}/{}/{}\">{}</a> › {}</div>\
         <h1>Web service {}</h1>{}",
        esc(rg),
        seg(sub),
        seg(rg),
        seg(ws),
        esc(ws),
        esc(&s.name),
        esc(&s.name),
        x.notice
    );
    let compute_name = if compute == ComputeType::Cluster { "cluster" } else { "instance" };
    body.push_str(&format!(
        "<section aria-labelledby=\"overview\"><h2 id=\"overview\">Overview</h2><dl class=\"facts\">\
         <dt>State</dt><dd><span class=\"badge {st}\" id=\"state\">{st}</span></dd>\
         <dt>Model</dt><dd>{}:{}</dd><dt>Compute type</dt><dd>{compute_name}</dd>\
         <dt>Replicas</dt><dd>{}</dd><dt>Authentication</dt><dd id=\"auth-mode\">{}</dd>\
         <dt>Scoring URI</dt><dd><code id=\"scoring-uri\">{}</code> {}</dd>\
         <dt>Updated</dt><dd>{}</dd></dl>{}</section>",
        esc(&s.model_name),
        s.model_version,
        dc.as_ref().map_or(1, |c| c.replicas),
        auth.as_str(),
        esc(&uri),
        copy_button("scoring-uri"),
        super::datetime(s.updated_at),
        s.error.as_deref().map(error_box).unwrap_or_default(),
        st = s.state.as_str(),
    ));

    // Authentication mode, where the compute type allows the others.
    if ctx.may(SERVICE_WRITE, &scope) {
        let mut modes = vec![("none", "No authentication"), ("key", "Keys")];
        if compute == ComputeType::Cluster {
            modes.push(("aml_token", "Service tokens (get-token)"));
        }
        modes.push(("aad_token", "Microsoft Entra (identity) tokens"));
        let opts: Vec<(String, String)> =
            modes.iter().map(|(v, t)| (v.to_string(), t.to_string())).collect();
        let current = if auth == AuthMode::Token { "aml_token" } else { auth.as_str() };
        let note = if compute == ComputeType::Instance {
            "<p class=\"muted\">Service tokens need a cluster deployment; an instance offers keys or none.</p>"
        } else {
            ""
        };
        body.push_str(&format!(
            "<section aria-labelledby=\"auth\"><h2 id=\"auth\">Authentication</h2>{note}\
             <form method=\"post\" action=\"{base}/auth\">{}{}<button type=\"submit\" id=\"set-auth\">Change authentication</button></form></section>",
            csrf_field(&ctx.csrf),
            select("mode", "Mode", &opts, current)
        ));
    }

    // Keys.
    body.push_str("<section aria-labelledby=\"keys\"><h2 id=\"keys\">Keys</h2>");
    if ctx.may(SERVICE_LIST_KEYS, &scope) {
        let can_regen = ctx.may(SERVICE_REGENERATE_KEYS, &scope);
        body.push_str("<div class=\"scroll\"><table><tbody>");
        for (slot, label, value) in [
            ("Primary", "Primary key", x.keys.as_ref().map(|k| k.primary.as_str())),
            ("Secondary", "Secondary key", x.keys.as_ref().map(|k| k.secondary.as_str())),
        ] {
            let id = format!("{}-key", slot.to_ascii_lowercase());
            let shown = match value {
                Some(v) => format!(
                    "<span class=\"secret\" id=\"{id}\">{}</span> {}",
                    esc(v),
                    copy_button(&id)
                ),
                None => format!(
                    "<span class=\"secret\" id=\"{id}\" aria-label=\"hidden\">••••••••••••••••</span>"
                ),
            };
            let regen = if can_regen {
                button_form(
                    &format!("{base}/regenerate"),
                    &ctx.csrf,
                    &[("slot", slot)],
                    "Regenerate",
                    "danger",
                    &format!("regenerate-{}", slot.to_ascii_lowercase()),
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><th scope=\"row\">{label}</th><td>{shown}</td><td>{regen}</td></tr>"
            ));
        }
        body.push_str("</tbody></table></div>");
        if x.keys.is_none() {
            body.push_str(&button_form(
                &format!("{base}/keys"),
                &ctx.csrf,
                &[],
                "Reveal keys",
                "secondary",
                "reveal-keys",
            ));
        }
        if auth != AuthMode::Key {
            body.push_str("<p class=\"muted\">Keys are not in use while the service uses another authentication mode.</p>");
        }
    } else {
        body.push_str("<p class=\"muted\" id=\"no-keys\">Your role does not include reading this service's keys.</p>");
    }
    body.push_str("</section>");

    // Service token.
    if auth == AuthMode::Token {
        body.push_str("<section aria-labelledby=\"token\"><h2 id=\"token\">Token</h2>");
        if let Some(t) = &x.token {
            body.push_str(&format!(
                "<p><span class=\"secret\" id=\"service-token\">{}</span> {}</p><dl class=\"facts\"><dt>Refresh by</dt><dd id=\"refresh-by\">{}</dd><dt>Expires</dt><dd>{}</dd></dl>",
                esc(&t.token),
                copy_button("service-token"),
                unix_time(t.refresh_after),
                unix_time(t.expires_on)
            ));
        }
        body.push_str(&button_form(
            &format!("{base}/token"),
            &ctx.csrf,
            &[],
            "Get token",
            "secondary",
            "get-token",
        ));
        body.push_str("</section>");
    }

    // Consume.
    let header_value = match auth {
        AuthMode::None => None,
        AuthMode::Key => Some("<your key>"),
        AuthMode::Token => Some("<your token from get-token>"),
        AuthMode::Identity => Some("<an access token for https://ml.azure.com>"),
    };
    body.push_str(&consume(&uri, header_value));

    // Test.
    if ctx.may(SERVICE_SCORE, &scope) {
        let sample = x.test_body.as_deref().unwrap_or("{\"data\": [[1.0, 2.0]]}");
        body.push_str(&format!(
            "<section aria-labelledby=\"test\"><h2 id=\"test\">Test</h2><p class=\"muted\">Sends the JSON body to the running model as you (no key needed).</p>\
             <form method=\"post\" action=\"{base}/test\">{}<label for=\"test-body\">Request body (JSON)</label>\
             <textarea id=\"test-body\" name=\"body\" spellcheck=\"false\">{}</textarea>\
             <button type=\"submit\" id=\"run-test\">Test</button></form>{}</section>",
            csrf_field(&ctx.csrf),
            esc(sample),
            x.test.unwrap_or_default()
        ));
    }

    // Logs.
    let logs = st.serving.logs(&s.name);
    let tail: Vec<&String> =
        logs.iter().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect();
    body.push_str(&format!(
        "<section aria-labelledby=\"logs\"><h2 id=\"logs\">Logs</h2><pre tabindex=\"0\" aria-label=\"Service logs\">{}</pre></section>",
        esc(&tail.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"))
    ));

    let mut page = ctx.page(format!("Web service {}", s.name), Nav::Home, body);
    if s.state == mlgate_core::records::ServiceState::Transitioning {
        page.refresh = Some(3);
    }
    page.into_response()
}

/// The Consume panel: Azure's `requests` snippet, curl and Rust, filled in for this service.
fn consume(uri: &str, header: Option<&str>) -> String {
    let py_auth = match header {
        Some(h) => format!("headers[\"Authorization\"] = \"Bearer \" + \"{h}\"\n"),
        None => String::new(),
    };
    let python = format!(
        "import json\nimport requests\n\nscoring_uri = \"{uri}\"\nheaders = {{\"Content-Type\": \"application/json\"}}\n{py_auth}\
         data = {{\"data\": [[1.0, 2.0]]}}\n\nresp = requests.post(scoring_uri, data=json.dumps(data), headers=headers)\nprint(resp.status_code, resp.json())\n"
    );
    let curl_auth =
        header.map(|h| format!("  -H \"Authorization: Bearer {h}\" \\\n")).unwrap_or_default();
    let curl = format!(
        "curl -X POST \"{uri}\" \\\n  -H \"Content-Type: application/json\" \\\n{curl_auth}  -d '{{\"data\": [[1.0, 2.0]]}}'\n"
    );
    let rust_auth = header.map(|h| format!("        .bearer_auth(\"{h}\")\n")).unwrap_or_default();
    let rust = format!(
        "// Cargo.toml: reqwest = {{ version = \"0.12\", features = [\"json\"] }}, tokio, serde_json\n\
         let answer: serde_json::Value = reqwest::Client::new()\n        .post(\"{uri}\")\n{rust_auth}        .json(&serde_json::json!({{\"data\": [[1.0, 2.0]]}}))\n        .send().await?\n        .error_for_status()?\n        .json().await?;\n"
    );
    format!(
        "<section aria-labelledby=\"consume\"><h2 id=\"consume\">Consume</h2>\
         <h3 id=\"consume-python-h\">Python (requests)</h3><pre id=\"consume-python\" tabindex=\"0\" aria-labelledby=\"consume-python-h\">{}</pre>{}\
         <h3 id=\"consume-curl-h\">curl</h3><pre id=\"consume-curl\" tabindex=\"0\" aria-labelledby=\"consume-curl-h\">{}</pre>{}\
         <h3 id=\"consume-rust-h\">Rust (reqwest)</h3><pre id=\"consume-rust\" tabindex=\"0\" aria-labelledby=\"consume-rust-h\">{}</pre>{}</section>",
        esc(&python),
        copy_button("consume-python"),
        esc(&curl),
        copy_button("consume-curl"),
        esc(&rust),
        copy_button("consume-rust"),
    )
}

/// `POST .../keys`: `listKeys`, shown in this answer only.
pub async fn reveal_keys(
    ctx: Ctx,
    Path(path): Path<SvcPath>,
    Form(f): Form<super::Form>,
) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    match ctx.state.services.keys(&ctx.principal, wref(&path), &path.3).await {
        Ok(keys) => render(&ctx, &path, Extra { keys: Some(keys), ..Extra::default() }).await,
        Err(e) => ctx.error(e),
    }
}

/// `POST .../regenerate` (`slot`; then again with `confirm=yes`): the old key is refused from
/// the next request on.
pub async fn regenerate(
    ctx: Ctx,
    Path(path): Path<SvcPath>,
    Form(f): Form<super::Form>,
) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let slot: KeySlot = match field(&f, "slot").parse() {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let label = if slot == KeySlot::Primary { "Primary" } else { "Secondary" };
    if field(&f, "confirm") != "yes" {
        // Ask first; the service must exist and be readable to be asked about.
        if let Err(e) = ctx.state.services.get(&ctx.principal, wref(&path), &path.3).await {
            return ctx.error(e);
        }
        let body = format!(
            "<h1>Regenerate the {} key?</h1><section><div class=\"warn\" role=\"alert\">Clients using the current {} key of <strong>{}</strong> will be refused from the next request on.</div>\
             {} <a href=\"{}\">Cancel</a></section>",
            label.to_ascii_lowercase(),
            label.to_ascii_lowercase(),
            esc(&path.3),
            button_form(
                &format!("{}/regenerate", base(&path)),
                &ctx.csrf,
                &[("slot", label), ("confirm", "yes")],
                &format!("Regenerate the {} key", label.to_ascii_lowercase()),
                "danger",
                "confirm-regenerate"
            ),
            base(&path)
        );
        return ctx.page("Regenerate key", Nav::Home, body).into_response();
    }
    match ctx.state.services.regenerate_key(&ctx.principal, wref(&path), &path.3, slot).await {
        Ok(_) => {
            tracing::info!(service = %path.3, key = ?slot, by = %ctx.principal.object_id, "service key regenerated in the console");
            // Post/redirect/get: reloading the answer must not regenerate the key again.
            see_other(&format!("{}?done={}", base(&path), label.to_ascii_lowercase()))
        }
        Err(e) => ctx.error(e),
    }
}

/// `POST .../token`: `get-token`, with its refresh-by time.
pub async fn token(ctx: Ctx, Path(path): Path<SvcPath>, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    match ctx.state.services.token(&ctx.principal, wref(&path), &path.3).await {
        Ok(t) => render(&ctx, &path, Extra { token: Some(t), ..Extra::default() }).await,
        Err(e) => ctx.error(e),
    }
}

/// `POST .../auth` (`mode`): the same deployment with another `auth_mode`; a Healthy service
/// keeps its model running (the deployment use case decides).
pub async fn set_auth(ctx: Ctx, Path(path): Path<SvcPath>, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let st = &ctx.state;
    let s = match st.services.get(&ctx.principal, wref(&path), &path.3).await {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let mut dc = s.deployment_config.clone();
    if let Some(o) = dc.as_object_mut() {
        for k in [
            "auth_enabled",
            "authEnabled",
            "token_auth_enabled",
            "tokenAuthEnabled",
            "auth_mode",
            "authMode",
        ] {
            o.remove(k);
        }
        o.insert("auth_mode".into(), serde_json::Value::String(field(&f, "mode").to_string()));
    }
    let model = format!("{}:{}", s.model_name, s.model_version);
    match st
        .services
        .deploy(&ctx.principal, wref(&path), &path.3, &model, s.inference_config.clone(), dc)
        .await
    {
        Ok((service, mv, rollout)) => {
            tracing::info!(service = %service.name, by = %ctx.principal.object_id, ?rollout, "authentication changed in the console");
            let mode = deployment_config(&service.deployment_config)
                .map(|c| c.auth.as_str())
                .unwrap_or("?");
            match rollout {
                Rollout::Start => st.deployer.roll_out(service, mv),
                Rollout::AuthOnly => st.serving.log(
                    &service.name,
                    format!("Authentication is now '{mode}'; the model kept running"),
                ),
            }
            render(
                &ctx,
                &path,
                Extra {
                    notice: ok_box(&format!("Authentication is now '{mode}'.")),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => ctx.error(e),
    }
}

/// `POST .../test` (`body`): runs the model on the JSON body as the signed-in person, who
/// needs `services/score/action` (as with identity tokens). This is not the scoring route:
/// the request takes a place in the service's bounded queue like any other.
pub async fn test(ctx: Ctx, Path(path): Path<SvcPath>, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let st = &ctx.state;
    let raw = f.get("body").cloned().unwrap_or_default();
    if let Err(e) = st.services.get(&ctx.principal, wref(&path), &path.3).await {
        return ctx.error(e);
    }
    let scope = match mlgate_core::access::Access::parse_scope(&svc_scope(&path)) {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    if let Err(e) = st.access.authorize(&ctx.principal, SERVICE_SCORE, &scope) {
        return ctx.error(e);
    }
    let result = match serde_json::from_str::<serde_json::Value>(&raw) {
        Err(e) => error_box(&format!("The request body is not JSON: {e}")),
        Ok(v) => match st.serving.admit(&path.3, Some(raw.len() as u64)) {
            Err(e) => error_box(&format!("The service did not take the request: {e}")),
            Ok(admitted) => match st.serving.score(admitted, v).await {
                Ok(answer) => format!(
                    "<h3>Response</h3><pre id=\"test-result\" tabindex=\"0\" aria-label=\"Response\">{}</pre>",
                    esc(&serde_json::to_string_pretty(&answer).unwrap_or_default())
                ),
                Err(mlgate_serving::ServeError::Runtime(m)) => {
                    // As on the scoring route: the cause goes to the service's logs only.
                    st.serving.log(&path.3, format!("Scoring failed: {m}"));
                    error_box("Scoring failed; the service's logs below say why.")
                }
                Err(e) => error_box(&format!("Scoring failed: {e}")),
            },
        },
    };
    render(&ctx, &path, Extra { test: Some(result), test_body: Some(raw), ..Extra::default() })
        .await
}
