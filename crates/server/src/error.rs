//! The one place where errors become HTTP responses.
//!
//! OAuth endpoints answer in Azure AD's error shape ([`OAuthFailure`]); everything else in
//! ARM's `{"error": {"code", "message"}}` ([`ApiError`]). A 5xx body says nothing about the
//! cause, which goes to the log.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlgate_core::authority::{GrantError, OAuthErrorKind};
use mlgate_core::scoring::Denied;
use mlgate_core::tokens::TokenError;
use mlgate_proto::{ApiErrorBody, ApiErrorDetail, OAuthErrorBody, codes};
use time::OffsetDateTime;
use uuid::Uuid;

/// An error of the management API.
#[derive(Debug)]
pub enum ApiError {
    /// No bearer token, or one that failed verification.
    Unauthenticated {
        reason: Option<TokenError>,
        authorization_uri: String,
    },
    Core(mlgate_core::Error),
    /// The scoring gate refused a scoring request.
    Scoring(Denied),
    BadRequest(String),
    PayloadTooLarge,
    MethodNotAllowed,
    /// Too much at once: 503 with `Retry-After`.
    Busy(String),
    /// An error whose code a client tests for by name (Azure's `RoleAssignmentExists`,
    /// Graph's `Request_ResourceNotFound`, ...), in the same `{"error": {"code", "message"}}`.
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Azure Storage's error (the blob face): XML `<Error><Code/><Message/></Error>` and the
    /// code again in `x-ms-error-code`, which azure-storage-blob reads.
    Storage {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Azure ML model management's error: the `{"error": ...}` shape plus the top-level
    /// `code`, `statusCode` and `message` its SDK's model client reads.
    ModelManagement {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl From<mlgate_core::Error> for ApiError {
    fn from(e: mlgate_core::Error) -> Self {
        ApiError::Core(e)
    }
}

/// Escapes text for an XML element or attribute.
/// The status of a core error, for the console's pages (HTML rather than the API's JSON; the
/// same status as `ApiError::Core`, which a test below checks).
pub fn core_status(e: &mlgate_core::Error) -> StatusCode {
    use mlgate_core::Error as E;
    match e {
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Conflict(_) => StatusCode::CONFLICT,
        E::InvalidInput(_) => StatusCode::BAD_REQUEST,
        E::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        E::Forbidden(_) => StatusCode::FORBIDDEN,
        E::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    let b = ApiErrorBody { error: ApiErrorDetail { code: code.to_string(), message } };
    with_code((status, Json(b)).into_response(), code)
}

/// Names the error code for the activity log (`audit::record_activity`).
fn with_code(mut resp: Response, code: &str) -> Response {
    resp.extensions_mut().insert(crate::audit::ErrorCode(code.to_string()));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use mlgate_core::Error as E;
        match self {
            ApiError::Unauthenticated { reason, authorization_uri } => {
                let (challenge, code, message) = match reason {
                    None => (
                        format!(
                            r#"Bearer realm="mlgate", authorization_uri="{authorization_uri}""#
                        ),
                        codes::AUTHENTICATION_FAILED,
                        "The request has no 'Authorization: Bearer' header.".to_string(),
                    ),
                    Some(r) => (
                        format!(
                            r#"Bearer realm="mlgate", authorization_uri="{authorization_uri}", error="invalid_token", error_description="{r}""#
                        ),
                        codes::INVALID_AUTHENTICATION_TOKEN,
                        format!("The access token is invalid: {r}."),
                    ),
                };
                let mut resp = body(StatusCode::UNAUTHORIZED, code, message);
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                resp
            }
            ApiError::Scoring(Denied::UnknownService) => body(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                "The service does not exist or is not running.".into(),
            ),
            ApiError::Scoring(Denied::Forbidden(m)) => {
                body(StatusCode::FORBIDDEN, codes::AUTHORIZATION_FAILED, m)
            }
            ApiError::Scoring(denied) => {
                // The messages name what was wrong, never the credential itself.
                let (challenge, code) = match &denied {
                    Denied::Missing => (
                        r#"Bearer realm="mlgate-scoring""#.to_string(),
                        codes::AUTHENTICATION_FAILED,
                    ),
                    other => (
                        format!(
                            r#"Bearer realm="mlgate-scoring", error="invalid_token", error_description="{other}""#
                        ),
                        codes::INVALID_AUTHENTICATION_TOKEN,
                    ),
                };
                let mut resp = body(StatusCode::UNAUTHORIZED, code, denied.to_string());
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                resp
            }
            ApiError::BadRequest(m) => body(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, m),
            ApiError::Coded { status, code, message } => body(status, code, message),
            ApiError::Storage { status, code, message } => {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
                     <Message>{}</Message></Error>",
                    xml_escape(&message)
                );
                let mut resp = with_code((status, xml).into_response(), code);
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                if let Ok(v) = HeaderValue::from_str(code) {
                    h.insert("x-ms-error-code", v);
                }
                resp
            }
            ApiError::ModelManagement { status, code, message } => with_code(
                (
                    status,
                    Json(serde_json::json!({
                        "code": code,
                        "statusCode": status.as_u16(),
                        "message": message,
                        "error": {"code": code, "message": message},
                    })),
                )
                    .into_response(),
                code,
            ),
            ApiError::MethodNotAllowed => body(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "This method is not allowed on this resource.".into(),
            ),
            ApiError::Busy(m) => {
                let mut resp = body(StatusCode::SERVICE_UNAVAILABLE, codes::SERVICE_UNAVAILABLE, m);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
            ApiError::PayloadTooLarge => body(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                "The request body is too large.".into(),
            ),
            ApiError::Core(E::NotFound(m)) => body(StatusCode::NOT_FOUND, codes::NOT_FOUND, m),
            ApiError::Core(E::Conflict(m)) => body(StatusCode::CONFLICT, codes::CONFLICT, m),
            ApiError::Core(E::InvalidInput(m)) => {
                body(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, m)
            }
            ApiError::Core(E::TooLarge(m)) => {
                body(StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE, m)
            }
            ApiError::Core(E::Forbidden(m)) => {
                body(StatusCode::FORBIDDEN, codes::AUTHORIZATION_FAILED, m)
            }
            ApiError::Core(E::Unavailable) => body(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable; retry later.".into(),
            ),
            ApiError::Core(E::Internal(cause)) => {
                tracing::error!(%cause, "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL_ERROR,
                    "Something went wrong.".into(),
                )
            }
        }
    }
}

/// An OAuth endpoint's error, in Azure AD's shape.
#[derive(Debug)]
pub struct OAuthFailure {
    pub error: GrantError,
    pub status: StatusCode,
    pub correlation_id: Option<String>,
    /// Set when the client authenticated with HTTP Basic (RFC 6749 5.2 then requires 401 and
    /// a challenge).
    pub basic_challenge: bool,
}

impl OAuthFailure {
    pub fn new(error: GrantError) -> Self {
        let status = match error.kind {
            _ if error.retry_after.is_some() => StatusCode::TOO_MANY_REQUESTS,
            OAuthErrorKind::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self { error, status, correlation_id: None, basic_challenge: false }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// Azure's timestamp format: `2024-01-31 12:34:56Z`.
pub fn azure_timestamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl IntoResponse for OAuthFailure {
    #[allow(
        clippy::disallowed_methods,
        reason = "Azure's error body carries the wall-clock time of the answer"
    )]
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error.kind.as_str().to_string(),
            error_description: self.error.description,
            error_codes: vec![self.error.code.number()],
            timestamp: azure_timestamp(OffsetDateTime::now_utc()),
            trace_id: Uuid::new_v4().to_string(),
            correlation_id: self.correlation_id.unwrap_or_else(|| Uuid::new_v4().to_string()),
        };
        let mut headers = no_store_headers();
        if let Some(secs) = self.error.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.basic_challenge && self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="mlgate""#),
            );
        }
        (self.status, headers, Json(body)).into_response()
    }
}

/// Token responses must not be cached (RFC 6749 5.1).
pub fn no_store_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlgate_core::Error as E;
    use mlgate_core::authority::Aadsts;
    use serde_json::Value;

    async fn parts(resp: Response) -> (StatusCode, HeaderMap, String) {
        let (head, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (head.status, head.headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn api(e: ApiError) -> (u16, String, String) {
        let (status, _, body) = parts(e.into_response()).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        let code = v["error"]["code"].as_str().unwrap().to_string();
        let message = v["error"]["message"].as_str().unwrap().to_string();
        (status.as_u16(), code, message)
    }

    #[tokio::test]
    async fn each_core_error_has_its_status_and_stable_code() {
        let cases = [
            (E::NotFound("gone".into()), 404, codes::NOT_FOUND),
            (E::Conflict("twice".into()), 409, codes::CONFLICT),
            (E::InvalidInput("bad".into()), 400, codes::INVALID_REQUEST),
            (E::TooLarge("big".into()), 413, codes::PAYLOAD_TOO_LARGE),
            (E::Forbidden("no".into()), 403, codes::AUTHORIZATION_FAILED),
            (E::Unavailable, 503, codes::SERVICE_UNAVAILABLE),
        ];
        for (e, status, code) in cases {
            let shown = e.to_string();
            let (s, c, m) = api(ApiError::Core(e)).await;
            assert_eq!((s, c.as_str()), (status, code), "{shown}");
            if status != 503 {
                assert_eq!(m, shown, "the domain's message reaches the client");
            }
        }
    }

    #[tokio::test]
    async fn console_pages_use_the_api_statuses() {
        use mlgate_core::Error as E;
        for make in [
            || E::NotFound("n".into()),
            || E::Conflict("c".into()),
            || E::InvalidInput("i".into()),
            || E::TooLarge("t".into()),
            || E::Forbidden("f".into()),
            || E::Unavailable,
            || E::Internal("x".into()),
        ] {
            let status = core_status(&make());
            assert_eq!(ApiError::Core(make()).into_response().status(), status);
        }
    }

    #[tokio::test]
    async fn an_internal_error_says_nothing_of_its_cause() {
        let (s, c, m) =
            api(ApiError::Core(E::Internal("db password=hunter2 at /var/lib".into()))).await;
        assert_eq!(
            (s, c.as_str(), m.as_str()),
            (500, codes::INTERNAL_ERROR, "Something went wrong.")
        );
    }

    #[tokio::test]
    async fn unauthenticated_answers_carry_a_bearer_challenge() {
        let uri = "https://id.example/t".to_string();
        let none = ApiError::Unauthenticated { reason: None, authorization_uri: uri.clone() };
        let (status, headers, _) = parts(none.into_response()).await;
        assert_eq!(status, 401);
        let ch = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(ch.starts_with("Bearer ") && !ch.contains("error="), "{ch}");
        let bad =
            ApiError::Unauthenticated { reason: Some(TokenError::Expired), authorization_uri: uri };
        let (status, headers, body) = parts(bad.into_response()).await;
        assert_eq!(status, 401);
        assert!(headers[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
        assert!(body.contains(codes::INVALID_AUTHENTICATION_TOKEN), "{body}");
    }

    #[tokio::test]
    async fn busy_and_storage_errors_keep_their_protocols() {
        let (status, headers, _) = parts(ApiError::Busy("full".into()).into_response()).await;
        assert_eq!((status.as_u16(), &headers[header::RETRY_AFTER]), (503, &HeaderValue::from(1)));
        let storage = ApiError::Storage {
            status: StatusCode::NOT_FOUND,
            code: "BlobNotFound",
            message: "a <b> & 'c'".into(),
        };
        let (status, headers, body) = parts(storage.into_response()).await;
        assert_eq!(status, 404);
        assert_eq!(headers["x-ms-error-code"], "BlobNotFound");
        assert!(body.contains("<Message>a &lt;b&gt; &amp; &apos;c&apos;</Message>"), "{body}");
    }

    #[tokio::test]
    async fn oauth_failures_map_kind_to_status_and_never_cache() {
        let cases = [
            (OAuthErrorKind::InvalidClient, Aadsts::InvalidClientSecret, 401),
            (OAuthErrorKind::InvalidGrant, Aadsts::InvalidCredentials, 400),
            (OAuthErrorKind::TemporarilyUnavailable, Aadsts::DirectoryUnavailable, 503),
            (OAuthErrorKind::ServerError, Aadsts::InternalError, 500),
        ];
        for (kind, code, status) in cases {
            let (s, headers, body) =
                parts(OAuthFailure::new(GrantError::new(kind, code, "x")).into_response()).await;
            assert_eq!(s.as_u16(), status, "{kind:?}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], kind.as_str());
            assert_eq!(v["error_codes"][0], code.number());
        }
        let (s, headers, _) =
            parts(OAuthFailure::new(GrantError::throttled(7)).into_response()).await;
        assert_eq!((s.as_u16(), &headers[header::RETRY_AFTER]), (429, &HeaderValue::from(7)));
        let mut basic = OAuthFailure::new(GrantError::new(
            OAuthErrorKind::InvalidClient,
            Aadsts::InvalidClientSecret,
            "x",
        ));
        basic.basic_challenge = true;
        let (_, headers, _) = parts(basic.into_response()).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Basic realm="mlgate""#);
    }
}
