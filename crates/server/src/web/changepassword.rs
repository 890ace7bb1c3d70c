//! `/changepassword`: a person sets a new password by typing the current one. The sign-in
//! pages send a user here when their password must change (AADSTS50055), as Azure AD's
//! "Update your password" step. The check is the sign-in's own (`Authority::change_password`:
//! lock-out, bounded password pool), and the form carries a CSRF token like every other.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use mlgate_core::authority::OAuthErrorKind;

use super::cookies;
use super::pages::{Page, busy, error_box, esc, hidden, too_many_attempts};
use crate::client_addr::ClientAddr;
use crate::error::{ApiError, OAuthFailure};
use crate::state::AppState;

type Fields = HashMap<String, String>;

fn form(state: &AppState, headers: &HeaderMap, username: &str, error: Option<&str>) -> Page {
    let mut set = HeaderMap::new();
    let (token, new_cookie) = cookies::csrf_token(state.authority.cookie_key(), headers);
    if let Some(c) = new_cookie {
        cookies::set_cookie(&mut set, cookies::CSRF_COOKIE, &c, 3600, state.secure_cookies);
    }
    let body = format!(
        "<h1>Update your password</h1><p>You need to update your password: type the current \
         one, then choose a new one (8 characters or more).</p>{err}\
         <form method=\"post\" action=\"/changepassword\">{csrf}\
         <label for=\"username\">Email or user name</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" required>\
         <label for=\"current\">Current password</label>\
         <input type=\"password\" id=\"current\" name=\"current\" autocomplete=\"current-password\" required>\
         <label for=\"new\">New password</label>\
         <input type=\"password\" id=\"new\" name=\"new\" autocomplete=\"new-password\" required>\
         <label for=\"confirm\">Confirm the new password</label>\
         <input type=\"password\" id=\"confirm\" name=\"confirm\" autocomplete=\"new-password\" required>\
         <div class=\"actions\"><button class=\"primary\" type=\"submit\" id=\"change\">Update password</button></div></form>",
        err = error_box(error),
        csrf = hidden("csrf", &token),
        user = esc(username),
    );
    let mut page = Page::new("Update your password", body);
    page.set_cookies = set;
    if error.is_some() {
        page.status = StatusCode::BAD_REQUEST;
    }
    page
}

/// The link the sign-in pages show for AADSTS50055.
pub fn offer(username: &str) -> String {
    let q =
        form_urlencoded::Serializer::new(String::new()).append_pair("username", username).finish();
    format!(
        "<p>Your password has expired and must be changed before you can sign in.</p>\
         <a class=\"button\" id=\"changepassword\" href=\"/changepassword?{}\">Update your password</a>",
        esc(&q)
    )
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Page {
    let user: String = q.get("username").map(|u| u.chars().take(128).collect()).unwrap_or_default();
    form(&state, &headers, &user, None)
}

pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let username = get("username").trim();
    if !cookies::csrf_ok(state.authority.cookie_key(), &headers, f.get("csrf").map(String::as_str))
    {
        return form(&state, &headers, username, Some("This form expired; try again."))
            .into_response();
    }
    if get("new") != get("confirm") {
        return form(&state, &headers, username, Some("The new passwords differ.")).into_response();
    }
    let changed =
        state.authority.change_password(username, get("current"), get("new"), source).await;
    log_attempt(&state, username, true, source, &changed);
    match changed {
        Ok(u) => {
            tracing::info!(user = %u.object_id, "password changed at the sign-in pages");
            Page::new(
                "Password updated",
                "<h1>Password updated</h1><div class=\"ok\">Your password was changed. Go back \
                 to your app and sign in with the new one.</div>"
                    .into(),
            )
            .into_response()
        }
        Err(e) if e.retry_after.is_some() => {
            busy(e.retry_after.unwrap_or(1).into()).into_response()
        }
        Err(e) if e.is_locked() => too_many_attempts(None, true).into_response(),
        Err(e) if e.kind == OAuthErrorKind::InvalidRequest => {
            let words = e.description.split_once(": ").map_or(e.description.as_str(), |(_, w)| w);
            form(&state, &headers, username, Some(words)).into_response()
        }
        Err(_) => form(
            &state,
            &headers,
            username,
            Some("Your user name or current password is incorrect."),
        )
        .into_response(),
    }
}

/// `POST /api/v1/changePassword` (the CLI's `ad user change-password`): JSON in, 204 or Azure
/// AD's error JSON out (400 AADSTS50126 for a wrong current password).
pub async fn api(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    body: axum::body::Bytes,
) -> Response {
    let req: mlgate_proto::ChangePassword = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::BadRequest(format!("The request body is invalid: {e}"))
                .into_response();
        }
    };
    let changed = state
        .authority
        .change_password(&req.user_principal_name, &req.current_password, &req.new_password, source)
        .await;
    log_attempt(&state, &req.user_principal_name, false, source, &changed);
    match changed {
        Ok(u) => {
            tracing::info!(user = %u.object_id, "password changed");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => OAuthFailure::new(e).into_response(),
    }
}

/// A password change proves a password, so the sign-in log has it (guessing shows there too).
fn log_attempt(
    state: &AppState,
    username: &str,
    interactive: bool,
    source: std::net::IpAddr,
    result: &Result<mlgate_core::records::User, mlgate_core::authority::GrantError>,
) {
    let attempt = crate::audit::Attempt {
        tenant: result.as_ref().ok().map(|u| u.tenant_id),
        grant: "changepassword",
        interactive,
        username: Some(username.to_string()),
        user_id: result.as_ref().ok().map(|u| u.object_id.to_string()),
        ..Default::default()
    };
    let error = result.as_ref().err().map(|e| (e.code.number(), e.description.as_str()));
    let now = state.authority.clock().now();
    state.signins.record(attempt.record(now, source, None, error));
}
