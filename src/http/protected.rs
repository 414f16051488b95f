//! `GET /protected` (the tutorial's guarded route) and `GET /healthz`.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::authenticate;
use super::error::ApiError;
use super::json::{MessageResponse, json, static_json};

/// Answers only for a valid token; see [`Authenticated`](super::Authenticated).
#[utoipa::path(
    get,
    path = "/protected",
    tag = "tokens",
    summary = "The tutorial's guarded route: answers only for a valid token",
    description = "The token goes in the `token` query parameter (the tutorial's way) or in an \
        `Authorization: Bearer` header (safer: query strings end up in logs). When both are sent \
        they must be the same token.",
    security(("token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The token is valid.",
            body = MessageResponse, example = json!({"message": "This is a protected route."})),
        (status = 403, description = "No token (`Token is missing!`), or one that is not valid: \
            bad signature, another algorithm than HS256, expired, no `exp`, not yet valid, \
            further ahead than the token lifetime, an empty subject or `sub` and `user` that \
            differ, wrong issuer or audience, a query token and a Bearer token that differ, or \
            a `token` parameter or `Authorization` header given twice (`Token is invalid!`).",
            body = MessageResponse, example = json!({"message": "Token is invalid!"})),
    ),
)]
pub async fn protected(_: Checked) -> Response {
    // What `message(StatusCode::OK, "This is a protected route.")` writes, without serializing
    // it for every request (a unit test below holds the two together).
    static_json(StatusCode::OK, PROTECTED_BODY)
}

/// [`Authenticated`](super::Authenticated) as authd's own routes check it: strict or not and counted as the state says
/// (rather than as an `AuthPolicy` in the request's extensions says, which would cost an
/// allocation per request).
pub struct Checked;

impl FromRequestParts<AppState> for Checked {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(&state.tokens, state.strict, Some(&state.metrics), parts).map(|_| Self)
    }
}

/// The body of `/protected`'s 200 answer.
const PROTECTED_BODY: &str = "{\"message\":\"This is a protected route.\"}\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::json::message;

    #[tokio::test]
    async fn the_fixed_body_is_what_message_would_write() {
        let made = message(StatusCode::OK, "This is a protected route.");
        let bytes = axum::body::to_bytes(made.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], PROTECTED_BODY.as_bytes());
    }
}

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
pub async fn healthz(State(state): State<AppState>) -> Response {
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
