//! What Microsoft's clients discover before they sign in:
//!
//! - `GET /metadata/endpoints`: ARM's cloud metadata document, naming mlgate's own endpoints and
//!   audiences, so `az cloud register -n mlgate --endpoint-resource-manager {url}` (api-version
//!   2022-09-01: one object) and `ARM_CLOUD_METADATA_URL` (any other version: an array of
//!   clouds, read by azureml-core at import) need nothing else spelled out.
//! - The AD FS-shaped OpenID configuration under `/adfs/...`. The metadata's login endpoint is
//!   `{url}/adfs/t`: MSAL recognises an authority whose first path segment is `adfs` as AD FS
//!   and then skips instance discovery (a call to login.microsoftonline.com that no other
//!   server can answer), which neither azureml-core nor a default `az` lets a user switch off.
//!   The clients build `{url}/adfs/t/{tenant}` (az, the SDK's interactive login) or
//!   `{url}/adfs/{tenant}` (the SDK's service-principal login); both documents are the tenant's
//!   v2 document, so tokens come from the one token endpoint `/{tenant}/oauth2/v2.0/token`.
//! - `GET /discovery/workspaces/{id}`: the workspace's `discoveryUrl`, the base URLs of Azure
//!   ML's services (all of them this server).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, OAuthFailure};
use crate::state::AppState;

/// The cloud's name in az and the SDK (`az cloud set -n mlgate`).
pub const CLOUD_NAME: &str = "mlgate";
/// The path under the server's URL that makes MSAL treat the authority as AD FS.
pub const LOGIN_PATH: &str = "/adfs/t";

fn cloud(state: &AppState) -> Value {
    let url = &*state.public_url;
    json!({
        "name": CLOUD_NAME,
        "portal": url,
        "resourceManager": format!("{url}/"),
        "microsoftGraphResourceId": format!("{url}/"),
        "graphAudience": format!("{url}/"),
        "authentication": {
            "loginEndpoint": format!("{url}{LOGIN_PATH}"),
            // ARM's audience, one mlgate accepts: ARM and model-management calls carry it.
            "audiences": [mlgate_proto::DEFAULT_RESOURCE, format!("{url}/")],
            "tenant": "adfs",
            "identityProvider": "ADFS",
        },
        // azure-ai-ml drops a cloud whose metadata lacks a storage suffix. It only builds
        // `https://{account}.blob.{suffix}` for datastores, which mlgate does not serve (code
        // uploads go to the signed URLs `startPendingUpload` hands out), so the suffix names
        // this server's host rather than Microsoft's storage.
        "suffixes": { "storage": storage_suffix(url) },
    })
}

/// The host (and port) of the server's URL.
fn storage_suffix(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// `GET /metadata/endpoints?api-version=V`: one cloud for 2022-09-01 (az's discovery), an
/// array of clouds otherwise (the 2019-05-01 shape read through `ARM_CLOUD_METADATA_URL`).
///
/// The array names the same cloud twice, as `mlgate` and as `AzureCloud`: azureml-core's
/// authentication classes default to `cloud='AzureCloud'`, and for a name missing from the
/// array the SDK goes to fetch Microsoft's own list from management.azure.com first. (az, which
/// would force an `AzureCloud` entry's sign-in to login.microsoftonline.com, registers the
/// cloud by name with `az cloud register -n mlgate` instead.)
pub async fn endpoints(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let one = query.get("api-version").is_some_and(|v| v.as_str() >= "2022-09-01");
    let doc = cloud(&state);
    if one {
        return Json(doc).into_response();
    }
    let mut alias = doc.clone();
    alias["name"] = json!(AZURE_ALIAS);
    Json(json!([doc, alias])).into_response()
}

/// The cloud name azureml-core asks for when the caller names none.
pub const AZURE_ALIAS: &str = "AzureCloud";

/// The tenant an AD FS path names: `adfs` itself (the layout `loginEndpoint={url}/adfs`, where
/// the client drops the tenant) means the home tenant.
fn tenant_segment(seg: &str) -> &str {
    if seg.eq_ignore_ascii_case("adfs") { "organizations" } else { seg }
}

/// `GET /adfs/.well-known/openid-configuration`.
pub async fn adfs_home(State(state): State<AppState>) -> Result<Response, OAuthFailure> {
    super::discovery::document(&state, "organizations", true)
}

/// `GET /adfs/{tenant}/.well-known/openid-configuration`.
pub async fn adfs_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Response, OAuthFailure> {
    super::discovery::document(&state, tenant_segment(&tenant), true)
}

/// `GET /adfs/{label}/{tenant}/.well-known/openid-configuration` (`{url}/adfs/t/{tenant}`).
pub async fn adfs_labelled(
    State(state): State<AppState>,
    Path((_label, tenant)): Path<(String, String)>,
) -> Result<Response, OAuthFailure> {
    super::discovery::document(&state, tenant_segment(&tenant), true)
}

/// `GET /discovery/workspaces/{id}`: the Azure ML service map. The SDK fetches it without
/// credentials; it names only this server's URL, for any well-formed id (so it tells nobody
/// which workspaces exist).
pub async fn workspace_services(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id.parse::<uuid::Uuid>().is_err() {
        return Err(ApiError::Core(mlgate_core::Error::NotFound(
            "No workspace has this id.".into(),
        )));
    }
    let url = &*state.public_url;
    Ok(Json(json!({
        "api": url,
        "catalog": url,
        "experimentation": url,
        "gallery": url,
        "history": url,
        "hyperdrive": url,
        "labeling": url,
        "modelmanagement": url,
        "pipelines": url,
        "studio": url,
    }))
    .into_response())
}
