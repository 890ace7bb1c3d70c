//! `/{tenant}/oauth2[/v2.0]/authorize`: the browser sign-in of `az login`-style clients. The
//! request is validated before anything is shown; a bad client or redirect URI gets an error
//! page (never a redirect); after sign-in the browser goes back to the loopback redirect URI
//! with the code and the client's `state`.

use std::collections::HashMap;

use axum::extract::{Form, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::authority::{AuthorizeError, AuthorizeParams, AuthorizeRequest, Endpoint};

use super::cookies;
use super::pages::{Page, busy, esc, facts, hidden, sign_in_form, too_many_attempts};
use crate::client_addr::ClientAddr;
use crate::state::AppState;

type Fields = HashMap<String, String>;

const PARAMS: &[&str] = &[
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "resource",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
];

fn params(f: &Fields) -> AuthorizeParams {
    let g = |k: &str| f.get(k).cloned().filter(|v| !v.is_empty());
    AuthorizeParams {
        client_id: g("client_id"),
        response_type: g("response_type"),
        redirect_uri: g("redirect_uri"),
        scope: g("scope"),
        resource: g("resource"),
        state: g("state"),
        nonce: g("nonce"),
        code_challenge: g("code_challenge"),
        code_challenge_method: g("code_challenge_method"),
        login_hint: g("login_hint"),
    }
}

fn endpoint(uri: &OriginalUri) -> Endpoint {
    if uri.path().contains("/v2.0/") { Endpoint::V2 } else { Endpoint::V1 }
}

fn redirect(to: &str, pairs: &[(&str, &str)]) -> Response {
    let q: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let sep = if to.contains('?') { '&' } else { '?' };
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{to}{sep}{q}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error_page(message: &str) -> Response {
    let body = format!(
        "<h1>We couldn't sign you in</h1><div class=\"error\" role=\"alert\">{}</div>\
         <p>Go back to the application and start the sign-in again.</p>",
        esc(message)
    );
    Page::new("Sign-in error", body).status(StatusCode::BAD_REQUEST).into_response()
}

fn refused(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(m) => error_page(&m),
        AuthorizeError::Redirect { redirect_uri, error, description, state } => {
            let mut pairs = vec![("error", error), ("error_description", description.as_str())];
            if let Some(s) = state.as_deref() {
                pairs.push(("state", s));
            }
            redirect(&redirect_uri, &pairs)
        }
    }
}

fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    req: &AuthorizeRequest,
    f: &Fields,
    username: &str,
    error: Option<&str>,
) -> Response {
    let mut set = HeaderMap::new();
    let (token, new_cookie) = cookies::csrf_token(state.authority.cookie_key(), headers);
    if let Some(c) = new_cookie {
        cookies::set_cookie(&mut set, cookies::CSRF_COOKIE, &c, 3600, state.secure_cookies);
    }
    let mut hidden_fields = hidden("csrf", &token);
    for k in PARAMS {
        if let Some(v) = f.get(*k) {
            hidden_fields.push_str(&hidden(k, v));
        }
    }
    let hint = if username.is_empty() { req.login_hint.as_deref().unwrap_or("") } else { username };
    let body = format!(
        "<h1>Sign in</h1><p>Sign in to continue to <strong>{app}</strong>.</p>{facts}{form}",
        app = esc(&req.application),
        facts = facts(&[("Application", &req.application), ("Directory", &req.tenant.domain)]),
        form = sign_in_form(path, &hidden_fields, hint, error),
    );
    let mut page = Page::new("Sign in", body);
    page.set_cookies = set;
    // The form's answer is a redirect to the app's loopback listener.
    page.form_targets = " http://localhost:* http://127.0.0.1:*";
    if error.is_some() {
        page.status = StatusCode::UNAUTHORIZED;
    }
    page.into_response()
}

pub async fn show(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    Query(f): Query<Fields>,
) -> Response {
    match state.authority.validate_authorize(&tenant, endpoint(&uri), &params(&f)).await {
        Ok(req) => sign_in(&state, &headers, uri.path(), &req, &f, "", None),
        Err(e) => refused(e),
    }
}

pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    Path(tenant): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    if !cookies::csrf_ok(state.authority.cookie_key(), &headers, f.get("csrf").map(String::as_str))
    {
        return error_page("This form expired or did not come from this site.");
    }
    let req = match state.authority.validate_authorize(&tenant, endpoint(&uri), &params(&f)).await {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let username = f.get("username").map(String::as_str).unwrap_or("").trim();
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let signed_in = state.authority.sign_in(req.tenant.id, username, password, source).await;
    let attempt = crate::audit::Attempt {
        tenant: Some(req.tenant.id),
        grant: "authorize",
        interactive: true,
        client_id: Some(req.client_id.to_string()),
        app_display_name: Some(req.application.clone()),
        username: Some(username.to_string()),
        user_id: signed_in.as_ref().ok().map(|u| u.object_id.to_string()),
        resource: Some(req.resource.clone()),
        ..Default::default()
    };
    let error = signed_in.as_ref().err().map(|e| (e.code.number(), e.description.as_str()));
    let now = state.authority.clock().now();
    state.signins.record(attempt.record(now, source, None, error));
    let user = match signed_in {
        Ok(u) => u,
        Err(e) if e.retry_after.is_some() => {
            return busy(e.retry_after.unwrap_or(1).into()).into_response();
        }
        Err(e) if e.is_locked() => {
            return too_many_attempts(None, true).into_response();
        }
        Err(e) if e.code == mlgate_core::authority::Aadsts::PasswordChangeRequired => {
            let body = format!(
                "<h1>Update your password</h1>{}",
                crate::web::changepassword::offer(username)
            );
            return Page::new("Update your password", body)
                .status(StatusCode::UNAUTHORIZED)
                .into_response();
        }
        Err(_) => {
            return sign_in(
                &state,
                &headers,
                uri.path(),
                &req,
                &f,
                username,
                Some("Your user name or password is incorrect."),
            );
        }
    };
    match state.authority.issue_authorization_code(&req, &user).await {
        Ok(code) => {
            tracing::info!(user = %user.object_id, client = %req.client_id, "authorization code issued");
            let mut pairs = vec![("code", code.as_str())];
            if let Some(s) = req.state.as_deref() {
                pairs.push(("state", s));
            }
            redirect(&req.redirect_uri, &pairs)
        }
        Err(_) => error_page("Something went wrong. Try again."),
    }
}
