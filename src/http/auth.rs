//! The token check, for authd's own routes and for other axum services: what the tutorial's
//! `token_required` decorator does. As an extractor ([`Authenticated`]) or as a tower layer
//! ([`RequireToken`]); both refuse with 403 "Token is missing!" or "Token is invalid!" — or, where
//! an [`AuthPolicy`] in the request's extensions says strict (authd's `AUTHD_STRICT`), with the
//! RFC 6750 answers (401 or 400 with a `WWW-Authenticate: Bearer` challenge). The check itself,
//! [`check_token`], is shared with `/verify`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::error::ApiError;
use crate::metrics::{Metrics, TokenOutcome};
use crate::tokens::{self, Claims, TokenKeys, VerifyError};
use crate::transport::{PresentedToken, find_token, query_names_a_token};

/// How tokens are checked, besides the keys: the strictness and where outcomes are counted.
/// [`Authenticated`] finds it in the request's extensions (add it with `axum::Extension`);
/// without one it checks as the tutorial does and counts nothing. (authd's own routes take it from
/// their state instead.)
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
    /// A token that does not verify, query and Bearer tokens that differ, a token given twice,
    /// or (on `/verify`) original URIs that disagree.
    Invalid,
    /// A correctly signed token past its expiry.
    Expired,
    /// Strict mode: a token in the query string (`token` or `access_token`), a Bearer header
    /// that is not text or is sent twice, or (on `/verify`) original URIs that disagree.
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

    /// The answer to this refusal: the tutorial's 403s, or RFC 6750's in strict mode.
    pub fn to_api_error(self, strict: bool) -> ApiError {
        match (strict, self) {
            (false, Self::Missing) => ApiError::TokenMissing,
            (false, _) => ApiError::TokenInvalid,
            (true, Self::Missing) => ApiError::BearerMissing,
            (true, Self::Invalid | Self::Expired) => ApiError::BearerInvalid,
            (true, Self::BadRequest) => ApiError::BearerBadRequest,
        }
    }
}

/// Finds and verifies the token of a request whose query string is `query` (the one that may
/// carry `token=`) and whose `Authorization` header values are `authorization` (every value the
/// request sent, as `HeaderMap::get_all` gives them, or an `Option` for one or none: a repeated
/// header is refused). Counts nothing: the caller decides what the outcome is.
pub fn check_token<'a>(
    keys: &TokenKeys,
    strict: bool,
    query: Option<&'a str>,
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Claims, Refusal> {
    // RFC 9700 §4.3.2: tokens in URLs leak into logs and histories; strict mode refuses them
    // (an empty `token=` included, and RFC 6750's own `access_token=`), rather than ignoring them.
    let query = if strict {
        if query.is_some_and(query_names_a_token) {
            return Err(Refusal::BadRequest);
        }
        None
    } else {
        query
    };
    match find_token(query, authorization) {
        PresentedToken::Missing => Err(Refusal::Missing),
        // RFC 6750 §3.1: a request that repeats a parameter or uses more than one method is an
        // `invalid_request`.
        PresentedToken::Conflicting if strict => Err(Refusal::BadRequest),
        PresentedToken::Conflicting => Err(Refusal::Invalid),
        PresentedToken::Token(token) => keys.verify(&token, tokens::now()).map_err(|e| match e {
            VerifyError::Expired => Refusal::Expired,
            VerifyError::Invalid => Refusal::Invalid,
        }),
    }
}

/// Every `Authorization` value of a request, for [`check_token`].
pub(crate) fn authorization_values(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::AUTHORIZATION)
        .into_iter()
        .map(|v| v.as_bytes())
}

/// Checks the access token of a request with this URI and these headers: from `?token=` or
/// `Authorization: Bearer`, HS256 only, signature, `exp` (and `nbf`, `iss`, `aud` as configured).
///
/// This is the whole check behind [`Authenticated`] and [`RequireToken`]; it is public for
/// services that are not built on axum's extractors.
pub fn verify_request(
    keys: &TokenKeys,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Claims, ApiError> {
    check_token(keys, false, uri.query(), authorization_values(headers))
        .map_err(|r| r.to_api_error(false))
}

/// The verified claims of the request's access token, from `?token=` or `Authorization: Bearer`.
///
/// As an extractor it needs the keys in the router's state (`Arc<TokenKeys>: FromRef<S>`; an
/// `Arc<TokenKeys>` as the whole state will do). A handler that takes it runs only for a valid
/// token; otherwise the request is answered 403 `{"message": "Token is missing!"}` or
/// `{"message": "Token is invalid!"}`.
///
/// Behind [`RequireToken`] there is no need to check again: the layer puts the claims in the
/// request's extensions, where `axum::Extension<Authenticated>` finds them.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<TokenKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<TokenKeys>::from_ref(state);
        let policy = parts.extensions.get::<AuthPolicy>();
        let strict = policy.is_some_and(|p| p.strict);
        let metrics = policy.and_then(|p| p.metrics.as_deref());
        authenticate(&keys, strict, metrics, parts).map(Self)
    }
}

/// The check of [`Authenticated`] with its policy spelled out: finds and verifies the token of a
/// request, counts the outcome in `metrics`, and makes the refusal's answer.
pub(crate) fn authenticate(
    keys: &TokenKeys,
    strict: bool,
    metrics: Option<&Metrics>,
    parts: &Parts,
) -> Result<Claims, ApiError> {
    let result = check_token(
        keys,
        strict,
        parts.uri.query(),
        authorization_values(&parts.headers),
    );
    if let Some(m) = metrics {
        m.token_check(
            result
                .as_ref()
                .map_or_else(|r| r.outcome(), |_| TokenOutcome::Ok),
        );
    }
    result.map_err(|refusal| refusal.to_api_error(strict))
}

/// A tower layer that lets through only requests with a valid access token, and answers the
/// others 403 `{"message": ...}` as authd does. The claims of a request let through are in its
/// extensions as [`Authenticated`].
///
/// Put it on the routes to protect with `Router::route_layer` (so that unknown paths still answer
/// 404 rather than 403).
#[derive(Debug, Clone)]
pub struct RequireToken {
    keys: Arc<TokenKeys>,
}

impl RequireToken {
    /// A layer checking tokens against `keys` (build them once with [`TokenKeys::new`] from the
    /// secret authd signs with).
    pub fn new(keys: Arc<TokenKeys>) -> Self {
        Self { keys }
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            keys: Arc::clone(&self.keys),
        }
    }
}

/// The service made by [`RequireToken`].
#[derive(Debug, Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    keys: Arc<TokenKeys>,
}

/// The future of [`RequireTokenService`]: the inner service's answer, or the refusal.
pub type RequireTokenFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> Service<Request> for RequireTokenService<S>
where
    S: Service<Request, Response = Response> + Send,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequireTokenFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match verify_request(&self.keys, req.uri(), req.headers()) {
            Ok(claims) => {
                req.extensions_mut().insert(Authenticated(claims));
                Box::pin(self.inner.call(req))
            }
            Err(refusal) => {
                let res = refusal.into_response();
                Box::pin(async move { Ok(res) })
            }
        }
    }
}
