//! `/devicelogin`: enter the code, sign in, see which application asks in which directory,
//! approve or deny.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use mlgate_core::authority::{DeviceProblem, DeviceSignInError, DeviceView};

use super::cookies::{self, SignedIn};
use super::pages::{
    Page, busy, error_box, esc, facts, hidden, seconds_until, sign_in_form, too_many_attempts,
};
use crate::client_addr::ClientAddr;
use crate::state::AppState;

type Fields = HashMap<String, String>;

fn problem_text(p: DeviceProblem) -> &'static str {
    match p {
        DeviceProblem::Unknown => "That code wasn't recognised. Check the code and try again.",
        DeviceProblem::Expired => {
            "That code has expired. Go back to your app or device and start again to get a new code."
        }
        DeviceProblem::AlreadyUsed => {
            "That code has already been used. Go back to your app or device and start again."
        }
        DeviceProblem::WrongTenant => {
            "You signed in with an account from a different directory than the one this code is for."
        }
        DeviceProblem::TooManyAttempts { .. } => "Too many attempts. Wait and try again.",
    }
}

/// The answer to a refused code: its own page, or "too many attempts".
fn code_refused(state: &AppState, headers: &HeaderMap, typed: &str, p: DeviceProblem) -> Page {
    match p {
        DeviceProblem::TooManyAttempts { until } => {
            too_many_attempts(Some(seconds_until(state.authority.directory().now(), until)), false)
        }
        p => code_page(state, headers, typed, Some(problem_text(p))),
    }
}

/// Any failure of the sign-in step: the same page, status and words whether the code is
/// unknown, the password wrong or the account locked, so it tells a guesser nothing. It shows
/// no application or directory (those would say the code exists).
fn sign_in_failed(state: &AppState, headers: &HeaderMap, typed: &str, username: &str) -> Page {
    let mut set = HeaderMap::new();
    let hidden_fields = csrf(state, headers, &mut set) + &hidden("code", typed);
    let body = format!(
        "<h1>Sign in</h1>{form}",
        form = sign_in_form(
            "/devicelogin/signin",
            &hidden_fields,
            username,
            Some(
                "We couldn't sign you in. Check the code, your user name and your password; \
                 after too many attempts, wait a few minutes before trying again."
            ),
        ),
    );
    let mut page = Page::new("Sign in", body);
    page.set_cookies = set;
    page.status = StatusCode::UNAUTHORIZED;
    page
}

/// A page with a fresh CSRF token; returns the token's hidden field.
fn csrf(state: &AppState, headers: &HeaderMap, page_cookies: &mut HeaderMap) -> String {
    let (token, new_cookie) = cookies::csrf_token(state.authority.cookie_key(), headers);
    if let Some(c) = new_cookie {
        cookies::set_cookie(page_cookies, cookies::CSRF_COOKIE, &c, 3600, state.secure_cookies);
    }
    hidden("csrf", &token)
}

fn code_page(state: &AppState, headers: &HeaderMap, code: &str, error: Option<&str>) -> Page {
    let mut set = HeaderMap::new();
    let csrf = csrf(state, headers, &mut set);
    let body = format!(
        "<h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>{err}\
         <form method=\"post\" action=\"/devicelogin\">{csrf}\
         <label for=\"code\">Code</label>\
         <input class=\"code\" type=\"text\" id=\"code\" name=\"code\" value=\"{code}\" placeholder=\"XXXX-XXXX\" \
          maxlength=\"20\" autocomplete=\"off\" required autofocus>\
         <div class=\"actions\"><button class=\"primary\" type=\"submit\" id=\"next\">Next</button></div></form>",
        err = error_box(error),
        code = esc(code),
    );
    let mut page = Page::new("Enter code", body);
    page.set_cookies = set;
    if error.is_some() {
        page.status = StatusCode::BAD_REQUEST;
    }
    page
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    view: &DeviceView,
    username: &str,
    error: Option<&str>,
) -> Page {
    let mut set = HeaderMap::new();
    let hidden_fields = csrf(state, headers, &mut set) + &hidden("code", &view.user_code);
    let body = format!(
        "<h1>Sign in</h1><p>Sign in to continue to <strong>{app}</strong>.</p>{facts}{form}",
        app = esc(&view.application),
        facts = facts(&[
            ("Application", &view.application),
            ("Directory", &view.tenant.domain),
            ("Code", &view.user_code)
        ]),
        form = sign_in_form("/devicelogin/signin", &hidden_fields, username, error),
    );
    let mut page = Page::new("Sign in", body);
    page.set_cookies = set;
    if error.is_some() {
        page.status = StatusCode::UNAUTHORIZED;
    }
    page
}

fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    view: &DeviceView,
    who: &str,
    set_first: HeaderMap,
) -> Page {
    let mut set = set_first;
    let hidden_fields = csrf(state, headers, &mut set) + &hidden("code", &view.user_code);
    let body = format!(
        "<h1>Are you trying to sign in?</h1>\
         <p>Only continue if you started this sign-in yourself, on an app or device you trust.</p>{facts}\
         <form method=\"post\" action=\"/devicelogin/consent\">{hidden_fields}\
         <div class=\"actions\">\
         <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Continue</button>\
         </div></form>",
        facts = facts(&[
            ("Application", &view.application),
            ("Directory", &view.tenant.domain),
            ("Signed in as", who)
        ]),
    );
    let mut page = Page::new("Approve sign-in", body);
    page.set_cookies = set;
    page
}

fn message_page(title: &str, text: &str, ok: bool, status: StatusCode) -> Page {
    let class = if ok { "ok" } else { "error" };
    let body = format!(
        "<h1>{}</h1><div class=\"{class}\" role=\"status\">{}</div>",
        esc(title),
        esc(text)
    );
    Page::new(title, body).status(status)
}

/// Every form post must carry a CSRF token matching the browser's cookie.
fn csrf_refused(state: &AppState, headers: &HeaderMap, f: &Fields) -> Option<Page> {
    let ok =
        cookies::csrf_ok(state.authority.cookie_key(), headers, f.get("csrf").map(String::as_str));
    (!ok).then(stale_form)
}

fn stale_form() -> Page {
    message_page(
        "Start again",
        "This form expired or did not come from this site. Open the sign-in page again.",
        false,
        StatusCode::BAD_REQUEST,
    )
}

pub async fn enter(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Page {
    code_page(&state, &headers, q.get("code").map(String::as_str).unwrap_or(""), None)
}

pub async fn submit_code(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Page {
    if let Some(refused) = csrf_refused(&state, &headers, &f) {
        return refused;
    }
    let typed = f.get("code").map(String::as_str).unwrap_or("");
    match state.authority.device_for_user_code(typed, source).await {
        Ok(view) => sign_in_page(&state, &headers, &view, "", None),
        Err(p) => {
            tracing::info!(problem = ?p, "device login: code refused");
            code_refused(&state, &headers, typed, p)
        }
    }
}

pub async fn submit_signin(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Page {
    if let Some(refused) = csrf_refused(&state, &headers, &f) {
        return refused;
    }
    let typed = f.get("code").map(String::as_str).unwrap_or("");
    let username = f.get("username").map(String::as_str).unwrap_or("").trim();
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let signed_in = state.authority.device_sign_in(typed, username, password, source).await;
    let attempt = crate::audit::Attempt {
        tenant: signed_in.as_ref().ok().map(|(_, u)| u.tenant_id),
        grant: "devicelogin",
        interactive: true,
        app_display_name: signed_in.as_ref().ok().map(|(v, _)| v.application.clone()),
        username: Some(username.to_string()),
        user_id: signed_in.as_ref().ok().map(|(_, u)| u.object_id.to_string()),
        ..Default::default()
    };
    let error = match &signed_in {
        Ok(_) => None,
        Err(DeviceSignInError::Failed) => Some((50126, "Invalid username, password or code.")),
        Err(DeviceSignInError::MustChangePassword) => {
            Some((50055, "The password is expired: the user must change it."))
        }
        Err(DeviceSignInError::TooManyAttempts { .. }) => Some((50053, "Too many attempts.")),
        Err(DeviceSignInError::Busy { .. }) => Some((90055, "Too many sign-ins at once.")),
    };
    let now = state.authority.clock().now();
    state.signins.record(attempt.record(now, source, None, error));
    match signed_in {
        Ok((view, user)) => {
            let now = state.authority.directory().now().unix_timestamp();
            let ticket = SignedIn {
                oid: user.object_id,
                tid: user.tenant_id,
                code: mlgate_core::authority::normalize_code(&view.user_code),
                exp: now + cookies::SIGNIN_SECONDS,
            };
            let mut set = HeaderMap::new();
            let sealed = cookies::seal_signin(state.authority.cookie_key(), &ticket);
            cookies::set_cookie(
                &mut set,
                cookies::SIGNIN_COOKIE,
                &sealed,
                cookies::SIGNIN_SECONDS,
                state.secure_cookies,
            );
            consent_page(&state, &headers, &view, &user.user_principal_name, set)
        }
        Err(DeviceSignInError::Failed) => {
            tracing::info!("device login: sign-in refused");
            sign_in_failed(&state, &headers, typed, username)
        }
        Err(DeviceSignInError::MustChangePassword) => {
            tracing::info!("device login: the password must change first");
            let body = format!(
                "<h1>Update your password</h1>{}",
                crate::web::changepassword::offer(username)
            );
            Page::new("Update your password", body).status(StatusCode::UNAUTHORIZED)
        }
        Err(DeviceSignInError::TooManyAttempts { until }) => {
            too_many_attempts(Some(seconds_until(state.authority.directory().now(), until)), false)
        }
        Err(DeviceSignInError::Busy { retry_after_secs }) => busy(retry_after_secs.into()),
    }
}

pub async fn submit_consent(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Page {
    let key = state.authority.cookie_key();
    if !cookies::csrf_ok(key, &headers, f.get("csrf").map(String::as_str)) {
        return stale_form();
    }
    let typed = f.get("code").map(String::as_str).unwrap_or("");
    let now = state.authority.directory().now().unix_timestamp();
    let Some(ticket) = cookies::open_signin(key, &headers, now)
        .filter(|t| t.code == mlgate_core::authority::normalize_code(typed))
    else {
        return message_page(
            "Sign in again",
            "Your sign-in for this code has expired. Enter the code again to continue.",
            false,
            StatusCode::UNAUTHORIZED,
        );
    };
    let user = match state.authority.directory().member(ticket.tid, ticket.oid).await {
        Ok(Some(u)) if u.account_enabled => u,
        _ => {
            return message_page(
                "Sign in again",
                "Your account is not available.",
                false,
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let approve = f.get("decision").map(String::as_str) == Some("approve");
    match state.authority.decide_device(typed, &user, approve, source).await {
        Ok(()) if approve => {
            tracing::info!(user = %user.object_id, "device login approved");
            message_page(
                "You're signed in",
                "You have signed in on your app or device. You can close this window.",
                true,
                StatusCode::OK,
            )
        }
        Ok(()) => {
            tracing::info!(user = %user.object_id, "device login denied");
            message_page(
                "Sign-in denied",
                "You denied the sign-in request. The app or device will not get access. You can close this window.",
                true,
                StatusCode::OK,
            )
        }
        Err(p @ DeviceProblem::TooManyAttempts { .. }) => code_refused(&state, &headers, typed, p),
        Err(p) => message_page("Can't continue", problem_text(p), false, StatusCode::BAD_REQUEST),
    }
}
