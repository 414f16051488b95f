//! The library verifying authd's EdDSA and ES256 tokens from its JWK Set (`JwksKeys`), against
//! the real binary: tokens of both algorithms, tampered and HS256-with-the-public-key tokens,
//! a rotation across a restart, a flood of made-up `kid`s, and `examples/jwks_service.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authd::jwks::{JwksKeys, JwksOptions};
use authd::signing::{SigningAlg, SigningKey};
use authd::tokens::{TokenKeys, TokenSettings, VerifyError};
use authd::{Authenticated, RequireToken, TokenCheck};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Router};
use secrecy::ExposeSecret as _;
use tower::ServiceExt as _;

use crate::helpers::{Binary, demo_token};

/// A new private key of `alg` written to `dir/name` as authd wants it (owner-only).
pub fn write_key(dir: &Path, name: &str, alg: SigningAlg) -> PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let pem = SigningKey::generate_pem(alg).unwrap();
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    f.write_all(pem.expose_secret().as_bytes()).unwrap();
    path
}

/// authd in demo mode signing with `key` (and accepting `previous`), on `port` (0: any), its
/// issuer its own address.
pub async fn start_authd(
    port: u16,
    alg: SigningAlg,
    key: &Path,
    previous: Option<&Path>,
) -> Binary {
    let port = if port == 0 {
        crate::proxy_servers::free_port()
    } else {
        port
    };
    let listen = format!("127.0.0.1:{port}");
    let issuer = format!("http://{listen}");
    let key = key.display().to_string();
    let previous = previous.map(|p| p.display().to_string());
    let mut envs = vec![
        ("AUTHD_SIGNING_ALG", alg.name()),
        ("AUTHD_SIGNING_KEY_FILE", key.as_str()),
        ("AUTHD_LISTEN", listen.as_str()),
        ("AUTHD_ISSUER", issuer.as_str()),
    ];
    if let Some(p) = &previous {
        envs.push(("AUTHD_SIGNING_KEY_PREVIOUS_FILES", p.as_str()));
    }
    Binary::start(&["--demo"], &envs).await
}

/// The settings a service verifying `authd`'s tokens uses: its issuer.
fn settings_for(authd: &Binary) -> TokenSettings {
    TokenSettings {
        issuer: Some(authd.base.clone()),
        ..TokenSettings::default()
    }
}

/// `token` with one character of its payload changed.
pub fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = &mut parts[1];
    let last = payload.pop().unwrap();
    payload.push(if last == 'A' { 'B' } else { 'A' });
    parts.join(".")
}

/// `token` with its header replaced by `header` (signature kept).
fn with_header(token: &str, header: &serde_json::Value) -> String {
    use base64::Engine as _;
    let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    let rest = token.split_once('.').unwrap().1;
    format!("{h}.{rest}")
}

/// A service's routes guarded by the key set, by extractor and by layer.
fn service(jwks: Arc<JwksKeys>) -> Router {
    let reports = Router::new()
        .route(
            "/reports",
            get(
                |Extension(Authenticated(c)): Extension<Authenticated>| async move {
                    c.subject().unwrap_or_default().to_owned()
                },
            ),
        )
        .route_layer(RequireToken::new(Arc::clone(&jwks)));
    Router::new()
        .route(
            "/hello",
            get(|Authenticated(c): Authenticated| async move {
                c.subject().unwrap_or_default().to_owned()
            }),
        )
        .merge(reports)
        .with_state(jwks)
}

/// The status and body of `GET path` on `app` with `token` as Bearer (none: no header).
async fn call(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn eddsa_and_es256_tokens_verify_from_the_key_set_and_forgeries_get_authds_403s() {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let keys = tempfile::tempdir().unwrap();
        let key = write_key(keys.path(), "key.pem", alg);
        let authd = start_authd(0, alg, &key, None).await;
        let token = demo_token(&authd).await;

        let url = authd.url("/.well-known/jwks.json");
        let jwks = JwksKeys::from_jwks_url(&url, alg, settings_for(&authd))
            .await
            .unwrap();
        let claims = jwks.verify(&token, crate::helpers::now()).await.unwrap();
        assert_eq!(claims.subject(), Some("user"), "{alg:?}");
        // Discovery finds the same keys, and requires the issuer.
        let discovered = JwksKeys::from_issuer(&authd.base, alg, TokenSettings::default())
            .await
            .unwrap();
        assert_eq!(discovered.url(), url);
        assert_eq!(
            discovered.keys().settings().issuer.as_deref(),
            Some(authd.base.as_str())
        );
        assert!(
            discovered
                .verify(&token, crate::helpers::now())
                .await
                .is_ok()
        );
        // The other algorithm, pinned by the service, finds no key of its own in the set.
        let other = if alg == SigningAlg::EdDsa {
            SigningAlg::Es256
        } else {
            SigningAlg::EdDsa
        };
        assert!(
            JwksKeys::from_jwks_url(&url, other, TokenSettings::default())
                .await
                .is_err()
        );

        // The classic attack: an HS256 token whose HMAC key is the published public key.
        let jwks_doc: serde_json::Value = authd
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = &jwks_doc["keys"][0];
        let claims = serde_json::json!({
            "sub": "admin", "user": "admin", "iss": authd.base,
            "exp": crate::helpers::now() + 60,
        });
        let mut forgeries = vec![tampered(&token)];
        for secret in [jwk.to_string(), jwk["x"].as_str().unwrap().to_owned()] {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = jwk["kid"].as_str().map(str::to_owned);
            let forged = jsonwebtoken::encode(
                &h,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
            )
            .unwrap();
            forgeries.push(forged);
        }
        let jwks = Arc::new(jwks);
        let app = service(Arc::clone(&jwks));
        for forged in &forgeries {
            assert_eq!(
                jwks.verify(forged, crate::helpers::now()).await.err(),
                Some(VerifyError::Invalid)
            );
            for path in ["/hello", "/reports"] {
                let (status, body) = call(&app, path, Some(forged)).await;
                assert_eq!(status, 403, "{alg:?} {path}");
                assert_eq!(body, "{\"message\":\"Token is invalid!\"}\n");
            }
        }
        for path in ["/hello", "/reports"] {
            assert_eq!(
                call(&app, path, Some(&token)).await,
                (StatusCode::OK, "user".into())
            );
            let (status, body) = call(&app, path, None).await;
            assert_eq!(status, 403);
            assert_eq!(body, "{\"message\":\"Token is missing!\"}\n");
        }
    }
}

#[tokio::test]
async fn after_authd_restarts_with_a_new_key_tokens_of_both_keys_verify_without_restarting_the_service()
 {
    let alg = SigningAlg::EdDsa;
    let keys = tempfile::tempdir().unwrap();
    let old = write_key(keys.path(), "old.pem", alg);
    let new = write_key(keys.path(), "new.pem", alg);
    let mut authd = start_authd(0, alg, &old, None).await;
    let port = authd.addr().port();
    let old_token = demo_token(&authd).await;
    let url = authd.url("/.well-known/jwks.json");
    // Default options: the first fetch after the constructor's is allowed at once.
    let jwks = Arc::new(
        JwksKeys::from_jwks_url(&url, alg, settings_for(&authd))
            .await
            .unwrap(),
    );
    let app = service(Arc::clone(&jwks));
    assert_eq!(call(&app, "/hello", Some(&old_token)).await.0, 200);

    assert!(authd.terminate().await.success());
    let authd = start_authd(port, alg, &new, Some(&old)).await;
    let new_token = demo_token(&authd).await;
    assert_ne!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        jsonwebtoken::decode_header(&old_token).unwrap().kid
    );
    // Through the layer (the boxed path waiting for the fetch), then the extractor.
    assert_eq!(
        call(&app, "/reports", Some(&new_token)).await,
        (StatusCode::OK, "user".into())
    );
    for token in [&new_token, &old_token] {
        assert_eq!(
            call(&app, "/hello", Some(token)).await,
            (StatusCode::OK, "user".into())
        );
    }
    assert_eq!(jwks.keys().public_keys().len(), 2);
}

/// A key set server counting the requests it answers: `(url, counter)`.
async fn counting_jwks_server(set: serde_json::Value) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let set = set.clone();
            counted.fetch_add(1, Ordering::SeqCst);
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/jwks.json"), count)
}

#[tokio::test]
async fn a_flood_of_made_up_kids_makes_one_fetch_of_the_key_set() {
    let alg = SigningAlg::EdDsa;
    let pem = SigningKey::generate_pem(alg).unwrap();
    let key = SigningKey::from_pem(alg, pem.expose_secret().as_bytes()).unwrap();
    let signer = TokenKeys::with_key_pair(&key, &[], TokenSettings::default()).unwrap();
    let set = serde_json::to_value(signer.jwks()).unwrap();
    let (url, fetches) = counting_jwks_server(set).await;

    let jwks = Arc::new(
        JwksKeys::from_jwks_url(&url, alg, TokenSettings::default())
            .await
            .unwrap(),
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the constructor's fetch");
    let good = signer.issue("alice", crate::helpers::now()).unwrap().token;
    let check = TokenCheck::from_jwks(Arc::clone(&jwks), false);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let forged = with_header(
            &good,
            &serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": format!("made-up-{i}")}),
        );
        let check = check.clone();
        tasks.push(tokio::spawn(async move {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                format!("Bearer {forged}").parse().unwrap(),
            );
            check.check_async(None, &headers).await.is_err()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap(), "a made-up kid was accepted");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "200 made-up kids, one refetch"
    );
    // The real token still verifies, from the keys held.
    assert!(jwks.verify(&good, crate::helpers::now()).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_jwks_example_service_accepts_authds_token_with_nothing_but_the_jwks_url() {
    let alg = SigningAlg::EdDsa;
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "key.pem", alg);
    let authd = start_authd(0, alg, &key, None).await;
    let token = demo_token(&authd).await;
    let url = authd.url("/.well-known/jwks.json");
    let dir = tempfile::tempdir().unwrap();
    let (_example, listen) = crate::library::start_example_named(
        "jwks_service",
        "JWKS_SERVICE_LISTEN",
        &[("AUTHD_JWKS_URL", &url)],
        dir.path(),
    )
    .await;
    let hello = format!("http://{listen}/hello");
    let res = authd
        .client
        .get(&hello)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "user");
    crate::helpers::assert_message(
        authd
            .client
            .get(&hello)
            .bearer_auth(tampered(&token))
            .send()
            .await
            .unwrap(),
        403,
        "Token is invalid!",
    )
    .await;
    crate::helpers::assert_message(
        authd.client.get(&hello).send().await.unwrap(),
        403,
        "Token is missing!",
    )
    .await;

    // With the issuer alone (discovery), it requires tokens of that issuer: authd's are.
    let (_by_issuer, listen) = crate::library::start_example_named(
        "jwks_service",
        "JWKS_SERVICE_LISTEN",
        &[
            ("AUTHD_ISSUER", &authd.base),
            ("AUTHD_SIGNING_ALG", "EdDSA"),
        ],
        dir.path(),
    )
    .await;
    let res = authd
        .client
        .get(format!("http://{listen}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_key_set_settings_are_refused_when_unusable() {
    // HS256 has no public key; a plain http URL off loopback could be anyone's.
    assert!(matches!(
        JwksKeys::from_jwks_url(
            "https://127.0.0.1:1/x",
            SigningAlg::Hs256,
            TokenSettings::default()
        )
        .await,
        Err(authd::jwks::JwksError::Symmetric)
    ));
    assert!(matches!(
        JwksKeys::from_jwks_url(
            "http://auth.example.com/.well-known/jwks.json",
            SigningAlg::EdDsa,
            TokenSettings::default()
        )
        .await,
        Err(authd::jwks::JwksError::Url(_))
    ));
    // Nothing listening: the service does not start blind.
    let port = crate::proxy_servers::free_port();
    let res = JwksKeys::from_jwks_url_with(
        &format!("http://127.0.0.1:{port}/jwks.json"),
        SigningAlg::EdDsa,
        TokenSettings::default(),
        JwksOptions::default(),
    )
    .await;
    assert!(
        matches!(res, Err(authd::jwks::JwksError::Fetch { .. })),
        "{res:?}"
    );
    // A discovery document naming another issuer is refused.
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "key.pem", SigningAlg::Es256);
    let authd = start_authd(0, SigningAlg::Es256, &key, None).await;
    let other = authd.base.replace("127.0.0.1", "localhost");
    let res = JwksKeys::from_issuer(&other, SigningAlg::Es256, TokenSettings::default()).await;
    assert!(
        matches!(res, Err(authd::jwks::JwksError::IssuerMismatch { .. })),
        "{res:?}"
    );
}
