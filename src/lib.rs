//! authd: a small, fast, secure JWT auth server.
//!
//! `POST /login` takes HTTP Basic credentials and answers an HS256 access token; `GET /protected`
//! answers only for a valid token. [`Application::build`] makes the whole server from a
//! [`Config`], the same way in `main` and in tests; [`tokens`] and [`users`] are plain Rust.

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
pub use http::{ApiError, AppState, Authenticated};
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
    /// The password hashing threads could not be started.
    #[error("cannot start password hashing threads: {0}")]
    Threads(std::io::Error),
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
            hashing: Arc::new(
                HashPool::new(config.hash_concurrency, config.hash_queue)
                    .map_err(StartError::Threads)?,
            ),
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
    pub async fn run(self) -> std::io::Result<()> {
        let shutdown = server::shutdown_signal()?;
        self.run_until(shutdown).await;
        Ok(())
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        server::serve(self.listener, self.router, &self.limits, shutdown).await;
    }
}
