//! One integration-test binary: the server started in-process on port 0, and the built binary
//! run as a subprocess for what only a real process shows (refusals to start, logs, signals).
// Test crates have no public face: their helpers are `pub` for their sibling modules.
#![allow(unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin;
mod basic_auth;
mod browser;
mod browser_e2e;
mod caddy;
mod commits;
mod contract;
mod deploy;
mod discovery;
mod forward_auth;
mod groups;
mod hardening_config;
mod hardening_login;
mod hardening_resources;
mod hardening_store;
mod hardening_tokens;
mod helpers;
mod htpasswd;
mod instances;
mod interop;
mod jwks_library;
mod jwt_authorizer;
mod library;
mod limits;
mod logs;
mod metrics;
mod moving;
mod nginx;
mod openapi;
mod postman;
mod proxy_servers;
mod refresh;
mod revocation;
mod rotation;
mod schemathesis;
mod sessions;
mod settings;
mod signals;
mod signing;
mod startup;
mod strict;
mod throttle;
mod tls;
mod tokens;
mod traefik;
mod transition;
mod users_command;
mod users_file;
mod verify;
