//! What every request goes through before and after routing, as one hand-written tower service
//! around the router: head-size limits and the body limit, the request timeout, a caught panic,
//! the JSON rewrite of plain-text error answers, the latency histogram by route, the one-line
//! request log (paths cut, so many lines a second), the peer address handed to handlers, and a
//! pause for connections told to retry later.
//!
//! One layer rather than a stack of tower-http and `from_fn` layers because this is on the hot
//! path of every token check: a stack of `Router::layer`s boxes and clones the whole stack per
//! request and per layer, and `from_fn` boxes its future. Here the future is one value, the
//! timeout's timer is armed only when the handler has to wait (a token check never does), and
//! nothing is allocated that the answer does not need (measured in BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use http_body_util::Limited;
use tower::Service;

use super::error::{ApiError, Cause};
use super::json::message;
use crate::metrics::Metrics;
use crate::telemetry::{ACCESS_TARGET, AccessBudget, Cut};

/// Marks an error answer whose body is exactly what its handler made, such as `/verify`'s empty
/// 401 that a proxy could otherwise pass on to its client: the JSON rewrite leaves it alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepBody;

/// Head limits answered in JSON (hyper's own, higher caps answer past them).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Largest target plus headers, in bytes.
    pub max_head_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
}

/// Headers whose values are marked sensitive, so that no `Debug` print of a request shows them.
const SENSITIVE: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// The settings of an [`Edge`], shared by every connection.
#[derive(Debug)]
pub struct EdgeConfig {
    /// Head limits.
    pub head: HeadLimits,
    /// Largest request body (413 past it).
    pub max_body_bytes: usize,
    /// Time a request may take to be answered (408 past it).
    pub request_timeout: Duration,
    /// The routes the inner router serves, exactly as matched (they have no parameters); a
    /// request's latency is recorded under its route, or under `unmatched`.
    pub routes: Vec<String>,
    /// Where latencies are recorded, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
    /// Request lines written a second at most; the rest are counted.
    pub access_log: AccessBudget,
    /// Lines naming the cause of a 5xx written a second at most (the database down under a
    /// flood must not flood the log); the rest are counted.
    pub failure_log: AccessBudget,
}

/// Lines a second naming the causes of 5xx answers, at most.
const FAILURE_LINES_PER_SECOND: u32 = 20;

/// Bytes of an unmatched path written in its request line; the rest is left out and counted
/// (`…[+N bytes]`): a path may be as long as the head limit, and the log is not the attacker's.
const MAX_LOGGED_PATH: usize = 256;
/// Bytes of a method written in a request line (an extension method may be any length).
const MAX_LOGGED_METHOD: usize = 32;

/// How long a connection whose last answer said `Retry-After` (503 "Server busy", 429) waits before
/// its next request is looked at. The answer itself goes out at once; a client that honours
/// `Retry-After` waits longer anyway. A client that does not (a flood on keep-alive connections)
/// gets at most one answer per connection per pause, instead of as many as the CPU can make:
/// refusing is cheap, but not free, and the token checks share that CPU.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl EdgeConfig {
    /// The edge of a router serving `routes`, with the request limits of `limits`.
    pub fn new(
        limits: &crate::config::Limits,
        routes: Vec<String>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            head: HeadLimits {
                max_head_bytes: limits.max_head_bytes,
                max_headers: limits.max_headers,
            },
            max_body_bytes: limits.max_body_bytes,
            request_timeout: limits.request_timeout,
            routes,
            metrics,
            access_log: AccessBudget::new(limits.access_log_rate),
            failure_log: AccessBudget::new(FAILURE_LINES_PER_SECOND),
        }
    }
}

/// The service every request enters by: see the module's documentation.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    config: Arc<EdgeConfig>,
    connection: Option<Arc<Connection>>,
}

/// What the edge knows of one connection.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    /// Until when its next request waits: nanoseconds since `opened` (0: no pause).
    paused_until: AtomicU64,
    opened: Instant,
}

impl Connection {
    fn pause(&self, now: Instant) {
        let until = (now + RETRY_PAUSE).saturating_duration_since(self.opened);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.paused_until.store(nanos, Ordering::Relaxed);
    }

    /// The end of the pause, if it is still to come.
    fn paused(&self, now: Instant) -> Option<Instant> {
        let nanos = self.paused_until.load(Ordering::Relaxed);
        if nanos == 0 {
            return None;
        }
        let until = self.opened + Duration::from_nanos(nanos);
        (until > now).then_some(until)
    }
}

impl<S> Edge<S> {
    /// Wraps `inner` (the router).
    pub fn new(inner: S, config: EdgeConfig) -> Self {
        Self {
            inner,
            config: Arc::new(config),
            connection: None,
        }
    }

    /// The wrapped service (the router).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Logs how many request lines were left out since the last call, if any (the accept loop
    /// calls it once a second).
    pub fn report_suppressed_lines(&self) {
        self.config.access_log.report("access");
        self.config.failure_log.report("failure");
    }

    /// The same service for one connection from `peer`: handlers find the address as
    /// `ConnectInfo<SocketAddr>`, and the connection is paused after a `Retry-After` answer.
    #[must_use]
    pub fn for_peer(&self, peer: SocketAddr) -> Self
    where
        S: Clone,
    {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            connection: Some(Arc::new(Connection {
                peer,
                paused_until: AtomicU64::new(0),
                opened: Instant::now(),
            })),
        }
    }
}

impl<S, B> Service<Request<B>> for Edge<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible> + Clone,
    B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let config = Arc::clone(&self.config);
        let path = req.uri().path();
        let route = config.routes.iter().position(|r| r == path);
        let method = req.method().clone();
        // The raw path is kept for the log only when no route matched (a matched one is its
        // route). The query string is never logged: it may carry `token=`.
        let unmatched = route.is_none().then(|| req.uri().clone());
        let (mut parts, body) = req.into_parts();
        for name in &SENSITIVE {
            mark_sensitive(&mut parts.headers, name);
        }
        let early = head_error(&parts.uri, &parts.headers, config.head).or_else(|| {
            body_too_large(&parts.headers, config.max_body_bytes)
                .then(|| StatusCode::PAYLOAD_TOO_LARGE.into_response())
        });
        let state = match early {
            Some(res) => State::Done { res: Some(res) },
            None => {
                if let Some(c) = &self.connection {
                    parts.extensions.insert(ConnectInfo(c.peer));
                }
                let body = if body.is_end_stream() {
                    Body::new(body)
                } else {
                    Body::new(Limited::new(body, config.max_body_bytes))
                };
                let req = Request::from_parts(parts, body);
                match self.connection.as_ref().and_then(|c| c.paused(start)) {
                    Some(until) => State::Paused {
                        pause: Box::pin(tokio::time::sleep_until(until.into())),
                        inner: self.inner.clone(),
                        req: Some(req),
                    },
                    None => call(&mut self.inner, req),
                }
            }
        };
        EdgeFuture {
            state,
            timer: None,
            log: Some(LogEntry {
                start,
                route,
                method,
                unmatched,
                config,
            }),
            connection: self.connection.clone(),
        }
    }
}

/// Calls the inner service, a panic in `call` caught like one in the future.
fn call<S>(inner: &mut S, req: Request) -> State<S::Future, S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    match catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
        Ok(fut) => State::Running { fut },
        Err(_) => State::Done {
            res: Some(panicked()),
        },
    }
}

/// What the request log and the latency histogram need once the answer is there.
struct LogEntry {
    start: Instant,
    route: Option<usize>,
    method: Method,
    unmatched: Option<Uri>,
    config: Arc<EdgeConfig>,
}

impl LogEntry {
    /// Records the latency, logs the cause of a 5xx (the one place it is logged: handlers answer
    /// with it in the answer's [`Cause`]) and writes the request line, each within its budget.
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

pin_project_lite::pin_project! {
    /// The future of [`Edge`].
    pub struct EdgeFuture<F, S> {
        #[pin]
        state: State<F, S>,
        // Armed the first time the handler has to wait; most answers never need it.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        log: Option<LogEntry>,
        connection: Option<Arc<Connection>>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, S> {
        Paused { pause: Pin<Box<tokio::time::Sleep>>, inner: S, req: Option<Request> },
        Running { #[pin] fut: F },
        Done { res: Option<Response<Body>> },
    }
}

impl<S> Future for EdgeFuture<S::Future, S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let StateProj::Paused { pause, inner, req } = self.as_mut().project().state.project() {
            ready!(pause.as_mut().poll(cx));
            let next = match req.take() {
                Some(req) => call(inner, req),
                None => State::Done { res: None },
            };
            self.as_mut().project().state.set(next);
        }
        let this = self.project();
        let res = match this.state.project() {
            StateProj::Done { res } => res.take().unwrap_or_else(panicked),
            StateProj::Paused { .. } => panicked(),
            StateProj::Running { fut } => match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                Ok(Poll::Ready(Ok(res))) => res,
                Ok(Poll::Pending) => {
                    let (start, timeout) = this.log.as_ref().map_or_else(
                        || (Instant::now(), Duration::ZERO),
                        |l| (l.start, l.config.request_timeout),
                    );
                    let timer = this.timer.get_or_insert_with(|| {
                        Box::pin(tokio::time::sleep_until((start + timeout).into()))
                    });
                    ready!(timer.as_mut().poll(cx));
                    StatusCode::REQUEST_TIMEOUT.into_response()
                }
                Err(_) => panicked(),
            },
        };
        let res = json_errors(res);
        if let Some(c) = this.connection
            && res.headers().contains_key(header::RETRY_AFTER)
        {
            c.pause(Instant::now());
        }
        if let Some(log) = this.log.take() {
            log.finish(res.status(), res.extensions().get::<Cause>());
        }
        Poll::Ready(Ok(res))
    }
}

fn panicked() -> Response<Body> {
    ApiError::Internal(Cause::new("a handler", &"panicked")).into_response()
}

fn mark_sensitive(headers: &mut HeaderMap, name: &HeaderName) {
    if let header::Entry::Occupied(mut entry) = headers.entry(name) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

/// 414 for a target longer than the head limit, 431 for too many or too large headers.
fn head_error(uri: &Uri, headers: &HeaderMap, limits: HeadLimits) -> Option<Response<Body>> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_head_bytes {
        return Some(ApiError::UriTooLong.into_response());
    }
    if headers.len() > limits.max_headers {
        return Some(ApiError::HeadersTooLarge.into_response());
    }
    // Name, value, ": " and CRLF, as they stood on the wire.
    let size = headers
        .iter()
        .fold(target, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    (size > limits.max_head_bytes).then(|| ApiError::HeadersTooLarge.into_response())
}

/// Whether `Content-Length` announces more than `max` bytes (a body that grows past `max` without
/// announcing it is cut off while it is read, and answered 413 the same).
fn body_too_large(headers: &HeaderMap, max: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
}

/// Gives every error answer a JSON body: those made by our handlers already have one; those made
/// by routing and by the extractors (404, 405, 408, 413, 415, 422, ...) get `{"message": reason}`,
/// keeping their status and headers (such as `Allow`).
pub(super) fn json_errors(res: Response<Body>) -> Response<Body> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.extensions().get::<KeepBody>().is_some()
    {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let text = status.canonical_reason().unwrap_or("Error");
    let fresh = message(status, text);
    parts.headers.remove(header::CONTENT_LENGTH);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.extend(fresh_parts.headers);
    Response::from_parts(parts, body)
}
