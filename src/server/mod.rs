//! The accept loop: HTTP/1.1 over hyper with a header-read timeout, a cap on what one request
//! head may buffer, the parser's own error answers made JSON, the peer address handed to handlers, and graceful shutdown (stop accepting,
//! let in-flight requests finish within a grace period).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::config::Limits;

mod json_heads;

pub use json_heads::JsonErrorHeads;

/// Serves `router` on `listener` until `shutdown` completes, then waits up to the grace period for
/// open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
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
        let (stream, peer) = tokio::select! {
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
        let service = router
            .clone()
            .map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let conn = builder.serve_connection(
            TokioIo::new(JsonErrorHeads::new(stream)),
            TowerToHyperService::new(service),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
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

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed by this call,
/// not on first poll, so a signal that arrives right after start-up is not lost (on a signal
/// without a handler the process would die at once, with no graceful shutdown).
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
