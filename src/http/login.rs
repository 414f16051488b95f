//! `POST /login`: HTTP Basic credentials in, an access token out.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::json::json;
use crate::metrics::LoginOutcome;
use crate::tokens;
use crate::transport::parse_basic;

/// A successful login.
#[derive(Debug, Serialize)]
pub struct LoginResponse {
    /// The access token (the tutorial's field).
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Checks the Basic credentials (one password hash, in the bounded pool) and issues a token.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(creds) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| parse_basic(v.as_bytes()))
    else {
        state.metrics.login(LoginOutcome::BadCredentials);
        return Err(ApiError::CouldNotVerify);
    };
    let users = state.users.clone();
    let username = creds.username;
    let password = creds.password;
    let name = username.clone();
    let ok = state
        .hashing
        .run(move || users.check(&name, password.expose_secret().as_bytes()))
        .await
        .map_err(|_| {
            state.metrics.login(LoginOutcome::Busy);
            ApiError::Busy
        })?;
    if !ok {
        state.metrics.login(LoginOutcome::BadCredentials);
        tracing::info!(target: "authd::login", outcome = "bad_credentials", "login refused");
        return Err(ApiError::CouldNotVerify);
    }
    let issued = state.tokens.issue(&username, tokens::now()).map_err(|e| {
        tracing::error!(error = %e, "cannot sign a token");
        ApiError::Internal
    })?;
    state.metrics.login(LoginOutcome::Ok);
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
