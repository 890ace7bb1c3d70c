//! Workspace assets in Azure's ARM shape, for azure-ai-ml:
//!
//! - models: when a request carries `api-version` (Azure's clients always send it; mlgate's own
//!   CLI and SDK never do), `GET .../models` lists model *containers*
//!   (`properties.latestVersion`), `GET .../models/{name}` is one container, and
//!   `.../models/{name}/versions[/{v}]` are versions (`properties.modelUri`, `flavors`,
//!   `modelType`, `tags`, `properties`, `systemData`). Without `api-version` the same paths
//!   answer mlgate's own flat JSON (`routes/models.rs`): two shapes of the one registry.
//! - codes: `GET .../codes/{name}`, `GET .../codes/{name}/versions[?hash=]`,
//!   `GET|PUT .../codes/{name}/versions/{v}`, `POST .../versions/{v}/startPendingUpload`,
//!   which hands out a signed upload URL served by `routes/blobstore.rs`.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mlgate_core::code::NewCodeVersion;
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::principal::Principal;
use mlgate_core::records::{CodeVersion, ModelVersion};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::state::AppState;

const PROVIDER: &str = "Microsoft.MachineLearningServices";
const MAX_BODY: usize = 64 * 1024;
const PAGE: usize = 100;
/// Where the blob face lives (`routes/blobstore.rs`).
pub const BLOBSTORE_PATH: &str = "/blobstore";

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn workspace_id(w: WorkspaceRef<'_>) -> String {
    mlgate_proto::arm::workspace_id(w.subscription, w.resource_group, w.workspace)
}

fn system_data(at: time::OffsetDateTime, by: &str) -> Value {
    json!({
        "createdAt": rfc3339(at),
        "createdBy": by,
        "createdByType": "User",
        "lastModifiedAt": rfc3339(at),
        "lastModifiedBy": by,
        "lastModifiedByType": "User",
    })
}

fn not_found() -> ApiError {
    ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into()))
}

/// One page of `items` and the `nextLink` to the rest: `$skipToken` (or `$skip`) is the
/// offset, `$top` (or `count`) the size, at most 100.
pub(crate) fn page(
    state: &AppState,
    path: &str,
    query: &HashMap<String, String>,
    items: Vec<Value>,
) -> Result<Value, ApiError> {
    let skip = match query.get("$skipToken").or_else(|| query.get("$skip")) {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest("$skipToken is not one this server gave".into()))?,
        None => 0,
    };
    let size = query
        .get("$top")
        .or_else(|| query.get("count"))
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c > 0)
        .map_or(PAGE, |c| c.min(PAGE));
    let end = skip.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| {
        let mut params: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "$skipToken" && k.as_str() != "$skip")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("$skipToken".into(), end.to_string()));
        let q: String =
            form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        format!("{}{path}?{q}", state.public_url)
    });
    Ok(json!({
        "value": items.into_iter().skip(skip).take(size).collect::<Vec<_>>(),
        "nextLink": next,
    }))
}

/// `listViewType`: mlgate archives nothing, so `ArchivedOnly` lists nothing.
fn archived_only(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("listViewType").map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "activeonly" || v == "all" => Ok(false),
        Some(v) if v == "archivedonly" => Ok(true),
        Some(_) => {
            Err(ApiError::BadRequest("listViewType must be ActiveOnly, ArchivedOnly or All".into()))
        }
    }
}

fn model_container_json(w: WorkspaceRef<'_>, latest: &ModelVersion, first: &ModelVersion) -> Value {
    json!({
        "id": format!("{}/models/{}", workspace_id(w), latest.name),
        "name": latest.name,
        "type": format!("{PROVIDER}/workspaces/models"),
        "properties": {
            "description": latest.description,
            "tags": latest.tags,
            "properties": {},
            "isArchived": false,
            "latestVersion": latest.version.to_string(),
            "nextVersion": (latest.version + 1).to_string(),
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(first.created_at, &first.created_by.to_string()),
    })
}

fn model_version_json(state: &AppState, w: WorkspaceRef<'_>, m: &ModelVersion) -> Value {
    let version_id = format!("{}/models/{}/versions/{}", workspace_id(w), m.name, m.version);
    // Where the files are: this server's download URL (one file) or the version itself.
    let uri = match m.files.as_slice() {
        [one] => format!(
            "{}{version_id}/download?path={}",
            state.public_url,
            form_urlencoded::byte_serialize(one.path.as_bytes()).collect::<String>()
        ),
        _ => format!("{}{version_id}", state.public_url),
    };
    json!({
        "id": version_id,
        "name": m.version.to_string(),
        "type": format!("{PROVIDER}/workspaces/models/versions"),
        "properties": {
            "description": m.description,
            "tags": m.tags,
            "properties": {},
            "isAnonymous": false,
            "isArchived": false,
            "flavors": {},
            "modelType": "custom_model",
            "modelUri": uri,
            "jobName": Value::Null,
            "stage": Value::Null,
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(m.created_at, &m.created_by.to_string()),
    })
}

fn version_number(v: &str) -> Result<Option<i64>, ApiError> {
    if v.eq_ignore_ascii_case("latest") {
        return Ok(None);
    }
    v.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("'{v}' is not a model version")))
}

/// The model registry in ARM's shape (requests with `api-version`); `None` when this face does
/// not answer the request (mlgate's own shape does).
#[allow(clippy::too_many_arguments)]
pub async fn models(
    state: &AppState,
    p: &Principal,
    method: &Method,
    w: WorkspaceRef<'_>,
    seg: &[&str],
    path: &str,
    query: &HashMap<String, String>,
) -> Option<Result<Response, ApiError>> {
    let is = |i: usize, word: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    if !query.contains_key("api-version") || !is(0, "models") {
        return None;
    }
    let m = &state.models;
    let result = async {
        match (method, seg.len()) {
            (&Method::GET, 1) => {
                let all = if archived_only(query)? { Vec::new() } else { m.list(p, w).await? };
                let mut items = Vec::with_capacity(all.len());
                for latest in &all {
                    let first = m.get(p, w, &latest.name, Some(1)).await.ok();
                    items.push(model_container_json(w, latest, first.as_ref().unwrap_or(latest)));
                }
                Ok(Json(page(state, path, query, items)?).into_response())
            }
            (&Method::GET, 2) => {
                let all = m.versions(p, w, seg[1]).await?;
                match (all.first(), all.last()) {
                    (Some(first), Some(latest)) => {
                        Ok(Json(model_container_json(w, latest, first)).into_response())
                    }
                    _ => Err(not_found()),
                }
            }
            (&Method::GET, 3) if is(2, "versions") => {
                let mut all = if archived_only(query)? {
                    Vec::new()
                } else {
                    m.versions(p, w, seg[1]).await?
                };
                all.reverse(); // newest first, as Azure lists them
                if let Some(v) = query.get("version") {
                    all.retain(|x| x.version.to_string() == *v);
                }
                let items = all.iter().map(|v| model_version_json(state, w, v)).collect();
                Ok(Json(page(state, path, query, items)?).into_response())
            }
            (&Method::GET, 4) if is(2, "versions") => {
                let v = m.get(p, w, seg[1], version_number(seg[3])?).await?;
                Ok(Json(model_version_json(state, w, &v)).into_response())
            }
            (&Method::PUT, _) => Err(ApiError::BadRequest(
                "register models with `mlgate ml model register` or mlgate's API: azure-ai-ml \
                 uploads model files through a datastore, which mlgate does not serve"
                    .into(),
            )),
            _ => Err(ApiError::MethodNotAllowed),
        }
    }
    .await;
    Some(result)
}

fn code_version_json(w: WorkspaceRef<'_>, c: &CodeVersion) -> Value {
    let mut props = serde_json::Map::new();
    if let Some(h) = &c.hash {
        props.insert("hash_sha256".into(), json!(h));
        props.insert("hash_version".into(), json!("202208"));
    }
    json!({
        "id": format!("{}/codes/{}/versions/{}", workspace_id(w), c.name, c.version),
        "name": c.version,
        "type": format!("{PROVIDER}/workspaces/codes/versions"),
        "properties": {
            "codeUri": c.code_uri,
            "description": c.description,
            "tags": c.tags,
            "properties": props,
            "isAnonymous": c.is_anonymous,
            "isArchived": false,
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(c.created_at, &c.created_by.to_string()),
    })
}

async fn read_json(req: Request) -> Result<Value, ApiError> {
    let bytes = to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not JSON: {e}")))
}

/// `{url}/blobstore/{upload}/{folder...}` -> (upload, folder).
fn parse_code_uri<'a>(state: &AppState, uri: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = uri.strip_prefix(&*state.public_url)?.strip_prefix(BLOBSTORE_PATH)?;
    let rest = rest.strip_prefix('/')?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

#[allow(clippy::too_many_arguments)]
pub async fn codes(
    state: &AppState,
    p: &Principal,
    method: Method,
    w: WorkspaceRef<'_>,
    seg: &[&str],
    path: &str,
    query: &HashMap<String, String>,
    req: Request,
) -> Result<Response, ApiError> {
    let is = |i: usize, word: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    let code = &state.code;
    match (method, seg.len()) {
        (Method::GET, 2) => {
            let all = code.versions(p, w, seg[1], None).await?;
            let (Some(first), Some(latest)) = (all.first(), all.last()) else {
                return Err(ApiError::Core(mlgate_core::Error::NotFound(format!(
                    "Code '{}' does not exist.",
                    seg[1]
                ))));
            };
            Ok(Json(json!({
                "id": format!("{}/codes/{}", workspace_id(w), latest.name),
                "name": latest.name,
                "type": format!("{PROVIDER}/workspaces/codes"),
                "properties": {
                    "description": "", "tags": {}, "properties": {}, "isArchived": false,
                    "latestVersion": latest.version,
                    "nextVersion": latest.version.parse::<u64>().map_or(Value::Null, |n| json!((n + 1).to_string())),
                    "provisioningState": "Succeeded",
                },
                "systemData": system_data(first.created_at, &first.created_by.to_string()),
            }))
            .into_response())
        }
        (Method::GET, 3) if is(2, "versions") => {
            let hash = query.get("hash").map(String::as_str).filter(|h| !h.is_empty());
            let mut all = code.versions(p, w, seg[1], hash).await?;
            all.reverse();
            let items = all.iter().map(|c| code_version_json(w, c)).collect();
            Ok(Json(page(state, path, query, items)?).into_response())
        }
        (Method::GET, 4) if is(2, "versions") => {
            Ok(Json(code_version_json(w, &code.version(p, w, seg[1], seg[3]).await?))
                .into_response())
        }
        (Method::PUT, 4) if is(2, "versions") => {
            code.authorize_write(p, w, seg[1])?;
            let body = read_json(req).await?;
            let props = body.get("properties").cloned().unwrap_or_else(|| json!({}));
            let uri = props
                .get("codeUri")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::BadRequest("properties.codeUri is required".into()))?;
            let (upload, prefix) = parse_code_uri(state, uri).ok_or_else(|| {
                ApiError::BadRequest(
                    "properties.codeUri must be a folder uploaded through the URL \
                     startPendingUpload gave"
                        .into(),
                )
            })?;
            let tags: BTreeMap<String, String> = props
                .get("tags")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let new = NewCodeVersion {
                code_uri: uri.to_string(),
                upload: upload.to_string(),
                prefix: prefix.to_string(),
                hash: props
                    .get("properties")
                    .and_then(|x| x.get("hash_sha256"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                is_anonymous: props.get("isAnonymous").and_then(Value::as_bool).unwrap_or(false),
                description: props
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                tags,
            };
            let (c, created) = code.create_version(p, w, seg[1], seg[3], new).await?;
            tracing::info!(code = %c.name, version = %c.version, files = c.files.len(), by = %p.object_id, created, "code version put");
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(code_version_json(w, &c))).into_response())
        }
        (Method::POST, 5) if is(2, "versions") && is(4, "startPendingUpload") => {
            code.authorize_write(p, w, seg[1])?;
            let body = read_json(req).await?;
            if let Some(t) = body.get("pendingUploadType").and_then(Value::as_str)
                && !t.eq_ignore_ascii_case("TemporaryBlobReference")
            {
                return Err(ApiError::BadRequest(
                    "pendingUploadType must be TemporaryBlobReference".into(),
                ));
            }
            let up = code.start_pending_upload(p, w, seg[1]).await?;
            let blob_uri = format!("{}{BLOBSTORE_PATH}/{}", state.public_url, up.upload);
            tracing::info!(code = %seg[1], upload = %up.upload, by = %p.object_id, "upload area handed out");
            Ok(Json(json!({
                "pendingUploadId": up.upload,
                "pendingUploadType": "TemporaryBlobReference",
                "blobReferenceForConsumption": {
                    "blobUri": blob_uri,
                    "storageAccountArmId": Value::Null,
                    "credential": {
                        "credentialType": "SAS",
                        "sasUri": format!("{blob_uri}?{}", up.query),
                    },
                },
            }))
            .into_response())
        }
        (_, 2..=5) => Err(ApiError::MethodNotAllowed),
        _ => Err(not_found()),
    }
}
