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
use mlgate_core::records::Tenant;
use serde_json::{Value, json};

use crate::error::OAuthFailure;
use crate::state::AppState;

fn tenant(state: &AppState, segment: &str) -> Result<Tenant, OAuthFailure> {
    state.authority.directory().resolve_tenant(segment).ok_or_else(|| {
        let shown: String = segment.chars().take(64).filter(|c| !c.is_control()).collect();
        OAuthFailure::new(GrantError::tenant_not_found(&shown))
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

const GRANTS: &[&str] = &[
    "authorization_code",
    "client_credentials",
    "password",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
];

/// The v1 and v2 documents differ only in their paths, issuer and scopes.
pub(crate) fn document(state: &AppState, seg: &str, v2: bool) -> Result<Response, OAuthFailure> {
    let t = tenant(state, seg)?;
    let base = format!("{}/{}", state.public_url, t.id);
    let (v, keys, issuer) = if v2 {
        ("/v2.0", "discovery/v2.0/keys", state.authority.issuer_v2(t.id))
    } else {
        ("", "discovery/keys", state.authority.issuer_v1(t.id))
    };
    let scopes: &[&str] =
        if v2 { &["openid", "profile", "email", "offline_access"] } else { &["openid"] };
    Ok(cacheable(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/oauth2{v}/authorize"),
        "token_endpoint": format!("{base}/oauth2{v}/token"),
        "device_authorization_endpoint": format!("{base}/oauth2{v}/devicecode"),
        "revocation_endpoint": format!("{base}/oauth2{v}/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/v2.0/introspect"),
        "jwks_uri": format!("{base}/{keys}"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": GRANTS,
        "scopes_supported": scopes,
        "claims_supported": CLAIMS,
        "request_uri_parameter_supported": false,
        "tenant_region_scope": null,
        "cloud_instance_name": state.public_url.trim_start_matches("https://").trim_start_matches("http://"),
    })))
}

pub async fn v2(
    State(state): State<AppState>,
    Path(seg): Path<String>,
) -> Result<Response, OAuthFailure> {
    document(&state, &seg, true)
}

pub async fn v1(
    State(state): State<AppState>,
    Path(seg): Path<String>,
) -> Result<Response, OAuthFailure> {
    document(&state, &seg, false)
}

/// Every published key: the active one, the next one and retired ones still in use.
pub async fn jwks(
    State(state): State<AppState>,
    Path(seg): Path<String>,
) -> Result<Response, OAuthFailure> {
    tenant(&state, &seg)?;
    Ok(cacheable(json!({ "keys": state.authority.jwks() })))
}
