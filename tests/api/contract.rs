//! The tutorial's contract, row by row, against the real binary in demo mode (black box).

use crate::helpers::{Binary, assert_message, signing_alg};

async fn demo() -> Binary {
    Binary::start(&["--demo"], &[]).await
}

async fn login_token(app: &Binary) -> String {
    let res = app.login("user", "password").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1800);
    let token = body["token"].as_str().unwrap().to_owned();
    // Signed as the deployment under test is (`AUTHD_TEST_SIGNING_ALG`).
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, signing_alg().jwt());
    token
}

#[tokio::test]
async fn login_with_known_user_answers_a_token_that_opens_protected() {
    let app = demo().await;
    let token = login_token(&app).await;
    assert_eq!(token.split('.').count(), 3);
    let res = app
        .client
        .get(app.url(&format!("/protected?token={token}")))
        .send()
        .await
        .unwrap();
    // Byte for byte what Flask's jsonify writes.
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.text().await.unwrap(),
        "{\"message\":\"This is a protected route.\"}\n"
    );
}

#[tokio::test]
async fn bearer_header_opens_protected_too() {
    let app = demo().await;
    let token = login_token(&app).await;
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_message(res, 200, "This is a protected route.").await;
}

#[tokio::test]
async fn login_with_wrong_missing_or_malformed_credentials_is_401_with_challenge() {
    let app = demo().await;
    let wrong = app
        .client
        .post(app.url("/login"))
        .basic_auth("user", Some("wrong"));
    let unknown = app
        .client
        .post(app.url("/login"))
        .basic_auth("nobody", Some("password"));
    let missing = app.client.post(app.url("/login"));
    let malformed = app
        .client
        .post(app.url("/login"))
        .header("authorization", "Basic %%%");
    for req in [wrong, unknown, missing, malformed] {
        let res = req.send().await.unwrap();
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Basic realm="authd", charset="UTF-8""#
        );
        assert_message(res, 401, "Could not verify").await;
    }
}

#[tokio::test]
async fn protected_without_token_or_with_empty_token_is_403_missing() {
    let app = demo().await;
    for path in ["/protected", "/protected?token=", "/protected?other=1"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_message(res, 403, "Token is missing!").await;
    }
}

#[tokio::test]
async fn protected_with_anything_not_valid_is_403_invalid() {
    let app = demo().await;
    for token in ["abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "%00%ff"] {
        let res = app
            .client
            .get(app.url(&format!("/protected?token={token}")))
            .send()
            .await
            .unwrap();
        assert_message(res, 403, "Token is invalid!").await;
    }
}

#[tokio::test]
async fn unknown_path_wrong_method_and_health_answer_json() {
    let app = demo().await;
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_message(res, 404, "Not Found").await;
    let res = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    assert_message(res, 405, "Method Not Allowed").await;
    let res = app.client.post(app.url("/protected")).send().await.unwrap();
    assert_message(res, 405, "Method Not Allowed").await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok", "store": "ok"})
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_with_exit_code_zero() {
    let mut app = demo().await;
    let status = app.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", app.output());
    assert!(app.output().contains("shutting down"));
}
