//! Home: the person's tenants (with the tenant picker), subscriptions, resource groups and
//! workspaces, and the forms that create a group or a workspace.

use axum::extract::Form;
use axum::response::{IntoResponse, Response};
use mlgate_core::rbac::catalog::{RESOURCE_GROUP_WRITE, WORKSPACE_WRITE};

use super::layout::{Nav, csrf_field, ok_box, seg};
use super::{Ctx, field, input, see_other, select};
use crate::web::pages::esc;

/// `GET /console`.
pub async fn show(ctx: Ctx) -> Response {
    render(&ctx, "").await
}

async fn render(ctx: &Ctx, notice: &str) -> Response {
    let p = &ctx.principal;
    let st = &ctx.state;
    let tenants = match st.authority.directory().tenants_of(p).await {
        Ok(t) => t,
        Err(e) => return ctx.error(e),
    };
    let subs = match st.resources.subscriptions(p).await {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let mut body = format!("<h1>Home</h1>{notice}");

    // Tenants, with the picker when there are several (as `az login` lists them).
    let current = tenants.iter().find(|t| t.id == p.tenant_id);
    body.push_str("<section aria-labelledby=\"tenants\"><h2 id=\"tenants\">Directories</h2>");
    body.push_str(&format!(
        "<p>Signed in to <strong>{}</strong> ({}).</p>",
        esc(current.map_or("?", |t| t.display_name.as_str())),
        esc(current.map_or("", |t| t.domain.as_str()))
    ));
    if tenants.len() > 1 {
        let opts: Vec<(String, String)> = tenants
            .iter()
            .map(|t| (t.id.to_string(), format!("{} ({})", t.display_name, t.domain)))
            .collect();
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/tenant\">{}{}<button type=\"submit\" id=\"switch-tenant\">Switch directory</button></form>",
            csrf_field(&ctx.csrf),
            select("tenant", "Directory", &opts, &p.tenant_id.to_string())
        ));
    }
    body.push_str("</section>");

    let mut group_subs = Vec::new();
    let mut ws_subs = Vec::new();
    for s in &subs {
        let sub = s.id.to_string();
        body.push_str(&format!(
            "<section aria-labelledby=\"sub-{sub}\"><h2 id=\"sub-{sub}\">{}</h2><p class=\"muted\">Subscription <code>{sub}</code></p>",
            esc(&s.display_name)
        ));
        let groups = st.resources.list_resource_groups(p, &sub, Some(100), None).await;
        let workspaces = st.resources.list_workspaces(p, &sub, None, Some(100), None).await;
        match (groups, workspaces) {
            (Ok(groups), Ok(workspaces)) => {
                body.push_str("<div class=\"scroll\"><table><caption class=\"muted\">Resource groups and their workspaces</caption><thead><tr><th scope=\"col\">Resource group</th><th scope=\"col\">Workspaces</th></tr></thead><tbody>");
                for g in &groups.items {
                    let in_group: Vec<String> = workspaces
                        .items
                        .iter()
                        .filter(|w| w.resource_group.eq_ignore_ascii_case(&g.name))
                        .map(|w| {
                            format!(
                                "<a href=\"/console/ws/{sub}/{}/{}\">{}</a>",
                                seg(&w.resource_group),
                                seg(&w.name),
                                esc(&w.name)
                            )
                        })
                        .collect();
                    let list = if in_group.is_empty() {
                        "<span class=\"muted\">none</span>".into()
                    } else {
                        in_group.join(", ")
                    };
                    body.push_str(&format!("<tr><td>{}</td><td>{list}</td></tr>", esc(&g.name)));
                }
                // Workspaces visible without their group (a role on the workspace alone).
                for w in workspaces.items.iter().filter(|w| {
                    !groups.items.iter().any(|g| g.name.eq_ignore_ascii_case(&w.resource_group))
                }) {
                    body.push_str(&format!(
                        "<tr><td>{}</td><td><a href=\"/console/ws/{sub}/{}/{}\">{}</a></td></tr>",
                        esc(&w.resource_group),
                        seg(&w.resource_group),
                        seg(&w.name),
                        esc(&w.name)
                    ));
                }
                if groups.items.is_empty() && workspaces.items.is_empty() {
                    body.push_str("<tr><td colspan=\"2\" class=\"muted\">Nothing here is visible to you yet.</td></tr>");
                }
                body.push_str("</tbody></table></div>");
                for g in &groups.items {
                    if ctx.may(
                        WORKSPACE_WRITE,
                        &format!("/subscriptions/{sub}/resourceGroups/{}", g.name),
                    ) {
                        ws_subs.push((
                            format!("{sub}|{}", g.name),
                            format!("{} / {}", s.display_name, g.name),
                        ));
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                body.push_str(&super::layout::error_box(&e.to_string()));
            }
        }
        if ctx.may(RESOURCE_GROUP_WRITE, &format!("/subscriptions/{sub}")) {
            group_subs.push((sub.clone(), s.display_name.clone()));
        }
        body.push_str("</section>");
    }
    if subs.is_empty() {
        body.push_str(
            "<section><p>No subscription is visible to you in this directory.</p></section>",
        );
    }

    if !group_subs.is_empty() {
        body.push_str(&format!(
            "<section aria-labelledby=\"new-group\"><h2 id=\"new-group\">Create a resource group</h2>\
             <form method=\"post\" action=\"/console/groups\">{}<div class=\"row\"><div>{}</div><div>{}</div></div>\
             <button type=\"submit\" id=\"create-group\">Create group</button></form></section>",
            csrf_field(&ctx.csrf),
            select("group_subscription", "Subscription", &group_subs, ""),
            input("group_name", "Name", "", "required maxlength=\"90\""),
        ));
    }
    if !ws_subs.is_empty() {
        body.push_str(&format!(
            "<section aria-labelledby=\"new-ws\"><h2 id=\"new-ws\">Create a workspace</h2>\
             <form method=\"post\" action=\"/console/workspaces\">{}<div class=\"row\"><div>{}</div><div>{}</div></div>\
             <button type=\"submit\" id=\"create-workspace\">Create workspace</button></form></section>",
            csrf_field(&ctx.csrf),
            select("ws_group", "Resource group", &ws_subs, ""),
            input("ws_name", "Workspace name", "", "required maxlength=\"33\""),
        ));
    }
    ctx.page("Home", Nav::Home, body).into_response()
}

/// `POST /console/groups`.
pub async fn create_group(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let (sub, name) = (field(&f, "group_subscription"), field(&f, "group_name"));
    match ctx.state.resources.put_resource_group(&ctx.principal, sub, name, None).await {
        Ok((g, _)) => {
            render(&ctx, &ok_box(&format!("Resource group '{}' is ready.", g.name))).await
        }
        Err(e) => ctx.error(e),
    }
}

/// `POST /console/workspaces`: then to the new workspace's page.
pub async fn create_workspace(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let (sub, rg) = field(&f, "ws_group").split_once('|').unwrap_or(("", ""));
    let name = field(&f, "ws_name");
    match ctx.state.resources.put_workspace(&ctx.principal, sub, rg, name, None, None, None).await {
        Ok((w, _)) => {
            tracing::info!(workspace = %w.name, by = %ctx.principal.object_id, "workspace created in the console");
            see_other(&format!("/console/ws/{sub}/{}/{}", seg(&w.resource_group), seg(&w.name)))
        }
        Err(e) => ctx.error(e),
    }
}
