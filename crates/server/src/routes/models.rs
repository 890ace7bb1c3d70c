//! The model registry under a workspace:
//! `PUT .../workspaces/{ws}/blobs/{sha256}` (a file's bytes, checked against the digest),
//! `GET .../models`, `GET|POST .../models/{name}/versions`,
//! `GET|DELETE .../models/{name}/versions/{version|latest}`,
//! `GET .../models/{name}/versions/{version}/download?path=...`.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use mlgate_core::model_registry::WorkspaceRef;
use mlgate_core::principal::Principal;
use mlgate_core::records;
use mlgate_proto as proto;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::state::AppState;

const MAX_MANIFEST: usize = 4 * 1024 * 1024;

fn json(m: &records::ModelVersion, ws: WorkspaceRef<'_>) -> proto::ModelVersion {
    proto::ModelVersion {
        id: proto::arm::workspace_child_id(
            ws.subscription,
            ws.resource_group,
            ws.workspace,
            &format!("models/{}/versions/{}", m.name, m.version),
        ),
        name: m.name.clone(),
        version: m.version,
        description: m.description.clone(),
        tags: m.tags.clone(),
        files: m
            .files
            .iter()
            .map(|f| proto::ModelFile {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect(),
        created_time: m.created_at.format(&Rfc3339).unwrap_or_default(),
        created_by: m.created_by.to_string(),
    }
}

fn version(v: &str) -> Result<Option<i64>, ApiError> {
    if v.eq_ignore_ascii_case("latest") {
        return Ok(None);
    }
    v.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("'{v}' is not a model version")))
}

pub async fn handle(
    state: &AppState,
    p: &Principal,
    method: Method,
    (sub, rg, ws): (&str, &str, &str),
    rest: &[String],
    query: &HashMap<String, String>,
    req: Request,
) -> Result<Response, ApiError> {
    let w = WorkspaceRef { subscription: sub, resource_group: rg, workspace: ws };
    let m = &state.models;
    let seg: Vec<&str> = rest.iter().map(String::as_str).collect();
    let is = |i: usize, word: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    let not_found =
        || ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into()));
    match (method, seg.len()) {
        (Method::PUT, 2) if is(0, "blobs") => {
            // Streamed to disk while hashed: memory stays bounded whatever the size.
            let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
            let mut body = tokio_util::io::StreamReader::new(stream);
            m.upload_blob(p, w, seg[1], &mut body).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        (Method::GET, 1) if is(0, "models") => {
            let all = m.list(p, w).await?;
            Ok(Json(proto::Page {
                value: all.iter().map(|v| json(v, w)).collect(),
                next_link: None,
            })
            .into_response())
        }
        (Method::GET, 3) if is(0, "models") && is(2, "versions") => {
            let all = m.versions(p, w, seg[1]).await?;
            Ok(Json(proto::Page {
                value: all.iter().map(|v| json(v, w)).collect(),
                next_link: None,
            })
            .into_response())
        }
        (Method::POST, 3) if is(0, "models") && is(2, "versions") => {
            let bytes = to_bytes(req.into_body(), MAX_MANIFEST)
                .await
                .map_err(|_| ApiError::PayloadTooLarge)?;
            let body: proto::RegisterModel = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("The request body is invalid: {e}")))?;
            let files = body
                .files
                .into_iter()
                .map(|f| records::ModelFile {
                    path: f.path,
                    sha256: f.sha256.to_ascii_lowercase(),
                    size: f.size,
                })
                .collect();
            let v = m.register(p, w, seg[1], &body.description, body.tags, files).await?;
            tracing::info!(model = %v.name, version = v.version, by = %p.object_id, "model registered");
            Ok((StatusCode::CREATED, Json(json(&v, w))).into_response())
        }
        (Method::GET, 4) if is(0, "models") && is(2, "versions") => {
            let v = m.get(p, w, seg[1], version(seg[3])?).await?;
            Ok(Json(json(&v, w)).into_response())
        }
        (Method::DELETE, 4) if is(0, "models") && is(2, "versions") => {
            let n = version(seg[3])?
                .ok_or_else(|| ApiError::BadRequest("delete a numbered version".into()))?;
            m.delete(p, w, seg[1], n).await?;
            tracing::info!(model = %seg[1], version = n, by = %p.object_id, "model version deleted");
            Ok(StatusCode::OK.into_response())
        }
        (Method::GET, 5) if is(0, "models") && is(2, "versions") && is(4, "download") => {
            let path = query
                .get("path")
                .ok_or_else(|| ApiError::BadRequest("give the file as ?path=".into()))?;
            let (reader, size) = m.download(p, w, seg[1], version(seg[3])?, path).await?;
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            Ok(resp)
        }
        (_, _)
            if seg.first().is_some_and(|s| {
                s.eq_ignore_ascii_case("models") || s.eq_ignore_ascii_case("blobs")
            }) =>
        {
            Err(ApiError::MethodNotAllowed)
        }
        _ => Err(not_found()),
    }
}
