//! The web console at `/console`: server-rendered pages over the same core use cases as the
//! API, called with the signed-in person's principal, so RBAC is the server's (the pages only
//! hide what [`Ctx::may`] says the person cannot do, and show core's denial when refused).
//!
//! - sign-in (`signin.rs`): mlgate's own authorization-code + PKCE flow, the console being a
//!   first-party public client (`mlgate_core::first_party`); a server-side session
//!   (`session.rs`) named by an HttpOnly, SameSite=Strict (Secure over HTTPS) cookie;
//! - pages, one module per group: `home`, `workspace`, `service`, `directory`, `roles`;
//! - `layout.rs`: the layout, its stylesheet and small script, the strict CSP.
//!
//! Every form carries the CSRF token of the sign-in pages (`web::cookies`, double submit) and
//! every POST is refused without it. Nothing here is on the scoring path.

pub mod directory;
pub mod home;
pub mod layout;
pub mod logs;
pub mod roles;
pub mod service;
pub mod session;
pub mod signin;
pub mod workspace;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mlgate_core::authority::{Endpoint, Grant, TokenRequest};
use mlgate_core::principal::{Principal, PrincipalKind};
use time::OffsetDateTime;

use self::layout::{ConsolePage, Nav, error_box};
use self::session::{Session, SessionData};
use crate::state::AppState;
use crate::web::cookies;
use crate::web::pages::esc;

/// Form bodies the console accepts (a role definition, a test request) are at most this.
pub const MAX_FORM: usize = 256 * 1024;

/// What the console asks its sign-in for: ARM's resource (the API's audience), with a refresh
/// token to renew and to revoke at sign-out.
pub const SCOPE: &str = "https://management.azure.com/.default openid profile offline_access";

pub type Form = HashMap<String, String>;

/// The console's routes, mounted at `/console` by `routes::router`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::show))
        .route("/console.css", get(layout::stylesheet))
        .route("/console.js", get(layout::script))
        .route("/signin", get(signin::start))
        .route("/callback", get(signin::callback))
        .route("/signout", post(signin::signout))
        .route("/tenant", post(signin::switch_tenant))
        .route("/groups", post(home::create_group))
        .route("/workspaces", post(home::create_workspace))
        .route("/ws/{sub}/{rg}/{ws}", get(workspace::show))
        .route("/ws/{sub}/{rg}/{ws}/config.json", get(workspace::config_json))
        .route(
            "/ws/{sub}/{rg}/{ws}/models/{name}/{version}/download",
            get(workspace::download_model_file),
        )
        .route("/ws/{sub}/{rg}/{ws}/assignments", post(workspace::add_assignment))
        .route("/ws/{sub}/{rg}/{ws}/assignments/{id}/delete", post(workspace::remove_assignment))
        .route("/ws/{sub}/{rg}/{ws}/services/{name}", get(service::show))
        .route("/ws/{sub}/{rg}/{ws}/services/{name}/keys", post(service::reveal_keys))
        .route("/ws/{sub}/{rg}/{ws}/services/{name}/regenerate", post(service::regenerate))
        .route("/ws/{sub}/{rg}/{ws}/services/{name}/token", post(service::token))
        .route("/ws/{sub}/{rg}/{ws}/services/{name}/auth", post(service::set_auth))
        .route("/ws/{sub}/{rg}/{ws}/services/{name}/test", post(service::test))
        .route("/directory", get(directory::show))
        .route("/logs", get(logs::show))
        .route("/directory/users", post(directory::create_user))
        .route("/directory/users/{id}", post(directory::update_user))
        .route("/directory/sps", post(directory::create_sp))
        .route("/directory/sps/{id}/secrets", post(directory::add_secret))
        .route("/directory/sps/{id}/secrets/{key}/delete", post(directory::delete_secret))
        .route("/roles", get(roles::show).post(roles::create))
        .route("/roles/check", post(roles::check))
        .layer(DefaultBodyLimit::max(MAX_FORM))
}

/// The signed-in person on a console request: the session's principal (renewed when its
/// token would have expired) and the page's CSRF token.
pub struct Ctx {
    pub state: AppState,
    pub principal: Principal,
    pub session: Session,
    pub csrf: String,
    /// A new CSRF cookie when the browser had none.
    pub set_cookies: HeaderMap,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let now = state.authority.clock().now();
        let Some(cookie) = cookies::get_cookie(&parts.headers, session::SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let Some(session) = state.console.get(cookie, now) else {
            return Err(to_sign_in());
        };
        let principal = {
            let mut s = session.lock().await;
            if now >= s.renew_at {
                match renew(state, &s, None).await {
                    Some((p, rt, at)) => {
                        s.principal = p;
                        s.refresh_token = rt;
                        s.renew_at = at;
                    }
                    None => {
                        drop(s);
                        state.console.remove(cookie);
                        return Err(to_sign_in());
                    }
                }
            }
            s.principal.clone()
        };
        let mut set_cookies = HeaderMap::new();
        let (csrf, new_cookie) = cookies::csrf_token(state.authority.cookie_key(), &parts.headers);
        if let Some(c) = new_cookie {
            cookies::set_cookie(
                &mut set_cookies,
                cookies::CSRF_COOKIE,
                &c,
                43_200,
                state.secure_cookies,
            );
        }
        Ok(Ctx {
            state: state.clone(),
            principal,
            session,
            csrf,
            set_cookies,
            headers: parts.headers.clone(),
        })
    }
}

/// Redeems the session's refresh token (in `tenant`, or the principal's own): the new
/// principal, refresh token and renewal time; `None` when the sign-in is over (revoked,
/// expired, the account disabled or no longer a member).
pub async fn renew(
    state: &AppState,
    s: &SessionData,
    tenant: Option<&str>,
) -> Option<(Principal, String, OffsetDateTime)> {
    let tenant = tenant.map(str::to_string).unwrap_or_else(|| s.principal.tenant_id.to_string());
    let req = TokenRequest {
        endpoint: Endpoint::V2,
        grant: Grant::RefreshToken { refresh_token: s.refresh_token.clone() },
        client_id: Some(mlgate_proto::CONSOLE_CLIENT_ID.into()),
        client_secret: None,
        resource: None,
        scope: Some(SCOPE.into()),
        client_info: false,
    };
    let issued = state
        .authority
        .token(&tenant, req, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .await
        .map_err(|e| tracing::info!(error = %e.description, "console session not renewed"))
        .ok()?;
    principal_of(state, &issued.access_token, issued.refresh_token, issued.expires_on)
}

pub fn principal_of(
    state: &AppState,
    access_token: &str,
    refresh_token: Option<String>,
    expires_on: i64,
) -> Option<(Principal, String, OffsetDateTime)> {
    let p = state.authority.verify(access_token).ok()?;
    let at = OffsetDateTime::from_unix_timestamp(expires_on - 60).ok()?;
    Some((p, refresh_token?, at))
}

/// `GET /console/`: the console's home is `/console`.
pub async fn to_home() -> Response {
    see_other("/console")
}

fn to_sign_in() -> Response {
    see_other("/console/signin")
}

/// 303 to `to` (a path on this server).
pub fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    layout::secure_headers(resp.headers_mut());
    resp
}

impl Ctx {
    /// The person's name as the header shows it.
    pub fn name(&self) -> String {
        match &self.principal.kind {
            PrincipalKind::User { user_principal_name } => user_principal_name.clone(),
            PrincipalKind::ServicePrincipal { app_id } => app_id.clone(),
        }
    }

    /// Does the form carry this browser's CSRF token? Every POST handler asks first.
    pub fn csrf_ok(&self, form: &Form) -> bool {
        cookies::csrf_ok(
            self.state.authority.cookie_key(),
            &self.headers,
            form.get("csrf").map(String::as_str),
        )
    }

    /// Whether the person may do `action` at `scope` (for hiding what they may not do; the
    /// use case decides again when asked).
    pub fn may(&self, action: &str, scope: &str) -> bool {
        mlgate_core::access::Access::parse_scope(scope)
            .is_ok_and(|s| self.state.access.authorize(&self.principal, action, &s).is_ok())
    }

    pub fn page(&self, title: impl Into<String>, nav: Nav, body: String) -> ConsolePage {
        let mut p = ConsolePage::new(title, nav, body);
        p.who = Some((self.name(), self.csrf.clone()));
        p.set_cookies = self.set_cookies.clone();
        p
    }

    /// A refused or failed action: core's message (Azure's text for a denial) with its status;
    /// an internal failure says only that something went wrong.
    pub fn error(&self, e: mlgate_core::Error) -> Response {
        let (status, title, message) = describe(e);
        let mut page = self.page(
            title,
            Nav::None,
            format!(
                "<h1>{}</h1>{}<p><a href=\"/console\">Back to the console</a></p>",
                esc(title),
                error_box(&message)
            ),
        );
        page.status = status;
        page.into_response()
    }

    /// The answer to a POST without this browser's CSRF token: refused, nothing done.
    pub fn forged(&self) -> Response {
        let mut page = self.page(
            "Request refused",
            Nav::None,
            format!(
                "<h1>Request refused</h1>{}<p><a href=\"/console\">Back to the console</a></p>",
                error_box(
                    "This form did not come from this console page (its security token is \
                     missing or wrong), so nothing was done. Reload the page and try again."
                )
            ),
        );
        page.status = StatusCode::FORBIDDEN;
        page.into_response()
    }
}

/// A core error as a page: its status (`error::core_status`, the API's), a title and core's
/// message; an internal failure says only that something went wrong (the cause is logged).
pub fn describe(e: mlgate_core::Error) -> (StatusCode, &'static str, String) {
    use mlgate_core::Error as E;
    let status = crate::error::core_status(&e);
    match e {
        E::Forbidden(m) => (status, "Not allowed", m),
        E::NotFound(m) => (status, "Not found", m),
        E::Conflict(m) => (status, "Conflict", m),
        E::InvalidInput(m) => (status, "Not accepted", m),
        E::TooLarge(m) => (status, "Too large", m),
        E::Unavailable => {
            (status, "Try again", "The store is unavailable; try again in a moment.".into())
        }
        E::Internal(m) => {
            tracing::error!(error = %m, "console request failed");
            (status, "Something went wrong", "Something went wrong.".into())
        }
    }
}

/// A value from a form, trimmed ("" when absent).
pub fn field<'a>(f: &'a Form, name: &str) -> &'a str {
    f.get(name).map(|s| s.trim()).unwrap_or("")
}

/// An HTML `<select>` with a label.
pub fn select(id: &str, label: &str, options: &[(String, String)], selected: &str) -> String {
    let opts: String = options
        .iter()
        .map(|(v, t)| {
            let sel = if v == selected { " selected" } else { "" };
            format!("<option value=\"{}\"{sel}>{}</option>", esc(v), esc(t))
        })
        .collect();
    format!(
        "<label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{id}\">{opts}</select>",
        esc(label)
    )
}

/// A text input with a label.
pub fn input(id: &str, label: &str, value: &str, extra: &str) -> String {
    format!(
        "<label for=\"{id}\">{}</label><input type=\"text\" id=\"{id}\" name=\"{id}\" value=\"{}\" {extra}>",
        esc(label),
        esc(value)
    )
}

/// Unix seconds as `2026-12-02 05:00:00 UTC`.
pub fn unix_time(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs).map(datetime).unwrap_or_default()
}

pub fn datetime(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
