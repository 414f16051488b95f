//! Start-up: builds the whole server from a [`Config`] (users, keys, store, router, listeners)
//! and runs it with its background tasks (cleanup, metrics upkeep, SIGHUP reload) until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::config::{Config, Limits, Signing, UsersSource};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::reload::UsersReload;
use crate::revocations::{Revocations, RevokedSet};
use crate::server;
use crate::server::{Tls, TlsError};
use crate::sessions::Sessions;
use crate::store::{Store, StoreError};
use crate::throttle::Throttle;
use crate::tokens::{self, TokenKeys};
use crate::users::{Groups, GroupsError, HashPool, Users, UsersError};
use secrecy::ExposeSecret as _;

/// Rows deleted per statement by the background cleanup, so that one pass never holds a long lock.
const CLEANUP_BATCH: i64 = 1000;
/// Batches one cleanup pass may run; what is left waits for the next pass.
const CLEANUP_MAX_BATCHES: usize = 100;
/// How often recorded latencies are folded into the histograms when nobody scrapes. Each latency
/// is held as a sample until then (8 bytes each, at ~80k requests a second: 0.6 MiB a second).
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A reason the server could not start after its configuration was checked.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The users file was refused.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The groups file was refused.
    #[error(transparent)]
    Groups(#[from] GroupsError),
    /// The signing keys could not be built.
    #[error("cannot build signing keys: {0}")]
    Keys(String),
    /// The TLS certificate or key was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The demo user's hash could not be made.
    #[error("cannot hash the demo password: {0}")]
    DemoHash(String),
    /// The password hashing threads could not be started.
    #[error("cannot start password hashing threads: {0}")]
    Threads(std::io::Error),
    /// The database could not be opened or migrated.
    #[error("cannot open the database (AUTHD_DATABASE_URL): {0}")]
    Store(#[from] StoreError),
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
    router: http::HttpService,
    limits: Limits,
    local_addr: SocketAddr,
    sessions: Sessions,
    throttle: Throttle,
    /// The PostgreSQL URL the revocation listener connects to; none on SQLite.
    listen_url: Option<secrecy::SecretString>,
    cleanup_interval: std::time::Duration,
    tls: Option<Arc<Tls>>,
    /// Reloads what can be reloaded (the TLS files) on SIGHUP; SIGHUP is watched for from `build`
    /// on, so that it never ends the process.
    reload: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    metrics: Arc<Metrics>,
    /// The separate metrics listener, when configured, with its router and bound address.
    metrics_server: Option<(TcpListener, http::HttpService, SocketAddr)>,
    /// The open connections of both listeners, capped below the open-file limit.
    connections: Arc<server::Connections>,
}

/// Connections the kernel may hold for us before we accept them: enough for a burst of a few
/// thousand clients connecting at once (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(bind_error)?;
    // As std's and tokio's own `bind` do on Unix: a restart can take the port over at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(bind_error)?;
    socket.bind(addr).map_err(bind_error)?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

impl Application {
    /// Loads the users, builds the keys and the router, and binds the listen address.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        // Kept whole for the reloads, which load the users from it as this does.
        let config = Arc::new(config);
        let users = Arc::new(ArcSwap::from_pointee(load_users(&config)?));
        let users_reload = UsersReload::new(Arc::clone(&config), Arc::clone(&users));
        let (listener, local_addr) = bind(config.listen).await?;
        let mut token_settings = config.tokens.clone();
        // `--demo` under a key pair is its own issuer, named after the listen address; on port 0
        // the port is known only now.
        let demo_issuer = format!("http://{}", config.listen);
        if config.demo
            && config.listen.port() == 0
            && token_settings.issuer.as_deref() == Some(demo_issuer.as_str())
        {
            token_settings.issuer = Some(format!("http://{local_addr}"));
        }
        let keys = match &config.signing {
            Signing::Secret => TokenKeys::with_previous(
                config.secret_bytes(),
                &config.previous_secret_bytes(),
                token_settings,
            )
            .map_err(|e| StartError::Keys(e.to_string()))?,
            Signing::KeyPair { key, previous } => {
                TokenKeys::with_key_pair(key, previous, token_settings)
                    .map_err(|e| StartError::Keys(e.to_string()))?
            }
        };
        tracing::info!(
            alg = %keys.algorithm(),
            kid = keys.current_key_id(),
            "signing keys ready"
        );
        let tls = config.tls.clone().map(Tls::load).transpose()?.map(Arc::new);
        let reload = Some(Box::pin(reload_tasks(tls.clone(), users_reload))
            as Pin<Box<dyn Future<Output = ()> + Send>>);
        let metrics = Arc::new(Metrics::new(&http::routes(config.metrics_listen.is_none())));
        let store = Store::open(config.database_url.expose_secret(), &config.store).await?;
        tracing::info!(backend = ?store.backend(), "database ready");
        // Sessions ended early: held in memory for the token check, loaded whole before the
        // first request, then followed (see `run_until`).
        // Until every token of an ended session has expired: an access token's lifetime, or a
        // session cookie's idle lifetime when that is longer, plus the clock-skew leeway.
        let hold = config.tokens.ttl.max(config.browser.lifetimes.idle)
            + std::time::Duration::from_secs(tokens::LEEWAY_SECS.unsigned_abs());
        let revoked = Arc::new(RevokedSet::new(config.sessions.max_revoked, hold));
        let revocations = Revocations::new(store.clone(), hold).held_in(Arc::clone(&revoked));
        let loaded = revocations.load(tokens::now()).await?;
        tracing::info!(
            revoked_sessions = revoked.len(),
            rows = loaded,
            "revocations loaded"
        );
        let listen_url = (store.backend() == crate::store::Backend::Postgres)
            .then(|| config.database_url.clone());
        let sessions =
            Sessions::new(store.clone(), config.sessions.clone()).with_revocations(revocations);
        // Every key the tokens verify with: instances mid-rotation share counts and bans.
        let throttle = Throttle::with_previous(
            store,
            config.throttle.clone(),
            config.secret_bytes(),
            &config.previous_secret_bytes(),
        );
        let state = AppState::new(http::Shared {
            check: http::TokenCheck::new(Arc::new(keys), config.strict)
                .counted_in(Arc::clone(&metrics))
                .revoking(revoked)
                .with_session_cookie(config.browser.cookie_name(), config.browser.lifetimes),
            users,
            hashing: Arc::new(
                HashPool::new(config.hash_concurrency, config.hash_queue)
                    .map_err(StartError::Threads)?,
            ),
            sessions: sessions.clone(),
            throttle: throttle.clone(),
            proxies: Arc::new(config.trusted_proxies.clone()),
            metrics: Arc::clone(&metrics),
            forwarded_uri: config.forwarded_uri_header,
            browser: Arc::new(config.browser.clone()),
            csrf: crate::browser::Csrf::new(config.secret_bytes()),
        });
        let limits = config.limits.clone();
        let metrics_server = match config.metrics_listen {
            Some(addr) => {
                let (listener, local) = bind(addr).await?;
                let router = http::metrics_only_router(
                    http::MetricsState {
                        metrics: Arc::clone(&metrics),
                        hashing: Arc::clone(&state.hashing),
                    },
                    &config.limits,
                );
                Some((listener, router, local))
            }
            None => None,
        };
        let router = http::router(state, &limits, metrics_server.is_none());
        let connections = server::Connections::new(connection_cap(&config));
        Ok(Self {
            listener,
            router,
            limits,
            local_addr,
            sessions,
            throttle,
            listen_url,
            cleanup_interval: config.cleanup_interval,
            tls,
            reload,
            metrics,
            metrics_server,
            connections,
        })
    }

    /// The application's HTTP service, for driving it in-process without the network
    /// (benchmarks).
    pub fn router(&self) -> http::HttpService {
        self.router.clone()
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

    /// Serves until Ctrl-C or SIGTERM. The signal handlers are in place when this returns its
    /// future, before the first poll.
    pub fn run(self) -> impl Future<Output = ()> {
        let shutdown = server::shutdown_signal();
        self.run_until(shutdown)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests. Expired sessions and
    /// counters are deleted in the background meanwhile.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let cleanup = tokio::spawn(cleanup_loop(
            self.sessions.clone(),
            self.throttle.clone(),
            self.cleanup_interval,
        ));
        let follow = tokio::spawn(
            self.sessions.revocations().clone().follow(
                self.listen_url
                    .as_ref()
                    .map(|url| url.expose_secret().to_owned()),
            ),
        );
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
            Arc::clone(&self.connections),
            stopped(stop_rx.clone()),
        );
        let side = async {
            if let Some((listener, router, _)) = self.metrics_server {
                let connections = Arc::clone(&self.connections);
                server::serve(
                    listener,
                    router,
                    &self.limits,
                    None,
                    connections,
                    stopped(stop_rx),
                )
                .await;
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
        cleanup.abort();
        follow.abort();
        self.sessions.store().close().await;
    }
}

/// Reads the users (the users file, or the demo user) and the groups file when there is one: the
/// one place both files are loaded, at start and on every reload.
pub(crate) fn load_users(config: &Config) -> Result<Users, StartError> {
    let users = match &config.users {
        UsersSource::File(path) => Users::load(path, config.secret_bytes())?,
        UsersSource::Demo => Users::demo().map_err(|e| StartError::DemoHash(e.to_string()))?,
    };
    Ok(match &config.groups {
        Some(path) => users.with_groups(Groups::load(path)?),
        None => users,
    })
}

/// What reloads while the server runs: SIGHUP (watched for from this call on) reloads the TLS
/// files and the users; a change to the users or groups file reloads the users.
fn reload_tasks(
    tls: Option<Arc<Tls>>,
    users: Option<Arc<UsersReload>>,
) -> impl Future<Output = ()> + Send + 'static {
    let hangups = server::reload_on_sighup(tls, users.clone());
    let watch = users.as_ref().and_then(UsersReload::watch);
    async move {
        let watch = async {
            match watch {
                Some(w) => w.await,
                None => std::future::pending().await,
            }
        };
        tokio::join!(hangups, watch);
    }
}

/// The connection cap: below the open-file limit (its soft value first raised to the hard one),
/// and below `AUTHD_MAX_CONNECTIONS` when set.
fn connection_cap(config: &Config) -> usize {
    let configured = config.limits.max_connections;
    let Some((limit, before)) = server::raise_open_file_limit() else {
        // Not Linux: the limit is not read here (rustix is a Linux-only dependency), so the
        // setting caps connections, else a generous default; set AUTHD_MAX_CONNECTIONS there.
        return configured.unwrap_or(10_000);
    };
    let cap = server::cap_for(limit, config.store.max_connections, configured);
    if limit > before {
        tracing::info!(
            max_connections = cap,
            "open-file limit raised from {before} to {limit}"
        );
    } else {
        tracing::info!(max_connections = cap, "open-file limit {limit}");
    }
    cap
}

/// Every `interval`, deletes expired refresh tokens, dead sessions and stale throttle counters,
/// in bounded batches. Errors are logged and retried at the next tick.
async fn cleanup_loop(sessions: Sessions, throttle: Throttle, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match remove_expired(&sessions, &throttle, tokens::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(target: "authd::cleanup", rows = n, "expired rows deleted"),
            Err(e) => tracing::warn!(target: "authd::cleanup", error = %e, "cleanup failed"),
        }
    }
}

/// One cleanup pass at `now`: how many rows went.
pub async fn remove_expired(
    sessions: &Sessions,
    throttle: &Throttle,
    now: i64,
) -> Result<u64, StoreError> {
    let mut total = 0;
    for _ in 0..CLEANUP_MAX_BATCHES {
        let n = sessions.remove_expired(now, CLEANUP_BATCH).await?
            + sessions
                .revocations()
                .remove_expired(now, CLEANUP_BATCH)
                .await?
            + throttle.remove_expired(now, CLEANUP_BATCH).await?;
        total += n;
        if n == 0 {
            break;
        }
    }
    Ok(total)
}
