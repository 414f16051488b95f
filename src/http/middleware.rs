//! Cross-cutting layers: request size checks answered in JSON, the JSON rewrite of answers that
//! other layers produce as plain text (404, 405, 408, 413, ...), latency metrics by route, and
//! the one-line request log.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Response, header};
use axum::middleware::Next;
use axum::response::IntoResponse;

use super::error::ApiError;
use super::json::message;
use crate::metrics::Metrics;

/// Marks an error answer whose body is exactly what its handler made, such as `/verify`'s empty
/// 401 that a proxy could otherwise pass on to its client: `json_errors` leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

/// Head limits enforced by the `head_limit` middleware.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Largest target plus headers, in bytes.
    pub max_head_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
}

/// Answers 414 for a target longer than the head limit, 431 for too many or too large headers.
pub async fn head_limit(
    State(limits): State<HeadLimits>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_head_bytes {
        return ApiError::UriTooLong.into_response();
    }
    let headers = req.headers();
    if headers.len() > limits.max_headers {
        return ApiError::HeadersTooLarge.into_response();
    }
    // Name, value, ": " and CRLF, as they stood on the wire.
    let size = headers
        .iter()
        .fold(target, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    if size > limits.max_head_bytes {
        return ApiError::HeadersTooLarge.into_response();
    }
    next.run(req).await
}

/// Gives every error answer a JSON body: those made by our handlers already have one; those made
/// by routing and by tower layers (404, 405, 408, 413, 415, 422, ...) get `{"message": reason}`,
/// keeping their status and headers (such as `Allow`).
pub async fn json_errors(res: Response<Body>) -> Response<Body> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.extensions().get::<KeepBody>().is_some()
    {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let text = status.canonical_reason().unwrap_or("Error");
    let fresh = message(status, text);
    parts.headers.remove(header::CONTENT_LENGTH);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.extend(fresh_parts.headers);
    Response::from_parts(parts, body)
}

/// The one log line of a request (method, path, status, latency) and its latency under its
/// matched route in the metrics (not the raw path, which would make a series per distinct URL).
/// The query string is never logged: it may carry `token=`. One event and no span per request:
/// a span costs an allocation and a registry entry on the hot path.
pub async fn track_request(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = Instant::now();
    let res = next.run(req).await;
    let latency = start.elapsed();
    metrics.request_duration(route.as_ref().map(MatchedPath::as_str), latency);
    tracing::info!(
        target: "authd::http",
        method = %method,
        path = %uri.path(),
        status = res.status().as_u16(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "served"
    );
    res
}
