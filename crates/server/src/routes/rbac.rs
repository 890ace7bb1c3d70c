//! Role assignments, role definitions and `role check`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mlgate_core::access::AssignmentView;
use mlgate_core::rbac::RoleDefinitionFile;
use mlgate_proto as proto;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::json::ApiJson;
use crate::state::AppState;

pub fn assignment_json(a: &AssignmentView) -> proto::RoleAssignment {
    proto::RoleAssignment {
        id: format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", a.scope, a.id),
        name: a.id.to_string(),
        principal_id: a.principal_id.to_string(),
        principal_type: a.principal_type.as_str().to_string(),
        role_definition_id: format!(
            "/providers/Microsoft.Authorization/roleDefinitions/{}",
            a.role_definition_id
        ),
        role_definition_name: a.role_name.clone(),
        scope: a.scope.clone(),
    }
}

pub async fn create_assignment(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<proto::CreateRoleAssignment>,
) -> Result<(StatusCode, Json<proto::RoleAssignment>), ApiError> {
    // The activity record names the scope the role is given at (sent in the body).
    let at = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments",
        req.scope.trim_end_matches('/').chars().take(1000).collect::<String>()
    );
    mlgate_core::activity::set_operation(
        "Microsoft.Authorization/roleAssignments/write",
        Some(&at),
    );
    let a = state.access.create_assignment(&p, &req.assignee, &req.role, &req.scope).await?;
    tracing::info!(assignment = %a.id, principal = %a.principal_id, role = %a.role_name,
                   scope = %a.scope, by = %p.object_id, "role assignment created");
    Ok((StatusCode::CREATED, Json(assignment_json(&a))))
}

pub async fn list_assignments(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<proto::Page<proto::RoleAssignment>>, ApiError> {
    let inherited = q.get("includeInherited").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let all = state
        .access
        .list_assignments(
            &p,
            q.get("scope").map(String::as_str),
            q.get("assignee").map(String::as_str),
            inherited,
        )
        .await?;
    Ok(Json(proto::Page { value: all.iter().map(assignment_json).collect(), next_link: None }))
}

pub async fn delete_assignment(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<proto::RoleAssignment>, ApiError> {
    let a = state.access.delete_assignment(&p, &id).await?;
    tracing::info!(assignment = %a.id, by = %p.object_id, "role assignment deleted");
    Ok(Json(assignment_json(&a)))
}

pub async fn list_definitions(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Json<proto::Page<RoleDefinitionFile>> {
    let roles = state.access.role_definitions(&p);
    Json(proto::Page { value: roles.iter().map(|r| r.to_file()).collect(), next_link: None })
}

pub async fn create_definition(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(file): ApiJson<RoleDefinitionFile>,
) -> Result<(StatusCode, Json<RoleDefinitionFile>), ApiError> {
    let role = state.access.create_role_definition(&p, &file).await?;
    tracing::info!(role = %role.name, id = %role.id, by = %p.object_id, "role definition created");
    Ok((StatusCode::CREATED, Json(role.to_file())))
}

pub async fn check(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<proto::CheckAccess>,
) -> Result<Json<proto::CheckAccessResult>, ApiError> {
    let r = state.access.check(&p, &req.assignee, &req.action, &req.scope).await?;
    Ok(Json(proto::CheckAccessResult {
        allowed: r.allowed,
        principal_id: r.principal_id.to_string(),
        action: r.action,
        scope: r.scope,
        decided_by: r.decided_by.as_ref().map(assignment_json),
        considered: r
            .considered
            .iter()
            .map(|(a, why)| proto::ConsideredAssignment {
                assignment: assignment_json(a),
                reason: why.clone(),
            })
            .collect(),
    }))
}
