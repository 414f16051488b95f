//! The token check as a library: `examples/protected_service.rs` (its router, included here as it
//! is) runs beside the real authd binary; a token from authd's `/login` opens the example's
//! routes, and a tampered, foreign or missing one gets authd's own 403 answers.

use std::sync::Arc;

use authd::{TokenKeys, TokenSettings};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{Binary, SECRET, assert_message};

#[path = "../../examples/protected_service.rs"]
#[allow(dead_code)]
mod protected_service;

/// The example service on a loopback port 0, checking tokens with `secret`.
async fn spawn_example(secret: &str) -> String {
    let keys = Arc::new(TokenKeys::new(secret.as_bytes(), TokenSettings::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, protected_service::app(keys))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

async fn authd_token(authd: &Binary) -> String {
    let res = authd.login("user", "password").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_from_authd_opens_the_example_service_by_extractor_and_by_layer() {
    let authd = Binary::start(&["--demo"], &[("AUTHD_SECRET_KEY", SECRET)]).await;
    let example = spawn_example(SECRET).await;
    let token = authd_token(&authd).await;
    let client = crate::helpers::client();

    let res = client
        .get(format!("{example}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "user");
    assert_eq!(body["message"], "Hello, user!");

    let res = client
        .get(format!("{example}/reports"))
        .query(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "user");
}

#[tokio::test]
async fn tampered_foreign_or_missing_tokens_get_authds_403_answers_from_the_example() {
    let authd = Binary::start(&["--demo"], &[("AUTHD_SECRET_KEY", SECRET)]).await;
    let example = spawn_example(SECRET).await;
    let token = authd_token(&authd).await;
    let client = crate::helpers::client();

    // The payload changed to another user, the signature kept.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["user"] = "admin".into();
    claims["sub"] = "admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");

    // A token from an authd with another secret.
    let other = Binary::start(
        &["--demo"],
        &[(
            "AUTHD_SECRET_KEY",
            "another-pLR3j25lIme09e1j+yoi3We3R/DurCso089B90Dm",
        )],
    )
    .await;
    let foreign = authd_token(&other).await;

    for path in ["/hello", "/reports"] {
        for bad in [&tampered, &foreign] {
            let res = client
                .get(format!("{example}{path}"))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_message(res, 403, "Token is invalid!").await;
            let res = client
                .get(format!("{example}{path}"))
                .query(&[("token", bad)])
                .send()
                .await
                .unwrap();
            assert_message(res, 403, "Token is invalid!").await;
        }
        let res = client.get(format!("{example}{path}")).send().await.unwrap();
        assert_message(res, 403, "Token is missing!").await;
    }
    // The open route and unknown paths are not guarded.
    let res = client
        .get(format!("{example}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{example}/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
