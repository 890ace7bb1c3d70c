//! The OpenAPI document of the management API, served at `/api/v1/openapi.json`.

use axum::http::header;
use axum::response::IntoResponse;

const DOCUMENT: &str = include_str!("../openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
