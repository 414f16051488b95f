//! The HTTP layer: routes, the shared state handlers reach, middleware, and the one error type.

mod auth;
mod client_addr;
mod error;
mod json;
mod login;
mod middleware;
mod protected;
mod refresh;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::Authenticated;
pub use client_addr::ClientAddr;
pub use error::{ApiError, BASIC_CHALLENGE};
pub use login::LoginResponse;
pub use middleware::HeadLimits;
pub use refresh::RefreshRequest;

use crate::config::Limits;
use crate::proxies::TrustedProxies;
use crate::sessions::Sessions;
use crate::throttle::Throttle;
use crate::tokens::TokenKeys;
use crate::users::{HashPool, Users};

/// What handlers share: keys built once, the users, the hashing pool, the store's sessions and
/// login counters, the trusted proxies.
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

/// The application's router with every layer, ready to serve.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let head = HeadLimits {
        max_head_bytes: limits.max_head_bytes,
        max_headers: limits.max_headers,
    };
    Router::new()
        .route("/login", post(login::login))
        .route("/refresh", post(refresh::refresh))
        .route("/logout", post(refresh::logout))
        .route("/protected", get(protected::protected))
        .route("/healthz", get(protected::healthz))
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
