//! Web services: deploy (`PUT .../workspaces/{ws}/services/{name}`), show, list, delete, logs,
//! and the scoring path `POST /api/v1/service/{name}/score`.
//!
//! A deployment answers 202 at once with state Transitioning; a background task loads the
//! model and moves the service to Healthy, or to Failed with the reason in its logs.

use std::time::Duration;

use axum::Json;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::model::{ModelVersion, Service, ServiceState};
use mlgate_core::models::WorkspaceRef;
use mlgate_core::principal::Principal;
use mlgate_core::services::{
    AuthMode, ComputeType, KeySlot, Rollout, Runtime, ServiceKeys, deployment_config, runtime,
};
use mlgate_proto as proto;
use mlgate_serving::ServeError;
use mlgate_serving::onnx::OnnxModel;
use mlgate_serving::python::{PythonConfig, PythonService};
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::state::AppState;

/// Scoring requests larger than this are refused unread.
pub const MAX_SCORE_BODY: usize = 8 * 1024 * 1024;
/// Azure ML's default scoring timeout.
const SCORE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_DEPLOY_BODY: usize = 256 * 1024;

fn json(state: &AppState, s: &Service, ws: WorkspaceRef<'_>) -> proto::Service {
    let dc = deployment_config(&s.deployment_config).ok();
    let compute = match dc.as_ref().map(|c| c.compute_type) {
        Some(ComputeType::Cluster) => "cluster",
        _ => "instance",
    };
    let auth = dc.map_or(AuthMode::None, |c| c.auth);
    proto::Service {
        id: format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}/services/{}",
            ws.subscription, ws.resource_group, ws.workspace, s.name
        ),
        name: s.name.clone(),
        state: s.state.as_str().into(),
        model: format!("{}:{}", s.model_name, s.model_version),
        compute_type: compute.into(),
        scoring_uri: state.services.scoring_uri(&s.name),
        auth_enabled: auth == AuthMode::Key,
        token_auth_enabled: auth == AuthMode::Token,
        auth_mode: auth.as_str().into(),
        error: s.error.clone(),
        inference_config: s.inference_config.clone(),
        deployment_config: s.deployment_config.clone(),
        created_time: s.created_at.format(&Rfc3339).unwrap_or_default(),
        updated_time: s.updated_at.format(&Rfc3339).unwrap_or_default(),
    }
}

/// Loads the model of a service and puts it in service (or records why not).
pub async fn start(state: AppState, service: Service, mv: ModelVersion) {
    let name = service.name.clone();
    let host = state.serving.clone();
    host.log(&name, format!("Deploying model {}:{}", mv.name, mv.version));
    let result = match runtime(&service.inference_config) {
        Ok(Runtime::Python { entry_script, sha256, requirements, interpreter }) => {
            let python = interpreter.map_or(state.python.to_path_buf(), std::path::PathBuf::from);
            let script = EntryScript { name: &entry_script, sha256: &sha256, python };
            start_python(&state, &service, &mv, script, &requirements).await
        }
        Ok(Runtime::Onnx) => start_onnx(&state, &service, &mv).await,
        Err(e) => Err(e.to_string()),
    };
    let (new_state, error) = match &result {
        Ok(()) => (ServiceState::Healthy, None),
        Err(e) => {
            host.log(&name, format!("Deployment failed: {e}"));
            (ServiceState::Failed, Some(e.as_str()))
        }
    };
    host.log(&name, format!("Service state: {}", new_state.as_str()));
    if let Err(e) = state.services.set_state(&name, new_state, error).await {
        tracing::error!(service = %name, error = %e, "could not record the service's state");
    }
    tracing::info!(service = %name, state = new_state.as_str(), "deployment finished");
}

struct EntryScript<'a> {
    name: &'a str,
    sha256: &'a str,
    python: std::path::PathBuf,
}

/// Lays the model's files and the entry script out under the data directory and starts the
/// workers; `init()`'s traceback becomes the failure reason.
async fn start_python(
    state: &AppState,
    service: &Service,
    mv: &ModelVersion,
    script: EntryScript<'_>,
    requirements: &[String],
) -> Result<(), String> {
    let EntryScript { name: entry_script, sha256, python: base_python } = script;
    let dir = state
        .data_dir
        .join("services")
        .join(&service.name)
        .join(format!("{}-{}", mv.name, mv.version));
    let model_dir = dir.join("model");
    for f in &mv.files {
        let bytes = state.models.file_bytes(mv, &f.path).await.map_err(|e| e.to_string())?;
        let out = model_dir.join(&f.path);
        if let Some(parent) = out.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| e.to_string())?;
        }
        tokio::fs::write(&out, bytes).await.map_err(|e| e.to_string())?;
    }
    let src = dir.join("src");
    tokio::fs::create_dir_all(&src).await.map_err(|e| e.to_string())?;
    let script = state.models.blob(sha256).await.map_err(|e| e.to_string())?;
    let entry = src.join(entry_script);
    tokio::fs::write(&entry, script).await.map_err(|e| e.to_string())?;
    let worker = dir.join("mlgate_worker.py");
    tokio::fs::write(&worker, mlgate_serving::python::WORKER_PY)
        .await
        .map_err(|e| e.to_string())?;
    let dc = deployment_config(&service.deployment_config).map_err(|e| e.to_string())?;
    let host = state.serving.clone();
    let name = service.name.clone();
    if !tokio::fs::try_exists(&base_python).await.unwrap_or(false) && base_python.is_absolute() {
        return Err(format!("the interpreter {} does not exist", base_python.display()));
    }
    let python = if requirements.is_empty() {
        base_python
    } else {
        let host = state.serving.clone();
        let name = service.name.clone();
        let log: mlgate_serving::python::LogSink =
            std::sync::Arc::new(move |line: &str| host.log(&name, line));
        mlgate_serving::python::env::ensure_env(
            &base_python,
            &state.data_dir.join("envs"),
            requirements,
            &log,
        )
        .await?
    };
    let cfg = PythonConfig {
        python,
        worker_script: worker,
        entry_script: entry,
        model_dir,
        memory_bytes: Some((dc.memory_gb * 1024.0 * 1024.0 * 1024.0) as u64),
        workers: dc.concurrency(),
        log: std::sync::Arc::new(move |line: &str| host.log(&name, line)),
    };
    let mut replicas = Vec::new();
    for _ in 0..dc.replicas {
        replicas.push(PythonService::start(cfg.clone()).await?);
    }
    state.serving.log(
        &service.name,
        format!("{} replica(s) of {} worker(s) ran init()", dc.replicas, dc.concurrency()),
    );
    state.serving.start_python(&service.name, replicas);
    Ok(())
}

async fn start_onnx(state: &AppState, service: &Service, mv: &ModelVersion) -> Result<(), String> {
    let host = state.serving.clone();
    let name = service.name.clone();
    let file = mv
        .files
        .iter()
        .find(|f| f.path.to_ascii_lowercase().ends_with(".onnx"))
        .or(if mv.files.len() == 1 { mv.files.first() } else { None })
        .ok_or_else(|| "the model has no .onnx file".to_string())?;
    let bytes = state.models.file_bytes(mv, &file.path).await.map_err(|e| e.to_string())?;
    let dc = deployment_config(&service.deployment_config).map_err(|e| e.to_string())?;
    let model = tokio::task::spawn_blocking(move || OnnxModel::load(&bytes))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let inputs: Vec<String> =
        model.inputs().iter().map(|i| format!("{}{:?}", i.name, i.shape)).collect();
    host.log(&name, format!("Loaded {}: inputs {}", file.path, inputs.join(", ")));
    host.log(
        &name,
        format!("{} replica(s), {} request(s) at once each", dc.replicas, dc.concurrency()),
    );
    host.start(&name, model, dc.concurrency(), dc.replicas as usize);
    Ok(())
}

/// Starts again every service that was running (or starting) before the server restarted.
pub fn restore(state: AppState) {
    tokio::spawn(async move {
        let all = match state.services.all().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "could not list services to restore");
                return;
            }
        };
        for s in &all {
            if let Err(e) = state.services.restore_gate(s).await {
                tracing::error!(service = %s.name, error = %e, "cannot restore the service's authentication");
            }
        }
        for s in all.into_iter().filter(|s| s.state != ServiceState::Failed) {
            match state.services.model_of(&s).await {
                Ok(mv) => start(state.clone(), s, mv).await,
                Err(e) => {
                    tracing::error!(service = %s.name, error = %e, "cannot restore the service")
                }
            }
        }
    });
}

pub async fn handle(
    state: &AppState,
    p: &Principal,
    method: Method,
    (sub, rg, ws): (&str, &str, &str),
    rest: &[String],
    req: Request,
) -> Result<Response, ApiError> {
    let w = WorkspaceRef { subscription: sub, resource_group: rg, workspace: ws };
    let seg: Vec<&str> = rest.iter().map(String::as_str).collect();
    let svc = &state.services;
    match (method, seg.len()) {
        (Method::GET, 1) => {
            let all = svc.list(p, w).await?;
            Ok(Json(proto::Page {
                value: all.iter().map(|s| json(state, s, w)).collect(),
                next_link: None,
            })
            .into_response())
        }
        (Method::GET, 2) => Ok(Json(json(state, &svc.get(p, w, seg[1]).await?, w)).into_response()),
        (Method::PUT, 2) => {
            let bytes: Bytes = to_bytes(req.into_body(), MAX_DEPLOY_BODY)
                .await
                .map_err(|_| ApiError::PayloadTooLarge)?;
            let body: proto::DeployService = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("The request body is invalid: {e}")))?;
            let (service, mv, rollout) = svc
                .deploy(p, w, seg[1], &body.model, body.inference_config, body.deployment_config)
                .await?;
            tracing::info!(service = %service.name, model = %body.model, by = %p.object_id, ?rollout, "deployment requested");
            let answer = json(state, &service, w);
            match rollout {
                Rollout::Start => {
                    tokio::spawn(start(state.clone(), service, mv));
                    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
                }
                Rollout::AuthOnly => {
                    state.serving.log(
                        &service.name,
                        format!(
                            "Authentication is now '{}'; the model kept running",
                            answer.auth_mode
                        ),
                    );
                    Ok(Json(answer).into_response())
                }
            }
        }
        (Method::DELETE, 2) => {
            svc.delete(p, w, seg[1]).await?;
            state.serving.stop(seg[1]);
            tracing::info!(service = %seg[1], by = %p.object_id, "service deleted");
            Ok(StatusCode::OK.into_response())
        }
        (Method::POST, 3) if seg[2].eq_ignore_ascii_case("listKeys") => {
            Ok(Json(keys_json(svc.keys(p, w, seg[1]).await?)).into_response())
        }
        (Method::POST, 3) if seg[2].eq_ignore_ascii_case("regenerateKeys") => {
            let bytes: Bytes =
                to_bytes(req.into_body(), 4096).await.map_err(|_| ApiError::PayloadTooLarge)?;
            let body: proto::RegenerateKey = serde_json::from_slice(&bytes).map_err(|_| {
                ApiError::BadRequest(
                    "The request body must be {\"keyType\": \"Primary\" or \"Secondary\"}.".into(),
                )
            })?;
            let slot: KeySlot = body.key_type.parse()?;
            let keys = svc.regenerate_key(p, w, seg[1], slot).await?;
            tracing::info!(service = %seg[1], key = ?slot, by = %p.object_id, "service key regenerated");
            Ok(Json(keys_json(keys)).into_response())
        }
        (Method::POST, 3) if seg[2].eq_ignore_ascii_case("token") => {
            let t = svc.token(p, w, seg[1]).await?;
            Ok(Json(proto::ServiceToken {
                access_token: t.token,
                token_type: "Bearer".into(),
                expiry_on: t.expires_on,
                refresh_after: t.refresh_after,
            })
            .into_response())
        }
        (Method::GET, 3) if seg[2].eq_ignore_ascii_case("logs") => {
            svc.get(p, w, seg[1]).await?;
            Ok(Json(serde_json::json!({ "logs": state.serving.logs(seg[1]) })).into_response())
        }
        (_, 1 | 2) => Err(ApiError::MethodNotAllowed),
        _ => {
            Err(ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into())))
        }
    }
}

fn keys_json(k: ServiceKeys) -> proto::ServiceKeys {
    proto::ServiceKeys { primary_key: k.primary, secondary_key: k.secondary }
}

/// `POST /api/v1/service/{name}/score`. The scoring gate decides the `Authorization` header
/// from memory before the body is read; then the body is read once and handed to the model as
/// parsed JSON.
pub async fn score(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    state.services.gate().check(&name, authorization).map_err(ApiError::Scoring)?;
    let bytes =
        to_bytes(req.into_body(), MAX_SCORE_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let request: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not JSON: {e}")))?;
    match state.serving.score(&name, request, SCORE_TIMEOUT).await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(ServeError::Unknown) => Err(ApiError::Core(mlgate_core::Error::NotFound(format!(
            "Service '{}' does not exist or is not running.",
            name.chars().take(64).collect::<String>()
        )))),
        Err(ServeError::BadInput(m)) => Err(ApiError::BadRequest(m)),
        Err(ServeError::Timeout | ServeError::Crashed) => {
            Err(ApiError::Core(mlgate_core::Error::Unavailable))
        }
        Err(ServeError::Runtime(m)) => {
            state.serving.log(&name, format!("Scoring failed: {m}"));
            Err(ApiError::Core(mlgate_core::Error::Internal(m)))
        }
    }
}
