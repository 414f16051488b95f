//! JSON answers, written the way the tutorial's Flask app writes them: compact, with a trailing
//! newline, `Content-Type: application/json`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
#[cfg(feature = "server")]
use utoipa::ToSchema;

/// `Content-Type` of every answer.
pub(super) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Serializes `value` as the body of a `status` answer.
pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            with_body(status, Body::from(body))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a response");
            with_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                Body::from(&b"{\"message\":\"Internal server error\"}\n"[..]),
            )
        }
    }
}

/// The body of every error and of `/protected`'s success: `{"message": text}`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[cfg_attr(feature = "server", schema(example = json!({"message": "Token is invalid!"})))]
pub struct MessageResponse<'a> {
    /// What happened, in the tutorial's words.
    pub message: &'a str,
}

/// `{"message": text}` with `status`.
pub(super) fn message(status: StatusCode, text: &str) -> Response {
    json(status, &MessageResponse { message: text })
}

/// A JSON answer whose body is fixed at compile time (no serializing on the hot path).
#[cfg(feature = "server")]
pub(super) fn static_json(status: StatusCode, body: &'static str) -> Response {
    with_body(status, Body::from(body))
}

fn with_body(status: StatusCode, body: Body) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, APPLICATION_JSON);
    res
}
