//! Hostile and foreign tokens against `/protected`: each is refused with 403, never a 5xx.

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::helpers::{SECRET, assert_message, mint, now, raw_request, spawn_app, spawn_app_with};

async fn assert_invalid(token: &str) {
    let app = spawn_app().await;
    let res = app.protected_with_query(token).await;
    assert_message(res, 403, "Token is invalid!").await;
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_message(res, 403, "Token is invalid!").await;
}

#[tokio::test]
async fn expired_token_is_rejected_with_403() {
    let t = mint(
        Algorithm::HS256,
        SECRET,
        &json!({"user": "user", "exp": now() - 120}),
    );
    assert_invalid(&t).await;
}

#[tokio::test]
async fn token_signed_with_another_secret_is_rejected() {
    let t = mint(
        Algorithm::HS256,
        "some-other-secret-which-is-long-enough-too",
        &json!({"user": "user", "exp": now() + 600}),
    );
    assert_invalid(&t).await;
}

#[tokio::test]
async fn alg_none_token_is_rejected() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(json!({"user": "user", "exp": now() + 600}).to_string());
    assert_invalid(&format!("{header}.{payload}.")).await;
}

#[tokio::test]
async fn hs512_token_with_the_right_secret_is_rejected() {
    let t = mint(
        Algorithm::HS512,
        SECRET,
        &json!({"user": "user", "exp": now() + 600}),
    );
    assert_invalid(&t).await;
}

#[tokio::test]
async fn token_without_exp_is_rejected() {
    let t = mint(Algorithm::HS256, SECRET, &json!({"user": "user"}));
    assert_invalid(&t).await;
}

#[tokio::test]
async fn token_not_valid_before_a_future_nbf_is_rejected() {
    let t = mint(
        Algorithm::HS256,
        SECRET,
        // Within the default 30-minute lifetime, so that `nbf` alone is what refuses it.
        &json!({"user": "user", "exp": now() + 1500, "nbf": now() + 900}),
    );
    assert_invalid(&t).await;
}

#[tokio::test]
async fn tampered_payload_is_rejected() {
    use base64::Engine as _;
    let app = spawn_app().await;
    let good = app.token().await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    payload["user"] = json!("admin");
    parts[1] = b64.encode(payload.to_string());
    assert_invalid(&parts.join(".")).await;
}

#[tokio::test]
async fn stripped_signature_is_rejected() {
    let app = spawn_app().await;
    let good = app.token().await;
    let (head_payload, _) = good.rsplit_once('.').unwrap();
    assert_invalid(&format!("{head_payload}.")).await;
    assert_invalid(head_payload).await;
}

#[tokio::test]
async fn a_64_kib_token_is_rejected_cleanly() {
    // In a Bearer header it reaches the check and is refused.
    let app = spawn_app().await;
    let t = format!(
        "{}.{}.{}",
        "e".repeat(20_000),
        "f".repeat(20_000),
        "g".repeat(25_536)
    );
    for token in ["A".repeat(64 * 1024), t.clone()] {
        let res = app
            .client
            .get(app.url("/protected"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_message(res, 403, "Token is invalid!").await;
    }
    // In the query it makes the target longer than HTTP's parser takes (64 KiB): a JSON 414.
    let req = format!("GET /protected?token={t} HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, head, body) = raw_request(app.addr, req.as_bytes()).await;
    assert_eq!(status, 414);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body, "{\"message\":\"URI Too Long\"}\n");
    // Just under that size it reaches the check too.
    let t = "B".repeat(60 * 1024);
    assert_message(app.protected_with_query(&t).await, 403, "Token is invalid!").await;
}

#[tokio::test]
async fn query_and_bearer_tokens_that_differ_are_rejected_and_that_agree_are_accepted() {
    let app = spawn_app().await;
    let token = app.token().await;
    let other = mint(
        Algorithm::HS256,
        SECRET,
        &json!({"user": "user", "exp": now() + 600}),
    );
    let res = app
        .client
        .get(app.url("/protected"))
        .query(&[("token", &token)])
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_message(res, 403, "Token is invalid!").await;
    let res = app
        .client
        .get(app.url("/protected"))
        .query(&[("token", &token)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_message(res, 200, "This is a protected route.").await;
}

#[tokio::test]
async fn token_from_a_plain_jwt_library_with_only_user_and_exp_is_accepted() {
    let app = spawn_app().await;
    let t = mint(
        Algorithm::HS256,
        SECRET,
        &json!({"user": "user", "exp": now() + 600}),
    );
    assert_message(
        app.protected_with_query(&t).await,
        200,
        "This is a protected route.",
    )
    .await;
}

#[tokio::test]
async fn issued_token_lives_for_the_configured_ttl_and_carries_iss_and_aud() {
    let app = spawn_app_with(|c, _| {
        c.tokens.ttl = std::time::Duration::from_secs(15 * 60);
        c.tokens.issuer = Some("authd-test".into());
        c.tokens.audience = Some("api".into());
    })
    .await;
    let res = app.login("user", "password").await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 900);
    let token = body["token"].as_str().unwrap();
    use base64::Engine as _;
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(payload["iss"], "authd-test");
    assert_eq!(payload["aud"], "api");
    assert_eq!(payload["user"], "user");
    assert_eq!(payload["sub"], "user");
    assert_message(
        app.protected_with_query(token).await,
        200,
        "This is a protected route.",
    )
    .await;
    // A token without the configured issuer and audience is refused.
    let plain = mint(
        Algorithm::HS256,
        SECRET,
        &json!({"user": "user", "exp": now() + 600}),
    );
    assert_message(
        app.protected_with_query(&plain).await,
        403,
        "Token is invalid!",
    )
    .await;
}
