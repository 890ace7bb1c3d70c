//! The HTTP surface, one module per flow or resource. Handlers are thin: parse, call the
//! domain, shape the answer.

pub mod arm;
pub mod assets;
pub mod authorization;
pub mod blobstore;
pub mod directory;
pub mod discovery;
pub mod graph;
pub mod health;
pub mod inventory;
pub mod json;
pub mod metadata;
pub mod mms;
pub mod models;
pub mod monitor;
pub mod oauth;
pub mod odata;
pub mod online;
pub mod openapi;
pub mod rbac;
pub mod services;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, delete, get, post};

use crate::state::AppState;
use crate::web;

/// What the server serves: the router behind the path rewrite that must come before routing.
pub type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// ARM matches paths case-insensitively; the routes are written in lower case, so the
/// `/subscriptions` keyword is normalised before routing (the rest is parsed in `arm`). A
/// wrapping service rather than a nested router: no second routing per request.
pub fn normalized(router: Router) -> App {
    tower::ServiceExt::map_request(router, lowercase_arm_root as fn(Request) -> Request)
}

fn lowercase_arm_root(mut req: Request) -> Request {
    // `az cloud register` keeps the user's trailing slash, so paths may arrive as `//...`.
    if req.uri().path().contains("//") {
        let pq = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let (path, query) = pq.split_once('?').map_or((pq, None), |(p, q)| (p, Some(q)));
        let mut collapsed = String::with_capacity(pq.len());
        for c in path.chars() {
            if !(c == '/' && collapsed.ends_with('/')) {
                collapsed.push(c);
            }
        }
        if let Some(q) = query {
            collapsed.push('?');
            collapsed.push_str(q);
        }
        if let Ok(uri) = collapsed.parse() {
            *req.uri_mut() = uri;
        }
    }
    let path = req.uri().path();
    let is_arm = path.len() >= 14
        && path.as_bytes()[0] == b'/'
        && path[1..14].eq_ignore_ascii_case("subscriptions")
        && !path[1..14].eq("subscriptions")
        && (path.len() == 14 || path.as_bytes()[14] == b'/');
    if is_arm {
        let rest =
            req.uri().path_and_query().map(|pq| pq.as_str()[14..].to_string()).unwrap_or_default();
        if let Ok(uri) = format!("/subscriptions{rest}").parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The routes; serve them through [`normalized`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::web::home::show))
        .nest("/console", web::console::routes())
        .route("/console/", get(web::console::to_home))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // OpenID Connect discovery and keys, v1 and v2.
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery::v2))
        .route("/{tenant}/.well-known/openid-configuration", get(discovery::v1))
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::jwks))
        .route("/{tenant}/discovery/keys", get(discovery::jwks))
        // Token endpoints.
        .route("/{tenant}/oauth2/token", post(oauth::token_v1))
        .route("/{tenant}/oauth2/v2.0/token", post(oauth::token_v2))
        .route("/{tenant}/oauth2/devicecode", post(oauth::devicecode_v1))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(oauth::devicecode_v2))
        .route("/{tenant}/oauth2/authorize", get(web::authorize::show).post(web::authorize::submit))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(web::authorize::show).post(web::authorize::submit),
        )
        .route("/{tenant}/oauth2/v2.0/revoke", post(oauth::revoke))
        .route("/{tenant}/oauth2/revoke", post(oauth::revoke))
        .route("/{tenant}/oauth2/v2.0/introspect", post(oauth::introspect))
        .route("/devicelogin", get(web::devicelogin::enter).post(web::devicelogin::submit_code))
        .route("/devicelogin/signin", post(web::devicelogin::submit_signin))
        .route("/devicelogin/consent", post(web::devicelogin::submit_consent))
        .route("/changepassword", get(web::changepassword::show).post(web::changepassword::submit))
        .route("/api/v1/changePassword", post(web::changepassword::api))
        // Management API.
        .route("/api/v1/me", get(directory::me))
        .route(
            "/api/v1/servicePrincipals",
            get(directory::list_service_principals).post(directory::create_service_principal),
        )
        .route(
            "/api/v1/servicePrincipals/{id}",
            get(directory::get_service_principal)
                .patch(directory::update_service_principal)
                .delete(directory::delete_service_principal),
        )
        .route(
            "/api/v1/servicePrincipals/{id}/credentials/reset",
            post(directory::reset_credential),
        )
        .route("/api/v1/users", get(directory::list_users).post(directory::create_user))
        .route(
            "/api/v1/users/{id}",
            get(directory::get_user).patch(directory::update_user).delete(directory::delete_user),
        )
        .route("/api/v1/tenants", get(directory::list_tenants).post(directory::create_tenant))
        .route("/api/v1/tenants/members", post(directory::add_member))
        .route("/api/v1/signIns", get(monitor::list_sign_ins))
        // What Microsoft's own clients discover and call (az, azureml-core): cloud metadata,
        // the AD FS-shaped sign-in documents, Graph, and Azure ML model management.
        .route("/metadata/endpoints", get(metadata::endpoints))
        .route("/adfs/.well-known/openid-configuration", get(metadata::adfs_home))
        .route("/adfs/{tenant}/.well-known/openid-configuration", get(metadata::adfs_tenant))
        .route(
            "/adfs/{label}/{tenant}/.well-known/openid-configuration",
            get(metadata::adfs_labelled),
        )
        .route("/discovery/workspaces/{id}", get(metadata::workspace_services))
        .route("/tenants", get(inventory::tenants))
        .route("/v1.0/{*rest}", any(graph::handle))
        .route("/modelmanagement/v1.0/subscriptions/{*rest}", any(mms::handle))
        // The upload face of azure-ai-ml's code assets (signed URLs, Azure Blob's protocol).
        .route("/blobstore/{*rest}", any(blobstore::handle))
        .route("/subscriptions", get(directory::subscriptions))
        .route("/subscriptions/{*rest}", any(arm::handle))
        .route("/api/v1/roleAssignments", get(rbac::list_assignments).post(rbac::create_assignment))
        .route("/api/v1/roleAssignments/{id}", delete(rbac::delete_assignment))
        .route("/api/v1/roleDefinitions", get(rbac::list_definitions).post(rbac::create_definition))
        .route("/api/v1/authorization/check", post(rbac::check))
        .route("/api/v1/openapi.json", get(openapi::document))
        // The scoring path (AKS-style URI).
        .route("/api/v1/service/{name}/score", post(services::score))
        .fallback(json::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), around))
        .with_state(state)
}

/// The sign-in pages: a POST to one of them answered 401 or 429 is a failed sign-in.
const SIGN_IN_PAGES: &[&str] = &[
    "/{tenant}/oauth2/authorize",
    "/{tenant}/oauth2/v2.0/authorize",
    "/devicelogin",
    "/devicelogin/signin",
];

/// Every request's own work around its handler, in one layer (each `from_fn` layer costs a
/// service clone, an allocation and a boxed future per request): outermost the access log and
/// the request metrics, then the activity log for the operations it records, then draining
/// what the handler left unread of the body.
async fn around(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    access_log(&state.metrics, req, |req| {
        crate::audit::record_activity(&state, req, |req| {
            crate::drain::drain_unread(req, |req| next.run(req))
        })
    })
    .await
}

/// One structured line per request, and its count and latency in `/metrics`. Only the route
/// template is logged or counted, never the raw path, query string, headers or body, which
/// may carry secrets (and would make the metrics' labels unbounded).
async fn access_log<F, Fut>(metrics: &crate::metrics::Metrics, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "<unmatched>".into());
    let resp = next(req).await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    metrics.http(&route, &method, status, took);
    if method == axum::http::Method::POST
        && (status == 401 || status == 429)
        && SIGN_IN_PAGES.contains(&route.as_str())
    {
        metrics.sign_in_failure(crate::metrics::SignInFailure::Interactive);
    }
    tracing::info!(
        target: "mlgate::access",
        %method,
        route,
        status,
        micros = took.as_micros() as u64,
    );
    resp
}
