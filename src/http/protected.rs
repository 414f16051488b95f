//! `GET /protected`: the tutorial's guarded route.

use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Authenticated;
use super::json::{MessageResponse, static_json};

/// Answers only for a valid token; see [`Authenticated`].
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
            differ, wrong issuer or audience, issued in a session that has ended (logout, \
            revocation, reuse detection), a query token and a Bearer token that differ, or a \
            `token` parameter or `Authorization` header given twice (`Token is invalid!`).",
            body = MessageResponse, example = json!({"message": "Token is invalid!"})),
    ),
)]
pub(super) async fn protected(_: Authenticated) -> Response {
    // What `message(StatusCode::OK, "This is a protected route.")` writes, without serializing
    // it for every request (a unit test below holds the two together).
    static_json(StatusCode::OK, PROTECTED_BODY)
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
