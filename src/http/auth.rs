//! The token check, for authd's own routes and for other axum services: what the tutorial's
//! `token_required` decorator does. As an extractor ([`Authenticated`]) or as a tower layer
//! ([`RequireToken`]); both refuse with 403 "Token is missing!" or "Token is invalid!".

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
use crate::tokens::{self, Claims, TokenKeys, VerifyError};
use crate::transport::{PresentedToken, find_token};

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
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match find_token(uri.query(), authorization) {
        PresentedToken::Missing => Err(ApiError::TokenMissing),
        PresentedToken::Conflicting => Err(ApiError::TokenInvalid),
        PresentedToken::Token(token) => match keys.verify(&token, tokens::now()) {
            Ok(claims) => Ok(claims),
            Err(VerifyError::Expired | VerifyError::Invalid) => Err(ApiError::TokenInvalid),
        },
    }
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
        verify_request(&keys, &parts.uri, &parts.headers).map(Self)
    }
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
