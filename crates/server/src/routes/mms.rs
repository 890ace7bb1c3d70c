//! Azure ML's v1 model-management API, as azureml-core's `Webservice` and `Model` call it,
//! under `/modelmanagement/v1.0/subscriptions/{s}/resourceGroups/{rg}/providers/
//! Microsoft.MachineLearningServices/workspaces/{ws}/`:
//!
//! - `services[?computeType&modelName&modelId]`, `services/{name}` (`?expand=true`),
//!   `DELETE services/{name}`, `services/{name}/logs`;
//! - `POST services/{name}/listkeys`, `regenerateKeys` (202 with `Operation-Location`; the
//!   SDK then polls `operations/{id}`), `token`;
//! - `models?name=&count=` (latest version first), `models/{name}:{version}`.
//!
//! Everything calls the same `Services` and `Models` use cases as mlgate's own API, so RBAC,
//! keys and tokens are one implementation with two faces: a Reader may get a token but not
//! keys. mlgate's compute types are shown as Azure's: `instance` as `ACI`, `cluster` as `AKS`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::principal::Principal;
use mlgate_core::rbac::catalog::{SERVICE_READ, WORKSPACE_PROVIDER};
use mlgate_core::records::{ModelVersion, Service};
use mlgate_core::services::{AuthMode, ComputeType, KeySlot, deployment_config};
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const MAX_BODY: usize = 4096;
/// How long a finished operation can be polled, and how many are remembered at once.
const OPERATION_TTL: Duration = Duration::from_secs(3600);
const MAX_OPERATIONS: usize = 10_000;
/// Log lines a `logs` call returns at most.
const MAX_TAIL: usize = 5000;

/// A finished model-management operation, kept so the SDK can poll its `Operation-Location`.
#[derive(Debug, Clone)]
struct Operation {
    /// The workspace (lower-cased `sub/rg/ws`) it belongs to.
    workspace: String,
    kind: &'static str,
    target: String,
    at: Instant,
}

/// Operations by id, in memory: they finish before their 202 is sent, so a restart only
/// forgets answers nobody needs. Bounded: expired entries go first, then the oldest.
#[derive(Default)]
pub struct Operations {
    map: Mutex<HashMap<Uuid, Operation>>,
}

impl Operations {
    fn record(&self, op: Operation) -> Uuid {
        let id = Uuid::new_v4();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_OPERATIONS {
            map.retain(|_, o| o.at.elapsed() < OPERATION_TTL);
        }
        if map.len() >= MAX_OPERATIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, o)| o.at).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(id, op);
        id
    }

    fn get(&self, id: Uuid, workspace: &str) -> Option<Operation> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id).filter(|o| o.workspace == workspace && o.at.elapsed() < OPERATION_TTL).cloned()
    }
}

/// Model-management errors: Azure's `{"error": {...}}` and, at the top level, the
/// `code`/`statusCode`/`message` the SDK's model client reads.
fn mms_error(e: ApiError) -> ApiError {
    use mlgate_core::Error as E;
    let (status, code, message) = match e {
        ApiError::Core(E::NotFound(m)) => (StatusCode::NOT_FOUND, "NotFound", m),
        ApiError::Core(E::InvalidInput(m)) | ApiError::BadRequest(m) => {
            (StatusCode::BAD_REQUEST, "BadRequest", m)
        }
        ApiError::Core(E::Forbidden(m)) => (StatusCode::FORBIDDEN, "AuthorizationFailed", m),
        ApiError::Core(E::Conflict(m)) => (StatusCode::CONFLICT, "Conflict", m),
        other => return other,
    };
    ApiError::ModelManagement { status, code, message }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn service_json(state: &AppState, s: &Service) -> Value {
    let dc = deployment_config(&s.deployment_config).ok();
    let auth = dc.as_ref().map_or(AuthMode::None, |c| c.auth);
    let mut v = json!({
        "name": s.name,
        "description": null,
        "kvTags": {},
        "properties": {"mlgateModel": format!("{}:{}", s.model_name, s.model_version)},
        "state": s.state.as_str(),
        "error": s.error.as_ref().map(|m| json!({"code": "DeploymentFailed", "message": m})),
        "createdTime": rfc3339(s.created_at),
        "updatedTime": rfc3339(s.updated_at),
        "createdBy": null,
        "scoringUri": state.services.scoring_uri(&s.name),
        "authEnabled": auth == AuthMode::Key,
        "appInsightsEnabled": false,
    });
    let cpu = dc.as_ref().map_or(1.0, |c| c.cpu_cores);
    let memory = dc.as_ref().map_or(0.5, |c| c.memory_gb);
    match dc.as_ref().map(|c| c.compute_type) {
        Some(ComputeType::Cluster) => {
            let replicas = dc.as_ref().map_or(1, |c| c.replicas);
            let extra = json!({
                "computeType": "AKS",
                "computeName": "mlgate",
                "aadAuthEnabled": auth == AuthMode::Token,
                "numReplicas": replicas,
                "maxConcurrentRequestsPerContainer": dc.as_ref().map_or(1, |c| c.concurrency()),
                "maxQueueWaitMs": 500,
                "scoringTimeoutMs": 60_000,
                "autoScaler": {
                    "autoscaleEnabled": false,
                    "maxReplicas": replicas,
                    "minReplicas": replicas,
                    "refreshPeriodInSeconds": 1,
                    "targetUtilization": 70,
                },
                "containerResourceRequirements": {
                    "cpu": cpu, "cpuLimit": cpu, "memoryInGB": memory, "memoryInGBLimit": memory,
                    "gpu": 0,
                },
                "dataCollection": {"eventHubEnabled": false, "storageEnabled": false},
                "livenessProbeRequirements": null,
            });
            merge(&mut v, extra);
        }
        _ => {
            let extra = json!({
                "computeType": "ACI",
                "location": mlgate_core::resources::DEFAULT_LOCATION,
                "cname": null,
                "publicIp": null,
                "sslEnabled": false,
                "sslCertificate": null,
                "sslKey": null,
                "containerResourceRequirements": {"cpu": cpu, "memoryInGB": memory},
            });
            merge(&mut v, extra);
        }
    }
    v
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

fn model_json(m: &ModelVersion) -> Value {
    json!({
        "id": format!("{}:{}", m.name, m.version),
        "name": m.name,
        "version": m.version,
        "description": if m.description.is_empty() { Value::Null } else { json!(m.description) },
        "url": format!("aml://asset/{}:{}", m.name, m.version),
        "mimeType": "application/octet-stream",
        "framework": "Custom",
        "frameworkVersion": null,
        "createdTime": rfc3339(m.created_at),
        "createdBy": null,
        "kvTags": m.tags,
        "properties": {},
        "unpack": false,
        "experimentName": null,
        "runId": null,
        "datasets": [],
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegenerateKeys {
    key_type: String,
    #[serde(default)]
    key_value: Option<String>,
}

/// `{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/...`
/// below `/modelmanagement/v1.0/subscriptions/`.
fn split(rest: &str) -> Option<(Vec<String>, Vec<String>)> {
    let s: Vec<&str> = rest.trim_matches('/').split('/').filter(|x| !x.is_empty()).collect();
    let eq = |i: usize, w: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    if s.len() < 7
        || !eq(1, "resourceGroups")
        || !eq(3, "providers")
        || !eq(4, WORKSPACE_PROVIDER)
        || !eq(5, "workspaces")
    {
        return None;
    }
    // The SDK percent-encodes each segment (a model id `name:1` arrives as `name%3A1`).
    let decode = |x: &str| percent_encoding::percent_decode_str(x).decode_utf8_lossy().into_owned();
    let ws = vec![decode(s[0]), decode(s[2]), decode(s[6])];
    Some((ws, s[7..].iter().map(|x| decode(x)).collect()))
}

fn accepted(location: String) -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert("Operation-Location", v);
    }
    resp
}

/// `/modelmanagement/v1.0/subscriptions/{*rest}`.
pub async fn handle(
    State(state): State<AppState>,
    Caller(p): Caller,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let path = uri.path().to_string();
    let rest = path.get("/modelmanagement/v1.0/subscriptions/".len()..).unwrap_or_default();
    let (ws, seg) = split(rest).ok_or_else(|| {
        ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into()))
    })?;
    let w = WorkspaceRef { subscription: &ws[0], resource_group: &ws[1], workspace: &ws[2] };
    let base = format!(
        "{}/modelmanagement/v1.0/subscriptions/{}/resourceGroups/{}/providers/{WORKSPACE_PROVIDER}/workspaces/{}",
        state.public_url, ws[0], ws[1], ws[2]
    );
    let bytes = to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    dispatch(&state, &p, &method, w, &base, &seg, &query, &bytes).await.map_err(mms_error)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: &AppState,
    p: &Principal,
    method: &Method,
    w: WorkspaceRef<'_>,
    base: &str,
    seg: &[String],
    query: &HashMap<String, String>,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let svc = &state.services;
    let is = |i: usize, word: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    let ws_key =
        format!("{}/{}/{}", w.subscription, w.resource_group, w.workspace).to_ascii_lowercase();
    match (method, seg.len()) {
        (&Method::GET, 1) if is(0, "services") => {
            let compute = query.get("computeType").map(|c| c.to_ascii_uppercase());
            let model_name = query.get("modelName");
            let model_id = query.get("modelId");
            let tagged = query.contains_key("tags") || query.contains_key("properties");
            let value: Vec<Value> = svc
                .list(p, w)
                .await?
                .iter()
                .map(|s| (s, service_json(state, s)))
                .filter(|(s, j)| {
                    !tagged
                        && compute.as_deref().is_none_or(|c| j["computeType"] == c)
                        && model_name.is_none_or(|n| s.model_name.eq_ignore_ascii_case(n))
                        && model_id.is_none_or(|id| {
                            format!("{}:{}", s.model_name, s.model_version).eq_ignore_ascii_case(id)
                        })
                })
                .map(|(_, j)| j)
                .collect();
            Ok(Json(json!({ "value": value })).into_response())
        }
        (&Method::GET, 2) if is(0, "services") => {
            Ok(Json(service_json(state, &svc.get(p, w, &seg[1]).await?)).into_response())
        }
        (&Method::DELETE, 2) if is(0, "services") => {
            svc.delete(p, w, &seg[1]).await?;
            state.deployer.stop(&seg[1]);
            tracing::info!(service = %seg[1], by = %p.object_id, "service deleted (model management)");
            Ok(StatusCode::OK.into_response())
        }
        (&Method::POST, 3) if is(0, "services") && is(2, "listKeys") => {
            let k = svc.keys(p, w, &seg[1]).await?;
            Ok(Json(mlgate_proto::ServiceKeys {
                primary_key: k.primary,
                secondary_key: k.secondary,
            })
            .into_response())
        }
        (&Method::POST, 3) if is(0, "services") && is(2, "regenerateKeys") => {
            let b: RegenerateKeys = serde_json::from_slice(bytes).map_err(|_| {
                ApiError::BadRequest(
                    "The request body must be {\"keyType\": \"Primary\" or \"Secondary\"}.".into(),
                )
            })?;
            if b.key_value.is_some() {
                return Err(ApiError::BadRequest(
                    "Setting a key's value (keyValue) is not supported: mlgate generates keys."
                        .into(),
                ));
            }
            let slot: KeySlot = b.key_type.parse()?;
            svc.regenerate_key(p, w, &seg[1], slot).await?;
            tracing::info!(service = %seg[1], key = ?slot, by = %p.object_id, "service key regenerated (model management)");
            let id = state.operations.record(Operation {
                workspace: ws_key,
                kind: "RegenerateKeys",
                target: seg[1].clone(),
                at: Instant::now(),
            });
            Ok(accepted(format!("{base}/operations/{id}")))
        }
        (&Method::POST, 3) if is(0, "services") && is(2, "token") => {
            let t = svc.token(p, w, &seg[1]).await?;
            Ok(Json(json!({
                "accessToken": t.token,
                "tokenType": "Bearer",
                "refreshAfter": t.refresh_after,
                "expiryOn": t.expires_on,
            }))
            .into_response())
        }
        (&Method::GET, 3) if is(0, "services") && is(2, "logs") => {
            svc.get(p, w, &seg[1]).await?;
            let tail = query
                .get("tail")
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(MAX_TAIL)
                .min(MAX_TAIL);
            let lines = state.serving.logs(&seg[1]);
            let from = lines.len().saturating_sub(tail);
            Ok(Json(json!({ "content": lines[from..].join("\n") })).into_response())
        }
        (&Method::GET, 2) if is(0, "operations") => {
            let sub = w.subscription.parse().map_err(|_| {
                mlgate_core::Error::NotFound("The subscription could not be found.".into())
            })?;
            let scope =
                mlgate_core::resources::workspace_scope(sub, w.resource_group, w.workspace)?;
            state.access.authorize(p, SERVICE_READ, &scope)?;
            let op = seg[1]
                .parse::<Uuid>()
                .ok()
                .and_then(|id| state.operations.get(id, &ws_key))
                .ok_or_else(|| {
                mlgate_core::Error::NotFound(format!(
                    "Operation '{}' does not exist.",
                    seg[1].chars().take(64).filter(|c| !c.is_control()).collect::<String>()
                ))
            })?;
            Ok(Json(json!({
                "id": seg[1],
                "operationType": op.kind,
                "resourceLocation": format!("{base}/services/{}", op.target),
                "state": "Succeeded",
                "error": null,
            }))
            .into_response())
        }
        (&Method::GET, 1) if is(0, "models") => {
            let name = query.get("name").filter(|n| !n.is_empty());
            let count = query
                .get("count")
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
                .max(1);
            let mut all: Vec<ModelVersion> = match name {
                Some(n) => match state.models.versions(p, w, n).await {
                    Ok(v) => v,
                    Err(mlgate_core::Error::NotFound(_)) => Vec::new(),
                    Err(e) => return Err(e.into()),
                },
                None => state.models.list(p, w).await?,
            };
            // Newest first: the SDK takes the first as "the" model of a name.
            all.sort_by(|a, b| (&b.name, b.version).cmp(&(&a.name, a.version)));
            if name.is_some() {
                all.sort_by_key(|m| std::cmp::Reverse(m.version));
            }
            let value: Vec<Value> = all.iter().take(count).map(model_json).collect();
            Ok(Json(json!({ "value": value })).into_response())
        }
        (&Method::GET, 2) if is(0, "models") => {
            let id = seg[1].as_str();
            let (name, version) = id
                .rsplit_once(':')
                .and_then(|(n, v)| v.parse::<i64>().ok().map(|v| (n, v)))
                .ok_or_else(|| {
                    mlgate_core::Error::NotFound(format!(
                        "Model '{}' not found: a model id is NAME:VERSION.",
                        id.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
                    ))
                })?;
            Ok(Json(model_json(&state.models.get(p, w, name, Some(version)).await?))
                .into_response())
        }
        (_, _) => {
            Err(ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_paths_split_case_insensitively() {
        let (ws, rest) = split(
            "s/resourcegroups/rg/providers/microsoft.machinelearningservices/workspaces/w/services/x/listkeys",
        )
        .unwrap();
        assert_eq!(ws, vec!["s", "rg", "w"]);
        assert_eq!(rest, vec!["services", "x", "listkeys"]);
        assert!(split("s/resourceGroups/rg/providers/Other.Ns/workspaces/w/services").is_none());
        assert!(split("s/resourceGroups/rg").is_none());
        let (_, rest) = split(
            "s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/models/m%3A1",
        )
        .unwrap();
        assert_eq!(rest, vec!["models", "m:1"]);
    }

    #[test]
    fn operations_are_bounded_and_bound_to_their_workspace() {
        let ops = Operations::default();
        let id = ops.record(Operation {
            workspace: "a".into(),
            kind: "RegenerateKeys",
            target: "svc".into(),
            at: Instant::now(),
        });
        assert!(ops.get(id, "a").is_some());
        assert!(ops.get(id, "b").is_none(), "another workspace cannot read it");
        for _ in 0..MAX_OPERATIONS + 5 {
            ops.record(Operation {
                workspace: "a".into(),
                kind: "RegenerateKeys",
                target: "svc".into(),
                at: Instant::now(),
            });
        }
        assert!(ops.map.lock().unwrap().len() <= MAX_OPERATIONS);
    }
}
