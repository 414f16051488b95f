//! `GET /protected` (the tutorial's guarded route) and `GET /healthz`.

use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Authenticated;
use super::json::{json, message};

/// Answers only for a valid token; see [`Authenticated`].
pub async fn protected(_: Authenticated) -> Response {
    message(StatusCode::OK, "This is a protected route.")
}

/// Liveness: 200 `{"status": "ok"}`.
pub async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}
