//! A workspace: its models, its web services, the role assignments at it and inherited from
//! above (add with the role picker and a principal search, remove), and `config.json`.

use std::collections::HashMap;

use axum::extract::{Form, Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::access::Access;
use mlgate_core::ids::ObjectId;
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::rbac::catalog::{ROLE_ASSIGNMENT_DELETE, ROLE_ASSIGNMENT_WRITE};
use mlgate_core::records::Workspace;
use mlgate_core::resources::workspace_scope;
use mlgate_core::services::{AuthMode, ComputeType, deployment_config};

use super::layout::{Nav, button_form, csrf_field, ok_box, seg};
use super::{Ctx, field, input, select};
use crate::web::pages::esc;

pub type WsPath = (String, String, String);

/// The console's URL of a workspace.
pub fn ws_url(w: &Workspace) -> String {
    format!("/console/ws/{}/{}/{}", w.subscription_id, seg(&w.resource_group), seg(&w.name))
}

/// `GET /console/ws/{sub}/{rg}/{ws}`.
pub async fn show(ctx: Ctx, Path(path): Path<WsPath>) -> Response {
    render(&ctx, &path, "").await
}

/// Names of the tenant's users and service principals, for showing and finding assignees.
pub async fn principal_names(ctx: &Ctx) -> HashMap<ObjectId, String> {
    let dir = ctx.state.authority.directory();
    let mut names = HashMap::new();
    if let Ok(users) = dir.list_users(&ctx.principal).await {
        for u in users {
            names.insert(u.object_id, u.user_principal_name);
        }
    }
    if let Ok(sps) = dir.list_service_principals(&ctx.principal).await {
        for (sp, _) in sps {
            names.insert(sp.object_id, format!("{} ({})", sp.display_name, sp.app_id));
        }
    }
    names
}

async fn render(ctx: &Ctx, (sub, rg, ws): &WsPath, notice: &str) -> Response {
    let p = &ctx.principal;
    let st = &ctx.state;
    let w = match st.resources.workspace(p, sub, rg, ws).await {
        Ok(w) => w,
        Err(e) => return ctx.error(e),
    };
    let wr = WorkspaceRef { subscription: sub, resource_group: rg, workspace: ws };
    let scope = match workspace_scope(w.subscription_id, &w.resource_group, &w.name) {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let base = ws_url(&w);
    let mut body = format!(
        "<div class=\"crumbs\"><a href=\"/console\">Home</a> › {} › {}</div><h1>Workspace {}</h1>{notice}",
        esc(&w.resource_group),
        esc(&w.name),
        esc(&w.name)
    );
    body.push_str(&format!(
        "<section aria-labelledby=\"about\"><h2 id=\"about\">Overview</h2><dl class=\"facts\">\
         <dt>Resource id</dt><dd><code>{}</code></dd><dt>Location</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd></dl>\
         <p><a href=\"{base}/config.json\" id=\"config-json\" download=\"config.json\">Download config.json</a> \
         <span class=\"muted\">(for <code>Workspace.from_config()</code> and <code>mlgate ml</code>)</span></p></section>",
        esc(scope.as_str()),
        esc(&w.location),
        super::datetime(w.created_at)
    ));

    // Models.
    body.push_str("<section aria-labelledby=\"models\"><h2 id=\"models\">Models</h2>");
    match st.models.list(p, wr).await {
        Ok(models) if models.is_empty() => {
            body.push_str("<p class=\"muted\">No models registered.</p>")
        }
        Ok(models) => {
            body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Version</th><th scope=\"col\">Tags</th><th scope=\"col\">Files</th></tr></thead><tbody>");
            for m in &models {
                let tags: Vec<String> =
                    m.tags.iter().map(|(k, v)| format!("{}={}", esc(k), esc(v))).collect();
                let files: Vec<String> = m
                    .files
                    .iter()
                    .take(20)
                    .map(|f| {
                        let q: String = form_urlencoded::Serializer::new(String::new())
                            .append_pair("path", &f.path)
                            .finish();
                        format!(
                            "<a href=\"{base}/models/{}/{}/download?{}\" download>{}</a> ({} bytes)",
                            seg(&m.name),
                            m.version,
                            esc(&q),
                            esc(&f.path),
                            f.size
                        )
                    })
                    .collect();
                let more = if m.files.len() > 20 {
                    format!(" and {} more", m.files.len() - 20)
                } else {
                    String::new()
                };
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{more}</td></tr>",
                    esc(&m.name),
                    m.version,
                    tags.join(", "),
                    files.join("<br>")
                ));
            }
            body.push_str("</tbody></table></div>");
        }
        Err(e) => body.push_str(&super::layout::error_box(&e.to_string())),
    }
    body.push_str("</section>");

    // Web services.
    body.push_str("<section aria-labelledby=\"services\"><h2 id=\"services\">Web services</h2>");
    match st.services.list(p, wr).await {
        Ok(list) if list.is_empty() => {
            body.push_str("<p class=\"muted\">No web services deployed.</p>")
        }
        Ok(list) => {
            body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">State</th><th scope=\"col\">Compute</th><th scope=\"col\">Replicas</th><th scope=\"col\">Auth</th><th scope=\"col\">Model</th></tr></thead><tbody>");
            for s in &list {
                let dc = deployment_config(&s.deployment_config).ok();
                let compute = match dc.as_ref().map(|c| c.compute_type) {
                    Some(ComputeType::Cluster) => "cluster",
                    _ => "instance",
                };
                body.push_str(&format!(
                    "<tr><td><a href=\"{base}/services/{}\">{}</a></td><td><span class=\"badge {}\">{}</span></td><td>{compute}</td><td>{}</td><td>{}</td><td>{}:{}</td></tr>",
                    seg(&s.name),
                    esc(&s.name),
                    s.state.as_str(),
                    s.state.as_str(),
                    dc.as_ref().map_or(1, |c| c.replicas),
                    dc.map_or(AuthMode::None, |c| c.auth).as_str(),
                    esc(&s.model_name),
                    s.model_version
                ));
            }
            body.push_str("</tbody></table></div>");
        }
        Err(e) => body.push_str(&super::layout::error_box(&e.to_string())),
    }
    body.push_str("</section>");

    // Role assignments here, inherited from above and on what the workspace holds.
    let names = principal_names(ctx).await;
    let assignments = st.access.assignments_at(p, &scope, false, None);
    body.push_str("<section aria-labelledby=\"access\"><h2 id=\"access\">Access control</h2>");
    if assignments.is_empty() {
        body.push_str("<p class=\"muted\">No role assignments you may read.</p>");
    } else {
        body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Principal</th><th scope=\"col\">Role</th><th scope=\"col\">Scope</th><th scope=\"col\"><span class=\"muted\">Action</span></th></tr></thead><tbody>");
        for a in &assignments {
            let a_scope = Access::parse_scope(&a.scope).ok();
            let r#where = match &a_scope {
                Some(s) if s.key() == scope.key() => "This workspace".to_string(),
                Some(s) if scope.is_within(s) => {
                    format!("Inherited from <code>{}</code>", esc(&a.scope))
                }
                _ => format!("Below: <code>{}</code>", esc(&a.scope)),
            };
            let who =
                names.get(&a.principal_id).cloned().unwrap_or_else(|| a.principal_id.to_string());
            let remove = if ctx.may(ROLE_ASSIGNMENT_DELETE, &a.scope) {
                button_form(
                    &format!("{base}/assignments/{}/delete", a.id),
                    &ctx.csrf,
                    &[],
                    "Remove",
                    "danger",
                    &format!("remove-{}", a.id),
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{remove}</td></tr>",
                esc(&who),
                esc(&a.role_name),
                r#where
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    if ctx.may(ROLE_ASSIGNMENT_WRITE, scope.as_str()) {
        let roles: Vec<(String, String)> = st
            .access
            .role_definitions_at(p, &scope)
            .iter()
            .map(|r| (r.name.clone(), r.name.clone()))
            .collect();
        let mut options: Vec<&String> = names.values().collect();
        options.sort();
        let datalist: String = options
            .iter()
            .map(|n| format!("<option value=\"{}\">", esc(n.split(" (").next().unwrap_or(n))))
            .collect();
        let datalist_ids: String = names
            .iter()
            .filter(|(_, n)| n.contains(" ("))
            .map(|(id, n)| format!("<option value=\"{id}\">{}</option>", esc(n)))
            .collect();
        body.push_str(&format!(
            "<h3>Add a role assignment</h3><form method=\"post\" action=\"{base}/assignments\">{}\
             <div class=\"row\"><div>{}</div><div>{}<datalist id=\"principals\">{datalist}{datalist_ids}</datalist></div></div>\
             <p class=\"muted\">A user's name (name@domain), or a service principal's object id or application id.</p>\
             <button type=\"submit\" id=\"add-assignment\">Add role assignment</button></form>",
            csrf_field(&ctx.csrf),
            select("role", "Role", &roles, "Reader"),
            input("assignee", "Principal", "", "required list=\"principals\" autocomplete=\"off\""),
        ));
    }
    body.push_str("</section>");
    ctx.page(format!("Workspace {}", w.name), Nav::Home, body).into_response()
}

/// `POST .../assignments`: `az role assignment create --scope <workspace>`.
pub async fn add_assignment(
    ctx: Ctx,
    Path(path): Path<WsPath>,
    Form(f): Form<super::Form>,
) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let (sub, rg, ws) = &path;
    let scope = match sub
        .parse()
        .map_err(|_| {
            mlgate_core::Error::NotFound(format!("The subscription '{sub}' could not be found."))
        })
        .and_then(|s| workspace_scope(s, rg, ws))
    {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let (assignee, role) = (field(&f, "assignee"), field(&f, "role"));
    match ctx.state.access.create_assignment(&ctx.principal, assignee, role, scope.as_str()).await {
        Ok(a) => {
            tracing::info!(assignment = %a.id, by = %ctx.principal.object_id, "role assigned in the console");
            render(&ctx, &path, &ok_box(&format!("'{}' assigned to {assignee}.", a.role_name)))
                .await
        }
        Err(e) => ctx.error(e),
    }
}

/// `POST .../assignments/{id}/delete`.
pub async fn remove_assignment(
    ctx: Ctx,
    Path((sub, rg, ws, id)): Path<(String, String, String, String)>,
    Form(f): Form<super::Form>,
) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    match ctx.state.access.delete_assignment(&ctx.principal, &id).await {
        Ok(a) => {
            tracing::info!(assignment = %a.id, by = %ctx.principal.object_id, "role assignment removed in the console");
            render(&ctx, &(sub, rg, ws), &ok_box(&format!("Removed '{}'.", a.role_name))).await
        }
        Err(e) => ctx.error(e),
    }
}

#[derive(serde::Deserialize)]
pub struct FileQuery {
    path: String,
}

/// `GET .../models/{name}/{version}/download?path=`: one file of a model version, streamed
/// (the API's `download`, the same check).
pub async fn download_model_file(
    ctx: Ctx,
    Path((sub, rg, ws, name, version)): Path<(String, String, String, String, i64)>,
    Query(q): Query<FileQuery>,
) -> Response {
    let wr = WorkspaceRef { subscription: &sub, resource_group: &rg, workspace: &ws };
    let (reader, size) =
        match ctx.state.models.download(&ctx.principal, wr, &name, Some(version), &q.path).await {
            Ok(r) => r,
            Err(e) => return ctx.error(e),
        };
    let file = q.path.rsplit('/').next().unwrap_or("file");
    let safe: String =
        file.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
    let mut resp =
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader)).into_response();
    let h = resp.headers_mut();
    super::layout::secure_headers(h);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `GET .../config.json`: what `mlgate ml workspace show --write-config` writes.
pub async fn config_json(ctx: Ctx, Path((sub, rg, ws)): Path<WsPath>) -> Response {
    let w = match ctx.state.resources.workspace(&ctx.principal, &sub, &rg, &ws).await {
        Ok(w) => w,
        Err(e) => return ctx.error(e),
    };
    let body = serde_json::to_string_pretty(&serde_json::json!({
        "subscription_id": w.subscription_id.to_string(),
        "resource_group": w.resource_group,
        "workspace_name": w.name,
        "server": &*ctx.state.public_url,
    }))
    .unwrap_or_default();
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    super::layout::secure_headers(h);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"config.json\""),
    );
    resp
}
