//! authd: a small, fast, secure JWT auth server.
//!
//! `POST /login` takes HTTP Basic credentials and answers an HS256 access token; `GET /protected`
//! answers only for a valid token; `GET /verify` does the same for a reverse proxy's forward
//! authentication; `GET /metrics` tells Prometheus how it went. [`Application::build`] makes the
//! whole server from a [`Config`], the same way in `main` and in tests; [`tokens`], [`users`] and
//! [`metrics`] are plain Rust.

pub mod config;
pub mod http;
pub mod metrics;
pub mod server;
pub mod telemetry;
pub mod tokens;
pub mod transport;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{Cli, Config, ConfigError};
pub use http::{ApiError, AppState, Authenticated};
pub use tokens::{Claims, TokenKeys, TokenSettings};

use config::{Limits, UsersSource};
use metrics::Metrics;
use server::{Tls, TlsError};
use users::{HashPool, Users, UsersError};

/// How often recorded latencies are folded into the histograms when nobody scrapes.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A reason the server could not start after its configuration was checked.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The users file was refused.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The signing keys could not be built.
    #[error("cannot build signing keys: {0}")]
    Keys(String),
    /// The TLS certificate or key was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
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
    tls: Option<Arc<Tls>>,
    /// Reloads the TLS files on SIGHUP; SIGHUP is watched for from `build` on.
    reload: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    metrics: Arc<Metrics>,
    /// The separate metrics listener, when configured, with its router and bound address.
    metrics_server: Option<(TcpListener, axum::Router, SocketAddr)>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

impl Application {
    /// Loads the users, builds the keys and the router, and binds the listen address.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let users = match &config.users {
            UsersSource::File(path) => Users::load(path)?,
            UsersSource::Demo => Users::demo().map_err(|e| StartError::DemoHash(e.to_string()))?,
        };
        let keys = TokenKeys::with_previous(
            config.secret_bytes(),
            &config.previous_secret_bytes(),
            config.tokens.clone(),
        )
        .map_err(|e| StartError::Keys(e.to_string()))?;
        let tls = config.tls.clone().map(Tls::load).transpose()?.map(Arc::new);
        let reload = tls.clone().map(|tls| {
            Box::pin(server::reload_tls_on_sighup(tls)) as Pin<Box<dyn Future<Output = ()> + Send>>
        });
        let metrics = Arc::new(Metrics::new(http::ROUTES));
        let state = AppState {
            tokens: Arc::new(keys),
            users: Arc::new(users),
            hashing: Arc::new(HashPool::new(config.hash_concurrency, config.hash_queue)),
            metrics: Arc::clone(&metrics),
            strict: config.strict,
        };
        let metrics_server = match config.metrics_listen {
            Some(addr) => {
                let (listener, local) = bind(addr).await?;
                let router = http::metrics_only_router(http::MetricsState {
                    metrics: Arc::clone(&metrics),
                    hashing: Arc::clone(&state.hashing),
                });
                Some((listener, router, local))
            }
            None => None,
        };
        let router = http::router(state, &config.limits, metrics_server.is_none());
        let (listener, local_addr) = bind(config.listen).await?;
        Ok(Self {
            listener,
            router,
            limits: config.limits,
            local_addr,
            tls,
            reload,
            metrics,
            metrics_server,
        })
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The bound address of the separate metrics listener, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(_, _, addr)| *addr)
    }

    /// The bound address (with the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until Ctrl-C or SIGTERM. The signals are watched for from the call on, before the
    /// returned future is first polled.
    pub fn run(self) -> impl Future<Output = ()> {
        let shutdown = server::shutdown_signal();
        self.run_until(shutdown)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let metrics = Arc::clone(&self.metrics);
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });
        let reload = self.reload.map(tokio::spawn);
        let main = server::serve(
            self.listener,
            self.router,
            &self.limits,
            self.tls,
            stopped(stop_rx.clone()),
        );
        let side = async {
            if let Some((listener, router, _)) = self.metrics_server {
                server::serve(listener, router, &self.limits, None, stopped(stop_rx)).await;
            }
        };
        let signal = async {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        tokio::join!(main, side, signal);
        upkeep.abort();
        if let Some(r) = reload {
            r.abort();
        }
    }
}
