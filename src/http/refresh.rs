//! `POST /refresh` (a spent refresh token in, new tokens out; RFC 6749 §6) and `POST /logout`
//! (the session ends; RFC 7009 §2.2: the same answer whether or not the token was known). Both
//! take `{"refresh_token": ...}` as JSON or the form-encoded parameters of the RFCs.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::login::token_response;
use crate::metrics::RefreshOutcome;
use crate::sessions::SessionError;
use crate::tokens;

/// The body of `/refresh` and `/logout`: JSON, or the form of RFC 6749 §6. `Debug` does not
/// show the token.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from `/login` or the last `/refresh`.
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { refresh_token: [REDACTED] }")
    }
}

const EXPECTED: &str = "Expected a refresh_token: JSON {\"refresh_token\": \"...\"} or form grant_type=refresh_token&refresh_token=...";

/// Spends the refresh token and answers a new access token and refresh token.
#[utoipa::path(
    post,
    path = "/refresh",
    tag = "sessions",
    summary = "Trade a refresh token for a new access token and a new refresh token",
    description = "The refresh token presented is spent. Presenting a spent one again revokes its \
        whole session (reuse detection). The form body may also carry `grant_type=refresh_token`.",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "New tokens.", body = super::LoginResponse,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "A body without a refresh token.", body = super::MessageResponse),
        (status = 401, description = "Unknown, expired, spent or revoked refresh token.",
            body = super::MessageResponse, example = json!({"message": "Refresh token is invalid!"})),
        (status = 415, description = "A body that is neither JSON nor a form.", body = super::MessageResponse),
        (status = 503, description = "The database does not answer.", body = super::MessageResponse),
    ),
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let presented = presented_token(&headers, &body, Route::Refresh)?;
    let now = tokens::now();
    // The answer is made before the rotation commits (see `Sessions::rotate_then`): a user
    // removed from the users file since the login ends the session here instead.
    let answered = state
        .sessions
        .rotate_then(&presented, now, |rotated| {
            state.users.load().contains(&rotated.username).then(|| {
                token_response(
                    &state,
                    &rotated.username,
                    &rotated.sid,
                    rotated.refresh_token.0.clone(),
                    now,
                )
            })
        })
        .await;
    // The outcome, decided once and counted once.
    let outcome = match &answered {
        Ok(Ok(_)) => RefreshOutcome::Ok,
        Err(SessionError::Reused) => RefreshOutcome::Reused,
        Err(SessionError::Store(_)) | Ok(Err(_)) => RefreshOutcome::Unavailable,
        Err(SessionError::Invalid | SessionError::Random(_)) => RefreshOutcome::Invalid,
    };
    state.metrics.refresh(outcome);
    answered?
}

/// Revokes the session of the refresh token; 204 whether or not it was known.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "sessions",
    summary = "End the session of a refresh token",
    description = "Answers 204 for a known and an unknown token alike (RFC 7009 §2.2). The access \
        tokens issued in the session end with it, on every instance within a second. The form \
        body may say `token=` (RFC 7009) instead.",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 204, description = "The session, if there was one, is over."),
        (status = 400, description = "A body without a refresh token.", body = super::MessageResponse),
        (status = 415, description = "A body that is neither JSON nor a form.", body = super::MessageResponse),
        (status = 503, description = "The database does not answer.", body = super::MessageResponse),
    ),
)]
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let presented = presented_token(&headers, &body, Route::Logout)?;
    state.sessions.revoke(&presented, tokens::now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Refresh,
    Logout,
}

/// The refresh token in the body, by its `Content-Type`.
fn presented_token(headers: &HeaderMap, body: &[u8], route: Route) -> Result<String, ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "application/json" => serde_json::from_slice::<RefreshRequest>(body)
            .map(|r| r.refresh_token)
            .map_err(|_| ApiError::BadRequest(EXPECTED)),
        "application/x-www-form-urlencoded" => from_form(body, route),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// `grant_type=refresh_token&refresh_token=...` (RFC 6749 §6); `/logout` also takes RFC 7009's
/// `token=...`. A parameter given twice is refused (RFC 6749 §3.1).
fn from_form(body: &[u8], route: Route) -> Result<String, ApiError> {
    let mut token = None;
    let mut grant_type = None;
    for (key, value) in form_urlencoded::parse(body) {
        let slot = match (key.as_ref(), route) {
            ("refresh_token", _) | ("token", Route::Logout) => &mut token,
            ("grant_type", _) => &mut grant_type,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::BadRequest("A parameter appears twice"));
        }
    }
    if route == Route::Refresh && grant_type.as_deref().is_some_and(|g| g != "refresh_token") {
        return Err(ApiError::BadRequest("Unsupported grant_type"));
    }
    token.ok_or(ApiError::BadRequest(EXPECTED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h
    }

    #[test]
    fn debug_output_of_token_bodies_and_answers_shows_no_token() {
        let request = RefreshRequest {
            refresh_token: "rt-secret-1".into(),
        };
        let response = crate::http::login::LoginResponse {
            token: "at-secret-2".into(),
            token_type: "Bearer",
            expires_in: 60,
            refresh_token: "rt-secret-3".into(),
        };
        let shown = format!("{request:?} {response:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("expires_in: 60"), "{shown}");
    }

    #[test]
    fn token_is_read_from_json_and_form_bodies() {
        let json = headers("application/json; charset=utf-8");
        assert_eq!(
            presented_token(&json, br#"{"refresh_token":"abc"}"#, Route::Refresh),
            Ok("abc".to_owned())
        );
        let form = headers("application/x-www-form-urlencoded");
        assert_eq!(
            presented_token(
                &form,
                b"grant_type=refresh_token&refresh_token=a%2Bb",
                Route::Refresh
            ),
            Ok("a+b".to_owned())
        );
        assert_eq!(
            presented_token(
                &form,
                b"token=xyz&token_type_hint=refresh_token",
                Route::Logout
            ),
            Ok("xyz".to_owned())
        );
    }

    #[test]
    fn malformed_bodies_are_400_and_other_types_415() {
        let json = headers("application/json");
        for body in [&b""[..], b"{", b"{}", br#"{"refresh_token":5}"#, b"[]"] {
            assert!(
                matches!(
                    presented_token(&json, body, Route::Refresh),
                    Err(ApiError::BadRequest(_))
                ),
                "{body:?}"
            );
        }
        let form = headers("application/x-www-form-urlencoded");
        for body in [
            &b"grant_type=password&refresh_token=x"[..],
            b"refresh_token=a&refresh_token=b",
            b"grant_type=refresh_token",
            b"token=x",
        ] {
            assert!(
                matches!(
                    presented_token(&form, body, Route::Refresh),
                    Err(ApiError::BadRequest(_))
                ),
                "{body:?}"
            );
        }
        assert_eq!(
            presented_token(&headers("text/plain"), b"x", Route::Refresh),
            Err(ApiError::UnsupportedMediaType)
        );
        assert_eq!(
            presented_token(&HeaderMap::new(), b"x", Route::Logout),
            Err(ApiError::UnsupportedMediaType)
        );
    }
}
