//! The access part of the edge: each request's latency in the histogram of its route, the cause
//! of a 5xx (the one place it is logged: handlers answer with it in the answer's [`Cause`]), and
//! the one-line request log, each within its budget. The query string is never logged (it may
//! carry `token=`), and a path only when no route matched, cut.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Response, StatusCode, Uri};
use tower::Service;

use super::EdgeConfig;
use crate::http::error::Cause;
use crate::telemetry::{ACCESS_TARGET, Cut};

/// Bytes of an unmatched path written in its request line; the rest is left out and counted
/// (`…[+N bytes]`): a path may be as long as the head limit, and the log is not the attacker's.
const MAX_LOGGED_PATH: usize = 256;
/// Bytes of a method written in a request line (an extension method may be any length).
const MAX_LOGGED_METHOD: usize = 32;

/// The part of the edge that measures and logs each request.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    config: Arc<EdgeConfig>,
}

impl<S> AccessLog<S> {
    /// `inner`, measured and logged as `config` says.
    pub(crate) fn new(inner: S, config: Arc<EdgeConfig>) -> Self {
        Self { inner, config }
    }
}

impl<S, B> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        let route = self.config.routes.iter().position(|r| r == path);
        let entry = Entry {
            start: Instant::now(),
            route,
            method: req.method().clone(),
            // The raw path is kept for the log only when no route matched (a matched one is its
            // route).
            unmatched: route.is_none().then(|| req.uri().clone()),
            config: Arc::clone(&self.config),
        };
        AccessLogFuture {
            inner: self.inner.call(req),
            entry: Some(entry),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AccessLog`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        entry: Option<Entry>,
    }
}

impl<F, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        if let (Some(entry), Ok(res)) = (this.entry.take(), &res) {
            entry.finish(res.status(), res.extensions().get::<Cause>());
        }
        Poll::Ready(res)
    }
}

/// What the request log and the latency histogram need once the answer is there.
struct Entry {
    start: Instant,
    route: Option<usize>,
    method: Method,
    unmatched: Option<Uri>,
    config: Arc<EdgeConfig>,
}

impl Entry {
    fn finish(self, status: StatusCode, cause: Option<&Cause>) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.start);
        let route = self.route.and_then(|i| self.config.routes.get(i));
        if let Some(m) = &self.config.metrics {
            m.request_duration(route.map(String::as_str), latency);
        }
        let path = match (route, &self.unmatched) {
            (Some(r), _) => r.as_str(),
            (None, Some(uri)) => uri.path(),
            (None, None) => "",
        };
        if let Some(cause) = cause
            && self.config.failure_log.admit(now)
        {
            tracing::error!(
                method = %Cut(self.method.as_str(), MAX_LOGGED_METHOD),
                path = %Cut(path, MAX_LOGGED_PATH),
                status = status.as_u16(),
                "{cause}"
            );
        }
        if !self.config.access_log.admit(now) {
            return;
        }
        tracing::info!(
            target: ACCESS_TARGET,
            method = %Cut(self.method.as_str(), MAX_LOGGED_METHOD),
            path = %Cut(path, MAX_LOGGED_PATH),
            status = status.as_u16(),
            latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            "served"
        );
    }
}
