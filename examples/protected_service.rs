//! A separate axum service that accepts authd's tokens, using authd as a library: `/hello` with
//! the `Authenticated` extractor, `/reports` behind the `RequireToken` layer, `/healthz` open.
//!
//! ```sh
//! export AUTHD_SECRET_KEY="$(openssl rand -base64 48)"  # the secret both share (or _FILE)
//! cargo run --release -- --demo &                       # authd on 127.0.0.1:5000
//! cargo run --no-default-features --example protected_service &  # this service on :5001
//! TOKEN=$(curl -s -X POST -u user:password http://localhost:5000/login \
//!   | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
//! curl -H "Authorization: Bearer $TOKEN" http://localhost:5001/hello
//! ```
//!
//! `--no-default-features` builds authd as a service that only verifies depends on it
//! (`default-features = false`): the check, none of the server. `PROTECTED_SERVICE_LISTEN`
//! changes the address (loopback only: this is an example).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use authd::{Authenticated, RequireToken, TokenKeys};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

/// The service's routes; the keys are the state the `Authenticated` extractor reads.
pub fn app(keys: Arc<TokenKeys>) -> Router {
    // `route_layer`: the layer runs only for the routes above it, so unknown paths answer 404.
    let reports = Router::new()
        .route("/reports", get(reports))
        .route_layer(RequireToken::new(Arc::clone(&keys)));
    Router::new()
        .route("/hello", get(hello))
        .merge(reports)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(keys)
}

/// Runs only for a valid token: the extractor answers 403 otherwise.
async fn hello(Authenticated(claims): Authenticated) -> Json<Value> {
    let user = claims.subject().unwrap_or("stranger").to_owned();
    Json(json!({ "message": format!("Hello, {user}!"), "user": user }))
}

/// Runs only for a valid token: the layer checked it and left the claims in the extensions.
async fn reports(Extension(Authenticated(claims)): Extension<Authenticated>) -> Json<Value> {
    Json(json!({ "reports": [], "user": claims.subject() }))
}

#[tokio::main]
async fn main() -> ExitCode {
    // The settings authd reads, resolved as authd resolves them: `./.env` first, then the
    // environment; the secret, previous keys, lifetime, issuer and audience, checked the same way.
    if let Err(e) = authd::config::load_env_file(None) {
        return fail(&e.to_string());
    }
    let keys = match authd::config::token_keys_from_env() {
        Ok(k) => Arc::new(k),
        Err(e) => return fail(&e.to_string()),
    };
    let listen =
        std::env::var("PROTECTED_SERVICE_LISTEN").unwrap_or_else(|_| "127.0.0.1:5001".into());
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => return fail("PROTECTED_SERVICE_LISTEN must be IP:PORT"),
    };
    if !addr.ip().is_loopback() {
        return fail("this example listens on loopback only");
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    println!("protected_service listening on http://{addr}");
    match axum::serve(listener, app(keys)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("protected_service: error: {message}");
    ExitCode::FAILURE
}
