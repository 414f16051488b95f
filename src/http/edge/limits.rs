//! Head limits answered in JSON: 414 for a target longer than the head limit, 431 for too many
//! or too large headers. hyper's own caps, higher, close the connection past them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Response, Uri};
use axum::response::IntoResponse as _;
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
    type Future = HeadLimitsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let kind = match self.refusal(req.uri(), req.headers()) {
            Some(e) => Kind::Refused {
                answer: Some(e.into_response()),
            },
            None => Kind::Passed {
                inner: self.inner.call(req),
            },
        };
        HeadLimitsFuture { kind }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`HeadLimits`].
    pub struct HeadLimitsFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Passed { #[pin] inner: F },
        Refused { answer: Option<Response<Body>> },
    }
}

impl<F, E> Future for HeadLimitsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passed { inner } => inner.poll(cx),
            KindProj::Refused { answer } => Poll::Ready(Ok(answer.take().unwrap_or_default())),
        }
    }
}
