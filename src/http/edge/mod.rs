//! What every request goes through before and after routing, built once around the router from
//! named parts, outermost first:
//!
//! | part | from | what it does |
//! |---|---|---|
//! | [`Edge`] (`connection.rs`) | ours | per connection: the peer address for handlers, and a pause before the next request of a connection told to retry later |
//! | [`AccessLog`] (`access.rs`) | ours | the latency histogram by route, the cause of a 5xx, the one-line request log (paths cut, so many lines a second) |
//! | `MapResponse(json_errors)` (`json_errors.rs`) | tower + ours | a `{"message": ...}` body for every error answer without one |
//! | [`HeadLimits`] (`limits.rs`) | ours | 414 and 431 in JSON below hyper's own, higher caps |
//! | `SetSensitiveRequestHeaders` | tower-http | `Authorization`, `Proxy-Authorization` and `Cookie` never shown by a `Debug` print |
//! | [`LazyTimeout`] (`timeout.rs`) | ours | 408 past the request timeout, its timer armed only when the handler has to wait; the body as axum's |
//! | `CatchPanic` | tower-http | a panicking handler answers 500 (its cause logged by the access part) |
//! | `RequestBodyLimit` | tower-http | 413 past the body limit, announced or not |
//!
//! Each part has a concrete future: nothing is boxed per request but the response body that
//! `CatchPanic` boxes. tower-http has no timeout that arms its timer lazily (its `Timeout` arms
//! one per request, which a token check answered at once never needs), nothing for the access
//! line by route, and nothing that pauses a connection: those are ours.

mod access;
mod connection;
mod json_errors;
mod limits;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Response, header};
use axum::response::IntoResponse as _;
use tower::Layer as _;
use tower::util::MapResponse;
use tower_http::catch_panic::{CatchPanic, ResponseForPanic};
use tower_http::limit::RequestBodyLimit;
use tower_http::sensitive_headers::SetSensitiveRequestHeaders;

pub use access::{AccessLog, AccessLogFuture};
pub use connection::{Edge, EdgeFuture, RETRY_PAUSE};
pub(crate) use json_errors::KeepBody;
pub use limits::{HeadLimits, HeadLimitsFuture};
pub use timeout::{LazyTimeout, LazyTimeoutFuture};

use super::error::{ApiError, Cause};
use crate::metrics::Metrics;
use crate::telemetry::AccessBudget;

/// The settings of the edge, shared by every connection.
#[derive(Debug)]
pub(crate) struct EdgeConfig {
    /// Largest target plus headers, in bytes.
    pub(crate) max_head_bytes: usize,
    /// Most headers.
    pub(crate) max_headers: usize,
    /// Largest request body (413 past it).
    pub(crate) max_body_bytes: usize,
    /// Time a request may take to be answered (408 past it).
    pub(crate) request_timeout: Duration,
    /// The routes the inner router serves, exactly as matched (they have no parameters); a
    /// request's latency is recorded under its route, or under `unmatched`.
    pub(crate) routes: Vec<String>,
    /// Where latencies are recorded, if anywhere.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Request lines written a second at most; the rest are counted.
    pub(crate) access_log: AccessBudget,
    /// Lines naming the cause of a 5xx written a second at most (the database down under a
    /// flood must not flood the log); the rest are counted.
    pub(crate) failure_log: AccessBudget,
}

/// Lines a second naming the causes of 5xx answers, at most.
const FAILURE_LINES_PER_SECOND: u32 = 20;

impl EdgeConfig {
    /// The edge of a router serving `routes`, with the request limits of `limits`.
    pub(crate) fn new(
        limits: &crate::config::Limits,
        routes: Vec<String>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            max_head_bytes: limits.max_head_bytes,
            max_headers: limits.max_headers,
            max_body_bytes: limits.max_body_bytes,
            request_timeout: limits.request_timeout,
            routes,
            metrics,
            access_log: AccessBudget::new(limits.access_log_rate),
            failure_log: AccessBudget::new(FAILURE_LINES_PER_SECOND),
        }
    }
}

/// The answer to a panicking handler: 500 in JSON, its cause for the access part to log.
#[derive(Debug, Clone, Copy)]
pub struct PanicAnswer;

impl ResponseForPanic for PanicAnswer {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, _: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
        // The payload is not logged: a panic message may quote whatever the handler held.
        ApiError::Internal(Cause::new("a handler", &"panicked")).into_response()
    }
}

/// The parts inside [`Edge`], innermost last (see the module's documentation).
pub type Stack = AccessLog<
    MapResponse<
        HeadLimits<
            SetSensitiveRequestHeaders<
                LazyTimeout<CatchPanic<RequestBodyLimit<Router>, PanicAnswer>>,
            >,
        >,
        fn(Response<Body>) -> Response<Body>,
    >,
>;

/// Headers whose values are marked sensitive, so that no `Debug` print of a request shows them.
const SENSITIVE: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// `router` inside the edge's parts, built once.
pub(crate) fn build(router: Router, config: EdgeConfig) -> Edge<Stack> {
    let config = Arc::new(config);
    let json_errors: fn(Response<Body>) -> Response<Body> = json_errors::json_errors;
    let inner = RequestBodyLimit::new(router, config.max_body_bytes);
    let inner = CatchPanic::custom(inner, PanicAnswer);
    let inner = LazyTimeout::new(inner, config.request_timeout);
    let inner = SetSensitiveRequestHeaders::new(inner, SENSITIVE);
    let inner = HeadLimits::new(inner, config.max_head_bytes, config.max_headers);
    let inner = tower::util::MapResponseLayer::new(json_errors).layer(inner);
    let inner = AccessLog::new(inner, Arc::clone(&config));
    Edge::new(inner, config)
}
