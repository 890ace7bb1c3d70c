//! ARM's `Microsoft.Authorization` at any scope, as `az role assignment|definition` and
//! `az ad sp create-for-rbac --role --scopes` call it, over mlgate's RBAC (the same `Access`
//! use cases and in-memory engine as `/api/v1/roleAssignments`):
//!
//! - `GET {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=...]` with
//!   `atScope()`, `assignedTo('{oid}')`, `principalId eq '{oid}'`;
//! - `PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}` (the
//!   client picks the GUID; a duplicate is 409 `RoleAssignmentExists`, which az takes as done);
//! - `GET {scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=roleName eq '...']`,
//!   `GET|PUT .../roleDefinitions/{guid}` (Azure's custom-role JSON under `properties`).
//!
//! Role definition ids are always `/subscriptions/{s}/providers/Microsoft.Authorization/
//! roleDefinitions/{guid}` with the subscription of the scope asked about, because az matches
//! an assignment's `roleDefinitionId` against the listed definitions' ids as exact strings.

use std::collections::HashMap;

use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mlgate_core::access::{Access, AssignmentView};
use mlgate_core::ids::{ObjectId, RoleAssignmentId, RoleDefinitionId};
use mlgate_core::principal::Principal;
use mlgate_core::rbac::{RoleDefinition, RoleDefinitionFile, Scope};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::odata::{self, Term};
use crate::state::AppState;

const MA: &str = "/providers/Microsoft.Authorization";
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Assignments,
    Definitions,
}

/// `{scope}/providers/Microsoft.Authorization/{kind}[/{id}]`, from the path below
/// `/subscriptions/`.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub scope: String,
    pub kind: Kind,
    pub id: Option<String>,
}

pub fn target(rest: &str) -> Option<Target> {
    let s: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let at = (1..s.len()).rev().find(|&i| {
        s[i - 1].eq_ignore_ascii_case("providers")
            && s[i].eq_ignore_ascii_case("Microsoft.Authorization")
    })?;
    let kind = match s.get(at + 1) {
        Some(k) if k.eq_ignore_ascii_case("roleAssignments") => Kind::Assignments,
        Some(k) if k.eq_ignore_ascii_case("roleDefinitions") => Kind::Definitions,
        _ => return None,
    };
    let id = match s.len() - at {
        2 => None,
        3 => Some(s[at + 2].to_string()),
        _ => return None,
    };
    Some(Target { scope: format!("/subscriptions/{}", s[..at - 1].join("/")), kind, id })
}

fn definition_id(scope: &Scope, role: impl std::fmt::Display) -> String {
    match scope.subscription_id() {
        Some(sub) => format!("/subscriptions/{sub}{MA}/roleDefinitions/{role}"),
        None => format!("{MA}/roleDefinitions/{role}"),
    }
}

fn assignment_json(a: &AssignmentView) -> Value {
    let scope = Scope::parse(&a.scope).unwrap_or_else(|_| Scope::root());
    json!({
        "id": format!("{}{MA}/roleAssignments/{}", a.scope, a.id),
        "name": a.id.to_string(),
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "scope": a.scope,
            "roleDefinitionId": definition_id(&scope, a.role_definition_id),
            "principalId": a.principal_id.to_string(),
            "principalType": a.principal_type.as_str(),
            "description": null,
            "condition": null,
            "conditionVersion": null,
        },
    })
}

fn definition_json(r: &RoleDefinition, at: &Scope) -> Value {
    let f = r.to_file();
    json!({
        "id": definition_id(at, r.id),
        "name": r.id.to_string(),
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": f.name,
            "type": if r.is_custom { "CustomRole" } else { "BuiltInRole" },
            "description": f.description,
            "assignableScopes": f.assignable_scopes,
            "permissions": [{
                "actions": f.actions,
                "notActions": f.not_actions,
                "dataActions": f.data_actions,
                "notDataActions": f.not_data_actions,
            }],
        },
    })
}

fn guid<T: std::str::FromStr>(id: &str, what: &str) -> Result<T, ApiError> {
    id.parse().map_err(|_| ApiError::Coded {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidRoleAssignmentId",
        message: format!(
            "The {what} id '{}' is not valid: it must be a GUID.",
            id.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
        ),
    })
}

fn bad_filter(m: &str) -> ApiError {
    ApiError::Coded {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidFilterInQueryString",
        message: format!("Invalid $filter: {m}."),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentProperties {
    role_definition_id: String,
    principal_id: String,
}

#[derive(Debug, Deserialize)]
struct AssignmentBody {
    properties: AssignmentProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Permission {
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    not_actions: Vec<String>,
    #[serde(default)]
    data_actions: Vec<String>,
    #[serde(default)]
    not_data_actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DefinitionProperties {
    role_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    permissions: Vec<Permission>,
    #[serde(default)]
    assignable_scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DefinitionBody {
    properties: DefinitionProperties,
}

async fn body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    let bytes = to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is invalid: {e}")))
}

async fn list_assignments(
    state: &AppState,
    p: &Principal,
    scope: &Scope,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let terms = odata::parse(query.get("$filter").map(String::as_str))?;
    let (mut at_scope, mut principal) = (false, None::<ObjectId>);
    for t in &terms {
        match t {
            Term::Call(f, args) if f.eq_ignore_ascii_case("atScope") && args.is_empty() => {
                at_scope = true
            }
            Term::Call(f, args) if f.eq_ignore_ascii_case("assignedTo") && args.len() == 1 => {
                principal =
                    Some(args[0].parse().map_err(|_| bad_filter("assignedTo takes an object id"))?)
            }
            Term::Eq(f, v) if f.eq_ignore_ascii_case("principalId") => {
                principal = Some(v.parse().map_err(|_| bad_filter("principalId is a GUID"))?)
            }
            _ => {
                return Err(bad_filter(
                    "use atScope(), assignedTo('{id}') or principalId eq '{id}'",
                ));
            }
        }
    }
    ensure_subscription(state, p, scope).await?;
    let all = state.access.assignments_at(p, scope, at_scope, principal);
    Ok(Json(json!({ "value": all.iter().map(assignment_json).collect::<Vec<_>>() }))
        .into_response())
}

/// The scope's subscription must be one the caller can see (else 404, as ARM answers).
async fn ensure_subscription(
    state: &AppState,
    p: &Principal,
    scope: &Scope,
) -> Result<(), ApiError> {
    let sub = scope.subscription_id().map(|s| s.to_string()).unwrap_or_default();
    state.resources.subscription(p, &sub).await?;
    Ok(())
}

async fn list_definitions(
    state: &AppState,
    p: &Principal,
    scope: &Scope,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let terms = odata::parse(query.get("$filter").map(String::as_str))?;
    let mut name = None;
    let mut custom_only = false;
    for t in &terms {
        match t {
            Term::Eq(f, v) if f.eq_ignore_ascii_case("roleName") => name = Some(v.clone()),
            Term::Eq(f, v) if f.eq_ignore_ascii_case("type") => {
                custom_only = v.eq_ignore_ascii_case("CustomRole")
            }
            _ => return Err(bad_filter("use roleName eq '{name}' or type eq 'CustomRole'")),
        }
    }
    ensure_subscription(state, p, scope).await?;
    let value: Vec<Value> = state
        .access
        .role_definitions_at(p, scope)
        .iter()
        .filter(|r| name.as_deref().is_none_or(|n| r.name.eq_ignore_ascii_case(n)))
        .filter(|r| !custom_only || r.is_custom)
        .map(|r| definition_json(r, scope))
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

pub async fn handle(
    state: &AppState,
    p: &Principal,
    method: Method,
    target: Target,
    query: &HashMap<String, String>,
    req: Request,
) -> Result<Response, ApiError> {
    let scope = Access::parse_scope(&target.scope)?;
    match (method, target.kind, target.id.as_deref()) {
        (Method::GET, Kind::Assignments, None) => list_assignments(state, p, &scope, query).await,
        (Method::GET, Kind::Assignments, Some(id)) => {
            let a = state.access.assignment(p, guid(id, "role assignment")?)?;
            Ok(Json(assignment_json(&a)).into_response())
        }
        (Method::PUT, Kind::Assignments, Some(id)) => {
            let id: RoleAssignmentId = guid(id, "role assignment")?;
            let b: AssignmentBody = body(req).await?;
            let a = state
                .access
                .put_assignment(
                    p,
                    id,
                    &b.properties.principal_id,
                    &b.properties.role_definition_id,
                    scope.as_str(),
                )
                .await
                .map_err(|e| match e {
                    mlgate_core::Error::Conflict(message) => ApiError::Coded {
                        status: StatusCode::CONFLICT,
                        code: "RoleAssignmentExists",
                        message,
                    },
                    other => other.into(),
                })?;
            tracing::info!(assignment = %a.id, principal = %a.principal_id, role = %a.role_name,
                           scope = %a.scope, by = %p.object_id, "role assignment created");
            Ok((StatusCode::CREATED, Json(assignment_json(&a))).into_response())
        }
        (Method::DELETE, Kind::Assignments, Some(id)) => {
            let id: RoleAssignmentId = guid(id, "role assignment")?;
            match state.access.delete_assignment(p, &id.to_string()).await {
                Ok(a) => {
                    tracing::info!(assignment = %a.id, by = %p.object_id, "role assignment deleted");
                    Ok(Json(assignment_json(&a)).into_response())
                }
                // ARM answers a delete of nothing with 204.
                Err(mlgate_core::Error::NotFound(_)) => Ok(StatusCode::NO_CONTENT.into_response()),
                Err(e) => Err(e.into()),
            }
        }
        (Method::GET, Kind::Definitions, None) => list_definitions(state, p, &scope, query).await,
        (Method::GET, Kind::Definitions, Some(id)) => {
            let id: RoleDefinitionId = guid(id, "role definition")?;
            ensure_subscription(state, p, &scope).await?;
            let role =
                state.access.role_definitions(p).into_iter().find(|r| r.id == id).ok_or_else(
                    || ApiError::Coded {
                        status: StatusCode::NOT_FOUND,
                        code: "RoleDefinitionDoesNotExist",
                        message: format!(
                            "The specified role definition with ID '{id}' does not exist."
                        ),
                    },
                )?;
            Ok(Json(definition_json(&role, &scope)).into_response())
        }
        (Method::PUT, Kind::Definitions, Some(id)) => {
            let id: RoleDefinitionId = guid(id, "role definition")?;
            let b: DefinitionBody = body(req).await?;
            let d = b.properties;
            if d.kind.as_deref().is_some_and(|k| !k.eq_ignore_ascii_case("CustomRole")) {
                return Err(ApiError::BadRequest(
                    "Only custom roles (type 'CustomRole') can be created.".into(),
                ));
            }
            let mut file = RoleDefinitionFile {
                name: d.role_name,
                id: None,
                is_custom: Some(true),
                description: d.description.unwrap_or_default(),
                actions: vec![],
                not_actions: vec![],
                data_actions: vec![],
                not_data_actions: vec![],
                assignable_scopes: d.assignable_scopes,
            };
            for perm in d.permissions {
                file.actions.extend(perm.actions);
                file.not_actions.extend(perm.not_actions);
                file.data_actions.extend(perm.data_actions);
                file.not_data_actions.extend(perm.not_data_actions);
            }
            let role = state.access.create_role_definition_with_id(p, id, &file).await?;
            tracing::info!(role = %role.name, id = %role.id, by = %p.object_id, "role definition created");
            Ok((StatusCode::CREATED, Json(definition_json(&role, &scope))).into_response())
        }
        (_, _, _) => Err(ApiError::MethodNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_paths_at_any_scope() {
        let t = target("s/providers/Microsoft.Authorization/roleAssignments").unwrap();
        assert_eq!((t.scope.as_str(), t.kind, t.id), ("/subscriptions/s", Kind::Assignments, None));
        let t = target(
            "s/resourcegroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/providers/microsoft.authorization/ROLEDEFINITIONS/g",
        )
        .unwrap();
        assert_eq!(
            t.scope,
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
        );
        assert_eq!((t.kind, t.id.as_deref()), (Kind::Definitions, Some("g")));
        assert!(target("s/providers/Microsoft.Authorization/denyAssignments").is_none());
        assert!(target("s/providers/Microsoft.Authorization/roleAssignments/a/b").is_none());
        assert!(target("s/resourceGroups/rg").is_none());
    }
}
