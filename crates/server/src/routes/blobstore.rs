//! The Azure-Blob-shaped upload face behind `startPendingUpload`'s signed URLs:
//! `{url}/blobstore/{upload}?{token}` is a container, `{url}/blobstore/{upload}/{path}` a blob.
//! azure-storage-blob (inside azure-ai-ml) speaks to it unchanged:
//!
//! - `PUT` a blob (Put Blob, `x-ms-blob-type: BlockBlob`, at most 64 MiB: the client only
//!   switches to blocks above that) and `PUT ?comp=metadata` (Set Blob Metadata);
//! - `HEAD`/`GET` a blob (properties, content);
//! - `GET ?restype=container&comp=list` (List Blobs, with `prefix`, `delimiter`,
//!   `include=metadata`) and `GET|HEAD ?restype=container` (container properties).
//!
//! Every request carries the URL's token, checked from memory (an HMAC, see
//! `mlgate_core::code`) before its body is read; it opens one upload area of one workspace
//! for an hour, for writing and reading back what was written there, nothing else. Errors are
//! Azure Storage's XML with `x-ms-error-code`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use mlgate_core::code::{MAX_UPLOAD_FILE, UploadDenied, UploadGrant};
use mlgate_core::records::UploadedBlob;

use crate::error::{ApiError, xml_escape};
use crate::state::AppState;

/// Blobs one List Blobs page shows at most.
const MAX_LIST: u32 = 5_000;
const API_VERSION: &str = "2021-08-06";

fn storage(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Storage { status, code, message: message.into() }
}

fn from_core(e: mlgate_core::Error) -> ApiError {
    use mlgate_core::Error as E;
    match e {
        E::NotFound(m) => storage(StatusCode::NOT_FOUND, "BlobNotFound", m),
        E::Conflict(m) => storage(StatusCode::CONFLICT, "BlobAlreadyExists", m),
        E::InvalidInput(m) => storage(StatusCode::BAD_REQUEST, "InvalidInput", m),
        E::TooLarge(m) => storage(StatusCode::PAYLOAD_TOO_LARGE, "RequestBodyTooLarge", m),
        other => ApiError::Core(other),
    }
}

/// `Sat, 01 Jan 2000 00:00:00 GMT`.
fn http_date(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&fmt).unwrap_or_default()
}

fn etag(b: &UploadedBlob) -> String {
    format!("\"0x{}\"", b.sha256.get(..16).unwrap_or(&b.sha256).to_ascii_uppercase())
}

fn common_headers(h: &mut HeaderMap) {
    h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
}

fn blob_headers(h: &mut HeaderMap, b: &UploadedBlob) {
    common_headers(h);
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(h, "etag", etag(b));
    put(h, "last-modified", http_date(b.created_at));
    put(h, "x-ms-creation-time", http_date(b.created_at));
    h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
    h.insert("x-ms-server-encrypted", HeaderValue::from_static("true"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.size));
    for (k, v) in &b.metadata {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
}

/// The `x-ms-meta-*` headers of a request.
fn metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, ApiError> {
    let mut m = BTreeMap::new();
    for (k, v) in headers {
        if let Some(name) = k.as_str().strip_prefix("x-ms-meta-") {
            let v = v.to_str().map_err(|_| {
                storage(StatusCode::BAD_REQUEST, "InvalidMetadata", "metadata values are ASCII")
            })?;
            m.insert(name.to_string(), v.to_string());
        }
    }
    Ok(m)
}

/// `GET|PUT|HEAD /blobstore/{upload}[/{path}]`.
pub async fn handle(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    req: Request,
) -> Result<Response, ApiError> {
    let (upload, path) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let grant = state.code.verify_upload(upload, &query).map_err(|e| match e {
        UploadDenied::Expired => storage(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "The upload URL has expired; ask startPendingUpload for a new one.",
        ),
        UploadDenied::BadSignature => storage(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request: the signature is missing or wrong.",
        ),
    })?;
    let comp = query.get("comp").map(String::as_str);
    if path.is_empty() {
        return container(&state, &grant, method, comp, &query).await;
    }
    match (method, comp) {
        (Method::PUT, None) => put_blob(&state, &grant, path, req).await,
        (Method::PUT, Some("metadata")) => {
            let m = metadata(req.headers())?;
            state.code.set_metadata(&grant, path, m).await.map_err(from_core)?;
            let b = state.code.blob(&grant, path).await.map_err(from_core)?;
            let mut resp = StatusCode::OK.into_response();
            common_headers(resp.headers_mut());
            if let Ok(v) = HeaderValue::from_str(&etag(&b)) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            Ok(resp)
        }
        (Method::PUT, Some("block" | "blocklist")) => Err(storage(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!(
                "files are put whole here, at most {} MiB each",
                MAX_UPLOAD_FILE / (1024 * 1024)
            ),
        )),
        (Method::HEAD, None) => {
            let b = state.code.blob(&grant, path).await.map_err(from_core)?;
            let mut resp = StatusCode::OK.into_response();
            blob_headers(resp.headers_mut(), &b);
            Ok(resp)
        }
        (Method::GET, None | Some("metadata")) => {
            let b = state.code.blob(&grant, path).await.map_err(from_core)?;
            let (reader, _) = state.code.open_blob(&b).await.map_err(from_core)?;
            let mut resp =
                Body::from_stream(tokio_util::io::ReaderStream::new(reader)).into_response();
            blob_headers(resp.headers_mut(), &b);
            Ok(resp)
        }
        _ => Err(storage(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedHttpVerb",
            "This blob face takes PUT, HEAD and GET.",
        )),
    }
}

async fn put_blob(
    state: &AppState,
    grant: &UploadGrant,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    let blob_type = headers.get("x-ms-blob-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !blob_type.eq_ignore_ascii_case("BlockBlob") {
        return Err(storage(
            StatusCode::BAD_REQUEST,
            "InvalidHeaderValue",
            "x-ms-blob-type must be BlockBlob",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_FILE) {
        return Err(storage(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("A file may hold at most {} MiB.", MAX_UPLOAD_FILE / (1024 * 1024)),
        ));
    }
    let if_none_match = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == b"*");
    let meta = metadata(headers)?;
    let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
    let mut body = tokio_util::io::StreamReader::new(stream);
    let b = state
        .code
        .put_blob(grant, path, meta, if_none_match, &mut body)
        .await
        .map_err(from_core)?;
    tracing::debug!(upload = %grant.upload, size = b.size, "blob uploaded");
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    common_headers(h);
    if let Ok(v) = HeaderValue::from_str(&etag(&b)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(b.created_at)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert("x-ms-request-server-encrypted", HeaderValue::from_static("true"));
    Ok(resp)
}

async fn container(
    state: &AppState,
    grant: &UploadGrant,
    method: Method,
    comp: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    match (method, comp) {
        (Method::GET, Some("list")) => {
            let prefix = query.get("prefix").map(String::as_str).unwrap_or("");
            let limit = query
                .get("maxresults")
                .and_then(|m| m.parse::<u32>().ok())
                .map_or(MAX_LIST, |m| m.clamp(1, MAX_LIST));
            let with_meta = query.get("include").is_some_and(|i| i.contains("metadata"));
            let delimiter = query.get("delimiter").filter(|d| !d.is_empty());
            let blobs = state.code.list_blobs(grant, prefix, limit).await.map_err(from_core)?;
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
                 ServiceEndpoint=\"{}/blobstore/\" ContainerName=\"{}\"><Prefix>{}</Prefix>\
                 <MaxResults>{limit}</MaxResults><Blobs>",
                xml_escape(&state.public_url),
                xml_escape(&grant.upload),
                xml_escape(prefix),
            );
            let mut prefixes = std::collections::BTreeSet::new();
            for b in &blobs {
                if let Some(d) = delimiter
                    && let Some(i) = b.path[prefix.len().min(b.path.len())..].find(d.as_str())
                {
                    prefixes.insert(b.path[..prefix.len() + i + d.len()].to_string());
                    continue;
                }
                xml.push_str(&format!(
                    "<Blob><Name>{}</Name><Properties><Creation-Time>{}</Creation-Time>\
                     <Last-Modified>{}</Last-Modified><Etag>{}</Etag>\
                     <Content-Length>{}</Content-Length>\
                     <Content-Type>application/octet-stream</Content-Type>\
                     <BlobType>BlockBlob</BlobType><LeaseStatus>unlocked</LeaseStatus>\
                     <LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted>\
                     </Properties>",
                    xml_escape(&b.path),
                    http_date(b.created_at),
                    http_date(b.created_at),
                    xml_escape(&etag(b)),
                    b.size,
                ));
                if with_meta {
                    xml.push_str("<Metadata>");
                    for (k, v) in &b.metadata {
                        xml.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
                    }
                    xml.push_str("</Metadata>");
                }
                xml.push_str("</Blob>");
            }
            for p in prefixes {
                xml.push_str(&format!("<BlobPrefix><Name>{}</Name></BlobPrefix>", xml_escape(&p)));
            }
            xml.push_str("</Blobs><NextMarker /></EnumerationResults>");
            let mut resp = xml.into_response();
            let h = resp.headers_mut();
            common_headers(h);
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            Ok(resp)
        }
        (Method::GET | Method::HEAD, None | Some("metadata")) => {
            let mut resp = StatusCode::OK.into_response();
            common_headers(resp.headers_mut());
            resp.headers_mut().insert(header::ETAG, HeaderValue::from_static("\"0x0\""));
            Ok(resp)
        }
        _ => Err(storage(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedHttpVerb",
            "An upload area is listed (GET ?restype=container&comp=list); its blobs are put.",
        )),
    }
}
