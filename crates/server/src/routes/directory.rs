//! The directory API: who am I, service principals and their credentials, subscriptions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mlgate_core::principal::PrincipalKind;
use mlgate_core::records::{self, ClientSecret};
use mlgate_proto as proto;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use mlgate_core::users::UserUpdate;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::json::ApiJson;
use crate::state::AppState;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn sp_json(sp: &records::ServicePrincipal, secrets: &[ClientSecret]) -> proto::ServicePrincipal {
    proto::ServicePrincipal {
        id: sp.object_id.to_string(),
        app_id: sp.app_id.to_string(),
        display_name: sp.display_name.clone(),
        account_enabled: sp.account_enabled,
        app_owner_organization_id: sp.tenant_id.to_string(),
        service_principal_type: "Application".into(),
        public_client: sp.public_client,
        password_credentials: secrets
            .iter()
            .map(|s| proto::PasswordCredential {
                key_id: s.id.to_string(),
                hint: s.hint.clone(),
                display_name: s.display_name.clone(),
                start_date_time: rfc3339(s.created_at),
                end_date_time: s.expires_at.map(rfc3339),
            })
            .collect(),
        created_date_time: rfc3339(sp.created_at),
    }
}

fn secret_json(new: &mlgate_core::directory::NewSecret) -> proto::ServicePrincipalSecret {
    proto::ServicePrincipalSecret {
        app_id: new.principal.app_id.to_string(),
        object_id: new.principal.object_id.to_string(),
        display_name: new.principal.display_name.clone(),
        password: new.secret.clone(),
        tenant: new.principal.tenant_id.to_string(),
        key_id: new.record.id.to_string(),
        end_date_time: new.record.expires_at.map(rfc3339),
    }
}

pub async fn me(Caller(p): Caller) -> Json<proto::Me> {
    let (kind, upn, app_id) = match &p.kind {
        PrincipalKind::User { user_principal_name } => {
            ("User", Some(user_principal_name.clone()), None)
        }
        PrincipalKind::ServicePrincipal { app_id } => {
            ("ServicePrincipal", None, Some(app_id.clone()))
        }
    };
    Json(proto::Me {
        object_id: p.object_id.to_string(),
        tenant_id: p.tenant_id.to_string(),
        kind: kind.into(),
        display_name: p.display_name.clone(),
        user_principal_name: upn,
        app_id,
        client_app_id: p.claims.client_app_id().to_string(),
        audience: p.claims.aud.clone(),
        token_expires_on: p.claims.exp,
    })
}

pub async fn list_service_principals(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<proto::Page<proto::ServicePrincipal>>, ApiError> {
    let all = state.authority.directory().list_service_principals(&p).await?;
    Ok(Json(proto::Page {
        value: all.iter().map(|(sp, s)| sp_json(sp, s)).collect(),
        next_link: None,
    }))
}

pub async fn create_service_principal(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<proto::CreateServicePrincipal>,
) -> Result<(StatusCode, Json<proto::ServicePrincipalSecret>), ApiError> {
    let new = state
        .authority
        .directory()
        .create_service_principal(&p, &req.display_name, req.years)
        .await?;
    tracing::info!(app_id = %new.principal.app_id, by = %p.object_id, "service principal created");
    Ok((StatusCode::CREATED, Json(secret_json(&new))))
}

pub async fn get_service_principal(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<proto::ServicePrincipal>, ApiError> {
    let (sp, secrets) = state.authority.directory().find_service_principal(&p, &id).await?;
    Ok(Json(sp_json(&sp, &secrets)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateServicePrincipal {
    account_enabled: bool,
}

pub async fn update_service_principal(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateServicePrincipal>,
) -> Result<Json<proto::ServicePrincipal>, ApiError> {
    let dir = state.authority.directory();
    let sp = dir.set_service_principal_enabled(&p, &id, req.account_enabled).await?;
    let secrets = dir.store().secrets_of(sp.object_id).await.map_err(mlgate_core::Error::from)?;
    tracing::info!(app_id = %sp.app_id, enabled = req.account_enabled, by = %p.object_id,
                   "service principal updated");
    Ok(Json(sp_json(&sp, &secrets)))
}

pub async fn delete_service_principal(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = state.authority.directory().delete_service_principal(&p, &id).await?;
    state.access.forget_principal(deleted);
    tracing::info!(id = %id, by = %p.object_id, "service principal deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reset_credential(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<proto::ResetCredential>,
) -> Result<Json<proto::ServicePrincipalSecret>, ApiError> {
    let new = state
        .authority
        .directory()
        .reset_credential(&p, &id, req.append, req.years, req.end_date.as_deref())
        .await?;
    tracing::info!(app_id = %new.principal.app_id, append = req.append, by = %p.object_id,
                   "service principal credential reset");
    Ok(Json(secret_json(&new)))
}

pub async fn subscriptions(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<proto::Page<proto::Subscription>>, ApiError> {
    let subs = state.resources.subscriptions(&p).await?;
    Ok(Json(proto::Page { value: subs.iter().map(subscription_json).collect(), next_link: None }))
}

pub fn subscription_json(s: &records::Subscription) -> proto::Subscription {
    proto::Subscription {
        id: format!("/subscriptions/{}", s.id),
        subscription_id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        display_name: s.display_name.clone(),
        state: "Enabled".into(),
    }
}

pub fn user_json(u: &records::User) -> proto::User {
    proto::User {
        id: u.object_id.to_string(),
        user_principal_name: u.user_principal_name.clone(),
        display_name: u.display_name.clone(),
        account_enabled: u.account_enabled,
        force_change_password_next_sign_in: u.force_change_password,
    }
}

pub async fn create_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<proto::CreateUser>,
) -> Result<(StatusCode, Json<proto::User>), ApiError> {
    let dir = state.authority.directory();
    let mut user =
        dir.create_user(&p, &req.user_principal_name, &req.display_name, &req.password).await?;
    if req.force_change_password_next_sign_in {
        let force = UserUpdate { force_change_password: Some(true), ..Default::default() };
        user = dir.update_user(&p, &user.object_id.to_string(), force).await?;
    }
    tracing::info!(user = %user.object_id, by = %p.object_id, "user created");
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

pub async fn list_users(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<proto::Page<proto::User>>, ApiError> {
    let users = state.authority.directory().list_users(&p).await?;
    Ok(Json(proto::Page { value: users.iter().map(user_json).collect(), next_link: None }))
}

pub async fn get_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<proto::User>, ApiError> {
    Ok(Json(user_json(&state.authority.directory().show_user(&p, &id).await?)))
}

pub async fn update_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<proto::UpdateUser>,
) -> Result<Json<proto::User>, ApiError> {
    if req.password.is_some() {
        // A reset by an administrator, in Azure AD's words.
        mlgate_core::activity::set_operation("microsoft.directory/users/password/update", None);
    }
    let change = UserUpdate {
        display_name: req.display_name,
        account_enabled: req.account_enabled,
        password: req.password,
        force_change_password: req.force_change_password_next_sign_in,
    };
    let u = state.authority.directory().update_user(&p, &id, change).await?;
    tracing::info!(user = %u.object_id, by = %p.object_id, "user updated");
    Ok(Json(user_json(&u)))
}

pub async fn delete_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = state.authority.directory().delete_user(&p, &id).await?;
    state.access.forget_principal(deleted);
    tracing::info!(user = %deleted, by = %p.object_id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn tenant_json(t: &mlgate_core::records::Tenant) -> proto::TenantInfo {
    proto::TenantInfo {
        tenant_id: t.id.to_string(),
        domain: t.domain.clone(),
        display_name: t.display_name.clone(),
    }
}

/// The caller's home tenant and the tenants it was added to.
pub async fn list_tenants(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<proto::Page<proto::TenantInfo>>, ApiError> {
    let tenants = state.authority.directory().tenants_of(&p).await?;
    Ok(Json(proto::Page { value: tenants.iter().map(tenant_json).collect(), next_link: None }))
}

pub async fn create_tenant(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<proto::CreateTenant>,
) -> Result<(StatusCode, Json<proto::TenantInfo>), ApiError> {
    let (t, _) = state.access.create_tenant(&p, &req.domain, &req.display_name).await?;
    tracing::info!(tenant = %t.id, by = %p.object_id, "tenant created");
    Ok((StatusCode::CREATED, Json(tenant_json(&t))))
}

/// Adds a user of another tenant to the caller's tenant.
pub async fn add_member(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<proto::AddMember>,
) -> Result<(StatusCode, Json<proto::User>), ApiError> {
    let u = state.authority.directory().add_member(&p, &req.user, req.admin).await?;
    tracing::info!(user = %u.object_id, tenant = %p.tenant_id, by = %p.object_id, "member added");
    Ok((StatusCode::CREATED, Json(user_json(&u))))
}
