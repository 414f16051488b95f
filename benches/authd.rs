//! Micro-benchmarks of the hot paths: token issue and verify, the Basic-header and token parsers,
//! one request through the whole router in-process for `/protected` and `/login`, and one argon2id
//! hash and verify. Run with `cargo bench`; figures are in BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use authd::tokens::{TokenKeys, TokenSettings};
use authd::transport::{find_token, parse_basic};
use authd::users::{StoredHash, hash_password};
use authd::{Application, Cli, Config};
use axum::body::Body;
use axum::http::{Request, header};
use clap::Parser as _;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt as _;

const SECRET: &[u8] = b"bench-BWe2vcMPLFuaE4Oz9q7Pa0Cwh6NpLNJIfK6bzzBu";
const NOW: i64 = 1_800_000_000;

fn keys() -> TokenKeys {
    TokenKeys::new(SECRET, TokenSettings::default()).unwrap()
}

fn tokens(c: &mut Criterion) {
    let k = keys();
    let token = k.issue("user", NOW).unwrap().token;
    c.bench_function("token/issue", |b| {
        b.iter(|| k.issue(black_box("user"), black_box(NOW)).unwrap())
    });
    c.bench_function("token/verify", |b| {
        b.iter(|| k.verify(black_box(&token), black_box(NOW)).unwrap())
    });
}

fn parsers(c: &mut Criterion) {
    c.bench_function("transport/parse_basic", |b| {
        b.iter(|| parse_basic(black_box(b"Basic dXNlcjpwYXNzd29yZA==")).unwrap())
    });
    let token = keys().issue("user", NOW).unwrap().token;
    let query = format!("token={token}");
    let bearer = format!("Bearer {token}");
    c.bench_function("transport/find_token_query", |b| {
        b.iter(|| find_token(black_box(Some(&query)), None))
    });
    c.bench_function("transport/find_token_bearer", |b| {
        b.iter(|| find_token(None, black_box(Some(bearer.as_bytes()))))
    });
}

fn router(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The demo configuration: the tutorial's user, an in-memory store, a given secret.
    let cli = Cli::try_parse_from([
        "authd",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--secret-key",
        std::str::from_utf8(SECRET).unwrap(),
    ])
    .unwrap();
    let config = Config::from_args(cli.serve).unwrap();
    let app = rt.block_on(Application::build(config)).unwrap().router();
    let token = keys().issue("user", authd::tokens::now()).unwrap().token;
    let uri = format!("/protected?token={token}");
    c.bench_function("router/protected", |b| {
        b.iter(|| {
            let req = Request::get(&uri).body(Body::empty()).unwrap();
            let res = rt.block_on(app.clone().oneshot(req)).unwrap();
            assert_eq!(res.status(), 200);
        })
    });
    let mut group = c.benchmark_group("slow");
    group.sample_size(20);
    group.bench_function("router/login", |b| {
        b.iter(|| {
            let req = Request::post("/login")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNzd29yZA==")
                .body(Body::empty())
                .unwrap();
            let res = rt.block_on(app.clone().oneshot(req)).unwrap();
            assert_eq!(res.status(), 200);
        })
    });
    group.bench_function("argon2id/hash", |b| {
        b.iter(|| hash_password(black_box(b"password")).unwrap())
    });
    // What a login's check costs on a hashing thread: the verify `/login` runs, with the thread's
    // 19 MiB kept from one check to the next. The yardstick for `/login` made of authd's own
    // hashing (`bench/load.sh` uses the shared `axum_limit`'s).
    let stored = StoredHash::parse(&hash_password(b"password").unwrap()).unwrap();
    group.bench_function("argon2id/verify, memory kept", |b| {
        b.iter(|| assert!(stored.verify(black_box(b"password"))))
    });
    group.finish();
}

criterion_group!(benches, tokens, parsers, router);
criterion_main!(benches);
