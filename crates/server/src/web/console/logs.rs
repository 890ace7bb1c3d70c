//! The activity log (who changed what, per subscription; Reader and above) and the sign-in
//! log (directory administrators), newest first, filtered by a GET form. The same `Monitor`
//! use cases as the API decide who may read what.

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use mlgate_core::monitor::ActivityFilter;
use mlgate_core::signins::SignInQuery;

use super::layout::{Nav, error_box};
use super::{Ctx, Form, datetime, input};
use crate::web::pages::esc;

/// At most this many rows of each log on the page.
const ROWS: u32 = 100;

/// `GET /console/logs?sub=&rg=&caller=&user=&app=&failures=1`.
pub async fn show(ctx: Ctx, Query(q): Query<Form>) -> Response {
    let p = &ctx.principal;
    let st = &ctx.state;
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_string);
    let subs = st.resources.subscriptions(p).await.unwrap_or_default();
    let sub = get("sub").or_else(|| subs.first().map(|s| s.id.to_string()));
    let mut body = String::from("<h1>Activity and sign-in logs</h1>");

    body.push_str(
        "<section aria-labelledby=\"activity\"><h2 id=\"activity\">Activity log</h2>\
         <form method=\"get\" action=\"/console/logs\"><div class=\"row\">",
    );
    body.push_str("<div><label for=\"sub\">Subscription</label><select id=\"sub\" name=\"sub\">");
    for s in &subs {
        let id = s.id.to_string();
        let selected = if Some(&id) == sub.as_ref() { " selected" } else { "" };
        body.push_str(&format!(
            "<option value=\"{id}\"{selected}>{} ({id})</option>",
            esc(&s.display_name)
        ));
    }
    body.push_str("</select></div>");
    body.push_str(&format!(
        "<div>{}</div><div>{}</div></div>",
        input("rg", "Resource group", &get("rg").unwrap_or_default(), ""),
        input("caller", "Caller", &get("caller").unwrap_or_default(), ""),
    ));
    body.push_str(&format!(
        "<div class=\"row\"><div>{}</div><div>{}</div><div><label><input type=\"checkbox\" name=\"failures\" value=\"1\"{}> Failed sign-ins only</label></div></div>\
         <button type=\"submit\" id=\"filter-logs\">Filter</button></form>",
        input("user", "Sign-ins of user (name or object id)", &get("user").unwrap_or_default(), ""),
        input("app", "Sign-ins through application (client id)", &get("app").unwrap_or_default(), ""),
        if q.contains_key("failures") { " checked" } else { "" },
    ));
    match &sub {
        None => body.push_str("<p>You can see no subscription.</p>"),
        Some(sub) => {
            let filter = ActivityFilter {
                resource_group: get("rg"),
                caller: get("caller"),
                top: Some(ROWS),
                ..Default::default()
            };
            match st.monitor.activity(p, sub, filter).await {
                Ok((events, _)) if events.is_empty() => body.push_str("<p>No events.</p>"),
                Ok((events, _)) => {
                    body.push_str("<div class=\"scroll\"><table id=\"activity-table\"><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Caller</th><th scope=\"col\">Operation</th><th scope=\"col\">Scope</th><th scope=\"col\">Status</th><th scope=\"col\">From</th></tr></thead><tbody>");
                    for e in &events {
                        let status = match &e.sub_status {
                            Some(s) => format!("{} ({})", e.status.as_str(), s),
                            None => e.status.as_str().to_string(),
                        };
                        body.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                            datetime(e.at),
                            esc(&e.caller),
                            esc(&e.operation),
                            esc(&e.scope),
                            esc(&status),
                            esc(e.client_address.as_deref().unwrap_or("")),
                        ));
                    }
                    body.push_str("</tbody></table></div>");
                }
                Err(e) => body.push_str(&error_box(&e.to_string())),
            }
        }
    }
    body.push_str("</section>");

    if st.authority.directory().ensure_admin(p).await.is_ok() {
        body.push_str("<section aria-labelledby=\"signins\"><h2 id=\"signins\">Sign-in log</h2>");
        // The same two filters as `mlgate ad signin list --user/--app`: an object id may be a
        // user's or an application's, so the page does not guess which.
        let query = SignInQuery {
            user: get("user"),
            app: get("app"),
            failures_only: q.contains_key("failures"),
            limit: ROWS,
            ..Default::default()
        };
        match st.monitor.sign_ins(p, query).await {
            Ok(rows) if rows.is_empty() => body.push_str("<p>No sign-ins.</p>"),
            Ok(rows) => {
                body.push_str("<div class=\"scroll\"><table id=\"signin-table\"><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">User or application</th><th scope=\"col\">Grant or page</th><th scope=\"col\">From</th><th scope=\"col\">Result</th><th scope=\"col\">Count</th></tr></thead><tbody>");
                for r in &rows {
                    let who = r
                        .user_principal_name
                        .clone()
                        .or_else(|| r.app_display_name.clone())
                        .or_else(|| r.app_id.clone())
                        .unwrap_or_default();
                    let result = if r.error_code == 0 {
                        "Success".to_string()
                    } else {
                        format!("AADSTS{}", r.error_code)
                    };
                    // An aggregated record (identical token requests of one minute) says when
                    // its attempts ran from and to.
                    let when = if r.count > 1 {
                        format!("{} to {}", datetime(r.at), datetime(r.last_at))
                    } else {
                        datetime(r.at)
                    };
                    body.push_str(&format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        when,
                        esc(&who),
                        esc(&r.grant),
                        esc(&r.client_address),
                        esc(&result),
                        r.count,
                    ));
                }
                body.push_str("</tbody></table></div>");
            }
            Err(e) => body.push_str(&error_box(&e.to_string())),
        }
        body.push_str("</section>");
    }
    ctx.page("Logs", Nav::Logs, body).into_response()
}
