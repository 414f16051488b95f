//! The HTTP layer: routes and their OpenAPI document, the shared state handlers reach,
//! middleware, and the one error type.

mod auth;
mod error;
mod json;
mod login;
mod middleware;
mod openapi;
mod protected;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{
    Authenticated, RequireToken, RequireTokenFuture, RequireTokenService, verify_request,
};
pub use error::{ApiError, BASIC_CHALLENGE};
pub use json::MessageResponse;
pub use login::LoginResponse;
pub use middleware::HeadLimits;
pub use openapi::document as openapi;
pub use protected::HealthResponse;

use crate::config::Limits;
use crate::tokens::TokenKeys;
use crate::users::{HashPool, Users};

/// What handlers share: keys built once, the users, the hashing pool.
#[derive(Clone)]
pub struct AppState {
    /// Signing and verifying keys.
    pub tokens: Arc<TokenKeys>,
    /// Who may log in.
    pub users: Arc<Users>,
    /// Bounded password hashing.
    pub hashing: Arc<HashPool>,
}

impl FromRef<AppState> for Arc<TokenKeys> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.tokens)
    }
}

/// Every route, each registered together with its OpenAPI operation (the handler's
/// `#[utoipa::path]`). A new route is one `.routes(routes!(module::handler))` line here; a route
/// added any other way is not in the document, and `tests/api/openapi.rs` fails.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(login::login))
        .routes(routes!(protected::protected))
        .routes(routes!(protected::healthz))
        .routes(routes!(openapi::openapi_json))
}

/// The application's router with every layer, ready to serve.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let head = HeadLimits {
        max_head_bytes: limits.max_head_bytes,
        max_headers: limits.max_headers,
    };
    let (routes, _) = api().split_for_parts();
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
