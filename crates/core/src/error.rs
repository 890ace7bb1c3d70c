//! The error type of the management use cases (directory, and later RBAC and resources).
//! The server maps each variant to a status and a stable code in exactly one place.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidInput(String),
    /// The request carries more than the operation accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store is down or timed out; the request may be retried.
    #[error("the store is unavailable")]
    Unavailable,
    /// Anything else; the message is for the log, never for the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::Conflict(what) => Error::Conflict(what),
            StoreError::Unavailable(_) => Error::Unavailable,
            StoreError::Corrupt(what) => Error::Internal(what),
        }
    }
}
