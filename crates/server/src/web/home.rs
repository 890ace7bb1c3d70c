//! `GET /`: what this server is, where its endpoints are, and the way to `/devicelogin`, in the
//! sign-in pages' layout (a person who opens the server's URL in a browser lands here).

use axum::extract::State;

use super::pages::{Page, esc};
use crate::state::AppState;

/// The endpoints a person or a client is pointed at, relative to the server's URL.
const ENDPOINTS: &[(&str, &str)] = &[
    ("/devicelogin", "enter a sign-in code"),
    ("/console", "the web console"),
    ("/{tenant}/oauth2/v2.0/token", "OAuth 2.0 tokens"),
    ("/{tenant}/v2.0/.well-known/openid-configuration", "OpenID Connect discovery"),
    ("/metadata/endpoints", "cloud metadata for az and the Azure ML SDKs"),
    ("/subscriptions", "resources (ARM)"),
    ("/api/v1/openapi.json", "the API's OpenAPI document"),
    ("/api/v1/service/{name}/score", "scoring"),
    ("/healthz", "health"),
];

pub async fn show(State(state): State<AppState>) -> Page {
    let url = esc(&state.public_url);
    let rows: String = ENDPOINTS
        .iter()
        .map(|(path, what)| {
            format!("<li><code>{}</code><span>{}</span></li>", esc(path), esc(what))
        })
        .collect();
    Page::new(
        "Welcome",
        format!(
            "<h1>mlgate</h1>\
             <p>A self-hosted identity, access-control and model-serving server that speaks \
             Azure AD's and Azure Machine Learning's protocols, at <code>{url}</code>.</p>\
             <p>Signing in on another device (<code>mlgate login --use-device-code</code>, \
             <code>az login --use-device-code</code>)? Enter the code it shows you here:</p>\
             <a class=\"button\" id=\"devicelogin\" href=\"/devicelogin\">Enter a sign-in code</a>\
             <p>Managing workspaces, web services, service principals and roles in the browser? \
             <a id=\"console\" href=\"/console\">Open the console</a>.</p>\
             <ul class=\"endpoints\">{rows}</ul>"
        ),
    )
}
