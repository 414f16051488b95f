//! The request timeout: 408 past it (and the inner answer's body as axum's). Its timer is armed the first time the inner future has to
//! wait, so an answer ready at once (a token check) never arms one; tower-http's `Timeout` arms
//! one for every request (measured in BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse as _;
use tower::Service;

/// The part of the edge answering 408 past the request timeout.
#[derive(Debug, Clone)]
pub struct LazyTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> LazyTimeout<S> {
    /// `inner`, cut off after `timeout`.
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl<S, B, ResBody> Service<Request<B>> for LazyTimeout<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = LazyTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        LazyTimeoutFuture {
            inner: self.inner.call(req),
            timeout: self.timeout,
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`LazyTimeout`].
    pub struct LazyTimeoutFuture<F> {
        #[pin]
        inner: F,
        timeout: Duration,
        // Armed the first time the inner future has to wait, for `timeout` from then: the first
        // poll follows the call at once, and no clock is read for an answer that never waits.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F, E, ResBody> Future for LazyTimeoutFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res.map(|res| res.map(Body::new)));
        }
        let timeout = *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Ok(StatusCode::REQUEST_TIMEOUT.into_response()))
    }
}
