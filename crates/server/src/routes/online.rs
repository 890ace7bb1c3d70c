//! Online endpoints in Azure's ARM shape (azure-ai-ml's `ml_client.online_endpoints` and
//! `online_deployments`), under `.../workspaces/{ws}/`:
//!
//! - `onlineEndpoints` (GET, paged), `onlineEndpoints/{e}` (GET, PUT, DELETE),
//!   `onlineEndpoints/{e}/listKeys|regenerateKeys|token` (POST);
//! - `onlineEndpoints/{e}/deployments[/{d}]` (GET, PUT, DELETE), `.../{d}/getLogs` (POST);
//! - `operations/{id}` (GET): the status of a long-running operation.
//!
//! Everything is a call to [`mlgate_core::endpoints::OnlineEndpoints`] (which uses the same
//! `Services` as the `services` face) and the `Deployer`; this module translates paths and
//! JSON. Long-running operations follow ARM: a deployment answers 201/200 with
//! `Azure-AsyncOperation` naming `operations/{id}`, which says `InProgress` until the model is
//! loaded; deletes and key regeneration finish before they answer 202 with `Location` and
//! `Azure-AsyncOperation` (already `Succeeded`). Creating or updating an endpoint is
//! synchronous (200/201 with `provisioningState: Succeeded`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::endpoints::{Deployment, DeploymentSpec, Endpoint, EndpointSpec};
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::principal::Principal;
use mlgate_core::rbac::catalog;
use mlgate_core::services::{AuthMode, KeySlot, Rollout, deployment_config};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// ARM request bodies here are small.
const MAX_BODY: usize = 256 * 1024;
/// Log lines `getLogs` returns at most.
const MAX_TAIL: usize = 10_000;
const PROVIDER: &str = "Microsoft.MachineLearningServices";

const OPERATION_TTL: Duration = Duration::from_secs(3600);
const MAX_OPERATIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpKind {
    /// Done before it was answered.
    Done,
    /// A deployment's rollout: as far as its service has come.
    Deploy,
}

#[derive(Debug, Clone)]
struct Operation {
    /// `sub/rg/ws`, lower case: an operation is read only through its workspace.
    workspace: String,
    endpoint: String,
    kind: OpKind,
    started: time::OffsetDateTime,
    at: Instant,
}

/// ARM operations clients poll, in memory (bounded, an hour each): a restart forgets them,
/// and a client polling one then gets 404, as for an expired operation.
#[derive(Default)]
pub struct ArmOperations {
    map: Mutex<HashMap<Uuid, Operation>>,
}

impl ArmOperations {
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

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn workspace_id(w: WorkspaceRef<'_>) -> String {
    mlgate_proto::arm::workspace_id(w.subscription, w.resource_group, w.workspace)
}

fn workspace_key(w: WorkspaceRef<'_>) -> String {
    format!("{}/{}/{}", w.subscription, w.resource_group, w.workspace).to_ascii_lowercase()
}

/// Azure's names for the auth modes.
pub fn auth_mode_name(a: AuthMode) -> &'static str {
    match a {
        AuthMode::Key => "Key",
        AuthMode::Token => "AMLToken",
        AuthMode::Identity => "AADToken",
        AuthMode::None => "None",
    }
}

fn parse_auth_mode(s: &str) -> Result<AuthMode, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "key" => Ok(AuthMode::Key),
        "amltoken" | "aml_token" => Ok(AuthMode::Token),
        "aadtoken" | "aad_token" => Ok(AuthMode::Identity),
        _ => Err(ApiError::BadRequest(format!(
            "authMode '{}' is not Key, AMLToken or AADToken",
            s.chars().take(32).collect::<String>()
        ))),
    }
}

/// Who made a record, in ARM's `systemData` (the object id; mlgate keeps no UPN there).
fn system_data(created: time::OffsetDateTime, by: &str, modified: time::OffsetDateTime) -> Value {
    json!({
        "createdAt": rfc3339(created),
        "createdBy": by,
        "createdByType": "User",
        "lastModifiedAt": rfc3339(modified),
        "lastModifiedBy": by,
        "lastModifiedByType": "User",
    })
}

fn endpoint_json(state: &AppState, w: WorkspaceRef<'_>, e: &Endpoint) -> Value {
    json!({
        "id": format!("{}/onlineEndpoints/{}", workspace_id(w), e.name),
        "name": e.name,
        "type": format!("{PROVIDER}/workspaces/onlineEndpoints"),
        "location": e.workspace.location,
        "kind": "Managed",
        "tags": e.tags,
        "identity": {"type": "None"},
        "properties": {
            "authMode": auth_mode_name(e.auth),
            "description": e.description,
            "properties": {},
            "scoringUri": state.services.scoring_uri(&e.name),
            "swaggerUri": Value::Null,
            "provisioningState": e.provisioning_state(),
            "traffic": e.traffic(),
            "mirrorTraffic": {},
            "publicNetworkAccess": "Enabled",
        },
        "systemData": system_data(e.created_at, &e.created_by.to_string(), e.updated_at),
    })
}

/// `PT5S`-style durations, as ISO 8601 spells Azure's request settings.
fn iso_ms(d: u64) -> String {
    if d.is_multiple_of(1000) {
        format!("PT{}S", d / 1000)
    } else {
        format!("PT{}S", d as f64 / 1000.0)
    }
}

/// Parses the ISO 8601 durations azure-ai-ml sends (`PT5S`, `PT0.5S`, `PT1M30S`, `PT1H`,
/// `P1D`) into milliseconds.
pub fn parse_iso_duration(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    if rest.is_empty() || s.len() > 40 {
        return None;
    }
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut ms: f64 = 0.0;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let (_, scale) = units.iter().find(|(u, _)| u.eq_ignore_ascii_case(&c))?;
                ms += num.parse::<f64>().ok()? * scale;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    take(days, &[('D', 86_400_000.0)])?;
    take(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    (ms.is_finite() && (0.0..=1e12).contains(&ms)).then_some(ms.round() as u64)
}

fn deployment_json(w: WorkspaceRef<'_>, e: &Endpoint, d: &Deployment) -> Value {
    let s = &d.service;
    let dc = deployment_config(&s.deployment_config).ok();
    let spec = &d.spec;
    let model_id =
        format!("{}/models/{}/versions/{}", workspace_id(w), s.model_name, s.model_version);
    let code = spec.get("codeConfiguration").cloned().unwrap_or(Value::Null);
    let mut request = json!({
        "maxConcurrentRequestsPerInstance": dc.as_ref().map_or(1, |c| c.concurrency()),
    });
    if let Some(c) = &dc {
        request["requestTimeout"] = json!(iso_ms(c.scoring_timeout_ms));
        request["maxQueueWait"] = json!(iso_ms(c.max_queue_wait_ms));
    }
    let env = s
        .inference_config
        .get("environmentVariables")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "id": format!("{}/onlineEndpoints/{}/deployments/{}", workspace_id(w), e.name, d.name),
        "name": d.name,
        "type": format!("{PROVIDER}/workspaces/onlineEndpoints/deployments"),
        "location": e.workspace.location,
        "kind": "Managed",
        "tags": spec.get("tags").cloned().filter(Value::is_object).unwrap_or_else(|| json!({})),
        "sku": {"name": "Default", "tier": "Standard", "capacity": dc.as_ref().map_or(1, |c| c.replicas)},
        "properties": {
            "endpointComputeType": "Managed",
            "model": model_id,
            "codeConfiguration": code,
            "environmentId": spec.get("environmentId").cloned().unwrap_or(Value::Null),
            "environmentVariables": env,
            "instanceType": spec.get("instanceType").cloned().unwrap_or(json!("Standard_DS3_v2")),
            "scaleSettings": {"scaleType": "Default"},
            "requestSettings": request,
            "description": spec.get("description").cloned().unwrap_or(json!("")),
            "properties": {},
            "appInsightsEnabled": false,
            "provisioningState": mlgate_core::endpoints::provisioning_state(s.state),
        },
        "systemData": system_data(s.created_at, &s.created_by.to_string(), s.updated_at),
    })
}

async fn read_json(req: Request) -> Result<Value, ApiError> {
    let bytes = to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest("The request body must be a JSON object.".into()));
    }
    Ok(v)
}

fn string_map(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err(ApiError::BadRequest(format!("{what} values must be strings"))),
            })
            .collect(),
        Some(_) => Err(ApiError::BadRequest(format!("{what} must be an object"))),
    }
}

fn endpoint_spec(body: &Value) -> Result<EndpointSpec, ApiError> {
    let props = body.get("properties").cloned().unwrap_or_else(|| json!({}));
    let auth = props
        .get("authMode")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("properties.authMode is required".into()))?;
    let mut traffic = BTreeMap::new();
    if let Some(t) = props.get("traffic").filter(|t| !t.is_null()) {
        let t = t
            .as_object()
            .ok_or_else(|| ApiError::BadRequest("properties.traffic must be an object".into()))?;
        for (k, v) in t {
            let pct = v
                .as_u64()
                .filter(|p| *p <= 100)
                .ok_or_else(|| ApiError::BadRequest("traffic values are 0 to 100".into()))?;
            traffic.insert(k.clone(), pct as u32);
        }
    }
    if props.get("compute").and_then(Value::as_str).is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::BadRequest(
            "Kubernetes online endpoints (properties.compute) are not supported; use a managed \
             endpoint"
                .into(),
        ));
    }
    Ok(EndpointSpec {
        auth: parse_auth_mode(auth)?,
        description: props.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
        tags: string_map(body.get("tags"), "tags")?,
        traffic,
    })
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/
/// workspaces/{ws}/{kind}/{name}/versions/{version}` -> (name, version), for `kind` in this
/// workspace.
fn versioned_id<'a>(id: &'a str, w: WorkspaceRef<'_>, kind: &str) -> Option<(&'a str, &'a str)> {
    let seg: Vec<&str> = id.trim_matches('/').split('/').collect();
    let eq = |i: usize, v: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(v));
    (seg.len() == 12
        && eq(0, "subscriptions")
        && eq(1, w.subscription)
        && eq(2, "resourceGroups")
        && eq(3, w.resource_group)
        && eq(4, "providers")
        && eq(5, PROVIDER)
        && eq(6, "workspaces")
        && eq(7, w.workspace)
        && eq(8, kind)
        && eq(10, "versions"))
    .then(|| (seg[9], seg[11]))
}

fn deployment_spec(body: &Value, w: WorkspaceRef<'_>) -> Result<DeploymentSpec, ApiError> {
    let props = body.get("properties").cloned().unwrap_or_else(|| json!({}));
    let kind = props.get("endpointComputeType").and_then(Value::as_str).unwrap_or("Managed");
    if !kind.eq_ignore_ascii_case("Managed") {
        return Err(ApiError::BadRequest(format!(
            "endpointComputeType '{}' is not supported; use a managed deployment",
            kind.chars().take(32).collect::<String>()
        )));
    }
    let model = props.get("model").and_then(Value::as_str).ok_or_else(|| {
        ApiError::BadRequest("properties.model (a registered model) is required".into())
    })?;
    let (model_name, model_version) = versioned_id(model, w, "models")
        .or_else(|| {
            // The short form `azureml:name:version`.
            let m = model.strip_prefix("azureml:")?;
            m.split_once(':')
        })
        .ok_or_else(|| {
            ApiError::BadRequest(
                "properties.model must name a registered model version of this workspace \
                 (its ARM id or azureml:NAME:VERSION)"
                    .into(),
            )
        })?;
    let code = match props.get("codeConfiguration").filter(|c| !c.is_null()) {
        None => None,
        Some(c) => {
            let id = c.get("codeId").and_then(Value::as_str).unwrap_or_default();
            let script = c.get("scoringScript").and_then(Value::as_str).ok_or_else(|| {
                ApiError::BadRequest("codeConfiguration.scoringScript is required".into())
            })?;
            let (name, version) = versioned_id(id, w, "codes").ok_or_else(|| {
                ApiError::BadRequest(
                    "codeConfiguration.codeId must name a code version of this workspace".into(),
                )
            })?;
            Some((name.to_string(), version.to_string(), script.to_string()))
        }
    };
    let request = props.get("requestSettings").cloned().unwrap_or_else(|| json!({}));
    let duration = |k: &str| -> Result<Option<u64>, ApiError> {
        match request.get(k).and_then(Value::as_str) {
            None => Ok(None),
            Some(d) => parse_iso_duration(d).map(Some).ok_or_else(|| {
                ApiError::BadRequest(format!("requestSettings.{k} is not an ISO 8601 duration"))
            }),
        }
    };
    let max_concurrent =
        request.get("maxConcurrentRequestsPerInstance").and_then(Value::as_u64).unwrap_or(1);
    let capacity =
        body.get("sku").and_then(|s| s.get("capacity")).and_then(Value::as_u64).unwrap_or(1);
    let mut echo = json!({});
    for k in ["instanceType", "environmentId", "codeConfiguration", "description"] {
        if let Some(v) = props.get(k).filter(|v| !v.is_null()) {
            echo[k] = v.clone();
        }
    }
    if let Some(t) = body.get("tags").filter(|t| t.is_object()) {
        echo["tags"] = t.clone();
    }
    Ok(DeploymentSpec {
        model: format!("{model_name}:{model_version}"),
        code,
        instance_count: u32::try_from(capacity).unwrap_or(u32::MAX),
        max_concurrent_requests: u32::try_from(max_concurrent).unwrap_or(u32::MAX),
        request_timeout_ms: duration("requestTimeout")?,
        max_queue_wait_ms: duration("maxQueueWait")?,
        environment_variables: string_map(
            props.get("environmentVariables"),
            "environmentVariables",
        )?,
        echo,
    })
}

fn operation_url(state: &AppState, w: WorkspaceRef<'_>, id: Uuid) -> String {
    format!("{}{}/operations/{id}?api-version=2023-04-01", state.public_url, workspace_id(w))
}

/// Adds ARM's polling headers to an answer.
fn with_polling(mut resp: Response, url: &str, location: bool) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(url) {
        h.insert("Azure-AsyncOperation", v.clone());
        if location {
            h.insert(header::LOCATION, v);
        }
    }
    // Clients wait this long before polling (instead of their default 5 to 30 s).
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn done(state: &AppState, w: WorkspaceRef<'_>, endpoint: &str) -> Response {
    let id = state.arm_operations.record(Operation {
        workspace: workspace_key(w),
        endpoint: endpoint.to_ascii_lowercase(),
        kind: OpKind::Done,
        started: state.authority.clock().now(),
        at: Instant::now(),
    });
    with_polling(StatusCode::ACCEPTED.into_response(), &operation_url(state, w, id), true)
}

#[allow(clippy::too_many_arguments)]
pub async fn handle(
    state: &AppState,
    p: &Principal,
    method: Method,
    (sub, rg, ws): (&str, &str, &str),
    rest: &[String],
    path: &str,
    query: &HashMap<String, String>,
    req: Request,
) -> Result<Response, ApiError> {
    let w = WorkspaceRef { subscription: sub, resource_group: rg, workspace: ws };
    let seg: Vec<&str> = rest.iter().map(String::as_str).collect();
    let is = |i: usize, word: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    let ep = &state.endpoints;
    if is(0, "operations") {
        return match (method, seg.len()) {
            (Method::GET, 2) => operation(state, p, w, seg[1]).await,
            (_, 2) => Err(ApiError::MethodNotAllowed),
            _ => Err(ApiError::Core(mlgate_core::Error::NotFound(
                "No route matches this path.".into(),
            ))),
        };
    }
    match (method, seg.len()) {
        (Method::GET, 1) => {
            let all = ep.list(p, w).await?;
            let items = all.iter().map(|e| endpoint_json(state, w, e)).collect();
            Ok(Json(super::assets::page(state, path, query, items)?).into_response())
        }
        (Method::GET, 2) => {
            Ok(Json(endpoint_json(state, w, &ep.get(p, w, seg[1]).await?)).into_response())
        }
        (Method::PUT, 2) => {
            ep.authorize(p, w, seg[1], None, catalog::ENDPOINT_WRITE)?;
            let spec = endpoint_spec(&read_json(req).await?)?;
            let (e, created) = ep.put(p, w, seg[1], spec).await?;
            tracing::info!(endpoint = %e.name, by = %p.object_id, created, "online endpoint put");
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(endpoint_json(state, w, &e))).into_response())
        }
        (Method::PATCH, 2) => {
            // Azure's partial update: tags (and identity, which mlgate has none of).
            ep.authorize(p, w, seg[1], None, catalog::ENDPOINT_WRITE)?;
            let body = read_json(req).await?;
            let e = ep.get(p, w, seg[1]).await?;
            let spec = EndpointSpec {
                auth: e.auth,
                description: e.description.clone(),
                tags: match body.get("tags") {
                    Some(t) => string_map(Some(t), "tags")?,
                    None => e.tags.clone(),
                },
                traffic: e.traffic(),
            };
            let (e, _) = ep.put(p, w, seg[1], spec).await?;
            Ok(Json(endpoint_json(state, w, &e)).into_response())
        }
        (Method::DELETE, 2) => {
            ep.delete(p, w, seg[1]).await?;
            state.deployer.stop(seg[1]);
            tracing::info!(endpoint = %seg[1], by = %p.object_id, "online endpoint deleted");
            Ok(done(state, w, seg[1]))
        }
        (Method::POST, 3) if is(2, "listKeys") => {
            let k = ep.keys(p, w, seg[1]).await?;
            Ok(Json(json!({"primaryKey": k.primary, "secondaryKey": k.secondary})).into_response())
        }
        (Method::POST, 3) if is(2, "regenerateKeys") => {
            ep.authorize(p, w, seg[1], None, catalog::ENDPOINT_REGENERATE_KEYS)?;
            let body = read_json(req).await?;
            let slot: KeySlot = body
                .get("keyType")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::BadRequest("keyType (Primary or Secondary) is required".into())
                })?
                .parse()?;
            let value = body.get("keyValue").and_then(Value::as_str).filter(|v| !v.is_empty());
            ep.regenerate_key(p, w, seg[1], slot, value).await?;
            tracing::info!(endpoint = %seg[1], key = ?slot, by = %p.object_id, "endpoint key regenerated");
            Ok(done(state, w, seg[1]))
        }
        (Method::POST, 3) if is(2, "token") => {
            let t = ep.token(p, w, seg[1]).await?;
            Ok(Json(json!({
                "accessToken": t.token,
                "tokenType": "Bearer",
                "expiryTimeUtc": t.expires_on,
                "refreshAfterTimeUtc": t.refresh_after,
            }))
            .into_response())
        }
        (Method::GET, 3) if is(2, "deployments") => {
            let e = ep.get(p, w, seg[1]).await?;
            let deps = ep.deployments(p, w, seg[1]).await?;
            let items = deps.iter().map(|d| deployment_json(w, &e, d)).collect();
            Ok(Json(super::assets::page(state, path, query, items)?).into_response())
        }
        (Method::GET, 4) if is(2, "deployments") => {
            let (e, d) = ep.deployment(p, w, seg[1], seg[3]).await?;
            Ok(Json(deployment_json(w, &e, &d)).into_response())
        }
        (Method::PUT, 4) if is(2, "deployments") => {
            ep.authorize(p, w, seg[1], Some(seg[3]), catalog::DEPLOYMENT_WRITE)?;
            let spec = deployment_spec(&read_json(req).await?, w)?;
            let put = ep.put_deployment(p, w, seg[1], seg[3], spec).await?;
            let Some(d) = put.endpoint.deployment.clone() else {
                return Err(ApiError::Core(mlgate_core::Error::Internal(
                    "the deployment vanished while it was made".into(),
                )));
            };
            tracing::info!(endpoint = %seg[1], deployment = %seg[3], model = %format!("{}:{}", put.model.name, put.model.version), by = %p.object_id, rollout = ?put.rollout, "online deployment put");
            let body = deployment_json(w, &put.endpoint, &d);
            let kind = match put.rollout {
                Rollout::Start => {
                    state.deployer.roll_out(d.service.clone(), put.model);
                    OpKind::Deploy
                }
                Rollout::AuthOnly => OpKind::Done,
            };
            let id = state.arm_operations.record(Operation {
                workspace: workspace_key(w),
                endpoint: seg[1].to_ascii_lowercase(),
                kind,
                started: state.authority.clock().now(),
                at: Instant::now(),
            });
            let status = if put.created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(with_polling(
                (status, Json(body)).into_response(),
                &operation_url(state, w, id),
                false,
            ))
        }
        (Method::DELETE, 4) if is(2, "deployments") => {
            ep.delete_deployment(p, w, seg[1], seg[3]).await?;
            state.deployer.stop(seg[1]);
            tracing::info!(endpoint = %seg[1], deployment = %seg[3], by = %p.object_id, "online deployment deleted");
            Ok(done(state, w, seg[1]))
        }
        (Method::POST, 5) if is(2, "deployments") && is(4, "getLogs") => {
            let body = read_json(req).await?;
            let d = ep.authorize_logs(p, w, seg[1], seg[3]).await?;
            let tail = body
                .get("tail")
                .and_then(Value::as_u64)
                .map_or(MAX_TAIL, |t| (t as usize).min(MAX_TAIL));
            let lines = state.serving.logs(&d.service.name);
            let from = lines.len().saturating_sub(tail);
            Ok(Json(json!({"content": lines[from..].join("\n")})).into_response())
        }
        (_, 1..=5) => Err(ApiError::MethodNotAllowed),
        _ => {
            Err(ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into())))
        }
    }
}

/// `GET .../workspaces/{ws}/operations/{id}`: ARM's operation status. Reading it needs
/// `onlineEndpoints/read` on the operation's endpoint.
async fn operation(
    state: &AppState,
    p: &Principal,
    w: WorkspaceRef<'_>,
    id: &str,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::Core(mlgate_core::Error::NotFound(
            "The operation does not exist or has expired.".into(),
        ))
    };
    let uuid = id.parse::<Uuid>().map_err(|_| not_found())?;
    let sub = w.subscription.parse().map_err(|_| not_found())?;
    let op = state.arm_operations.get(uuid, &workspace_key(w)).ok_or_else(not_found)?;
    let scope = mlgate_core::access::Access::parse_scope(&format!(
        "{}/onlineEndpoints/{}",
        mlgate_core::resources::workspace_scope(sub, w.resource_group, w.workspace)?.as_str(),
        op.endpoint
    ))?;
    state.access.authorize(p, catalog::ENDPOINT_READ, &scope)?;
    let (status, error) = match op.kind {
        OpKind::Done => ("Succeeded", None),
        OpKind::Deploy => match state.endpoints.get(p, w, &op.endpoint).await {
            Ok(e) => match e.deployment.map(|d| d.service) {
                Some(s) => match s.state {
                    mlgate_core::records::ServiceState::Transitioning => ("InProgress", None),
                    mlgate_core::records::ServiceState::Healthy => ("Succeeded", None),
                    _ => {
                        ("Failed", Some(s.error.unwrap_or_else(|| "the deployment failed".into())))
                    }
                },
                None => ("Failed", Some("the deployment was deleted".to_string())),
            },
            Err(mlgate_core::Error::NotFound(_)) => {
                ("Failed", Some("the endpoint was deleted".to_string()))
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut body = json!({
        "id": format!("{}/operations/{uuid}", workspace_id(w)),
        "name": uuid.to_string(),
        "status": status,
        "startTime": rfc3339(op.started),
    });
    if status != "InProgress" {
        body["endTime"] = json!(rfc3339(state.authority.clock().now()));
    }
    if let Some(m) = error {
        // The deployment's failure as the clients print it; the full log is in getLogs.
        body["error"] = json!({"code": "DeploymentFailed", "message": m.chars().take(4000).collect::<String>()});
    }
    let mut resp = Json(body).into_response();
    if status == "InProgress" {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("PT5S"), Some(5000));
        assert_eq!(parse_iso_duration("PT0.5S"), Some(500));
        assert_eq!(parse_iso_duration("PT1M30S"), Some(90_000));
        assert_eq!(parse_iso_duration("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso_duration("P1DT1S"), Some(86_401_000));
        for bad in ["", "P", "5S", "PT5X", "PTS5", "PT5S5"] {
            assert_eq!(parse_iso_duration(bad), None, "{bad}");
        }
        assert_eq!(iso_ms(5000), "PT5S");
        assert_eq!(iso_ms(500), "PT0.5S");
    }

    #[test]
    fn operations_are_bounded_and_per_workspace() {
        let ops = ArmOperations::default();
        let op = |ws: &str| Operation {
            workspace: ws.into(),
            endpoint: "e".into(),
            kind: OpKind::Done,
            started: time::OffsetDateTime::UNIX_EPOCH,
            at: Instant::now(),
        };
        let id = ops.record(op("a"));
        assert!(ops.get(id, "a").is_some());
        assert!(ops.get(id, "b").is_none(), "another workspace cannot read it");
        for _ in 0..MAX_OPERATIONS + 5 {
            ops.record(op("a"));
        }
        assert!(ops.len() <= MAX_OPERATIONS);
    }
}
