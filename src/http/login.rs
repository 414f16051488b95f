//! `POST /login`: HTTP Basic credentials in, an access token and a refresh token out; failed
//! attempts counted by the throttle, which refuses (429) before any password is hashed.

use std::future::Future;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::client_addr::ClientAddr;
use super::error::{ApiError, Cause};
use super::json::{MessageResponse, json};
use crate::metrics::LoginOutcome;
use crate::throttle::{Attempt, site_key};
use crate::tokens;
use crate::transport::parse_basic;

/// The longest a login waits for a place in the hashing pool before it is answered 503; well
/// within the request timeout, with the throttle's own wait.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A successful login or refresh. `Debug` shows neither token.
#[derive(Serialize, ToSchema)]
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
    /// The refresh token: opaque, for `POST /refresh` and `POST /logout` only.
    pub refresh_token: String,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"[REDACTED]")
            .finish()
    }
}

/// Checks the throttle, then the Basic credentials (one password hash, in the bounded pool), and
/// issues an access token and starts a session.
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
        (status = 429, description = "Too many failed logins for this user or address: banned for a while (no password is checked).",
            body = MessageResponse,
            headers(("Retry-After" = String, description = "Seconds until the ban ends")),
            example = json!({"message": "Too many attempts"})),
        (status = 503, description = "Password hashing is saturated (after up to 2 s in line), earlier attempts for the same user or address are still undecided after 3 s, or the database does not answer; try again.",
            body = MessageResponse,
            headers(("Retry-After" = String, description = "Seconds to wait")),
            example = json!({"message": "Server busy"})),
    ),
)]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| parse_basic(v.as_bytes()));
    let Some(creds) = creds else {
        let refused = Err(ApiError::CouldNotVerify);
        count(&state, false, &refused);
        return refused;
    };
    sign_in(
        &state,
        client,
        creds.username,
        creds.password,
        |state, attempt, username, now| async move {
            // The throttle's forgiveness and the new session: one transaction, one commit.
            let started = state
                .sessions
                .start_after(&state.throttle, &attempt, &username, now)
                .await?;
            token_response(
                &state,
                &username,
                &started.sid,
                started.refresh_token.0,
                now,
            )
        },
    )
    .await
}

/// The one credential check of `POST /login` and `POST /signin`: the throttle, a place in the
/// hashing pool, the password (with the users file's timing defence), then `finish` with the
/// throttle's attempt, the user and the time, to record the success (forgive the attempt and
/// start a session, in one commit) and make the answer. The whole attempt runs to its verdict in
/// a task of its own: it is counted in the throttle when it begins and forgiven when it succeeds,
/// and a client that hung up, or the request timeout, must not cut it off in between and leave it
/// counted as a failure (a few such hang-ups under load would ban a user who never guessed).
/// Counted in the login metrics and logged like a login.
pub(super) async fn sign_in<T, F, Fut>(
    state: &AppState,
    client: std::net::IpAddr,
    username: String,
    password: secrecy::SecretString,
    finish: F,
) -> Result<T, ApiError>
where
    F: FnOnce(AppState, Attempt, String, i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    let task_state = state.clone();
    let result = tokio::spawn(async move {
        let attempt = judge(&task_state, client, &username, password).await?;
        finish(task_state, attempt, username, tokens::now()).await
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::Internal(Cause::new("a login task failed", &e))));
    count(state, true, &result);
    result
}

/// Counts a login's outcome, and logs a refusal of credentials that were there to judge.
fn count<T>(state: &AppState, judged: bool, result: &Result<T, ApiError>) {
    let outcome = match result {
        Ok(_) => LoginOutcome::Ok,
        Err(ApiError::CouldNotVerify) => LoginOutcome::BadCredentials,
        Err(ApiError::TooManyAttempts { .. }) => LoginOutcome::Throttled,
        Err(ApiError::Busy) => LoginOutcome::Busy,
        Err(_) => LoginOutcome::Unavailable,
    };
    state.metrics.login(outcome);
    if judged
        && matches!(
            outcome,
            LoginOutcome::BadCredentials | LoginOutcome::Throttled
        )
    {
        tracing::info!(target: "authd::login", outcome = outcome.label(), "login refused");
    }
}

/// Reserves a hashing place, counts the attempt and checks the password: the attempt, to be
/// forgiven when the success is recorded.
async fn judge(
    state: &AppState,
    client: std::net::IpAddr,
    username: &str,
    password: secrecy::SecretString,
) -> Result<Attempt, ApiError> {
    // A place for the hash first: when hashing is saturated the answer is 503 (after a short
    // wait in a line that serves the addresses holding the fewest places first), before the
    // attempt is written to the database (so a flood costs the store nothing).
    let slot = state
        .hashing
        .reserve_for(&site_key(client), HASH_WAIT)
        .await
        .map_err(|_| ApiError::Busy)?;
    let attempt = state
        .throttle
        .begin(username, client, tokens::now())
        .await?;
    // The users as they are now; a reload meanwhile does not change this login's answer.
    let users = state.users.load_full();
    let name = username.to_owned();
    let checked = slot
        .run(move || users.check(&name, password.expose_secret().as_bytes()))
        .await;
    let Ok(ok) = checked else {
        // The password was never looked at (the pool is gone, or hashing panicked): this attempt
        // does not count towards a ban.
        if let Err(e) = state.throttle.withdrawn(&attempt).await {
            tracing::warn!(error = %e, "cannot withdraw a login attempt from the throttle");
        }
        return Err(ApiError::Busy);
    };
    if !ok {
        return Err(ApiError::CouldNotVerify);
    }
    Ok(attempt)
}

/// The answer to a login or a refresh: a new access token of the session `sid` beside
/// `refresh_token`, not cacheable.
pub(super) fn token_response(
    state: &AppState,
    username: &str,
    sid: &str,
    refresh_token: String,
    now: i64,
) -> Result<Response, ApiError> {
    let issued = state
        .check
        .keys()
        .issue_in_session(
            username,
            state.users.load().groups_of(username),
            Some(sid),
            now,
        )
        .map_err(|e| ApiError::Internal(Cause::new("cannot sign a token", &e)))?;
    let mut res = json(
        StatusCode::OK,
        &LoginResponse {
            token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token,
        },
    );
    // RFC 6749 §5.1: answers carrying tokens must not be cached.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}
