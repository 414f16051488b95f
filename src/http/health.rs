//! `GET /healthz`: the process is up, and whether the database answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::json::json;

/// The body of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `degraded` while the database does not answer.
    #[schema(value_type = String, pattern = "^(ok|degraded)$", example = "ok")]
    pub status: &'static str,
    /// `ok`, or `unavailable` while the database does not answer.
    #[schema(value_type = String, pattern = "^(ok|unavailable)$", example = "ok")]
    pub store: &'static str,
}

/// Health: 200 `{"status": "ok", "store": "ok"}`, or 200 `{"status": "degraded", "store":
/// "unavailable"}` when the tables logins need do not answer (missing, locked, or the database
/// down; a missing schema is applied again first). Still 200 then: the process is alive and
/// `/protected` works, and with one database shared by every instance, failing the check would
/// take all of them out of a load balancer at once (and restart them for nothing).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Health, with the database's state",
    responses((status = 200, description = "The server is up; `store` says whether the database answers.", body = HealthResponse)),
)]
pub(super) async fn healthz(State(state): State<AppState>) -> Response {
    match state.sessions.store().ping().await {
        Ok(()) => json(
            StatusCode::OK,
            &HealthResponse {
                status: "ok",
                store: "ok",
            },
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            json(
                StatusCode::OK,
                &HealthResponse {
                    status: "degraded",
                    store: "unavailable",
                },
            )
        }
    }
}
