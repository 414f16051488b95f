//! A JSON body for every error answer: those made by our handlers already have one; those made
//! by routing, the extractors and tower-http's parts (404, 405, 408, 413, 415, 422, ...) get
//! `{"message": reason}`, keeping their status and headers (such as `Allow`).

use axum::body::Body;
use axum::http::{Response, header};

use crate::http::json::message;

/// Marks an error answer whose body is exactly what its handler made, such as `/verify`'s empty
/// 401 that a proxy could otherwise pass on to its client: the JSON rewrite leaves it alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepBody;

/// `res`, with a JSON body if it is an error answer without one.
pub(super) fn json_errors(res: Response<Body>) -> Response<Body> {
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
