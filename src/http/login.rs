//! `POST /login`: HTTP Basic credentials in, an access token out.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::json::{MessageResponse, json};
use crate::tokens;
use crate::transport::parse_basic;

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The access token (the tutorial's field): a compact HS256 JWT.
    #[schema(example = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoidXNlciJ9.c2lnbmF0dXJl")]
    pub token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, pattern = "^Bearer$", example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 1800)]
    pub expires_in: u64,
}

/// Checks the Basic credentials (one password hash, in the bounded pool) and issues a token.
#[utoipa::path(
    post,
    path = "/login",
    tag = "tokens",
    summary = "Log in with HTTP Basic credentials and get an access token",
    security(("basic" = [])),
    responses(
        (status = 200, description = "The credentials are right: a fresh access token.",
            body = LoginResponse,
            headers(
                ("Cache-Control" = String, description = "`no-store`: answers carrying tokens are not cached"),
                ("Pragma" = String, description = "`no-cache`"),
            )),
        (status = 401, description = "Wrong, missing or malformed credentials.",
            body = MessageResponse,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"authd\", charset=\"UTF-8\"`")),
            example = json!({"message": "Could not verify"})),
        (status = 503, description = "Password hashing is saturated; try again.",
            body = MessageResponse,
            headers(("Retry-After" = String, description = "Seconds to wait")),
            example = json!({"message": "Server busy"})),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| parse_basic(v.as_bytes()))
        .ok_or(ApiError::CouldNotVerify)?;
    let users = state.users.clone();
    let username = creds.username;
    let password = creds.password;
    let name = username.clone();
    let ok = state
        .hashing
        .run(move || users.check(&name, password.expose_secret().as_bytes()))
        .await
        .map_err(|_| ApiError::Busy)?;
    if !ok {
        tracing::info!(target: "authd::login", outcome = "bad_credentials", "login refused");
        return Err(ApiError::CouldNotVerify);
    }
    let issued = state.tokens.issue(&username, tokens::now()).map_err(|e| {
        tracing::error!(error = %e, "cannot sign a token");
        ApiError::Internal
    })?;
    let mut res = json(
        StatusCode::OK,
        &LoginResponse {
            token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
        },
    );
    // RFC 6749 §5.1: answers carrying tokens must not be cached.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}
