//! HTML of the sign-in pages: one layout, inline styles, no scripts, no external assets.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
 background:linear-gradient(135deg,#0f172a 0%,#1e3a5f 100%);font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#0f172a}
.card{background:#fff;width:100%;max-width:420px;border-radius:12px;padding:36px 40px;margin:24px 16px;box-shadow:0 20px 50px rgba(0,0,0,.35)}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:18px;color:#1e3a5f;margin-bottom:24px}
.logo{width:28px;height:28px;border-radius:7px;background:linear-gradient(135deg,#2563eb,#06b6d4);color:#fff;display:flex;align-items:center;justify-content:center;font-size:15px}
h1{font-size:22px;margin:0 0 8px}
p{margin:0 0 16px;color:#334155}
label{display:block;font-weight:600;font-size:13px;margin:14px 0 6px;color:#334155}
input[type=text],input[type=password]{width:100%;padding:10px 12px;border:1px solid #cbd5e1;border-radius:8px;font-size:15px}
input[type=text]:focus,input[type=password]:focus{outline:2px solid #2563eb;border-color:#2563eb}
input.code{font-family:ui-monospace,Menlo,Consolas,monospace;letter-spacing:.15em;text-transform:uppercase;font-size:18px}
.actions{display:flex;gap:10px;margin-top:22px}
button{flex:1;padding:11px 14px;border-radius:8px;border:0;font-size:15px;font-weight:600;cursor:pointer}
button.primary{background:#2563eb;color:#fff}
button.secondary{background:#e2e8f0;color:#0f172a}
.error{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:10px 12px;border-radius:8px;margin-bottom:16px}
.ok{background:#f0fdf4;border:1px solid #bbf7d0;color:#166534;padding:10px 12px;border-radius:8px;margin-bottom:16px}
.facts{background:#f8fafc;border:1px solid #e2e8f0;border-radius:8px;padding:12px 14px;margin:14px 0}
.facts div{display:flex;justify-content:space-between;gap:12px;font-size:14px;padding:2px 0}
.facts span:first-child{color:#64748b}
.facts span:last-child{font-weight:600;text-align:right;word-break:break-all}
.foot{margin-top:22px;font-size:12px;color:#64748b;text-align:center}
a{color:#2563eb}
a.button{display:block;text-align:center;text-decoration:none;padding:11px 14px;border-radius:8px;font-weight:600;background:#2563eb;color:#fff;margin:18px 0 6px}
ul.endpoints{list-style:none;padding:0;margin:8px 0 0;font-size:13px}
ul.endpoints li{padding:5px 0;border-top:1px solid #e2e8f0}
ul.endpoints code{display:block;font-family:ui-monospace,Menlo,Consolas,monospace;color:#0f172a;word-break:break-all}
ul.endpoints span{color:#64748b;font-size:12px}
"#;

pub struct Page {
    pub status: StatusCode,
    pub title: String,
    pub body: String,
    /// Extra origins forms may post (and be redirected) to, beyond 'self'.
    pub form_targets: &'static str,
    pub set_cookies: HeaderMap,
    /// Seconds, for a 429 or 503.
    pub retry_after: Option<u64>,
}

impl Page {
    pub fn new(title: &str, body: String) -> Self {
        Self {
            status: StatusCode::OK,
            title: title.to_string(),
            body,
            form_targets: "",
            set_cookies: HeaderMap::new(),
            retry_after: None,
        }
    }

    pub fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }
}

/// A whole page in the sign-in pages' layout: `title` is text, `body` is HTML. The CLI's
/// loopback "signed in" page uses it too, so every page a person sees looks the same.
pub fn document(title: &str, body: &str, foot: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · mlgate</title><style>{STYLE}</style></head><body><main class=\"card\">\
         <div class=\"brand\"><div class=\"logo\">m</div>mlgate</div>{body}\
         <div class=\"foot\">{foot}</div></main></body></html>",
        title = esc(title),
        foot = esc(foot),
    )
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = document(
            &self.title,
            &self.body,
            "mlgate identity · sign-in is protected against cross-site requests",
        );
        let mut resp = (self.status, Html(html)).into_response();
        let h = resp.headers_mut();
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'{}; \
             frame-ancestors 'none'; base-uri 'none'",
            self.form_targets
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for v in self.set_cookies.get_all(header::SET_COOKIE) {
            h.append(header::SET_COOKIE, v.clone());
        }
        resp
    }
}

pub fn error_box(message: Option<&str>) -> String {
    message
        .map(|m| format!("<div class=\"error\" role=\"alert\">{}</div>", esc(m)))
        .unwrap_or_default()
}

pub fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(name), esc(value))
}

pub fn facts(rows: &[(&str, &str)]) -> String {
    let rows: String = rows
        .iter()
        .map(|(k, v)| format!("<div><span>{}</span><span>{}</span></div>", esc(k), esc(v)))
        .collect();
    format!("<div class=\"facts\">{rows}</div>")
}

/// The sign-in form shared by device login and the authorization endpoint.
pub fn sign_in_form(
    action: &str,
    hidden_fields: &str,
    login_hint: &str,
    error: Option<&str>,
) -> String {
    format!(
        "{err}<form method=\"post\" action=\"{action}\" autocomplete=\"on\">{hidden_fields}\
         <label for=\"username\">Email or user name</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{hint}\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button class=\"primary\" type=\"submit\" id=\"signin\">Sign in</button></div></form>",
        err = error_box(error),
        action = esc(action),
        hint = esc(login_hint),
    )
}

/// Seconds from `now` until `until`, at least one.
pub fn seconds_until(now: time::OffsetDateTime, until: time::OffsetDateTime) -> u64 {
    u64::try_from((until - now).whole_seconds()).unwrap_or(0).max(1)
}

/// "Too many attempts": the answer while an address (or an account, for strangers) is locked
/// out, with `Retry-After` when the end of the lock is known.
pub fn too_many_attempts(retry_after_secs: Option<u64>, account: bool) -> Page {
    let what = if account {
        "Your account is temporarily locked to prevent unauthorized use."
    } else {
        "Too many attempts."
    };
    let when = match retry_after_secs {
        Some(secs) => format!("Wait {} minute(s) and try again.", secs.div_ceil(60).max(1)),
        None => "Try again later.".to_string(),
    };
    let text = format!("{what} {when}");
    let mut page = Page::new(
        "Too many attempts",
        format!(
            "<h1>Too many attempts</h1><div class=\"error\" role=\"alert\">{}</div>",
            esc(&text)
        ),
    )
    .status(StatusCode::TOO_MANY_REQUESTS);
    page.retry_after = retry_after_secs;
    page
}

/// "Busy": too many password checks at once.
pub fn busy(retry_after_secs: u64) -> Page {
    let mut page = Page::new(
        "Try again",
        "<h1>Try again</h1><div class=\"error\" role=\"alert\">Too many sign-ins are in progress. \
         Try again in a moment.</div>"
            .to_string(),
    )
    .status(StatusCode::TOO_MANY_REQUESTS);
    page.retry_after = Some(retry_after_secs);
    page
}
