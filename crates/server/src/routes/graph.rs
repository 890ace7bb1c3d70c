//! The Microsoft Graph `v1.0` subset that `az ad` uses for applications, service principals,
//! their passwords and the signed-in user, over mlgate's directory (`Applications`,
//! `Directory`): one set of records behind both this face and `/api/v1/servicePrincipals`.
//!
//! Graph's base URL is the cloud's `microsoftGraphResourceId` (this server's URL) plus `/v1.0`,
//! and so is its token audience: a token for ARM is refused here, as Graph refuses it. Lists
//! are `{"value": [...]}` with `@odata.nextLink` only when a page follows; errors are
//! `{"error": {"code", "message"}}` with Graph's codes, which az parses.

use std::collections::HashMap;

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mlgate_core::applications::{CredentialOwner, DirectoryObject, NewPassword};
use mlgate_core::principal::Principal;
use mlgate_core::records::{Application, ClientSecret, ServicePrincipal, User};
use mlgate_core::tokens::normalize_resource;
use mlgate_core::users::UserUpdate;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::odata::{self, Term};
use crate::state::AppState;

const MAX_BODY: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;
/// `getByIds` takes at most this many ids, as Graph does.
const MAX_IDS: usize = 1000;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn graph_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Coded { status, code, message: message.into() }
}

/// Core errors in Graph's codes; 5xx stay generic.
fn graph(e: mlgate_core::Error) -> ApiError {
    use mlgate_core::Error as E;
    match e {
        E::NotFound(m) => graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", m),
        E::InvalidInput(m) => graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", m),
        E::Forbidden(m) => graph_error(StatusCode::FORBIDDEN, "Authorization_RequestDenied", m),
        E::Conflict(m) => graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", m),
        other => ApiError::Core(other),
    }
}

fn password_json(s: &ClientSecret, secret_text: Option<&str>) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": if s.display_name.is_empty() { Value::Null } else { json!(s.display_name) },
        "endDateTime": s.expires_at.map(rfc3339),
        "hint": s.hint,
        "keyId": s.id.to_string(),
        "secretText": secret_text,
        "startDateTime": rfc3339(s.created_at),
    })
}

fn sp_json(sp: &ServicePrincipal, secrets: &[ClientSecret]) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": sp.object_id.to_string(),
        "appId": sp.app_id.to_string(),
        "displayName": sp.display_name,
        "appDisplayName": sp.display_name,
        "accountEnabled": sp.account_enabled,
        "appOwnerOrganizationId": sp.tenant_id.to_string(),
        "servicePrincipalNames": [sp.app_id.to_string()],
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "passwordCredentials": secrets.iter().map(|s| password_json(s, None)).collect::<Vec<_>>(),
        "keyCredentials": [],
    })
}

fn app_json(app: &Application, secrets: &[ClientSecret], domain: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.application",
        "id": app.object_id.to_string(),
        "appId": app.app_id.to_string(),
        "displayName": app.display_name,
        "createdDateTime": rfc3339(app.created_at),
        "identifierUris": [],
        "publisherDomain": domain,
        "signInAudience": "AzureADMyOrg",
        "passwordCredentials": secrets.iter().map(|s| password_json(s, None)).collect::<Vec<_>>(),
        "keyCredentials": [],
        "requiredResourceAccess": [],
        "web": {"redirectUris": []},
        "publicClient": {"redirectUris": []},
    })
}

/// What `az ad user create/update` sends (Graph's user, the parts mlgate keeps).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    account_enabled: Option<bool>,
    display_name: Option<String>,
    user_principal_name: Option<String>,
    password_profile: Option<PasswordProfile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordProfile {
    password: Option<String>,
    force_change_password_next_sign_in: Option<bool>,
}

fn user_json(u: &User) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": u.object_id.to_string(),
        "userPrincipalName": u.user_principal_name,
        "displayName": u.display_name,
        "accountEnabled": u.account_enabled,
        "mail": null,
        "givenName": null,
        "surname": null,
        "jobTitle": null,
        "businessPhones": [],
    })
}

fn new_password_json(p: &NewPassword) -> Value {
    password_json(&p.record, Some(&p.secret_text))
}

fn unsupported_filter() -> ApiError {
    graph_error(
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
        "Unsupported query: filter on displayName (eq, startswith), appId, \
         servicePrincipalNames/any, identifierUris/any or userPrincipalName.",
    )
}

/// Does an object with these properties pass the filter? `names` are its
/// `servicePrincipalNames` (or `identifierUris`), `props` its filterable string properties.
fn passes(
    terms: &[Term],
    props: &[(&str, &str)],
    names: (&str, &[String]),
) -> Result<bool, ApiError> {
    let prop = |f: &str| props.iter().find(|(n, _)| n.eq_ignore_ascii_case(f)).map(|(_, v)| *v);
    for t in terms {
        let ok = match t {
            Term::Eq(f, v) => prop(f).ok_or_else(unsupported_filter)?.eq_ignore_ascii_case(v),
            Term::StartsWith(f, p) => {
                let value = prop(f).ok_or_else(unsupported_filter)?;
                value.len() >= p.len()
                    && value.is_char_boundary(p.len())
                    && value[..p.len()].eq_ignore_ascii_case(p)
            }
            Term::AnyEq(c, v) if c.eq_ignore_ascii_case(names.0) => {
                names.1.iter().any(|n| n.eq_ignore_ascii_case(v))
            }
            _ => return Err(unsupported_filter()),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One page of a list, with `@odata.nextLink` (carrying `$skiptoken`) when more follow.
fn page(
    state: &AppState,
    path: &str,
    query: &HashMap<String, String>,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let top = match query.get("$top") {
        None => DEFAULT_PAGE,
        Some(t) => {
            t.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
                graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "$top must be 1 to 999")
            })?
        }
    };
    let skip = match query.get("$skiptoken") {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "$skiptoken is not valid")
        })?,
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    let mut body = json!({ "value": value });
    if skip + top < total {
        let mut params: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "$skiptoken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("$skiptoken".into(), (skip + top).to_string()));
        let q: String =
            form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        body["@odata.nextLink"] = json!(format!("{}{path}?{q}", state.public_url));
    }
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewApplication {
    display_name: String,
    #[serde(default)]
    key_credentials: Vec<Value>,
    #[serde(default)]
    identifier_uris: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationPatch {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    key_credentials: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewServicePrincipal {
    app_id: String,
    #[serde(default)]
    account_enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordCredentialIn {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    end_date_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddPassword {
    #[serde(default)]
    password_credential: PasswordCredentialIn,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemovePassword {
    key_id: String,
}

#[derive(Debug, Deserialize)]
struct GetByIds {
    ids: Vec<String>,
    #[serde(default)]
    types: Vec<String>,
}

fn body<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
    required: bool,
) -> Result<T, ApiError> {
    if !required && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            format!("Invalid request body: {e}"),
        )
    })
}

fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            format!("Invalid request body: {e}"),
        )
    })
}

fn end_date(p: &PasswordCredentialIn) -> Result<Option<OffsetDateTime>, ApiError> {
    p.end_date_time
        .as_deref()
        .map(|d| {
            OffsetDateTime::parse(d, &Rfc3339).map_err(|_| {
                graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "endDateTime must be an ISO 8601 date and time with a zone",
                )
            })
        })
        .transpose()
}

/// The token must be for Graph (this server's URL), as Graph itself requires.
fn ensure_graph_audience(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    if normalize_resource(&p.claims.aud) == normalize_resource(&state.public_url) {
        return Ok(());
    }
    Err(graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        format!(
            "Access token validation failure. Invalid audience: Microsoft Graph here takes tokens \
             for '{}/'.",
            state.public_url
        ),
    ))
}

/// `/v1.0/{*rest}`: one handler, dispatched on method and path segments.
pub async fn handle(
    State(state): State<AppState>,
    Caller(p): Caller,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    ensure_graph_audience(&state, &p)?;
    let path = uri.path().to_string();
    let rest = path.get("/v1.0/".len()..).unwrap_or_default().trim_matches('/').to_string();
    let seg: Vec<&str> = rest.split('/').collect();
    if method == Method::GET
        && seg.len() == 2
        && seg[0].eq_ignore_ascii_case("auditLogs")
        && seg[1].eq_ignore_ascii_case("signIns")
    {
        return super::monitor::sign_ins(&state, &p, "/v1.0/auditLogs/signIns", &query).await;
    }
    let bytes = to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let apps = &state.applications;
    let dir = state.authority.directory();
    let terms = odata::parse(query.get("$filter").map(String::as_str))?;
    let is = |i: usize, w: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    let domain = dir.tenant(p.tenant_id).map(|t| t.domain).unwrap_or_default();
    let resp = match (&method, seg.len()) {
        // --- service principals ---------------------------------------------------------
        (&Method::GET, 1) if is(0, "servicePrincipals") => {
            let mut items = Vec::new();
            for (sp, secrets) in dir.list_service_principals(&p).await.map_err(graph)? {
                let app = sp.app_id.to_string();
                let props = [
                    ("displayName", sp.display_name.as_str()),
                    ("appId", app.as_str()),
                    ("id", &sp.object_id.to_string()),
                ];
                if passes(&terms, &props, ("servicePrincipalNames", std::slice::from_ref(&app)))? {
                    items.push(sp_json(&sp, &secrets));
                }
            }
            return page(&state, "/v1.0/servicePrincipals", &query, items);
        }
        (&Method::POST, 1) if is(0, "servicePrincipals") => {
            let b: NewServicePrincipal = parse_body(&bytes)?;
            let sp = apps
                .create_service_principal(&p, &b.app_id, b.account_enabled.unwrap_or(true))
                .await
                .map_err(graph)?;
            tracing::info!(app_id = %sp.app_id, by = %p.object_id, "service principal created (graph)");
            (StatusCode::CREATED, Json(sp_json(&sp, &[]))).into_response()
        }
        (&Method::GET, 2) if is(0, "servicePrincipals") => {
            let (sp, secrets) = dir.find_service_principal(&p, seg[1]).await.map_err(graph)?;
            Json(sp_json(&sp, &secrets)).into_response()
        }
        (&Method::DELETE, 2) if is(0, "servicePrincipals") => {
            let deleted = apps.delete_service_principal(&p, seg[1]).await.map_err(graph)?;
            state.access.forget_principal(deleted);
            tracing::info!(id = %deleted, by = %p.object_id, "service principal deleted (graph)");
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::POST, 3) if is(0, "servicePrincipals") && is(2, "addPassword") => {
            let b: AddPassword = body(&bytes, false)?;
            let (sp, _) = dir.find_service_principal(&p, seg[1]).await.map_err(graph)?;
            let new = apps
                .add_password(
                    &p,
                    CredentialOwner::ServicePrincipal(sp.object_id),
                    b.password_credential.display_name.as_deref(),
                    end_date(&b.password_credential)?,
                )
                .await
                .map_err(graph)?;
            tracing::info!(app_id = %sp.app_id, key = %new.record.id, by = %p.object_id, "password added to a service principal");
            Json(new_password_json(&new)).into_response()
        }
        (&Method::POST, 3) if is(0, "servicePrincipals") && is(2, "removePassword") => {
            let b: RemovePassword = parse_body(&bytes)?;
            let (sp, _) = dir.find_service_principal(&p, seg[1]).await.map_err(graph)?;
            apps.remove_password(&p, CredentialOwner::ServicePrincipal(sp.object_id), &b.key_id)
                .await
                .map_err(graph)?;
            tracing::info!(app_id = %sp.app_id, key = %b.key_id, by = %p.object_id, "password removed from a service principal");
            StatusCode::NO_CONTENT.into_response()
        }
        // --- applications ---------------------------------------------------------------
        (&Method::GET, 1) if is(0, "applications") => {
            let mut items = Vec::new();
            for (app, secrets) in apps.applications(&p).await.map_err(graph)? {
                let app_id = app.app_id.to_string();
                let props =
                    [("displayName", app.display_name.as_str()), ("appId", app_id.as_str())];
                if passes(&terms, &props, ("identifierUris", &[]))? {
                    items.push(app_json(&app, &secrets, &domain));
                }
            }
            return page(&state, "/v1.0/applications", &query, items);
        }
        (&Method::POST, 1) if is(0, "applications") => {
            let b: NewApplication = parse_body(&bytes)?;
            if !b.key_credentials.is_empty() || !b.identifier_uris.is_empty() {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "certificates (keyCredentials) and identifierUris are not supported; use passwords",
                ));
            }
            let app = apps.create_application(&p, &b.display_name).await.map_err(graph)?;
            tracing::info!(app_id = %app.app_id, by = %p.object_id, "application created (graph)");
            (StatusCode::CREATED, Json(app_json(&app, &[], &domain))).into_response()
        }
        (&Method::GET, 2) if is(0, "applications") => {
            let (app, secrets) = apps.application(&p, seg[1]).await.map_err(graph)?;
            Json(app_json(&app, &secrets, &domain)).into_response()
        }
        (&Method::PATCH, 2) if is(0, "applications") => {
            let b: ApplicationPatch = parse_body(&bytes)?;
            if b.key_credentials.as_ref().is_some_and(|k| !k.is_empty()) {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "certificates (keyCredentials) are not supported; use passwords",
                ));
            }
            match b.display_name {
                Some(name) => apps.rename_application(&p, seg[1], &name).await.map_err(graph)?,
                None => {
                    apps.application(&p, seg[1]).await.map_err(graph)?;
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::DELETE, 2) if is(0, "applications") => {
            if let Some(sp) = apps.delete_application(&p, seg[1]).await.map_err(graph)? {
                state.access.forget_principal(sp);
            }
            tracing::info!(id = %seg[1], by = %p.object_id, "application deleted (graph)");
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::POST, 3) if is(0, "applications") && is(2, "addPassword") => {
            let b: AddPassword = body(&bytes, false)?;
            let (app, _) = apps.application(&p, seg[1]).await.map_err(graph)?;
            let new = apps
                .add_password(
                    &p,
                    CredentialOwner::Application(app.object_id),
                    b.password_credential.display_name.as_deref(),
                    end_date(&b.password_credential)?,
                )
                .await
                .map_err(graph)?;
            tracing::info!(app_id = %app.app_id, key = %new.record.id, by = %p.object_id, "password added to an application");
            Json(new_password_json(&new)).into_response()
        }
        (&Method::POST, 3) if is(0, "applications") && is(2, "removePassword") => {
            let b: RemovePassword = parse_body(&bytes)?;
            let (app, _) = apps.application(&p, seg[1]).await.map_err(graph)?;
            apps.remove_password(&p, CredentialOwner::Application(app.object_id), &b.key_id)
                .await
                .map_err(graph)?;
            tracing::info!(app_id = %app.app_id, key = %b.key_id, by = %p.object_id, "password removed from an application");
            StatusCode::NO_CONTENT.into_response()
        }
        // --- users and objects ---------------------------------------------------------
        (&Method::GET, 1) if is(0, "me") => {
            Json(user_json(&apps.me(&p).await.map_err(graph)?)).into_response()
        }
        (&Method::GET, 1) if is(0, "users") => {
            let mut items = Vec::new();
            for u in apps.users(&p).await.map_err(graph)? {
                let props = [
                    ("userPrincipalName", u.user_principal_name.as_str()),
                    ("displayName", u.display_name.as_str()),
                    ("mail", u.user_principal_name.as_str()),
                ];
                if passes(&terms, &props, ("otherMails", &[]))? {
                    items.push(user_json(&u));
                }
            }
            return page(&state, "/v1.0/users", &query, items);
        }
        (&Method::GET, 2) if is(0, "users") => {
            let users = apps.users(&p).await.map_err(graph)?;
            let wanted = seg[1];
            let u = users
                .iter()
                .find(|u| {
                    u.object_id.to_string().eq_ignore_ascii_case(wanted)
                        || u.user_principal_name.eq_ignore_ascii_case(wanted)
                })
                .ok_or_else(|| graph(mlgate_core::Error::NotFound(format!(
                    "Resource '{}' does not exist or one of its queried reference-property objects \
                     are not present.",
                    wanted.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
                ))))?;
            Json(user_json(u)).into_response()
        }
        (&Method::POST, 1) if is(0, "users") => {
            let b: GraphUser = parse_body(&bytes)?;
            let pw = b.password_profile.unwrap_or_default();
            let (Some(upn), Some(name), Some(password)) =
                (b.user_principal_name, b.display_name, pw.password)
            else {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "userPrincipalName, displayName and passwordProfile.password are required.",
                ));
            };
            let mut u = dir.create_user(&p, &upn, &name, &password).await.map_err(graph)?;
            let change = UserUpdate {
                account_enabled: b.account_enabled.filter(|e| !e),
                force_change_password: pw.force_change_password_next_sign_in.filter(|f| *f),
                ..Default::default()
            };
            if change.account_enabled.is_some() || change.force_change_password.is_some() {
                u = dir.update_user(&p, &u.object_id.to_string(), change).await.map_err(graph)?;
            }
            tracing::info!(user = %u.object_id, by = %p.object_id, "user created (Graph)");
            (StatusCode::CREATED, Json(user_json(&u))).into_response()
        }
        (&Method::PATCH, 2) if is(0, "users") => {
            let b: GraphUser = parse_body(&bytes)?;
            let pw = b.password_profile.unwrap_or_default();
            if b.user_principal_name.is_some() {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Changing userPrincipalName is not supported here.",
                ));
            }
            if pw.password.is_some() {
                mlgate_core::activity::set_operation(
                    "microsoft.directory/users/password/update",
                    None,
                );
            }
            let change = UserUpdate {
                display_name: b.display_name,
                account_enabled: b.account_enabled,
                password: pw.password,
                force_change_password: pw.force_change_password_next_sign_in,
            };
            let u = dir.update_user(&p, seg[1], change).await.map_err(graph)?;
            tracing::info!(user = %u.object_id, by = %p.object_id, "user updated (Graph)");
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::DELETE, 2) if is(0, "users") => {
            let deleted = dir.delete_user(&p, seg[1]).await.map_err(graph)?;
            state.access.forget_principal(deleted);
            tracing::info!(user = %deleted, by = %p.object_id, "user deleted (Graph)");
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::POST, 2) if is(0, "directoryObjects") && is(1, "getByIds") => {
            let b: GetByIds = parse_body(&bytes)?;
            if b.ids.len() > MAX_IDS {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    format!("At most {MAX_IDS} ids may be given."),
                ));
            }
            let wants =
                |t: &str| b.types.is_empty() || b.types.iter().any(|x| x.eq_ignore_ascii_case(t));
            let objects = apps.objects_by_ids(&p, &b.ids).await.map_err(graph)?;
            let value: Vec<Value> = objects
                .iter()
                .filter_map(|o| match o {
                    DirectoryObject::User(u) if wants("user") => Some(user_json(u)),
                    DirectoryObject::ServicePrincipal(sp, s) if wants("servicePrincipal") => {
                        Some(sp_json(sp, s))
                    }
                    DirectoryObject::Application(a, s) if wants("application") => {
                        Some(app_json(a, s, &domain))
                    }
                    _ => None,
                })
                .collect();
            Json(json!({ "value": value })).into_response()
        }
        (_, _) => {
            return Err(graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                "Resource not found for the segment: this Graph subset serves applications, \
                 servicePrincipals, users, me and directoryObjects/getByIds.",
            ));
        }
    };
    Ok(resp)
}
