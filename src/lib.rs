//! authd: a small, fast, secure JWT auth server.
//!
//! `POST /login` takes HTTP Basic credentials and answers an HS256 access token and a refresh
//! token; `GET /protected` answers only for a valid access token; `POST /refresh` and
//! `POST /logout` rotate and end sessions; `GET /verify` checks a token for a reverse proxy's
//! forward authentication; `GET /metrics` tells Prometheus how it went.
#![cfg_attr(
    feature = "server",
    doc = "[`Application::build`] makes the whole server from a [`Config`], the same way in \
           `main` and in tests; [`tokens`], [`users`], [`store`], [`sessions`], [`revocations`], \
           [`throttle`], [`proxies`] and [`metrics`] are plain Rust."
)]
#![cfg_attr(
    not(feature = "server"),
    doc = "This build is without the `server` feature: the token check alone, below."
)]
//!
//! # The token check in your own axum service
//!
//! Another service that shares authd's secret accepts authd's tokens with the very check authd
//! runs on `/protected`: the token from `?token=` or `Authorization: Bearer`, HS256 only, `exp`
//! required and no further ahead than the token lifetime, and the same 403 `{"message": ...}`
//! answers. Such a service needs none of the server (its database, password hashing, command
//! line, TLS, metrics): depend on authd without its default `server` feature, and it compiles
//! the check alone (about a third of the crates, see BENCHMARKS.md):
//!
//! ```toml
//! [dependencies]
//! authd = { path = "../authd", default-features = false }
//! ```
//!
//! Build the keys once with [`TokenKeys::new`] (or [`config::token_keys_from_env`], from the
//! settings authd reads), with a [`TokenSettings::ttl`] at least authd's `AUTHD_TOKEN_TTL` (the
//! defaults match), and use the [`Authenticated`] extractor in handlers:
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
//! Both run the one check of [`TokenCheck`], which authd's own routes run too. The state above
//! is the keys alone, which checks as the tutorial does; for RFC 6750's answers (authd's
//! `AUTHD_STRICT`), make it `TokenCheck::new(keys, true)` (or give your own state a
//! `FromRef<YourState> for TokenCheck`), and pass the same to `RequireToken::new`.
//!
//! `examples/protected_service.rs` is such a service, ready to run.
//!
//! # Without the secret: authd's public keys
//!
//! When authd signs with EdDSA or ES256 (`AUTHD_SIGNING_ALG`), a service needs no secret: with
//! the `jwks` feature, `authd::jwks::JwksKeys` fetches authd's `/.well-known/jwks.json` (or finds it
//! from the issuer), and `TokenCheck::from_jwks` (or the `Arc<JwksKeys>` itself as the state)
//! runs the same check with the same answers behind [`Authenticated`], [`InGroup`] and
//! [`RequireToken`]. The algorithm is the service's to pin, never the key set's. A token naming
//! a key not held makes one fetch (at most one per interval, however many such tokens come);
//! `examples/jwks_service.rs` is such a service.

/// The README's Rust snippets, compiled as doctests so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// The token check, which a service that only verifies needs (`default-features = false`):
// tokens, how a request carries them, the extractor and layer in `http`, and the settings that
// build the keys from the environment in `config`.
pub mod config;
pub mod http;
#[cfg(feature = "jwks")]
pub mod jwks;
pub mod signing;
pub mod tokens;
pub mod transport;

// Everything else is the server (the `server` feature, on by default).
#[cfg(feature = "server")]
pub mod access;
#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod browser;
#[cfg(feature = "server")]
mod keys;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod proxies;
#[cfg(feature = "server")]
mod reload;
#[cfg(feature = "server")]
pub mod revocations;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
mod startup;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod throttle;
#[cfg(feature = "server")]
pub mod users;

pub use config::ConfigError;
#[cfg(feature = "server")]
pub use config::{Cli, Config};
pub use http::{ApiError, Authenticated, Group, InGroup, RequireToken, TokenCheck};
#[cfg(feature = "jwks")]
pub use jwks::JwksKeys;
#[cfg(feature = "server")]
pub use server::TlsError;
#[cfg(feature = "server")]
pub use startup::{Application, StartError, remove_expired};
pub use tokens::{Claims, TokenKeys, TokenSettings};
