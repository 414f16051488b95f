//! The outermost part of the edge, one per connection: the peer's address for handlers
//! (`ConnectInfo<SocketAddr>`), and a pause before the next request of a connection whose last
//! answer said `Retry-After`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Response, header};
use tower::Service;

use super::EdgeConfig;

/// How long a connection whose last answer said `Retry-After` (503 "Server busy", 429) waits before
/// its next request is looked at. The answer itself goes out at once; a client that honours
/// `Retry-After` waits longer anyway. A client that does not (a flood on keep-alive connections)
/// gets at most one answer per connection per pause, instead of as many as the CPU can make:
/// refusing is cheap, but not free, and the token checks share that CPU.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The service every request enters by: the edge's parts around the router (see the module's
/// documentation), for one connection once [`Edge::for_peer`] has named it.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    config: Arc<EdgeConfig>,
    connection: Option<Arc<Connection>>,
}

/// What the edge knows of one connection.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    /// Until when its next request waits: nanoseconds since `opened` (0: no pause).
    paused_until: AtomicU64,
    opened: Instant,
}

impl Connection {
    fn pause(&self, now: Instant) {
        let until = (now + RETRY_PAUSE).saturating_duration_since(self.opened);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.paused_until.store(nanos, Ordering::Relaxed);
    }

    /// The end of the pause, if it is still to come.
    fn paused(&self) -> Option<Instant> {
        let nanos = self.paused_until.load(Ordering::Relaxed);
        if nanos == 0 {
            return None;
        }
        let until = self.opened + Duration::from_nanos(nanos);
        (until > Instant::now()).then_some(until)
    }
}

impl<S> Edge<S> {
    /// Wraps `inner` (the rest of the edge around the router).
    pub(crate) fn new(inner: S, config: Arc<EdgeConfig>) -> Self {
        Self {
            inner,
            config,
            connection: None,
        }
    }

    /// Logs how many request lines were left out since the last call, if any (the accept loop
    /// calls it once a second).
    pub fn report_suppressed_lines(&self) {
        self.config.access_log.report("access");
        self.config.failure_log.report("failure");
    }

    /// The same service for one connection from `peer`: handlers find the address as
    /// `ConnectInfo<SocketAddr>`, and the connection is paused after a `Retry-After` answer.
    #[must_use]
    pub fn for_peer(&self, peer: SocketAddr) -> Self
    where
        S: Clone,
    {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            connection: Some(Arc::new(Connection {
                peer,
                paused_until: AtomicU64::new(0),
                opened: Instant::now(),
            })),
        }
    }
}

impl<S, B> Service<Request<B>> for Edge<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = EdgeFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(connection) = &self.connection else {
            return EdgeFuture {
                state: State::Running {
                    fut: self.inner.call(req),
                },
                connection: None,
            };
        };
        req.extensions_mut().insert(ConnectInfo(connection.peer));
        let state = match connection.paused() {
            Some(until) => State::Paused {
                pause: Box::pin(tokio::time::sleep_until(until.into())),
                inner: self.inner.clone(),
                req: Some(req),
            },
            None => State::Running {
                fut: self.inner.call(req),
            },
        };
        EdgeFuture {
            state,
            connection: Some(Arc::clone(connection)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Edge`].
    pub struct EdgeFuture<S, B> where S: Service<Request<B>> {
        #[pin]
        state: State<S, B>,
        connection: Option<Arc<Connection>>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, B> where S: Service<Request<B>> {
        Paused { pause: Pin<Box<tokio::time::Sleep>>, inner: S, req: Option<Request<B>> },
        Running { #[pin] fut: S::Future },
    }
}

impl<S, B> Future for EdgeFuture<S, B>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let StateProj::Paused { pause, inner, req } = self.as_mut().project().state.project() {
            ready!(pause.as_mut().poll(cx));
            let Some(req) = req.take() else {
                // Polled again after it was ready (a caller's bug): an empty answer, not a panic.
                return Poll::Ready(Ok(Response::default()));
            };
            let fut = inner.call(req);
            self.as_mut().project().state.set(State::Running { fut });
        }
        let this = self.project();
        let StateProj::Running { fut } = this.state.project() else {
            return Poll::Pending;
        };
        let res = ready!(fut.poll(cx));
        if let (Some(c), Ok(res)) = (this.connection, &res)
            && res.headers().contains_key(header::RETRY_AFTER)
        {
            c.pause(Instant::now());
        }
        Poll::Ready(res)
    }
}
