//! authd: a small, fast, secure JWT auth server.
//!
//! `POST /login` takes HTTP Basic credentials and answers an HS256 access token; `GET /protected`
//! answers only for a valid token; `GET /openapi.json` describes the API. [`Application::build`]
//! makes the whole server from a [`Config`], the same way in `main` and in tests; [`tokens`] and
//! [`users`] are plain Rust.
//!
//! # The token check in your own axum service
//!
//! Another service that shares authd's secret accepts authd's tokens with the very check authd
//! runs on `/protected`: the token from `?token=` or `Authorization: Bearer`, HS256 only, `exp`
//! required, and the same 403 `{"message": ...}` answers. Build the keys once with
//! [`TokenKeys::new`] and use the [`Authenticated`] extractor in handlers:
//!
//! ```
//! use std::sync::Arc;
//!
//! use authd::{Authenticated, TokenKeys, TokenSettings};
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode, header};
//! use axum::{Router, routing::get};
//! use tower::ServiceExt as _;
//!
//! async fn hello(Authenticated(claims): Authenticated) -> String {
//!     format!("hello, {}", claims.subject().unwrap_or("stranger"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a real service the secret comes from the environment, as authd's does.
//! let keys = TokenKeys::new(b"the secret authd signs with, 32+ bytes", TokenSettings::default())
//!     .expect("a non-empty secret");
//! let keys = Arc::new(keys);
//! let app = Router::new().route("/hello", get(hello)).with_state(Arc::clone(&keys));
//!
//! // A token as authd's `POST /login` hands it out opens the route...
//! let token = keys.issue("alice", authd::tokens::now()).unwrap().token;
//! let req = Request::get("/hello")
//!     .header(header::AUTHORIZATION, format!("Bearer {token}"))
//!     .body(Body::empty())
//!     .unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // ...and a request without one gets authd's answer.
//! let res = app.oneshot(Request::get("/hello").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
//! assert_eq!(&body[..], b"{\"message\":\"Token is missing!\"}\n");
//! # }
//! ```
//!
//! Or guard whole routes with the [`RequireToken`] layer; the claims are then in the request's
//! extensions:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use authd::{Authenticated, RequireToken, TokenKeys, TokenSettings};
//! use axum::{Extension, Router, routing::get};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = std::env::var("AUTHD_SECRET_KEY")?;
//! let keys = Arc::new(TokenKeys::new(secret.as_bytes(), TokenSettings::default())?);
//! let app = Router::new()
//!     .route("/reports", get(|Extension(Authenticated(claims)): Extension<Authenticated>| async move {
//!         format!("reports for {}", claims.subject().unwrap_or("?"))
//!     }))
//!     // `route_layer`: unknown paths still answer 404, not 403.
//!     .route_layer(RequireToken::new(keys))
//!     .route("/healthz", get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/protected_service.rs` is such a service, ready to run.

pub mod config;
pub mod http;
pub mod server;
pub mod telemetry;
pub mod tokens;
pub mod transport;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{Cli, Config, ConfigError};
pub use http::{ApiError, AppState, Authenticated, RequireToken, verify_request};
pub use tokens::{Claims, TokenKeys, TokenSettings};

use config::{Limits, UsersSource};
use users::{HashPool, Users, UsersError};

/// A reason the server could not start after its configuration was checked.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The users file was refused.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The signing keys could not be built.
    #[error("cannot build signing keys: {0}")]
    Keys(String),
    /// The demo user's hash could not be made.
    #[error("cannot hash the demo password: {0}")]
    DemoHash(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    local_addr: SocketAddr,
}

impl Application {
    /// Loads the users, builds the keys and the router, and binds the listen address.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let users = match &config.users {
            UsersSource::File(path) => Users::load(path)?,
            UsersSource::Demo => Users::demo().map_err(|e| StartError::DemoHash(e.to_string()))?,
        };
        let keys = TokenKeys::new(config.secret_bytes(), config.tokens.clone())
            .map_err(|e| StartError::Keys(e.to_string()))?;
        let state = AppState {
            tokens: Arc::new(keys),
            users: Arc::new(users),
            hashing: Arc::new(HashPool::new(config.hash_concurrency, config.hash_queue)),
        };
        let router = http::router(state, &config.limits);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Self {
            listener,
            router,
            limits: config.limits,
            local_addr,
        })
    }

    /// The bound address (with the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run(self) {
        self.run_until(server::shutdown_signal()).await;
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        server::serve(self.listener, self.router, &self.limits, shutdown).await;
    }
}
