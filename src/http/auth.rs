//! The token check as an axum extractor: what the tutorial's `token_required` decorator does.
//! A handler that takes [`Authenticated`] runs only for a valid token; otherwise the request is
//! answered 403 "Token is missing!" or "Token is invalid!", or in strict mode with the RFC 6750
//! answers (401 or 400 with a `WWW-Authenticate: Bearer` challenge). The check itself,
//! [`check_token`], is shared with `/verify`.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::metrics::{Metrics, TokenOutcome};
use crate::tokens::{self, Claims, TokenKeys, VerifyError};
use crate::transport::{PresentedToken, find_token, query_token};

/// The verified claims of the request's access token, from `?token=` or `Authorization: Bearer`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

/// How tokens are checked, besides the keys: the strictness and where outcomes are counted.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    /// RFC 6750 mode: only the `Authorization: Bearer` header carries a token, and refusals are
    /// 401/400 with a `WWW-Authenticate: Bearer` challenge.
    pub strict: bool,
    /// Where token-check outcomes are counted, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
}

impl AuthPolicy {
    /// Counts the outcome of a check.
    pub fn count(&self, outcome: TokenOutcome) {
        if let Some(m) = &self.metrics {
            m.token_check(outcome);
        }
    }
}

/// Why a request's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or an empty one.
    Missing,
    /// A token that does not verify, or query and Bearer tokens that differ.
    Invalid,
    /// A correctly signed token past its expiry.
    Expired,
    /// Strict mode: a token in the query string, or a Bearer header that is not text.
    BadRequest,
}

impl Refusal {
    /// The metrics outcome of this refusal.
    pub fn outcome(self) -> TokenOutcome {
        match self {
            Self::Missing => TokenOutcome::Missing,
            Self::Expired => TokenOutcome::Expired,
            Self::Invalid | Self::BadRequest => TokenOutcome::Invalid,
        }
    }
}

/// Finds and verifies the token of a request whose query string is `query` (the one that may
/// carry `token=`) and whose `Authorization` header is `authorization`. Counts nothing: the
/// caller decides what the outcome is.
pub fn check_token(
    keys: &TokenKeys,
    strict: bool,
    query: Option<&str>,
    authorization: Option<&[u8]>,
) -> Result<Claims, Refusal> {
    // RFC 9700 §4.3.2: tokens in URLs leak into logs and histories; strict mode refuses them
    // (an empty `token=` included), rather than ignoring them.
    let query = if strict {
        if query.and_then(query_token).is_some() {
            return Err(Refusal::BadRequest);
        }
        None
    } else {
        query
    };
    match find_token(query, authorization) {
        PresentedToken::Missing => Err(Refusal::Missing),
        PresentedToken::Conflicting if strict => Err(Refusal::BadRequest),
        PresentedToken::Conflicting => Err(Refusal::Invalid),
        PresentedToken::Token(token) => keys.verify(&token, tokens::now()).map_err(|e| match e {
            VerifyError::Expired => Refusal::Expired,
            VerifyError::Invalid => Refusal::Invalid,
        }),
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<TokenKeys>: FromRef<S>,
    AuthPolicy: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<TokenKeys>::from_ref(state);
        let policy = AuthPolicy::from_ref(state);
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let result = check_token(&keys, policy.strict, parts.uri.query(), authorization);
        policy.count(
            result
                .as_ref()
                .map_or_else(|r| r.outcome(), |_| TokenOutcome::Ok),
        );
        result
            .map(Self)
            .map_err(|refusal| match (policy.strict, refusal) {
                (false, Refusal::Missing) => ApiError::TokenMissing,
                (false, _) => ApiError::TokenInvalid,
                (true, Refusal::Missing) => ApiError::BearerMissing,
                (true, Refusal::Invalid | Refusal::Expired) => ApiError::BearerInvalid,
                (true, Refusal::BadRequest) => ApiError::BearerBadRequest,
            })
    }
}
