//! The accept loop: HTTP/1.1 over hyper, in the clear or over TLS, with a header-read timeout
//! (and a handshake timeout), a cap on what one request head may buffer, the parser's own error
//! answers made JSON, the peer address handed to handlers, and graceful shutdown (stop accepting,
//! let in-flight requests finish within a grace period).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::http::HttpService;

mod json_heads;
mod tls;

pub use json_heads::JsonErrorHeads;
pub use tls::{Tls, TlsError};

/// Serves `service` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// waits up to the grace period for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    limits: &Limits,
    tls: Option<Arc<Tls>>,
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
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(service.for_peer(peer));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let Some(tls) = &tls else {
            let conn = builder.serve_connection(TokioIo::new(JsonErrorHeads::new(stream)), service);
            tokio::spawn(async move {
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
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
            let stream = match tokio::time::timeout(handshake_timeout, handshake).await {
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
            };
            let conn = builder.serve_connection(TokioIo::new(JsonErrorHeads::new(stream)), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    // Closing the listener makes new connections be refused while the old ones drain.
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
}

/// Watches for SIGHUP from the moment it is called (a SIGHUP not watched for ends the process, so
/// it is always watched for: SIGHUP means "reload", never "stop") and, in the returned future,
/// re-reads the TLS certificate and key on each one, when there are any. A reload that fails is
/// logged and the previous certificate stays in use.
pub fn reload_on_sighup(tls: Option<Arc<Tls>>) -> impl Future<Output = ()> + Send + 'static {
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
                    None => tracing::info!("SIGHUP: nothing to reload (no TLS configured)"),
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tls;
    }
}

/// Watches for Ctrl-C and SIGTERM from the moment it is called (so that a signal sent as soon as
/// the server says it is listening is not lost); the returned future completes on either.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
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
