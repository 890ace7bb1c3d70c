//! Web services: deploy (`PUT .../workspaces/{ws}/services/{name}`), show, list, delete, logs,
//! and the scoring path `POST /api/v1/service/{name}/score`.
//!
//! A deployment answers 202 at once with state Transitioning; the [`crate::deployments`]
//! orchestrator loads the model in the background and moves the service to Healthy, or to
//! Failed with the reason in its logs.

use axum::Json;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::principal::Principal;
use mlgate_core::records::Service;
use mlgate_core::services::{
    AuthMode, ComputeType, KeySlot, Rollout, ServiceKeys, deployment_config,
};
use mlgate_proto as proto;
use mlgate_serving::ServeError;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::state::AppState;

/// Scoring requests larger than this are refused unread.
pub const MAX_SCORE_BODY: usize = mlgate_serving::host::MAX_BODY_BYTES as usize;
const MAX_DEPLOY_BODY: usize = 256 * 1024;

fn json(state: &AppState, s: &Service, ws: WorkspaceRef<'_>) -> proto::Service {
    let dc = deployment_config(&s.deployment_config).ok();
    let compute = match dc.as_ref().map(|c| c.compute_type) {
        Some(ComputeType::Cluster) => "cluster",
        _ => "instance",
    };
    let auth = dc.map_or(AuthMode::None, |c| c.auth);
    proto::Service {
        id: proto::arm::workspace_child_id(
            ws.subscription,
            ws.resource_group,
            ws.workspace,
            &format!("services/{}", s.name),
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
                    state.deployer.roll_out(service, mv);
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
            state.deployer.stop(seg[1]);
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
/// from memory, and the service admits the request or says it is busy, both before the body
/// is read; then the body is read once and handed to the model as parsed JSON. (A refusal's
/// unread body is drained by the `web::drain` layer, so the client gets the answer.)
pub async fn score(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    state.services.gate().check(&name, authorization).map_err(ApiError::Scoring)?;
    let body_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let admitted =
        state.serving.admit(&name, body_len).map_err(|e| serve_error(&state, &name, e))?;
    let bytes =
        to_bytes(req.into_body(), MAX_SCORE_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let request: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not JSON: {e}")))?;
    match state.serving.score(admitted, request).await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(e) => Err(serve_error(&state, &name, e)),
    }
}

fn serve_error(state: &AppState, name: &str, e: ServeError) -> ApiError {
    match e {
        ServeError::Unknown => ApiError::Core(mlgate_core::Error::NotFound(format!(
            "Service '{}' does not exist or is not running.",
            name.chars().take(64).collect::<String>()
        ))),
        ServeError::BadInput(m) => ApiError::BadRequest(m),
        ServeError::Busy(why) => {
            ApiError::Busy(format!("The service is busy ({why}); retry later."))
        }
        ServeError::Timeout | ServeError::Crashed => {
            ApiError::Core(mlgate_core::Error::Unavailable)
        }
        ServeError::Runtime(m) => {
            state.serving.log(name, format!("Scoring failed: {m}"));
            ApiError::Core(mlgate_core::Error::Internal(m))
        }
    }
}
