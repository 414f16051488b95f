//! The one HTTP error type: each variant owns its status code and its `{"message": ...}` body.
//! The domain errors become answers here (`From` impls, so handlers use `?`). The cause of a 5xx
//! travels with the answer (a [`Cause`] in its extensions) to the edge, which logs it once with
//! the route; it is never echoed to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::auth::Refusal;
use super::json::message;
#[cfg(feature = "server")]
use crate::sessions::SessionError;
#[cfg(feature = "server")]
use crate::store::StoreError;
#[cfg(feature = "server")]
use crate::throttle::ThrottleError;

/// Why a request was answered 5xx, for the log: what failed and the error it failed with. Never
/// sent to the client; the edge logs it with the route (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause(Arc<str>);

impl Cause {
    /// `what` failed with `error`.
    pub fn new(what: &str, error: &dyn std::fmt::Display) -> Self {
        Self(format!("{what}: {error}").into())
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything an HTTP handler can answer with instead of success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A refresh token that is unknown, expired, spent or revoked: 401 "Refresh token is invalid!".
    #[error("Refresh token is invalid!")]
    RefreshTokenInvalid,
    /// Login refused by the throttle: 429 "Too many attempts" with `Retry-After` (seconds).
    #[error("Too many attempts")]
    TooManyAttempts {
        /// Seconds until the ban ends.
        retry_after: u64,
    },
    /// The store is down or too slow: 503 "Service unavailable". The cause is logged.
    #[error("Service unavailable")]
    StoreUnavailable(Cause),
    /// A request body that is not what the route takes: 400 with what was expected.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A body in a format the route does not take: 415.
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    /// Login with wrong, missing or malformed credentials: 401 "Could not verify".
    #[error("Could not verify")]
    CouldNotVerify,
    /// No token presented: 403 "Token is missing!".
    #[error("Token is missing!")]
    TokenMissing,
    /// A token that does not verify: 403 "Token is invalid!".
    #[error("Token is invalid!")]
    TokenInvalid,
    /// A valid token whose holder is not allowed here (not in the group a route requires): 403
    /// "Forbidden"; in strict mode with RFC 6750's `insufficient_scope` challenge.
    #[error("Forbidden")]
    Forbidden {
        /// Whether the check is strict (RFC 6750).
        strict: bool,
    },
    /// Strict mode (RFC 6750), a refused token: 401 "Token is missing!" or "Token is invalid!", or
    /// 400 for a token in the query string or a malformed Bearer header; each with the challenge
    /// [`Refusal::challenge`] decides.
    #[error("{}", bearer_message(*.0))]
    Bearer(Refusal),
    /// Nothing here in this configuration (the public keys under HS256): 404 with why.
    #[error("{0}")]
    NotFound(&'static str),
    /// Password hashing is saturated: 503 "Server busy" with `Retry-After`.
    #[error("Server busy")]
    Busy,
    /// The request target is too long: 414.
    #[error("URI Too Long")]
    UriTooLong,
    /// Too many or too large headers: 431.
    #[error("Request Header Fields Too Large")]
    HeadersTooLarge,
    /// Something failed on our side: 500. The cause is logged.
    #[error("Internal server error")]
    Internal(Cause),
}

/// The realm named in `WWW-Authenticate` on 401 answers.
pub const BASIC_CHALLENGE: &str = r#"Basic realm="authd", charset="UTF-8""#;
/// The Bearer challenge for a request with no token (RFC 6750 §3).
pub const BEARER_CHALLENGE: &str = r#"Bearer realm="authd""#;
/// The Bearer challenge for a token that does not verify (RFC 6750 §3.1).
pub const BEARER_INVALID_TOKEN: &str = r#"Bearer realm="authd", error="invalid_token", error_description="The access token is invalid or expired""#;
/// The Bearer challenge for a valid token that does not allow the request (RFC 6750 §3.1).
pub const BEARER_INSUFFICIENT_SCOPE: &str = r#"Bearer realm="authd", error="insufficient_scope", error_description="The access token's user is not allowed here""#;
/// The Bearer challenge for a malformed request (RFC 6750 §3.1).
pub const BEARER_INVALID_REQUEST: &str = r#"Bearer realm="authd", error="invalid_request", error_description="Send the token in an Authorization: Bearer header only""#;

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::CouldNotVerify | Self::RefreshTokenInvalid => StatusCode::UNAUTHORIZED,
            Self::Bearer(Refusal::BadRequest) => StatusCode::BAD_REQUEST,
            Self::Bearer(_) => StatusCode::UNAUTHORIZED,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TokenMissing | Self::TokenInvalid | Self::Forbidden { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = message(self.status(), &self.to_string());
        let challenge = match &self {
            Self::CouldNotVerify => Some(BASIC_CHALLENGE),
            Self::Bearer(refusal) => Some(refusal.challenge(true)),
            Self::Forbidden { strict: true } => Some(BEARER_INSUFFICIENT_SCOPE),
            _ => None,
        };
        if let Some(c) = challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        match self {
            Self::Busy => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyAttempts { retry_after } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::StoreUnavailable(cause) | Self::Internal(cause) => {
                res.extensions_mut().insert(cause);
            }
            _ => {}
        }
        res
    }
}

#[cfg(feature = "server")]
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::StoreUnavailable(Cause::new("store unavailable", &e))
    }
}

#[cfg(feature = "server")]
impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Invalid | SessionError::Reused => Self::RefreshTokenInvalid,
            SessionError::Store(e) => e.into(),
            SessionError::Random(e) => {
                Self::Internal(Cause::new("no random bytes for a refresh token", &e))
            }
        }
    }
}

#[cfg(feature = "server")]
impl From<ThrottleError> for ApiError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited { retry_after } => Self::TooManyAttempts { retry_after },
            ThrottleError::Busy => Self::Busy,
            ThrottleError::Store(e) => e.into(),
        }
    }
}

/// The message of a strict-mode refusal: the tutorial's words where they fit.
fn bearer_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Missing => "Token is missing!",
        Refusal::Invalid | Refusal::Expired => "Token is invalid!",
        Refusal::BadRequest => "Send the token in an Authorization: Bearer header only",
    }
}
