//! A verifier nobody here wrote: the `jwt-authorizer` crate, guarding an axum (0.7, its own)
//! service with authd's key set, found by URL (`from_jwks_url`) and by discovery (`from_oidc`).
//! It accepts authd's EdDSA and ES256 tokens, refuses a tampered one, and after authd restarts
//! with a new key (the old one as previous) accepts tokens of both.
//!
//! jwt-authorizer refetches on an unknown `kid` only once its last load is `refresh_interval`
//! old (600 s by default): a service that must see a new key at once sets it lower, as here.

use std::time::Duration;

use authd::signing::SigningAlg;
use jwt_authorizer::{
    Authorizer, IntoLayer as _, JwtAuthorizer, JwtClaims, Refresh, RefreshStrategy, Validation,
};
use serde_json::Value;

use crate::helpers::{Binary, demo_token};
use crate::jwks_library::{start_authd, write_key};

/// How the service finds authd's keys.
#[derive(Clone, Copy, Debug)]
enum Found {
    ByJwksUrl,
    ByDiscovery,
}

/// An axum 0.7 service whose `/hello` is guarded by jwt-authorizer with `authd`'s keys; its
/// base URL.
async fn guarded_service(authd: &Binary, found: Found) -> String {
    let builder = match found {
        Found::ByJwksUrl => {
            JwtAuthorizer::<Value>::from_jwks_url(&authd.url("/.well-known/jwks.json"))
        }
        Found::ByDiscovery => JwtAuthorizer::<Value>::from_oidc(&authd.base),
    };
    let auth: Authorizer<Value> = builder
        .validation(Validation::new().iss(&[authd.base.as_str()]))
        .refresh(Refresh {
            strategy: RefreshStrategy::KeyNotFound,
            refresh_interval: Duration::ZERO,
            retry_interval: Duration::ZERO,
        })
        .build()
        .await
        .unwrap();
    let app = axum07::Router::new()
        .route(
            "/hello",
            axum07::routing::get(|JwtClaims(claims): JwtClaims<Value>| async move {
                claims["sub"].as_str().unwrap_or_default().to_owned()
            }),
        )
        .layer(auth.into_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum07::serve(listener, app).await });
    format!("http://{addr}")
}

/// The status of `GET {service}/hello` with `token`, and the body of a 200.
async fn hello(authd: &Binary, service: &str, token: &str) -> (u16, String) {
    let res = authd
        .client
        .get(format!("{service}/hello"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

fn tampered(token: &str) -> String {
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut payload = payload.to_owned();
    let last = payload.pop().unwrap();
    payload.push(if last == 'A' { 'B' } else { 'A' });
    format!("{head}.{payload}.{sig}")
}

#[tokio::test]
async fn jwt_authorizer_accepts_authds_eddsa_and_es256_tokens_and_refuses_a_tampered_one() {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let keys = tempfile::tempdir().unwrap();
        let key = write_key(keys.path(), "key.pem", alg);
        let authd = start_authd(0, alg, &key, None).await;
        let token = demo_token(&authd).await;
        for found in [Found::ByJwksUrl, Found::ByDiscovery] {
            let service = guarded_service(&authd, found).await;
            assert_eq!(
                hello(&authd, &service, &token).await,
                (200, "user".to_owned()),
                "{alg:?} {found:?}"
            );
            let (status, _) = hello(&authd, &service, &tampered(&token)).await;
            assert_eq!(status, 401, "{alg:?} {found:?}");
        }
    }
}

#[tokio::test]
async fn jwt_authorizer_accepts_tokens_of_both_keys_after_authd_restarts_with_a_new_key() {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let keys = tempfile::tempdir().unwrap();
        let old = write_key(keys.path(), "old.pem", alg);
        let new = write_key(keys.path(), "new.pem", alg);
        let mut authd = start_authd(0, alg, &old, None).await;
        let port = authd.addr().port();
        let old_token = demo_token(&authd).await;
        let services = [
            guarded_service(&authd, Found::ByJwksUrl).await,
            guarded_service(&authd, Found::ByDiscovery).await,
        ];
        for service in &services {
            assert_eq!(hello(&authd, service, &old_token).await.0, 200);
        }

        assert!(authd.terminate().await.success());
        let authd = start_authd(port, alg, &new, Some(&old)).await;
        let new_token = demo_token(&authd).await;
        for service in &services {
            for token in [&new_token, &old_token] {
                assert_eq!(
                    hello(&authd, service, token).await,
                    (200, "user".to_owned()),
                    "{alg:?} {service}"
                );
            }
        }
    }
}
