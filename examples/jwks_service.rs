//! A separate axum service that accepts authd's EdDSA or ES256 tokens with nothing but authd's
//! public keys, fetched from its JWK Set: no secret. `/hello` with the `Authenticated`
//! extractor, `/healthz` open.
//!
//! ```sh
//! AUTHD_SIGNING_ALG=EdDSA cargo run --release -- --demo &   # authd on 127.0.0.1:5000
//! AUTHD_JWKS_URL=http://127.0.0.1:5000/.well-known/jwks.json \
//!   cargo run --example jwks_service --features jwks &       # this service on 127.0.0.1:5002
//! TOKEN=$(curl -s -X POST -u user:password http://localhost:5000/login \
//!   | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
//! curl -H "Authorization: Bearer $TOKEN" http://localhost:5002/hello
//! ```
//!
//! Settings: `AUTHD_JWKS_URL` (the key set), or `AUTHD_ISSUER` alone (the key set found through
//! `{issuer}/.well-known/openid-configuration`, and tokens must carry that `iss`);
//! `AUTHD_SIGNING_ALG` (`EdDSA`, the default, or `ES256`: pinned here, never taken from the key
//! set); `AUTHD_ISSUER` and `AUTHD_AUDIENCE` as authd has them; `JWKS_SERVICE_LISTEN` (loopback
//! only: this is an example). Tokens may live at most authd's default `AUTHD_TOKEN_TTL`, 30 min.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use authd::signing::SigningAlg;
use authd::{Authenticated, JwksKeys, TokenSettings};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The service's routes; the key set is the state the `Authenticated` extractor reads.
pub fn app(jwks: Arc<JwksKeys>) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(jwks)
}

/// Runs only for a valid token: the extractor answers 403 otherwise.
async fn hello(Authenticated(claims): Authenticated) -> Json<Value> {
    let user = claims.subject().unwrap_or("stranger").to_owned();
    Json(json!({ "message": format!("Hello, {user}!"), "user": user }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let alg = match var("AUTHD_SIGNING_ALG")
        .as_deref()
        .unwrap_or("EdDSA")
        .parse()
    {
        Ok(alg @ (SigningAlg::EdDsa | SigningAlg::Es256)) => alg,
        _ => return fail("AUTHD_SIGNING_ALG must be EdDSA or ES256"),
    };
    let settings = TokenSettings {
        issuer: var("AUTHD_ISSUER"),
        audience: var("AUTHD_AUDIENCE"),
        ..TokenSettings::default()
    };
    // The first fetch is made here: a service that cannot get the keys does not start.
    let jwks = match (var("AUTHD_JWKS_URL"), var("AUTHD_ISSUER")) {
        (Some(url), _) => JwksKeys::from_jwks_url(&url, alg, settings).await,
        (None, Some(issuer)) => JwksKeys::from_issuer(&issuer, alg, settings).await,
        (None, None) => return fail("set AUTHD_JWKS_URL (or AUTHD_ISSUER)"),
    };
    let jwks = match jwks {
        Ok(j) => Arc::new(j),
        Err(e) => return fail(&e.to_string()),
    };
    let listen = var("JWKS_SERVICE_LISTEN").unwrap_or_else(|| "127.0.0.1:5002".into());
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => return fail("JWKS_SERVICE_LISTEN must be IP:PORT"),
    };
    if !addr.ip().is_loopback() {
        return fail("this example listens on loopback only");
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    println!(
        "jwks_service listening on http://{addr}, keys from {}",
        jwks.url()
    );
    match axum::serve(listener, app(jwks)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("jwks_service: error: {message}");
    ExitCode::FAILURE
}
