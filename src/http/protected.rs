//! `GET /protected` (the tutorial's guarded route) and `GET /healthz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::auth::Authenticated;
use super::json::{json, message};

/// Answers only for a valid token; see [`Authenticated`].
pub async fn protected(_: Authenticated) -> Response {
    message(StatusCode::OK, "This is a protected route.")
}

/// Health: 200 `{"status": "ok", "store": "ok"}`, or 200 `{"status": "degraded", "store":
/// "unavailable"}` when the database does not answer. Still 200 then: the process is alive and
/// `/protected` works, and with one database shared by every instance, failing the check would
/// take all of them out of a load balancer at once (and restart them for nothing).
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.sessions.store().ping().await {
        Ok(()) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "store": "ok"}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            json(
                StatusCode::OK,
                &serde_json::json!({"status": "degraded", "store": "unavailable"}),
            )
        }
    }
}
