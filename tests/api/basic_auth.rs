//! Malformed `Authorization` headers on `/login`: always 401 "Could not verify", never a 5xx.

use reqwest::header::HeaderValue;

use crate::helpers::{assert_message, spawn_app};

#[tokio::test]
async fn malformed_basic_headers_get_401_never_5xx() {
    let app = spawn_app().await;
    let cases: Vec<HeaderValue> = vec![
        HeaderValue::from_static("Basic dXNlcnBhc3N3b3Jk"), // no colon
        HeaderValue::from_static("Basic not*base64!"),
        HeaderValue::from_static("Basic //79/Q=="), // decodes to non-UTF-8
        HeaderValue::from_bytes(b"Basic \xff\xfe\xfd").unwrap(), // non-UTF-8 header bytes
        HeaderValue::from_static("Bearer dXNlcjpwYXNzd29yZA=="), // wrong scheme
        HeaderValue::from_static("Digest username=\"user\""),
        HeaderValue::from_static("Basic"),
        HeaderValue::from_static("Basic OnBhc3N3b3Jk"), // empty user name
        HeaderValue::from_static("dXNlcjpwYXNzd29yZA=="), // no scheme
    ];
    for value in cases {
        let res = app
            .client
            .post(app.url("/login"))
            .header("authorization", value.clone())
            .send()
            .await
            .unwrap();
        assert_message(res, 401, "Could not verify").await;
    }
}

#[tokio::test]
async fn basic_scheme_is_case_insensitive_and_padding_optional() {
    let app = spawn_app().await;
    for value in ["basic dXNlcjpwYXNzd29yZA==", "BASIC dXNlcjpwYXNzd29yZA"] {
        let res = app
            .client
            .post(app.url("/login"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{value}");
    }
}

#[tokio::test]
async fn binary_body_on_login_does_not_hurt() {
    let app = spawn_app().await;
    let body: Vec<u8> = (0..=255u8).cycle().take(8 * 1024).collect();
    let res = app
        .client
        .post(app.url("/login"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_message(res, 401, "Could not verify").await;
}
