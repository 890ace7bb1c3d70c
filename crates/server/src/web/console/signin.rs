//! Signing in to the console through mlgate's own `/authorize` (authorization code + PKCE,
//! the console's redirect URI being this server's `/console/callback`), the tenant picker, and
//! signing out (the session goes and its refresh token is revoked).

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_core::authority::{Endpoint, Grant, TokenRequest};
use mlgate_core::first_party::{console_redirect_uri, ensure_console};
use mlgate_core::secrets::{random_bytes, sha256};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::layout::{ConsolePage, Nav, error_box};
use super::session::{self, SessionData};
use super::{Ctx, SCOPE, field, principal_of, renew, see_other};
use crate::client_addr::ClientAddr;
use crate::state::AppState;
use crate::web::cookies;

/// The sign-in in progress: PKCE verifier, state and tenant, in a signed 10-minute cookie.
const LOGIN_COOKIE: &str = "mlgate_console_login";
const LOGIN_SECONDS: i64 = 600;

#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    state: String,
    tenant: String,
    exp: i64,
}

#[derive(Deserialize)]
pub struct StartQuery {
    tenant: Option<String>,
}

/// `GET /console/signin[?tenant=]`: off to the authorize page.
pub async fn start(State(state): State<AppState>, Query(q): Query<StartQuery>) -> Response {
    let segment = q.tenant.filter(|t| !t.is_empty()).unwrap_or_else(|| "organizations".into());
    let Some(tenant) = state.authority.directory().resolve_tenant(&segment) else {
        return problem(StatusCode::NOT_FOUND, "The directory in this link does not exist.");
    };
    // Tenants made after this server started (or before the console existed) get it now.
    if let Err(e) = ensure_console(state.authority.directory(), tenant.id).await {
        let (status, _, m) = super::describe(e);
        return problem(status, &m);
    }
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    let pending = Pending {
        verifier,
        state: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        tenant: tenant.id.to_string(),
        exp: state.authority.clock().now().unix_timestamp() + LOGIN_SECONDS,
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", mlgate_proto::CONSOLE_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", &console_redirect_uri(&state.public_url)),
            ("scope", SCOPE),
            ("state", &pending.state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let mut resp = see_other(&format!("/{}/oauth2/v2.0/authorize?{query}", tenant.id));
    let sealed = cookies::seal(state.authority.cookie_key(), "console-login", &pending);
    cookies::set_cookie_at(
        resp.headers_mut(),
        "/console",
        LOGIN_COOKIE,
        &sealed,
        LOGIN_SECONDS,
        state.secure_cookies,
    );
    resp
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /console/callback?code&state`: redeem the code, start the session.
pub async fn callback(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    if let Some(e) = q.error {
        let d = q.error_description.unwrap_or_default();
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("The sign-in did not complete: {e}. {d}"),
        );
    }
    let now = state.authority.clock().now();
    let pending: Option<Pending> = cookies::get_cookie(&headers, LOGIN_COOKIE)
        .and_then(|c| cookies::open(state.authority.cookie_key(), "console-login", c))
        .filter(|p: &Pending| p.exp > now.unix_timestamp());
    let (Some(pending), Some(code), Some(got_state)) = (pending, q.code, q.state) else {
        return problem(StatusCode::BAD_REQUEST, "This sign-in expired or was not started here.");
    };
    if !bool::from(pending.state.as_bytes().ct_eq(got_state.as_bytes())) {
        return problem(StatusCode::BAD_REQUEST, "This sign-in expired or was not started here.");
    }
    let req = TokenRequest {
        endpoint: Endpoint::V2,
        grant: Grant::AuthorizationCode {
            code,
            redirect_uri: Some(console_redirect_uri(&state.public_url)),
            code_verifier: Some(pending.verifier),
        },
        client_id: Some(mlgate_proto::CONSOLE_CLIENT_ID.into()),
        client_secret: None,
        resource: None,
        scope: Some(SCOPE.into()),
        client_info: false,
    };
    let issued = match state.authority.token(&pending.tenant, req, source).await {
        Ok(i) => i,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.description),
    };
    let Some((principal, refresh_token, renew_at)) =
        principal_of(&state, &issued.access_token, issued.refresh_token, issued.expires_on)
    else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
    };
    tracing::info!(user = %principal.object_id, "console sign-in");
    let id = state.console.create(SessionData { principal, renew_at, refresh_token }, now);
    let mut resp = see_other("/console");
    let h = resp.headers_mut();
    cookies::set_cookie_at(
        h,
        "/console",
        session::SESSION_COOKIE,
        &id,
        session::ABSOLUTE.whole_seconds(),
        state.secure_cookies,
    );
    cookies::set_cookie_at(h, "/console", LOGIN_COOKIE, "", 0, state.secure_cookies);
    resp
}

/// `POST /console/signout`: the session is forgotten and its refresh token revoked.
pub async fn signout(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let state = &ctx.state;
    if let Some(cookie) = cookies::get_cookie(&ctx.headers, session::SESSION_COOKIE) {
        state.console.remove(cookie);
    }
    let rt = ctx.session.lock().await.refresh_token.clone();
    if let Err(e) = state.authority.revoke(&rt).await {
        tracing::warn!(error = %e.description, "console sign-out could not revoke its refresh token");
    }
    tracing::info!(user = %ctx.principal.object_id, "console sign-out");
    let mut page = ConsolePage::new(
        "Signed out",
        Nav::None,
        "<h1>You're signed out</h1><section><p>Your console session has ended and its sign-in \
         was revoked.</p><p><a href=\"/console/signin\" id=\"signin-again\">Sign in again</a></p></section>"
            .into(),
    );
    cookies::set_cookie_at(
        &mut page.set_cookies,
        "/console",
        session::SESSION_COOKIE,
        "",
        0,
        state.secure_cookies,
    );
    page.into_response()
}

/// `POST /console/tenant`: the same session in another tenant the person belongs to (the
/// refresh token is redeemed there, as `az account set` does).
pub async fn switch_tenant(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let tenant = field(&f, "tenant").to_string();
    // Only tenants the person belongs to: a refused redemption would spend the refresh token.
    let directory = ctx.state.authority.directory();
    let mine = match directory.tenants_of(&ctx.principal).await {
        Ok(t) => t,
        Err(e) => return ctx.error(e),
    };
    let Some(target) = mine.iter().find(|t| t.id.to_string() == tenant) else {
        return ctx.error(mlgate_core::Error::Forbidden(format!(
            "You are not a member of the directory '{}'.",
            tenant.chars().take(64).collect::<String>()
        )));
    };
    if let Err(e) = ensure_console(directory, target.id).await {
        return ctx.error(e);
    }
    let mut s = ctx.session.lock().await;
    match renew(&ctx.state, &s, Some(&tenant)).await {
        Some((p, rt, at)) => {
            s.principal = p;
            s.refresh_token = rt;
            s.renew_at = at;
            drop(s);
            see_other("/console")
        }
        None => {
            drop(s);
            ctx.error(mlgate_core::Error::Forbidden(format!(
                "You cannot switch to the directory '{}': you are not a member of it, or your \
                 sign-in has ended.",
                tenant.chars().take(64).collect::<String>()
            )))
        }
    }
}

fn problem(status: StatusCode, message: &str) -> Response {
    let mut page = ConsolePage::new(
        "Sign-in problem",
        Nav::None,
        format!(
            "<h1>We couldn't sign you in</h1>{}<p><a href=\"/console/signin\">Start again</a></p>",
            error_box(message)
        ),
    );
    page.status = status;
    page.into_response()
}
