//! Authentication as an extractor: a handler that takes [`Caller`] only runs for a request
//! with a valid bearer token, and gets the typed [`Principal`].

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use mlgate_core::principal::Principal;

use crate::error::ApiError;
use crate::state::AppState;

pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authorization_uri = format!("{}/common/oauth2/authorize", state.public_url);
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            return Err(ApiError::Unauthenticated { reason: None, authorization_uri });
        };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::Unauthenticated { reason: None, authorization_uri }),
        };
        let principal = state
            .authority
            .verify(token)
            .map_err(|e| ApiError::Unauthenticated { reason: Some(e), authorization_uri })?;
        // The request's activity record (if it has one) now knows who is calling.
        mlgate_core::activity::set_caller(&principal);
        Ok(Caller(principal))
    }
}
