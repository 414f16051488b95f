//! `GET /metrics`: the Prometheus text exposition of this server's metrics, on the main router
//! or on a router of its own for a separate listen address.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::users::HashPool;

/// What `/metrics` reads.
#[derive(Debug, Clone)]
pub(crate) struct MetricsState {
    /// The counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The hashing pool, for the hashes-in-flight gauge.
    pub hashing: Arc<HashPool>,
}

/// `Content-Type` of the Prometheus text format.
pub(super) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every series.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text format)",
    description = "Logins, token checks and refreshes by outcome, request latency by route, \
        password hashes in flight. On its own address instead when `AUTHD_METRICS_LISTEN` is set.",
    responses((status = 200, description = "Every series.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)),
)]
pub(super) async fn metrics(State(state): State<MetricsState>) -> Response {
    let body = state.metrics.render(state.hashing.in_flight());
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    res
}

/// A router serving only `GET /metrics` (404 in JSON for anything else), for
/// `AUTHD_METRICS_LISTEN`.
pub(crate) fn metrics_only_router(state: MetricsState, limits: &Limits) -> super::HttpService {
    // Registered as on the main router, so its path is written once (in `metrics`'s
    // `#[utoipa::path]`).
    let (router, doc) = OpenApiRouter::new()
        .routes(routes!(metrics))
        .split_for_parts();
    let router = router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state);
    super::edge::build(
        router,
        super::EdgeConfig::new(limits, super::paths(&doc), None),
    )
}
