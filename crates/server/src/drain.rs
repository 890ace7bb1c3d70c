//! Answers that reach the client even when its request body was left unread.
//!
//! A handler that refuses early (401 before reading a scoring body, 413 past a limit, 400 on
//! a bad form) leaves the rest of the body in flight. Over HTTP/2 the stream is then reset
//! and curl reports `(92) Stream error in the HTTP/2 framing layer` instead of the status;
//! over HTTP/1.1 a client still writing gets a reset connection. So the request body is
//! shared with this layer, and whatever the handler did not read is read and discarded, up
//! to [`DRAIN_MAX`] bytes within [`DRAIN_TIME`], before the answer goes out. Beyond that
//! bound the connection is simply closed: an unauthenticated caller cannot make the server
//! read without end.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

/// At most this much of a refused request's body is read to let its answer through.
pub const DRAIN_MAX: usize = 8 * 1024 * 1024;
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

type Shared = Arc<Mutex<Option<Body>>>;

/// The body the handler sees: reads through to the shared one.
struct Tracked(Shared);

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// Runs the handler (`next`), then drains what it left unread (part of the router's one
/// middleware, `routes::around`).
pub async fn drain_unread<F, Fut>(req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next(Request::from_parts(parts, body)).await;
    }
    let shared: Shared = Arc::new(Mutex::new(Some(body)));
    let resp = next(Request::from_parts(parts, Body::new(Tracked(shared.clone())))).await;
    let rest = shared.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut body) = rest.filter(|b| !b.is_end_stream()) {
        let drained = async {
            let mut read = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > DRAIN_MAX {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
    }
    resp
}
