//! The accept loop: HTTP/1.1 over hyper, in the clear or over TLS, with a header-read timeout
//! (and a handshake timeout), a cap on what one request head may buffer, the parser's own error
//! answers made JSON, the peer address handed to handlers, a cap on open connections below the
//! open-file limit (the idle ones closed first), and graceful shutdown (stop accepting, let
//! in-flight requests finish within a grace period).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Limits;
use crate::http::HttpService;
use crate::reload::UsersReload;

mod connections;
mod json_heads;
mod tls;

pub(crate) use connections::{Connections, cap_for, raise_open_file_limit};
use connections::{Held, Slot};
pub(crate) use json_heads::JsonErrorHeads;
pub(crate) use tls::Tls;
pub use tls::TlsError;

/// How long the accept loop waits after running out of descriptors before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Lines about a recurring condition (out of descriptors, cap reached): one per this interval.
const REPEAT_LOG_EVERY: Duration = Duration::from_secs(1);
/// How often the request lines left out of the log are reported.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// Serves `service` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// waits up to the grace period for open connections to finish their requests. Every connection
/// holds a slot of `connections`; at the cap, the connection idle the longest is closed first.
pub(crate) async fn serve(
    listener: TcpListener,
    service: HttpService,
    limits: &Limits,
    tls: Option<Arc<Tls>>,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.hard_max_head_bytes)
        // Above the limit answered in JSON, so that the JSON 431 is what clients normally see.
        .max_headers(limits.max_headers.saturating_mul(4))
        .keep_alive(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let summary = tokio::spawn({
        let service = service.clone();
        async move {
            let mut every = tokio::time::interval(SUMMARY_EVERY);
            loop {
                every.tick().await;
                service.report_suppressed_lines();
            }
        }
    });
    let mut out_of_descriptors = Repeated::default();
    let mut at_cap = Repeated::default();
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) if is_out_of_descriptors(&e) => {
                    // Not one to spare: free one (the cap is meant to keep this from happening,
                    // but other files count too), pause rather than spin, and say so once in a
                    // while rather than per attempt.
                    connections.evict_oldest_idle();
                    if let Some(more) = out_of_descriptors.due(Instant::now()) {
                        tracing::warn!(error = %e, more, "accept failed; retrying");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                Err(e) => {
                    // One connection's failure (reset before it was accepted, ...).
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let held = match connections.try_hold() {
            Some(held) => held,
            None => {
                if let Some(more) = at_cap.due(Instant::now()) {
                    tracing::warn!(
                        max_connections = connections.cap(),
                        more,
                        "connection cap reached: closing the connections idle the longest"
                    );
                }
                tokio::select! {
                    (held, _) = connections.hold() => held,
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let service = Tracked {
            inner: TowerToHyperService::new(service.for_peer(peer)),
            slot: Arc::clone(held.slot()),
        };
        let builder = builder.clone();
        let stop = stop_rx.clone();
        let Some(tls) = &tls else {
            let conn = builder.serve_connection(TokioIo::new(JsonErrorHeads::new(stream)), service);
            tokio::spawn(run_connection(conn, held, stop));
            continue;
        };
        let acceptor = tls.acceptor();
        let handshake_timeout = limits.header_read_timeout;
        // The handshake runs in the connection's task, so a slow client never holds up accept.
        tokio::spawn(async move {
            let handshake = async {
                if !tls::starts_with_tls(&mut stream).await? {
                    return Ok(None);
                }
                acceptor.accept(stream).await.map(Some)
            };
            let handshake = tokio::time::timeout(handshake_timeout, handshake);
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(Some(stream))) => stream,
                    Ok(Ok(None)) => return,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                },
                // Closed to make room before it said anything.
                () = held.slot().evicted() => return,
            };
            let conn = builder.serve_connection(TokioIo::new(JsonErrorHeads::new(stream)), service);
            run_connection(conn, held, stop).await;
        });
    }
    // Closing the listener makes new connections be refused while the old ones drain.
    drop(listener);
    summary.abort();
    service.report_suppressed_lines();
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = stop_tx.send(true);
    tokio::select! {
        () = connections.all_closed() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
}

/// Whether an accept error means the process (or the system) has no descriptor to give.
fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs; ENOBUFS and ENOMEM are the same
    // shortage seen from the kernel's side.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

/// A condition logged at most once per [`REPEAT_LOG_EVERY`], with how often it recurred between.
#[derive(Debug, Default)]
struct Repeated {
    last: Option<Instant>,
    unlogged: u64,
}

impl Repeated {
    /// `Some(times it happened since the last line)` when a line is due.
    fn due(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < REPEAT_LOG_EVERY => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

/// Drives one connection to its end: as it is; or, told to close to make room, at once if it
/// never had a request (nothing to lose: a client sending its first request slowly is cut off as
/// the header timeout would), else after its current answer; or, on shutdown, after its current
/// answer. The slot is freed when this returns.
async fn run_connection<I, S, B>(
    conn: http1::Connection<I, S>,
    held: Held,
    mut stop: watch::Receiver<bool>,
) where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slot = held.slot();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = slot.evicted() => {
            if !slot.served() {
                return;
            }
            // An idle keep-alive connection closes at once; one whose answer is still being
            // written closes after it.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        // (The guard `wait_for` returns is dropped here: it must not be held across an await.)
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The connection's service, marking its slot busy from a request to its answer (an idle
/// connection is the one closed to make room).
struct Tracked<S> {
    inner: S,
    slot: Arc<Slot>,
}

impl<S, R> hyper::service::Service<R> for Tracked<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: R) -> Self::Future {
        self.slot.busy();
        TrackedFuture {
            fut: self.inner.call(req),
            slot: Some(Arc::clone(&self.slot)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Tracked`].
    struct TrackedFuture<F> {
        #[pin]
        fut: F,
        slot: Option<Arc<Slot>>,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.fut.poll(cx));
        if let Some(slot) = this.slot.take() {
            slot.idle();
        }
        Poll::Ready(out)
    }
}

/// Watches for SIGHUP from the moment it is called (a SIGHUP not watched for ends the process, so
/// it is always watched for: SIGHUP means "reload", never "stop") and, in the returned future,
/// re-reads the TLS certificate and key, when there are any, and the users, when they come from
/// a file, on each one. A reload that fails is logged and what was in use stays in use.
pub(crate) fn reload_on_sighup(
    tls: Option<Arc<Tls>>,
    users: Option<Arc<UsersReload>>,
) -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        {
            let mut hangups = match hangups {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGHUP; nothing will be reloaded");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                match tls.as_deref().map(Tls::reload) {
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the current certificate");
                    }
                    None => {}
                }
                match &users {
                    Some(users) => users.reload("SIGHUP").await,
                    None if tls.is_none() => {
                        tracing::info!("SIGHUP: nothing to reload (no TLS, no users file)");
                    }
                    None => {}
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (tls, users);
    }
}

/// Watches for Ctrl-C and SIGTERM from the moment it is called (so that a signal sent as soon as
/// the server says it is listening is not lost); the returned future completes on either.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(interrupt, "SIGINT") => {},
                () = wait(terminate, "SIGTERM") => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
