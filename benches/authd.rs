//! Micro-benchmarks of the hot paths: token issue and verify (HS256, and per signing algorithm:
//! HS256, EdDSA, ES256, with what jsonwebtoken and the bare signature check cost beneath them),
//! the Basic-header and token parsers, one request through the whole router in-process for
//! `/protected` and `/login`, and one argon2id hash and verify. Run with `cargo bench`; figures
//! are in BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use std::time::Duration;

use authd::Claims;
use authd::signing::{SigningAlg, SigningKey};
use authd::tokens::{TokenKeys, TokenSettings};
use authd::transport::{find_token, parse_basic};
use authd::users::{StoredHash, hash_password};
use authd::{Application, Cli, Config};
use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine as _;
use clap::Parser as _;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::AlgorithmParameters;
use jsonwebtoken::{DecodingKey, Validation};
use secrecy::ExposeSecret as _;
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

/// Keys of `alg`: HS256 from the bench secret, EdDSA and ES256 from a new key pair.
fn keys_of(alg: SigningAlg) -> TokenKeys {
    match alg {
        SigningAlg::Hs256 => keys(),
        _ => {
            let pem = SigningKey::generate_pem(alg).unwrap();
            let key = SigningKey::from_pem(alg, pem.expose_secret().as_bytes()).unwrap();
            TokenKeys::with_key_pair(&key, &[], TokenSettings::default()).unwrap()
        }
    }
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// Sign and verify per algorithm, through `TokenKeys` as authd's routes use it; beneath it,
/// `jsonwebtoken::decode` alone with a key built once and the algorithm pinned (the yardstick's
/// check, `bench/axum_limit`); and for the public-key algorithms the signature check alone with
/// the public key parsed once, and the parse that jsonwebtoken repeats for every token.
fn algorithms(c: &mut Criterion) {
    let mut group = c.benchmark_group("alg");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for alg in [SigningAlg::Hs256, SigningAlg::EdDsa, SigningAlg::Es256] {
        let k = keys_of(alg);
        let token = k.issue("user", NOW).unwrap().token;
        let name = alg.name();
        group.bench_function(format!("{name}/issue"), |b| {
            b.iter(|| k.issue(black_box("user"), black_box(NOW)).unwrap())
        });
        group.bench_function(format!("{name}/verify"), |b| {
            b.iter(|| k.verify(black_box(&token), black_box(NOW)).unwrap())
        });
        let decoding = match alg {
            SigningAlg::Hs256 => DecodingKey::from_secret(SECRET).unwrap(),
            _ => DecodingKey::from_jwk(k.public_keys()[0].jwk()).unwrap(),
        };
        let mut validation = Validation::new(alg.jwt());
        validation.validate_exp = false;
        group.bench_function(format!("{name}/jsonwebtoken decode"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Claims>(black_box(&token), &decoding, &validation).unwrap()
            })
        });
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = b64(signature);
        match k.public_keys().first().map(|p| &p.jwk().algorithm) {
            Some(AlgorithmParameters::OctetKeyPair(p)) => {
                use ed25519_dalek::Verifier as _;
                let x: [u8; 32] = b64(&p.x).try_into().unwrap();
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
                let sig = ed25519_dalek::Signature::from_slice(&signature).unwrap();
                group.bench_function(format!("{name}/signature alone, key parsed once"), |b| {
                    b.iter(|| key.verify(black_box(message.as_bytes()), &sig).unwrap())
                });
                group.bench_function(format!("{name}/public key parse"), |b| {
                    b.iter(|| ed25519_dalek::VerifyingKey::from_bytes(black_box(&x)).unwrap())
                });
            }
            Some(AlgorithmParameters::EllipticCurve(p)) => {
                use p256::ecdsa::signature::Verifier as _;
                let sec1 = [&[4u8][..], &b64(&p.x), &b64(&p.y)].concat();
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
                let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
                group.bench_function(format!("{name}/signature alone, key parsed once"), |b| {
                    b.iter(|| key.verify(black_box(message.as_bytes()), &sig).unwrap())
                });
                group.bench_function(format!("{name}/public key parse"), |b| {
                    b.iter(|| p256::ecdsa::VerifyingKey::from_sec1_bytes(black_box(&sec1)).unwrap())
                });
            }
            _ => {}
        }
    }
    group.finish();
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

criterion_group!(benches, tokens, algorithms, parsers, router);
criterion_main!(benches);
