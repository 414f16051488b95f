//! axum_limit: the seed's two routes on axum 0.8 + tokio, doing as little as possible, to measure
//! the ceiling of this stack on this machine. Not the project's server; a yardstick for it.
//!
//! Modes (flag wins over env):
//!   --mode noauth  | LIMIT_MODE=noauth  (default) GET /protected answers 200 without any check.
//!   --mode hs256   | LIMIT_MODE=hs256   GET /protected verifies ?token= as an HS256 JWT
//!                                       (algorithm pinned to HS256, exp required and checked,
//!                                       leeway 0 like PyJWT).
//!   --mode eddsa   | LIMIT_MODE=eddsa   the same check of an EdDSA (Ed25519) JWT, and
//!   --mode es256   | LIMIT_MODE=es256   of an ES256 (ECDSA P-256) one: KEY_FILE names the PKCS#8
//!                                       PEM private key (the file authd's AUTHD_SIGNING_KEY_FILE
//!                                       names), whose public half verifies. As for HS256, the
//!                                       jsonwebtoken key is built once at start and the
//!                                       Validation pins the algorithm.
//! In every mode POST /login does what the seed does: plain compare of HTTP Basic user:password
//! against user/password (no hashing) and signs {"user", "exp": now+30 min}, with the mode's
//! algorithm (HS256 under noauth).
//!
//!   --bench-tokens  runs a plain-loop micro-benchmark of one HS256 sign, one HS256 verify and one
//!                   argon2id hash (m=19456 KiB, t=2, p=1) and exits.
//!
//! Env: PORT (default 5000), SECRET_KEY (default "your_secret_key", as the seed), KEY_FILE.

use std::{
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use base64::Engine as _;
use jsonwebtoken::{jwk::Jwk, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Claims {
    user: String,
    exp: u64,
}

struct AppState {
    enc: EncodingKey,
    dec: DecodingKey,
    header: Header,
    validation: Validation,
}

type Shared = Arc<AppState>;

const PROTECTED_OK: &str = r#"{"message":"This is a protected route."}"#;
const MISSING: &str = r#"{"message":"Token is missing!"}"#;
const INVALID: &str = r#"{"message":"Token is invalid!"}"#;
const NOT_VERIFIED: &str = r#"{"message":"Could not verify"}"#;

fn json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(st: &AppState, user: &str) -> String {
    let claims = Claims {
        user: user.to_owned(),
        exp: now_secs() + 30 * 60,
    };
    jsonwebtoken::encode(&st.header, &claims, &st.enc).expect("signing with a checked key")
}

fn verify(st: &AppState, token: &str) -> bool {
    jsonwebtoken::decode::<Claims>(token, &st.dec, &st.validation).is_ok()
}

/// Plain compare, like the seed: `Authorization: Basic base64(user:password)`.
fn basic_ok(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == b"user:password"
}

async fn login(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if !basic_ok(&headers) {
        return json(StatusCode::UNAUTHORIZED, NOT_VERIFIED);
    }
    let token = sign(&st, "user");
    // The token is base64url + '.', nothing to escape.
    json(StatusCode::OK, format!(r#"{{"token":"{token}"}}"#))
}

async fn protected_noauth() -> Response {
    json(StatusCode::OK, PROTECTED_OK)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn protected_checked(
    State(st): State<Shared>,
    q: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let token = q
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| !t.is_empty());
    match token {
        None => json(StatusCode::FORBIDDEN, MISSING),
        Some(t) if verify(&st, &t) => json(StatusCode::OK, PROTECTED_OK),
        Some(_) => json(StatusCode::FORBIDDEN, INVALID),
    }
}

fn state(secret: &[u8]) -> Shared {
    state_with(
        Algorithm::HS256,
        EncodingKey::from_secret(secret).expect("SECRET_KEY must not be empty"),
        DecodingKey::from_secret(secret).expect("SECRET_KEY must not be empty"),
    )
}

/// EdDSA or ES256 keys from a PKCS#8 PEM private key: it signs, its public half (through its
/// JWK, as authd builds its own verifying key) verifies.
fn key_pair_state(alg: Algorithm, pem: &[u8]) -> Shared {
    let enc = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_ec_pem(pem),
    }
    .unwrap_or_else(|e| {
        fail(&format!(
            "KEY_FILE is not a PKCS#8 PEM {alg:?} private key: {e}"
        ))
    });
    let jwk = Jwk::from_encoding_key(&enc, alg)
        .unwrap_or_else(|e| fail(&format!("no public key from KEY_FILE: {e}")));
    let dec = DecodingKey::from_jwk(&jwk)
        .unwrap_or_else(|e| fail(&format!("no public key from KEY_FILE: {e}")));
    let st = state_with(alg, enc, dec);
    let token = sign(&st, "user");
    if !verify(&st, &token) {
        fail("KEY_FILE: a token it signed does not verify");
    }
    st
}

fn state_with(alg: Algorithm, enc: EncodingKey, dec: DecodingKey) -> Shared {
    let mut validation = Validation::new(alg); // only this algorithm accepted
    validation.leeway = 0; // PyJWT's default
    validation.validate_exp = true; // default, stated for the reader; "exp" is required by default
    Arc::new(AppState {
        enc,
        dec,
        header: Header::new(alg),
        validation,
    })
}

fn fail(msg: &str) -> ! {
    eprintln!("axum_limit: {msg}");
    std::process::exit(2);
}

/// Median of per-op times over `batches` batches of `iters` iterations, in nanoseconds, plus min/max.
fn time_batches(batches: usize, iters: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    for _ in 0..iters {
        f(); // warm-up
    }
    let mut v: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn bench_tokens(secret: &[u8]) {
    let st = state(secret);
    let token = sign(&st, "user");
    assert!(verify(&st, &token));
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(!verify(&st, &bad));

    let (s_med, s_min, s_max) = time_batches(15, 20_000, || {
        std::hint::black_box(sign(&st, std::hint::black_box("user")));
    });
    let (v_med, v_min, v_max) = time_batches(15, 20_000, || {
        std::hint::black_box(verify(&st, std::hint::black_box(&token)));
    });
    let (b_med, b_min, b_max) = time_batches(15, 20_000, || {
        std::hint::black_box(verify(&st, std::hint::black_box(&bad)));
    });

    // argon2id at OWASP's first recommended setting: m=19456 KiB (19 MiB), t=2, p=1.
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).unwrap();
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = *b"0123456789abcdef";
    let mut out = [0u8; 32];
    let mut mem = vec![argon2::Block::default(); 19_456];
    let (a_med, a_min, a_max) = time_batches(15, 3, || {
        a2.hash_password_into_with_memory(b"password", &salt, &mut out, &mut mem)
            .unwrap();
        std::hint::black_box(&out);
    });
    // The same, allocating its 19 MiB each time as `PasswordHasher::hash_password` does.
    let (p_med, p_min, p_max) = time_batches(15, 3, || {
        a2.hash_password_into(b"password", &salt, &mut out).unwrap();
        std::hint::black_box(&out);
    });
    // Both cores at once (no pinning inside): aggregate hashes/s when two logins hash in parallel.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per_thread = 20;
    let t = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                let mut out = [0u8; 32];
                for _ in 0..per_thread {
                    a2.hash_password_into(b"password", &salt, &mut out).unwrap();
                    std::hint::black_box(&out);
                }
            });
        }
    });
    let par_rate = (threads * per_thread) as f64 / t.elapsed().as_secs_f64();

    let backend = if cfg!(feature = "aws_lc_rs") {
        "aws_lc_rs"
    } else {
        "rust_crypto"
    };
    println!("jsonwebtoken backend: {backend}; median of 15 batches (min..max), one thread");
    println!("hs256_sign_ns {s_med:.0} ({s_min:.0}..{s_max:.0})");
    println!("hs256_verify_ns {v_med:.0} ({v_min:.0}..{v_max:.0})");
    println!("hs256_verify_badsig_ns {b_med:.0} ({b_min:.0}..{b_max:.0})");
    println!(
        "argon2id_m19456_t2_p1_ms {:.2} ({:.2}..{:.2})  [preallocated memory]",
        a_med / 1e6,
        a_min / 1e6,
        a_max / 1e6
    );
    println!(
        "argon2id_m19456_t2_p1_alloc_ms {:.2} ({:.2}..{:.2})  [allocating, as hash_password does]",
        p_med / 1e6,
        p_min / 1e6,
        p_max / 1e6
    );
    println!(
        "argon2id_parallel_hashes_per_s {par_rate:.1}  [{threads} threads x {per_thread} hashes, allocating]"
    );
    println!(
        "=> per core: {:.0} signs/s, {:.0} verifies/s, {:.1} argon2id hashes/s",
        1e9 / s_med,
        1e9 / v_med,
        1e9 / p_med
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secret = std::env::var("SECRET_KEY").unwrap_or_else(|_| "your_secret_key".into());
    if args.iter().any(|a| a == "--bench-tokens") {
        bench_tokens(secret.as_bytes());
        return;
    }
    let mut mode = std::env::var("LIMIT_MODE").unwrap_or_else(|_| "noauth".into());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(m) = a.strip_prefix("--mode=") {
            mode = m.to_owned();
        } else if a == "--mode" {
            mode = it.next().cloned().unwrap_or_default();
        } else if a == "--hs256" {
            mode = "hs256".into();
        } else if a == "--noauth" {
            mode = "noauth".into();
        } else {
            eprintln!(
                "unknown argument {a:?}; use --mode noauth|hs256|eddsa|es256 or --bench-tokens"
            );
            std::process::exit(2);
        }
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let key_pair = |alg| {
        let path = std::env::var("KEY_FILE").unwrap_or_else(|_| {
            fail("--mode eddsa|es256 needs KEY_FILE (a PKCS#8 PEM private key)")
        });
        let pem = std::fs::read(&path).unwrap_or_else(|e| fail(&format!("KEY_FILE {path}: {e}")));
        key_pair_state(alg, &pem)
    };
    let app = Router::new().route("/login", post(login));
    let (app, st) = match mode.as_str() {
        "noauth" => (
            app.route("/protected", get(protected_noauth)),
            state(secret.as_bytes()),
        ),
        "hs256" => (
            app.route("/protected", get(protected_checked)),
            state(secret.as_bytes()),
        ),
        "eddsa" => (
            app.route("/protected", get(protected_checked)),
            key_pair(Algorithm::EdDSA),
        ),
        "es256" => (
            app.route("/protected", get(protected_checked)),
            key_pair(Algorithm::ES256),
        ),
        other => fail(&format!(
            "unknown mode {other:?}; expected noauth, hs256, eddsa or es256"
        )),
    };
    let app = app.with_state(st);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        eprintln!("axum_limit mode={mode} listening on 127.0.0.1:{port}");
        axum::serve(listener, app).await.unwrap();
    });
}
