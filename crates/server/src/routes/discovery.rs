//! OpenID Connect discovery documents (v1 and v2) and the JWKS.
//!
//! The issuer is `{public_url}/{tenant-guid}/v2.0` (v2) or `{public_url}/{tenant-guid}/` (v1)
//! whichever name the tenant was looked up by, so it shares scheme and host with the authority
//! and its first path segment is the tenant GUID (which the Azure CLI reads).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::authority::GrantError;
use mlgate_core::model::Tenant;
use serde_json::{Value, json};

use crate::error::OAuthFailure;
use crate::state::AppState;

fn tenant(state: &AppState, segment: &str) -> Result<Tenant, OAuthFailure> {
    state.authority.directory().resolve_tenant(segment).ok_or_else(|| {
        let shown: String = segment.chars().take(64).filter(|c| !c.is_control()).collect();
        OAuthFailure::new(GrantError::new(
            mlgate_core::authority::OAuthErrorKind::InvalidRequest,
            90002,
            format!("Tenant '{shown}' not found."),
        ))
    })
}

fn cacheable(doc: Value) -> Response {
    let mut resp = Json(doc).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300, public"));
    resp
}

const CLAIMS: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "oid",
    "tid",
    "name",
    "preferred_username",
    "ver",
    "nonce",
];

pub async fn v2(
    State(state): State<AppState>,
    Path(seg): Path<String>,
) -> Result<Response, OAuthFailure> {
    let t = tenant(&state, &seg)?;
    let base = format!("{}/{}", state.public_url, t.id);
    Ok(cacheable(json!({
        "issuer": state.authority.issuer_v2(t.id),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": CLAIMS,
        "request_uri_parameter_supported": false,
        "tenant_region_scope": null,
        "cloud_instance_name": state.public_url.trim_start_matches("https://").trim_start_matches("http://"),
    })))
}

pub async fn v1(
    State(state): State<AppState>,
    Path(seg): Path<String>,
) -> Result<Response, OAuthFailure> {
    let t = tenant(&state, &seg)?;
    let base = format!("{}/{}", state.public_url, t.id);
    Ok(cacheable(json!({
        "issuer": state.authority.issuer_v1(t.id),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "device_authorization_endpoint": format!("{base}/oauth2/devicecode"),
        "jwks_uri": format!("{base}/discovery/keys"),
        "response_types_supported": ["code", "id_token", "code id_token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "scopes_supported": ["openid"],
        "claims_supported": CLAIMS,
    })))
}

/// Every published key: the active one, the next one and retired ones still in use.
pub async fn jwks(
    State(state): State<AppState>,
    Path(seg): Path<String>,
) -> Result<Response, OAuthFailure> {
    tenant(&state, &seg)?;
    Ok(cacheable(json!({ "keys": state.authority.jwks() })))
}
