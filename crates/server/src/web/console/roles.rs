//! Roles: the built-in and custom definitions (each one's JSON), creating one from Azure's
//! JSON, and the "check access" form with `role check`'s explanation.
//!
//! TODO(roles): deleting a custom role definition, once core has that use case (main's has
//! none; the API cannot either).

use axum::extract::Form;
use axum::response::{IntoResponse, Response};
use mlgate_core::rbac::RoleDefinitionFile;

use super::layout::{Nav, csrf_field, error_box, ok_box};
use super::{Ctx, field, input};
use crate::web::pages::esc;

/// `GET /console/roles`.
pub async fn show(ctx: Ctx) -> Response {
    render(&ctx, String::new(), None, None).await
}

async fn render(
    ctx: &Ctx,
    notice: String,
    check: Option<(&super::Form, String)>,
    draft: Option<&str>,
) -> Response {
    let mut body = format!("<h1>Roles</h1>{notice}");
    let mut roles = ctx.state.access.role_definitions(&ctx.principal);
    roles.sort_by(|a, b| (a.is_custom, &a.name).cmp(&(b.is_custom, &b.name)));
    body.push_str("<section aria-labelledby=\"defs\"><h2 id=\"defs\">Role definitions</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Type</th><th scope=\"col\">Description and JSON</th></tr></thead><tbody>");
    for r in &roles {
        let json = serde_json::to_string_pretty(&r.to_file()).unwrap_or_default();
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}<details><summary>JSON<span class=\"muted\"> of {}</span></summary><pre tabindex=\"0\">{}</pre></details></td></tr>",
            esc(&r.name),
            if r.is_custom { "Custom" } else { "Built-in" },
            esc(&r.description),
            esc(&r.name),
            esc(&json)
        ));
    }
    body.push_str("</tbody></table></div></section>");

    let example = draft.unwrap_or(
        "{\n  \"Name\": \"Model Reader\",\n  \"IsCustom\": true,\n  \"Description\": \"Reads models.\",\n  \"Actions\": [\"Microsoft.MachineLearningServices/workspaces/models/read\"],\n  \"NotActions\": [],\n  \"AssignableScopes\": [\"/subscriptions/SUBSCRIPTION-ID\"]\n}",
    );
    body.push_str(&format!(
        "<section aria-labelledby=\"create\"><h2 id=\"create\">Create a custom role</h2><p class=\"muted\">Azure's role definition JSON, as <code>az role definition create --role-definition</code> reads it.</p>\
         <form method=\"post\" action=\"/console/roles\">{}<label for=\"definition\">Role definition (JSON)</label><textarea id=\"definition\" name=\"definition\" spellcheck=\"false\">{}</textarea>\
         <button type=\"submit\" id=\"create-role\">Create role</button></form></section>",
        csrf_field(&ctx.csrf),
        esc(example)
    ));

    let (assignee, action, scope) = check
        .as_ref()
        .map(|(f, _)| (field(f, "assignee"), field(f, "action"), field(f, "scope")))
        .unwrap_or(("", "", ""));
    body.push_str(&format!(
        "<section aria-labelledby=\"check\"><h2 id=\"check\">Check access</h2>\
         <form method=\"post\" action=\"/console/roles/check\">{}{}{}{}<button type=\"submit\" id=\"check-access\">Check</button></form>{}</section>",
        csrf_field(&ctx.csrf),
        input("assignee", "Principal (user name, object id or application id)", assignee, "required"),
        input("action", "Action", action, "required placeholder=\"Microsoft.MachineLearningServices/workspaces/read\""),
        input("scope", "Scope", scope, "required placeholder=\"/subscriptions/...\""),
        check.map(|(_, r)| r).unwrap_or_default()
    ));
    ctx.page("Roles", Nav::Roles, body).into_response()
}

/// `POST /console/roles`: `az role definition create`.
pub async fn create(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let raw = f.get("definition").map(String::as_str).unwrap_or("");
    let file: RoleDefinitionFile = match serde_json::from_str(raw) {
        Ok(f) => f,
        Err(e) => {
            return ctx.error(mlgate_core::Error::InvalidInput(format!(
                "The role definition is not valid JSON of a role: {e}"
            )));
        }
    };
    match ctx.state.access.create_role_definition(&ctx.principal, &file).await {
        Ok(r) => render(&ctx, ok_box(&format!("Role '{}' created.", r.name)), None, None).await,
        Err(e) => ctx.error(e),
    }
}

/// `POST /console/roles/check`: `mlgate role check`.
pub async fn check(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let names = super::workspace::principal_names(&ctx).await;
    let result = match ctx
        .state
        .access
        .check(&ctx.principal, field(&f, "assignee"), field(&f, "action"), field(&f, "scope"))
        .await
    {
        Ok(r) => {
            let who =
                names.get(&r.principal_id).cloned().unwrap_or_else(|| r.principal_id.to_string());
            let mut out = if r.allowed {
                ok_box(&format!("Allowed: {who} may perform {} at {}.", r.action, r.scope))
            } else {
                error_box(&format!("Denied: {who} may not perform {} at {}.", r.action, r.scope))
            };
            out.push_str("<div id=\"check-result\">");
            if let Some(d) = &r.decided_by {
                out.push_str(&format!(
                    "<p>Granted by <strong>{}</strong> at <code>{}</code>.</p>",
                    esc(&d.role_name),
                    esc(&d.scope)
                ));
            }
            if !r.considered.is_empty() {
                out.push_str("<p>Other assignments considered:</p><ul>");
                for (a, why) in &r.considered {
                    out.push_str(&format!(
                        "<li><strong>{}</strong> at <code>{}</code>: {}</li>",
                        esc(&a.role_name),
                        esc(&a.scope),
                        esc(why)
                    ));
                }
                out.push_str("</ul>");
            }
            out.push_str("</div>");
            out
        }
        Err(e) => error_box(&e.to_string()),
    };
    render(&ctx, String::new(), Some((&f, result)), None).await
}
