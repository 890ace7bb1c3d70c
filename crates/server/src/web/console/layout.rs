//! The console's one layout: a header with the navigation and the signed-in person, a main
//! column, its stylesheet and its small script served from this server (no inline script or
//! style, so the Content-Security-Policy allows only `'self'`).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::web::pages::esc;

/// Strict: scripts and styles only from this server's `/console/console.{js,css}`, no frames,
/// forms post to this server only, nothing else loads.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f1f5f9;font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#0f172a}
header{background:linear-gradient(135deg,#0f172a 0%,#1e3a5f 100%);color:#fff;padding:10px 20px;display:flex;flex-wrap:wrap;align-items:center;gap:8px 20px}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:17px;color:#fff;text-decoration:none}
.logo{width:26px;height:26px;border-radius:7px;background:linear-gradient(135deg,#2563eb,#06b6d4);display:flex;align-items:center;justify-content:center;font-size:14px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;flex:1}
nav a{color:#e2e8f0;text-decoration:none;padding:4px 2px;border-bottom:2px solid transparent}
nav a[aria-current=page]{color:#fff;border-bottom-color:#38bdf8}
.who{display:flex;align-items:center;gap:10px;font-size:13px;color:#e2e8f0;flex-wrap:wrap}
.who form{margin:0}
.who button{background:#334155;color:#fff;padding:5px 10px;font-size:13px}
.skip{position:absolute;left:-9999px;top:0;background:#fff;color:#1d4ed8;padding:8px 12px;z-index:10}
.skip:focus{left:8px;top:8px}
main{max-width:1100px;margin:0 auto;padding:20px 16px 40px}
h1{font-size:24px;margin:6px 0 14px}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:16px 18px;margin:0 0 16px}
p{margin:0 0 10px;color:#334155}
.muted{color:#475569;font-size:13px}
table{width:100%;border-collapse:collapse;font-size:14px}
th,td{text-align:left;padding:7px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{color:#475569;font-weight:600;font-size:13px}
.scroll{overflow-x:auto}
code,pre,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
code{word-break:break-all}
pre{background:#0f172a;color:#e2e8f0;padding:12px;border-radius:8px;overflow-x:auto;white-space:pre;margin:6px 0 10px}
label{display:block;font-weight:600;font-size:13px;margin:10px 0 4px;color:#334155}
input[type=text],input[type=password],input[type=search],select,textarea{width:100%;max-width:480px;padding:8px 10px;border:1px solid #94a3b8;border-radius:7px;font-size:15px;background:#fff;color:#0f172a}
textarea{max-width:100%;min-height:120px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
input:focus,select:focus,textarea:focus,button:focus,a:focus{outline:3px solid #2563eb;outline-offset:1px}
form.inline{display:inline}
.row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end}
.row>div{flex:1;min-width:180px}
button{padding:8px 14px;border-radius:7px;border:0;font-size:14px;font-weight:600;cursor:pointer;background:#2563eb;color:#fff;margin-top:10px}
button.secondary{background:#e2e8f0;color:#0f172a}
button.danger{background:#b91c1c;color:#fff}
button.small{padding:4px 10px;font-size:13px;margin-top:0}
.error{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:10px 12px;border-radius:8px;margin-bottom:14px}
.ok{background:#f0fdf4;border:1px solid #bbf7d0;color:#166534;padding:10px 12px;border-radius:8px;margin-bottom:14px}
.warn{background:#fffbeb;border:1px solid #fde68a;color:#92400e;padding:10px 12px;border-radius:8px;margin-bottom:14px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e2e8f0;color:#0f172a}
.badge.Healthy{background:#dcfce7;color:#166534}
.badge.Transitioning{background:#fef9c3;color:#854d0e}
.badge.Failed,.badge.Unhealthy{background:#fee2e2;color:#991b1b}
dl.facts{display:grid;grid-template-columns:minmax(120px,max-content) 1fr;gap:4px 14px;margin:0;font-size:14px}
dl.facts dt{color:#475569}
dl.facts dd{margin:0;word-break:break-all}
a{color:#1d4ed8}
.crumbs{font-size:13px;color:#475569;margin-bottom:4px}
.crumbs a{color:#1d4ed8}
details summary{cursor:pointer;color:#1d4ed8}
.secret{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;word-break:break-all;background:#f8fafc;border:1px solid #e2e8f0;border-radius:6px;padding:3px 6px}
@media (max-width:600px){header{padding:10px 12px}main{padding:12px 8px 30px}section{padding:12px}th,td{padding:6px 4px}}
"#;

/// Copy buttons (`data-copy` names the element whose text is copied); everything else works
/// without script.
pub const SCRIPT: &str = r#""use strict";
document.addEventListener("click", function (e) {
  var b = e.target.closest("button[data-copy]");
  if (!b) return;
  e.preventDefault();
  var el = document.getElementById(b.getAttribute("data-copy"));
  if (!el || !navigator.clipboard) return;
  navigator.clipboard.writeText(el.textContent).then(function () {
    var was = b.textContent; b.textContent = "Copied"; setTimeout(function () { b.textContent = was; }, 1500);
  });
});
"#;

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Home,
    Directory,
    Roles,
    Logs,
    None,
}

/// A console page: `title` is text, `body` HTML (every value in it escaped by its maker).
pub struct ConsolePage {
    pub status: StatusCode,
    pub title: String,
    pub nav: Nav,
    /// The signed-in person's name and the CSRF token for the sign-out form; `None` on the
    /// pages shown before sign-in.
    pub who: Option<(String, String)>,
    pub body: String,
    /// Reload every few seconds (a service that is Transitioning).
    pub refresh: Option<u32>,
    pub set_cookies: HeaderMap,
}

impl ConsolePage {
    pub fn new(title: impl Into<String>, nav: Nav, body: String) -> Self {
        Self {
            status: StatusCode::OK,
            title: title.into(),
            nav,
            who: None,
            body,
            refresh: None,
            set_cookies: HeaderMap::new(),
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> String {
    let cur = if current { " aria-current=\"page\"" } else { "" };
    format!("<a href=\"{href}\"{cur}>{label}</a>")
}

impl IntoResponse for ConsolePage {
    fn into_response(self) -> Response {
        let nav = if self.who.is_some() {
            format!(
                "<nav aria-label=\"Console\">{}{}{}{}</nav>",
                nav_link("/console", "Home", self.nav == Nav::Home),
                nav_link("/console/directory", "Directory", self.nav == Nav::Directory),
                nav_link("/console/roles", "Roles", self.nav == Nav::Roles),
                nav_link("/console/logs", "Logs", self.nav == Nav::Logs),
            )
        } else {
            "<nav aria-label=\"Console\"></nav>".to_string()
        };
        let who = match &self.who {
            Some((name, csrf)) => format!(
                "<div class=\"who\"><span>{}</span><form method=\"post\" action=\"/console/signout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"signout\">Sign out</button></form></div>",
                esc(name),
                esc(csrf)
            ),
            None => String::new(),
        };
        let refresh = self
            .refresh
            .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
            .unwrap_or_default();
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{refresh}\
             <title>{title} · mlgate console</title><link rel=\"stylesheet\" href=\"/console/console.css\">\
             <script src=\"/console/console.js\" defer></script></head><body>\
             <a class=\"skip\" href=\"#main\">Skip to content</a><header><a class=\"brand\" href=\"/console\"><span class=\"logo\" aria-hidden=\"true\">m</span>mlgate console</a>{nav}{who}</header>\
             <main id=\"main\">{body}</main></body></html>",
            title = esc(&self.title),
            body = self.body,
        );
        let mut resp = (self.status, Html(html)).into_response();
        secure_headers(resp.headers_mut());
        for v in self.set_cookies.get_all(header::SET_COOKIE) {
            resp.headers_mut().append(header::SET_COOKIE, v.clone());
        }
        resp
    }
}

/// The headers every console answer carries.
pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

pub fn error_box(m: &str) -> String {
    format!("<div class=\"error\" role=\"alert\">{}</div>", esc(m))
}

pub fn ok_box(m: &str) -> String {
    format!("<div class=\"ok\" role=\"status\">{}</div>", esc(m))
}

pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(token))
}

/// A one-button form posting to `action` (escaped) with the CSRF token and hidden fields.
pub fn button_form(
    action: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    label: &str,
    class: &str,
    id: &str,
) -> String {
    let hidden: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)))
        .collect();
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}{hidden}<button type=\"submit\" class=\"{} small\" id=\"{}\">{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(class),
        esc(id),
        esc(label)
    )
}

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}
