//! The client's address as an extractor: the socket peer, or, behind trusted proxies, what they
//! say in `X-Forwarded-For` (see [`TrustedProxies::client_addr`]).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::proxies::TrustedProxies;

/// The address a request is counted against by the login throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    Arc<TrustedProxies>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The accept loop always inserts the peer; a router driven without it (no socket) gets
        // the unspecified address, one bucket for all.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let proxies = Arc::<TrustedProxies>::from_ref(state);
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes());
        Ok(Self(proxies.client_addr(peer, forwarded)))
    }
}
