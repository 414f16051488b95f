//! The HTTP layer: routes and their OpenAPI document, the shared state handlers reach,
//! middleware, and the one error type.

// The token check and its answers: all a service that only verifies needs.
mod auth;
mod error;
mod json;
// The server's routes and request edge (the `server` feature).
#[cfg(feature = "server")]
mod client_addr;
#[cfg(feature = "server")]
mod discovery;
#[cfg(feature = "server")]
mod edge;
#[cfg(feature = "server")]
mod health;
#[cfg(feature = "server")]
mod login;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod openapi;
#[cfg(feature = "server")]
mod pages;
#[cfg(feature = "server")]
mod protected;
#[cfg(feature = "server")]
mod refresh;
#[cfg(feature = "server")]
mod verify;

#[cfg(feature = "server")]
use std::sync::Arc;

#[cfg(feature = "server")]
use {
    arc_swap::ArcSwap, axum::extract::FromRef, axum::http::StatusCode, utoipa::OpenApi as _,
    utoipa_axum::router::OpenApiRouter, utoipa_axum::routes,
};

pub use auth::{
    Authenticated, Group, InGroup, Refusal, RequireToken, RequireTokenFuture, RequireTokenService,
    TokenCheck, WaitingForKeys,
};
#[cfg(feature = "server")]
pub use discovery::{
    JWKS_PATH, JwksResponse, MAX_AGE_SECS, OPENID_CONFIGURATION_PATH, OpenIdConfiguration,
};
#[cfg(feature = "server")]
pub(crate) use edge::EdgeConfig;
#[cfg(feature = "server")]
pub use edge::{
    AccessLog, AccessLogFuture, Edge, EdgeFuture, HeadLimits, HeadLimitsFuture, LazyTimeout,
    LazyTimeoutFuture, PanicAnswer, RETRY_PAUSE, Stack,
};
pub use error::{
    ApiError, BASIC_CHALLENGE, BEARER_CHALLENGE, BEARER_INSUFFICIENT_SCOPE, BEARER_INVALID_REQUEST,
    BEARER_INVALID_TOKEN,
};
#[cfg(feature = "server")]
pub use health::HealthResponse;
pub use json::MessageResponse;
#[cfg(feature = "server")]
pub use login::LoginResponse;
#[cfg(feature = "server")]
pub(crate) use metrics::{MetricsState, metrics_only_router};
#[cfg(feature = "server")]
pub use openapi::document as openapi;
#[cfg(feature = "server")]
pub use refresh::RefreshRequest;
#[cfg(feature = "server")]
pub use verify::{
    REDIRECT_PARAM, REMOTE_GROUPS, REMOTE_USER, X_AUTH_EXPIRES, X_AUTH_REQUEST_GROUPS,
    X_AUTH_REQUEST_USER, X_AUTH_USER, X_FORWARDED_HOST, X_FORWARDED_METHOD, X_FORWARDED_PROTO,
    X_FORWARDED_URI, X_ORIGINAL_URI, X_ORIGINAL_URL,
};

#[cfg(feature = "server")]
use crate::{
    browser::{BrowserSettings, Csrf},
    config::Limits,
    metrics::Metrics,
    proxies::{ForwardedUriHeader, TrustedProxies},
    sessions::Sessions,
    throttle::Throttle,
    users::{HashPool, Users},
};

#[cfg(feature = "server")]
/// What handlers share: keys built once, the users, the hashing pool, the store's sessions and
/// login counters, the trusted proxies, metrics.
///
/// Cheap to clone (one reference count): axum clones the state for every request it routes.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

#[cfg(feature = "server")]
impl AppState {
    /// Wraps what the handlers share.
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

#[cfg(feature = "server")]
impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[cfg(feature = "server")]
/// The fields of [`AppState`].
pub(crate) struct Shared {
    /// Who may log in: swapped whole when the users file is reloaded, so a request reads one
    /// consistent set without a lock (see `crate::reload`).
    pub(crate) users: Arc<ArcSwap<Users>>,
    /// Bounded password hashing.
    pub(crate) hashing: Arc<HashPool>,
    /// Refresh-token families.
    pub(crate) sessions: Sessions,
    /// Failed-login counters.
    pub(crate) throttle: Throttle,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub(crate) proxies: Arc<TrustedProxies>,
    /// Counters and histograms.
    pub(crate) metrics: Arc<Metrics>,
    /// The token check: the signing and verifying keys, the strictness, counted in `metrics`.
    pub(crate) check: TokenCheck,
    /// Which header `/verify` reads the original request target from.
    pub(crate) forwarded_uri: ForwardedUriHeader,
    /// The sign-in page, the session cookie and the redirects.
    pub(crate) browser: Arc<BrowserSettings>,
    /// The sign-in and sign-out forms' CSRF keys.
    pub(crate) csrf: Csrf,
}

#[cfg(feature = "server")]
impl FromRef<AppState> for TokenCheck {
    fn from_ref(state: &AppState) -> Self {
        state.check.clone()
    }
}

#[cfg(feature = "server")]
impl FromRef<AppState> for Arc<TrustedProxies> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.proxies)
    }
}

#[cfg(feature = "server")]
impl FromRef<AppState> for MetricsState {
    fn from_ref(state: &AppState) -> Self {
        MetricsState {
            metrics: Arc::clone(&state.metrics),
            hashing: Arc::clone(&state.hashing),
        }
    }
}

#[cfg(feature = "server")]
/// Every route, each registered together with its OpenAPI operation (the handler's
/// `#[utoipa::path]`). A new route is one `.routes(routes!(module::handler))` line here; a route
/// added any other way is not in the document, and `tests/api/openapi.rs` fails. `GET /metrics`
/// is here when it is served on the main address.
fn api(with_metrics: bool) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(login::login))
        .routes(routes!(refresh::refresh))
        .routes(routes!(refresh::logout))
        .routes(routes!(protected::protected))
        .routes(routes!(verify::verify))
        .routes(routes!(pages::signin_page, pages::signin))
        .routes(routes!(pages::signout_page, pages::signout))
        .routes(routes!(health::healthz))
        .routes(routes!(discovery::jwks))
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(openapi::openapi_json));
    if with_metrics {
        api.routes(routes!(metrics::metrics))
    } else {
        api
    }
}

#[cfg(feature = "server")]
/// Every route of the main router (`GET /metrics` among them when `with_metrics`), as axum
/// matches them: read from the same `api()` the router is built from, so the metrics' histograms,
/// the edge's route names and the document cannot list other routes than those served.
pub(crate) fn routes(with_metrics: bool) -> Vec<String> {
    paths(&api(with_metrics).into_openapi())
}

#[cfg(feature = "server")]
/// The paths of a document made by an `OpenApiRouter`.
fn paths(doc: &utoipa::openapi::OpenApi) -> Vec<String> {
    doc.paths.paths.keys().cloned().collect()
}

#[cfg(feature = "server")]
/// The application's HTTP service: the router inside its [`Edge`] (limits, timeout, JSON errors,
/// latency metrics, request log); `GET /metrics` is on it when `with_metrics` (otherwise it is
/// served on an address of its own, see `metrics_only_router`).
pub(crate) fn router(state: AppState, limits: &Limits, with_metrics: bool) -> HttpService {
    let metrics = Arc::clone(&state.metrics);
    let (router, doc) = api(with_metrics).split_for_parts();
    let router = router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state);
    edge::build(router, EdgeConfig::new(limits, paths(&doc), Some(metrics)))
}

#[cfg(feature = "server")]
/// The router behind its [`Edge`], as the accept loop serves it.
pub type HttpService = Edge<Stack>;
