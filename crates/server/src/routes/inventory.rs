//! ARM's inventory reads, as `az login`, `az resource list/show` and the Azure ML SDK's
//! `Workspace.list` use them: `GET /tenants`, `GET /subscriptions/{s}/resources?$filter=...`
//! (workspaces are the resources mlgate has) and the resource-provider metadata
//! `GET /subscriptions/{s}/providers[/{namespace}]` (where az finds api-versions).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mlgate_core::principal::Principal;
use mlgate_core::rbac::catalog::WORKSPACE_PROVIDER;
use mlgate_core::records::Workspace;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::odata::{self, Term};
use crate::state::AppState;

const WORKSPACE_TYPE: &str = "Microsoft.MachineLearningServices/workspaces";

/// A resource type and its api-versions.
type ResourceType = (&'static str, &'static [&'static str]);

/// What mlgate's resource providers serve, newest api-version first (az takes the first
/// non-preview one).
const PROVIDERS: &[(&str, &[ResourceType])] = &[
    (
        WORKSPACE_PROVIDER,
        &[("workspaces", &["2024-04-01", "2023-10-01", "2022-05-01", "2020-01-01"])],
    ),
    (
        "Microsoft.Resources",
        &[
            ("resourceGroups", &["2024-11-01", "2022-09-01"]),
            ("subscriptions", &["2022-12-01"]),
            ("tenants", &["2022-12-01"]),
            ("resources", &["2024-11-01"]),
        ],
    ),
    (
        "Microsoft.Authorization",
        &[
            ("roleAssignments", &["2022-04-01"]),
            ("roleDefinitions", &["2022-04-01", "2022-05-01-preview"]),
        ],
    ),
];

/// Where an inventory read lands, from the path below `/subscriptions/`.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Resources { sub: String, rg: Option<String> },
    Providers { sub: String },
    Provider { sub: String, namespace: String },
}

/// `{s}/resources`, `{s}/resourceGroups/{rg}/resources`, `{s}/providers[/{ns}]`; anything
/// else belongs to another module.
pub fn target(rest: &str) -> Option<Target> {
    let s: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let eq = |i: usize, w: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    let sub = s.first().filter(|x| !x.is_empty())?.to_string();
    match s.len() {
        2 if eq(1, "resources") => Some(Target::Resources { sub, rg: None }),
        4 if eq(1, "resourceGroups") && eq(3, "resources") => {
            Some(Target::Resources { sub, rg: Some(s[2].to_string()) })
        }
        2 if eq(1, "providers") => Some(Target::Providers { sub }),
        3 if eq(1, "providers") && !eq(2, "Microsoft.Authorization") => {
            Some(Target::Provider { sub, namespace: s[2].to_string() })
        }
        _ => None,
    }
}

fn provider_json(sub: &str, ns: &str, types: &[ResourceType]) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/providers/{ns}"),
        "namespace": ns,
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": types.iter().map(|(t, versions)| json!({
            "resourceType": t,
            "locations": [mlgate_core::resources::DEFAULT_LOCATION],
            "apiVersions": versions,
            "capabilities": "None",
        })).collect::<Vec<_>>(),
    })
}

fn resource_json(ws: &Workspace, expand: bool) -> Value {
    let mut v = json!({
        "id": mlgate_proto::arm::workspace_id(
            &ws.subscription_id.to_string(),
            &ws.resource_group,
            &ws.name
        ),
        "name": ws.name,
        "type": WORKSPACE_TYPE,
        "location": ws.location,
        "tags": {},
        "sku": {"name": "Basic", "tier": "Basic"},
    });
    if expand {
        let created = ws.created_at.format(&Rfc3339).unwrap_or_default();
        v["createdTime"] = json!(created);
        v["changedTime"] = json!(created);
        v["provisioningState"] = json!("Succeeded");
    }
    v
}

/// Does a workspace pass the filter's terms? Tags: mlgate keeps none, so a tag term matches
/// nothing.
fn matches(ws: &Workspace, terms: &[Term]) -> Result<bool, ApiError> {
    for t in terms {
        let ok = match t {
            Term::Eq(f, v) if f.eq_ignore_ascii_case("resourceGroup") => {
                ws.resource_group.eq_ignore_ascii_case(v)
            }
            Term::Eq(f, v) if f.eq_ignore_ascii_case("resourceType") => {
                v.eq_ignore_ascii_case(WORKSPACE_TYPE)
            }
            Term::Eq(f, v) if f.eq_ignore_ascii_case("name") => ws.name.eq_ignore_ascii_case(v),
            Term::Eq(f, v) if f.eq_ignore_ascii_case("location") => {
                ws.location.eq_ignore_ascii_case(v)
            }
            Term::Eq(f, _)
                if f.eq_ignore_ascii_case("tagName") || f.eq_ignore_ascii_case("tagValue") =>
            {
                false
            }
            Term::StartsWith(f, _) if f.eq_ignore_ascii_case("tagName") => false,
            _ => {
                return Err(ApiError::Coded {
                    status: StatusCode::BAD_REQUEST,
                    code: "InvalidFilterInQueryString",
                    message: "Invalid $filter: resources filter on resourceGroup, resourceType, \
                              name, location or tagName."
                        .into(),
                });
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn resources(
    state: &AppState,
    p: &Principal,
    sub: &str,
    rg: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let mut terms = odata::parse(query.get("$filter").map(String::as_str))?;
    if let Some(rg) = rg {
        terms.push(Term::Eq("resourceGroup".into(), rg.to_string()));
    }
    let expand = query.get("$expand").is_some_and(|e| !e.trim().is_empty());
    let top = query
        .get("$top")
        .map(|t| t.parse::<u32>())
        .transpose()
        .map_err(|_| ApiError::BadRequest("$top must be a whole number".into()))?;
    let group = odata::eq(&terms, "resourceGroup").map(str::to_string);
    let skip = query.get("$skipToken").map(String::as_str);
    // The subscription must be the caller's whatever the filter says.
    state.resources.subscription(p, sub).await?;
    let page = match state.resources.list_workspaces(p, sub, group.as_deref(), top, skip).await {
        Ok(page) => page,
        // A filter on a group that does not exist matches nothing.
        Err(mlgate_core::Error::NotFound(_)) if group.is_some() => {
            return Ok(Json(json!({"value": []})).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let mut value = Vec::new();
    for ws in &page.items {
        if matches(ws, &terms)? {
            value.push(resource_json(ws, expand));
        }
    }
    let mut body = json!({ "value": value });
    if let Some(token) = page.next {
        let mut params: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "$skipToken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("$skipToken".into(), token));
        let q: String =
            form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let path = match rg {
            Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}/resources"),
            None => format!("/subscriptions/{sub}/resources"),
        };
        body["nextLink"] = json!(format!("{}{path}?{q}", state.public_url));
    }
    Ok(Json(body).into_response())
}

pub async fn handle(
    state: &AppState,
    p: &Principal,
    method: Method,
    target: Target,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    match target {
        Target::Resources { sub, rg } => resources(state, p, &sub, rg.as_deref(), query).await,
        Target::Providers { sub } => {
            let s = state.resources.subscription(p, &sub).await?;
            let sub = s.id.to_string();
            let value: Vec<Value> =
                PROVIDERS.iter().map(|(ns, types)| provider_json(&sub, ns, types)).collect();
            Ok(Json(json!({ "value": value })).into_response())
        }
        Target::Provider { sub, namespace } => {
            let s = state.resources.subscription(p, &sub).await?;
            let (ns, types) = PROVIDERS
                .iter()
                .find(|(ns, _)| ns.eq_ignore_ascii_case(&namespace))
                .ok_or_else(|| ApiError::Coded {
                    status: StatusCode::NOT_FOUND,
                    code: "InvalidResourceNamespace",
                    message: format!(
                        "The resource namespace '{}' is invalid.",
                        namespace.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
                    ),
                })?;
            Ok(Json(provider_json(&s.id.to_string(), ns, types)).into_response())
        }
    }
}

/// `GET /tenants`: the caller's home tenant and the tenants it was added to.
pub async fn tenants(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Value>, ApiError> {
    let tenants = state.authority.directory().tenants_of(&p).await?;
    let home = state.authority.directory().store().user_anywhere(p.object_id).await;
    let home = home.ok().flatten().map_or(p.tenant_id, |u| u.tenant_id);
    Ok(Json(json!({
        "value": tenants.iter().map(|t| json!({
            "id": format!("/tenants/{}", t.id),
            "tenantId": t.id.to_string(),
            "displayName": t.display_name,
            "defaultDomain": t.domain,
            "domains": [t.domain],
            "tenantCategory": if t.id == home { "Home" } else { "ProjectedBy" },
        })).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_paths() {
        assert_eq!(target("s/resources"), Some(Target::Resources { sub: "s".into(), rg: None }));
        assert_eq!(
            target("s/resourcegroups/RG/Resources"),
            Some(Target::Resources { sub: "s".into(), rg: Some("RG".into()) })
        );
        assert_eq!(
            target("s/providers/microsoft.machinelearningservices"),
            Some(Target::Provider {
                sub: "s".into(),
                namespace: "microsoft.machinelearningservices".into()
            })
        );
        assert_eq!(target("s/providers/Microsoft.Authorization"), None);
        assert_eq!(target("s/resourceGroups/rg"), None);
        assert_eq!(target("s/providers/Microsoft.MachineLearningServices/workspaces"), None);
    }
}
