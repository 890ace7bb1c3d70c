//! JSON bodies with errors in the API's shape instead of axum's plain-text rejections.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "The request body must be JSON with 'Content-Type: application/json'.".into(),
            )),
            Err(r) => {
                Err(ApiError::BadRequest(format!("The request body is invalid: {}", r.body_text())))
            }
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::Core(mlgate_core::Error::NotFound("No route matches this path.".into()))
}
