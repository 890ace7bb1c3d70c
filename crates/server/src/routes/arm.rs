//! The ARM-shaped resource API under `/subscriptions/...`: one handler parses the path
//! case-insensitively, as ARM matches it, into a typed [`ArmPath`] and dispatches by method.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Bytes, to_bytes};
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mlgate_core::rbac::catalog::WORKSPACE_PROVIDER;
use mlgate_core::records;
use mlgate_proto as proto;
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::directory::subscription_json;
use crate::state::AppState;

/// ARM request bodies are small; refuse more unread.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum ArmPath {
    Subscription(String),
    ResourceGroups(String),
    ResourceGroup(String, String),
    Workspaces {
        sub: String,
        rg: Option<String>,
    },
    Workspace(String, String, String),
    /// Anything below a workspace (models, blobs, and later services).
    Child {
        sub: String,
        rg: String,
        ws: String,
        rest: Vec<String>,
    },
}

fn parse(rest: &str) -> Option<ArmPath> {
    let s: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let eq = |i: usize, w: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    let sub = s.first().filter(|x| !x.is_empty())?.to_string();
    match s.len() {
        1 => Some(ArmPath::Subscription(sub)),
        2 if eq(1, "resourceGroups") => Some(ArmPath::ResourceGroups(sub)),
        3 if eq(1, "resourceGroups") => Some(ArmPath::ResourceGroup(sub, s[2].to_string())),
        4 if eq(1, "providers") && eq(2, WORKSPACE_PROVIDER) && eq(3, "workspaces") => {
            Some(ArmPath::Workspaces { sub, rg: None })
        }
        6 if eq(1, "resourceGroups")
            && eq(3, "providers")
            && eq(4, WORKSPACE_PROVIDER)
            && eq(5, "workspaces") =>
        {
            Some(ArmPath::Workspaces { sub, rg: Some(s[2].to_string()) })
        }
        7 if eq(1, "resourceGroups")
            && eq(3, "providers")
            && eq(4, WORKSPACE_PROVIDER)
            && eq(5, "workspaces") =>
        {
            Some(ArmPath::Workspace(sub, s[2].to_string(), s[6].to_string()))
        }
        n if n > 7
            && eq(1, "resourceGroups")
            && eq(3, "providers")
            && eq(4, WORKSPACE_PROVIDER)
            && eq(5, "workspaces") =>
        {
            Some(ArmPath::Child {
                sub,
                rg: s[2].to_string(),
                ws: s[6].to_string(),
                rest: s[7..].iter().map(|x| x.to_string()).collect(),
            })
        }
        _ => None,
    }
}

fn rg_json(rg: &records::ResourceGroup) -> proto::ResourceGroup {
    proto::ResourceGroup {
        id: proto::arm::resource_group_id(&rg.subscription_id.to_string(), &rg.name),
        name: rg.name.clone(),
        kind: "Microsoft.Resources/resourceGroups".into(),
        location: rg.location.clone(),
        properties: proto::ProvisioningProperties { provisioning_state: "Succeeded".into() },
    }
}

pub fn workspace_json(ws: &records::Workspace, public_url: &str) -> proto::Workspace {
    proto::Workspace {
        id: proto::arm::workspace_id(&ws.subscription_id.to_string(), &ws.resource_group, &ws.name),
        name: ws.name.clone(),
        kind: format!("{WORKSPACE_PROVIDER}/workspaces"),
        location: ws.location.clone(),
        properties: proto::WorkspaceProperties {
            workspace_id: ws.id.to_string(),
            description: ws.description.clone(),
            friendly_name: ws.friendly_name.clone(),
            creation_time: ws.created_at.format(&Rfc3339).unwrap_or_default(),
            provisioning_state: "Succeeded".into(),
            discovery_url: format!("{public_url}/discovery/workspaces/{}", ws.id),
        },
    }
}

/// The `nextLink` of a page: the same URL with the new `$skipToken`.
fn next_link(
    state: &AppState,
    path: &str,
    query: &HashMap<String, String>,
    token: Option<String>,
) -> Option<String> {
    let token = token?;
    let mut params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "$skipToken")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.sort();
    params.push(("$skipToken".into(), token));
    let q: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    Some(format!("{}{path}?{q}", state.public_url))
}

fn top(query: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    query
        .get("$top")
        .map(|t| {
            t.parse::<u32>().map_err(|_| ApiError::BadRequest("$top must be a whole number".into()))
        })
        .transpose()
}

fn put_body(bytes: &Bytes) -> Result<proto::PutResource, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(proto::PutResource::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is invalid: {e}")))
}

pub async fn handle(
    State(state): State<AppState>,
    Caller(p): Caller,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let path = uri.path().to_string();
    let rest = path.get("/subscriptions/".len()..).unwrap_or_default();
    let not_found =
        || ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into()));
    if let Some(sub) = super::monitor::activity_target(rest) {
        return super::monitor::activity_log(&state, &p, &method, sub, &path, &query).await;
    }
    // Microsoft.Authorization at any scope, and the inventory reads (resources, providers).
    if let Some(t) = super::authorization::target(rest) {
        return super::authorization::handle(&state, &p, method, t, &query, req).await;
    }
    if let Some(t) = super::inventory::target(rest) {
        return super::inventory::handle(&state, &p, method, t, &query).await;
    }
    let target = parse(rest).ok_or_else(not_found)?;
    if let ArmPath::Child { sub, rg, ws, rest } = target {
        let first = |w: &str| rest.first().is_some_and(|r| r.eq_ignore_ascii_case(w));
        let wref = mlgate_core::model_registry::WorkspaceRef {
            subscription: &sub,
            resource_group: &rg,
            workspace: &ws,
        };
        if first("services") {
            return super::services::handle(&state, &p, method, (&sub, &rg, &ws), &rest, req).await;
        }
        // The SDK v2's faces: online endpoints (and their operations), code assets.
        if first("onlineEndpoints") || first("operations") {
            let at = (sub.as_str(), rg.as_str(), ws.as_str());
            return super::online::handle(&state, &p, method, at, &rest, &path, &query, req).await;
        }
        let seg: Vec<&str> = rest.iter().map(String::as_str).collect();
        if first("codes") {
            return super::assets::codes(&state, &p, method, wref, &seg, &path, &query, req).await;
        }
        // Models in ARM's shape for Azure's clients (they send `api-version`).
        if let Some(r) = super::assets::models(&state, &p, &method, wref, &seg, &path, &query).await
        {
            return r;
        }
        return super::models::handle(&state, &p, method, (&sub, &rg, &ws), &rest, &query, req)
            .await;
    }
    let r = &state.resources;
    let skip = query.get("$skipToken").map(String::as_str);
    let body = if method == Method::PUT {
        to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?
    } else {
        Bytes::new()
    };
    let created = |c: bool| if c { StatusCode::CREATED } else { StatusCode::OK };
    let resp = match (method, target) {
        (Method::GET, ArmPath::Subscription(sub)) => {
            Json(subscription_json(&r.subscription(&p, &sub).await?)).into_response()
        }
        (Method::GET, ArmPath::ResourceGroups(sub)) => {
            let page = r.list_resource_groups(&p, &sub, top(&query)?, skip).await?;
            Json(proto::Page {
                value: page.items.iter().map(rg_json).collect(),
                next_link: next_link(&state, &path, &query, page.next),
            })
            .into_response()
        }
        (Method::GET, ArmPath::ResourceGroup(sub, rg)) => {
            Json(rg_json(&r.resource_group(&p, &sub, &rg).await?)).into_response()
        }
        (Method::PUT, ArmPath::ResourceGroup(sub, rg)) => {
            let b = put_body(&body)?;
            let (g, c) = r.put_resource_group(&p, &sub, &rg, b.location.as_deref()).await?;
            tracing::info!(rg = %g.name, by = %p.object_id, created = c, "resource group put");
            (created(c), Json(rg_json(&g))).into_response()
        }
        (Method::DELETE, ArmPath::ResourceGroup(sub, rg)) => {
            r.delete_resource_group(&p, &sub, &rg).await?;
            tracing::info!(rg = %rg, by = %p.object_id, "resource group deleted");
            StatusCode::OK.into_response()
        }
        (Method::GET, ArmPath::Workspaces { sub, rg }) => {
            let page = r.list_workspaces(&p, &sub, rg.as_deref(), top(&query)?, skip).await?;
            Json(proto::Page {
                value: page.items.iter().map(|w| workspace_json(w, &state.public_url)).collect(),
                next_link: next_link(&state, &path, &query, page.next),
            })
            .into_response()
        }
        (Method::GET, ArmPath::Workspace(sub, rg, name)) => {
            Json(workspace_json(&r.workspace(&p, &sub, &rg, &name).await?, &state.public_url))
                .into_response()
        }
        (Method::PUT, ArmPath::Workspace(sub, rg, name)) => {
            let b = put_body(&body)?;
            let props = b.properties.unwrap_or_default();
            let (ws, c) = r
                .put_workspace(
                    &p,
                    &sub,
                    &rg,
                    &name,
                    b.location.as_deref(),
                    props.description.as_deref(),
                    props.friendly_name.as_deref(),
                )
                .await?;
            tracing::info!(workspace = %ws.name, by = %p.object_id, created = c, "workspace put");
            (created(c), Json(workspace_json(&ws, &state.public_url))).into_response()
        }
        (Method::DELETE, ArmPath::Workspace(sub, rg, name)) => {
            r.delete_workspace(&p, &sub, &rg, &name).await?;
            tracing::info!(workspace = %name, by = %p.object_id, "workspace deleted");
            StatusCode::OK.into_response()
        }
        (_, ArmPath::Child { .. }) => return Err(not_found()),
        _ => return Err(ApiError::MethodNotAllowed),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_paths_parse_case_insensitively() {
        assert_eq!(parse("s"), Some(ArmPath::Subscription("s".into())));
        assert_eq!(parse("s/RESOURCEGROUPS"), Some(ArmPath::ResourceGroups("s".into())));
        assert_eq!(
            parse("s/resourcegroups/RG/providers/microsoft.machinelearningservices/WORKSPACES/ws"),
            Some(ArmPath::Workspace("s".into(), "RG".into(), "ws".into()))
        );
        assert_eq!(
            parse("s/providers/Microsoft.MachineLearningServices/workspaces"),
            Some(ArmPath::Workspaces { sub: "s".into(), rg: None })
        );
        assert_eq!(parse("s/resourceGroups/rg/providers/Other.Thing/workspaces/ws"), None);
        assert_eq!(parse("s/unknown"), None);
    }
}
