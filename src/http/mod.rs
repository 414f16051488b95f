//! The HTTP layer: routes, the shared state handlers reach, middleware, and the one error type.

mod auth;
mod client_addr;
mod error;
mod json;
mod login;
mod metrics;
mod middleware;
mod protected;
mod refresh;
mod verify;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{AuthPolicy, Authenticated, Refusal, check_token};
pub use client_addr::ClientAddr;
pub use error::{
    ApiError, BASIC_CHALLENGE, BEARER_CHALLENGE, BEARER_INVALID_REQUEST, BEARER_INVALID_TOKEN,
};
pub use login::LoginResponse;
pub use metrics::{MetricsState, PROMETHEUS_TEXT, metrics_only_router};
pub use middleware::{HeadLimits, KeepBody};
pub use refresh::RefreshRequest;
pub use verify::{X_AUTH_EXPIRES, X_AUTH_USER, X_FORWARDED_URI, X_ORIGINAL_URI};

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::proxies::TrustedProxies;
use crate::sessions::Sessions;
use crate::throttle::Throttle;
use crate::tokens::TokenKeys;
use crate::users::{HashPool, Users};

/// Every route of the main router, as axum matches them (latency histograms are made for each).
pub const ROUTES: &[&str] = &[
    "/login",
    "/refresh",
    "/logout",
    "/protected",
    "/verify",
    "/healthz",
    "/metrics",
];

/// What handlers share: keys built once, the users, the hashing pool, the store's sessions and
/// login counters, the trusted proxies, metrics.
#[derive(Clone)]
pub struct AppState {
    /// Signing and verifying keys.
    pub tokens: Arc<TokenKeys>,
    /// Who may log in.
    pub users: Arc<Users>,
    /// Bounded password hashing.
    pub hashing: Arc<HashPool>,
    /// Refresh-token families.
    pub sessions: Sessions,
    /// Failed-login counters.
    pub throttle: Throttle,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<TrustedProxies>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// RFC 6750 strict mode for the token check.
    pub strict: bool,
}

impl AppState {
    /// The token-check policy of this state.
    pub fn auth_policy(&self) -> AuthPolicy {
        AuthPolicy {
            strict: self.strict,
            metrics: Some(Arc::clone(&self.metrics)),
        }
    }
}

impl FromRef<AppState> for Arc<TokenKeys> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.tokens)
    }
}

impl FromRef<AppState> for Arc<TrustedProxies> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.proxies)
    }
}

impl FromRef<AppState> for AuthPolicy {
    fn from_ref(state: &AppState) -> Self {
        state.auth_policy()
    }
}

/// The application's router with every layer, ready to serve; `GET /metrics` is on it when
/// `with_metrics` (otherwise it is served on an address of its own, see [`metrics_only_router`]).
pub fn router(state: AppState, limits: &Limits, with_metrics: bool) -> Router {
    let head = HeadLimits {
        max_head_bytes: limits.max_head_bytes,
        max_headers: limits.max_headers,
    };
    let metrics = Arc::clone(&state.metrics);
    let mut routes = Router::new()
        .route("/login", post(login::login))
        .route("/refresh", post(refresh::refresh))
        .route("/logout", post(refresh::logout))
        .route("/protected", get(protected::protected))
        .route("/verify", any(verify::verify))
        .route("/healthz", get(protected::healthz));
    if with_metrics {
        let metrics_state = MetricsState {
            metrics: Arc::clone(&state.metrics),
            hashing: Arc::clone(&state.hashing),
        };
        routes = routes.route("/metrics", get(metrics::metrics).with_state(metrics_state));
    }
    routes
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
        // Layers run from the last added (outermost) to the first.
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            head,
            middleware::head_limit,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::Internal.into_response()
        }))
        .layer(axum::middleware::map_response(middleware::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            middleware::track_latency,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::request_span)
                .on_request(())
                .on_response(middleware::log_response)
                .on_failure(()),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
}
