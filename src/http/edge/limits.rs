//! Head limits answered in JSON: 414 for a target longer than the head limit, 431 for too many
//! or too large headers. hyper's own caps, higher, close the connection past them.

use std::future::Ready;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Response, Uri};
use axum::response::IntoResponse as _;
use futures_util::future::Either;
use tower::Service;

use crate::http::error::ApiError;

/// The part of the edge answering requests past the head limits.
#[derive(Debug, Clone)]
pub struct HeadLimits<S> {
    inner: S,
    max_head_bytes: usize,
    max_headers: usize,
}

impl<S> HeadLimits<S> {
    /// `inner`, for requests whose target and headers fit in `max_head_bytes` and that have at
    /// most `max_headers` headers.
    pub(crate) fn new(inner: S, max_head_bytes: usize, max_headers: usize) -> Self {
        Self {
            inner,
            max_head_bytes,
            max_headers,
        }
    }

    /// 414 or 431 when the head is past a limit.
    fn refusal(&self, uri: &Uri, headers: &HeaderMap) -> Option<ApiError> {
        let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
        if target > self.max_head_bytes {
            return Some(ApiError::UriTooLong);
        }
        if headers.len() > self.max_headers {
            return Some(ApiError::HeadersTooLarge);
        }
        // Name, value, ": " and CRLF, as they stood on the wire.
        let size = headers
            .iter()
            .fold(target, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
        (size > self.max_head_bytes).then_some(ApiError::HeadersTooLarge)
    }
}

impl<S, B> Service<Request<B>> for HeadLimits<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = HeadLimitsFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.refusal(req.uri(), req.headers()) {
            Some(e) => Either::Right(std::future::ready(Ok(e.into_response()))),
            None => Either::Left(self.inner.call(req)),
        }
    }
}

/// The future of [`HeadLimits`]: the inner service's answer, or the refusal, ready at once.
pub type HeadLimitsFuture<F, E> = Either<F, Ready<Result<Response<Body>, E>>>;
