//! `/verify`, the forward-auth endpoint, spoken to the way nginx, Traefik and Caddy speak to it.

use crate::helpers::{TestApp, mint_deployed, mint_with_other_key, now, raw_request, spawn_app};

async fn verify(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url("/verify"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn assert_allowed(res: reqwest::Response, user: &str) {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-auth-user"], user);
    let exp: i64 = res.headers()["x-auth-expires"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(exp > now(), "x-auth-expires {exp} is not in the future");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.bytes().await.unwrap().len(), 0);
}

async fn assert_refused(res: reqwest::Response) {
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="authd""#);
    assert!(res.headers().get("x-auth-user").is_none());
    assert!(res.headers().get("content-type").is_none());
    assert_eq!(res.bytes().await.unwrap().len(), 0, "a 401 body would leak");
}

#[tokio::test]
async fn verify_accepts_a_bearer_token_and_names_the_user() {
    let app = spawn_app().await;
    let token = app.token().await;
    let bearer = format!("Bearer {token}");
    assert_allowed(verify(&app, &[("authorization", &bearer)]).await, "user").await;
}

#[tokio::test]
async fn verify_finds_the_token_in_the_original_uri_of_each_proxy() {
    let app = spawn_app().await;
    let token = app.token().await;
    let target = format!("/app/page?x=1&token={token}");
    // nginx (told to send $request_uri), then Traefik and Caddy.
    assert_allowed(verify(&app, &[("x-original-uri", &target)]).await, "user").await;
    assert_allowed(verify(&app, &[("x-forwarded-uri", &target)]).await, "user").await;
    // Its own query, for a proxy that rewrites the target instead.
    let res = app
        .client
        .get(app.url("/verify"))
        .query(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_allowed(res, "user").await;
    // An original URI without a token: its own query is not looked at.
    let res = app
        .client
        .get(app.url("/verify"))
        .query(&[("token", &token)])
        .header("x-original-uri", "/app/page")
        .send()
        .await
        .unwrap();
    assert_refused(res).await;
}

#[tokio::test]
async fn verify_answers_any_method_as_nginx_subrequests_keep_the_original_one() {
    let app = spawn_app().await;
    let bearer = format!("Bearer {}", app.token().await);
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let res = app
            .client
            .request(method, app.url("/verify"))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_allowed(res, "user").await;
    }
}

#[tokio::test]
async fn verify_refuses_missing_invalid_expired_and_subjectless_tokens_with_an_empty_401() {
    let app = spawn_app().await;
    let expired = mint_deployed(&serde_json::json!({"user": "user", "exp": now() - 3600}));
    let other_key = mint_with_other_key(&serde_json::json!({"user": "user", "exp": now() + 600}));
    let no_subject = mint_deployed(&serde_json::json!({"exp": now() + 600}));
    // The subjectless token is valid: it opens /protected, but names no one for a proxy.
    let res = app.protected_with_query(&no_subject).await;
    assert_eq!(res.status(), 200);
    assert_refused(verify(&app, &[]).await).await;
    for token in [&expired, &other_key, &no_subject, &"nonsense".to_owned()] {
        let bearer = format!("Bearer {token}");
        assert_refused(verify(&app, &[("authorization", &bearer)]).await).await;
        let target = format!("/p?token={token}");
        assert_refused(verify(&app, &[("x-original-uri", &target)]).await).await;
    }
}

#[tokio::test]
async fn verify_401_goes_out_on_the_wire_with_no_body_at_all() {
    // Below reqwest: the exact bytes, so that neither the JSON error layer nor the rewriting of
    // bare parser heads has added a body.
    let app = spawn_app().await;
    let (status, head, body) = raw_request(
        app.addr,
        b"GET /verify HTTP/1.1\r\nhost: x\r\nx-original-uri: /p?token=bad\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
    assert!(head.contains("\r\ncontent-length: 0"), "{head}");
    assert!(
        head.contains("\r\nwww-authenticate: bearer realm=\"authd\""),
        "{head}"
    );
    assert!(!head.contains("content-type"), "{head}");
    assert_eq!(body, "");
}

#[tokio::test]
async fn verify_with_a_valid_token_and_a_user_header_from_the_client_names_the_token_user() {
    // A client cannot choose the name: the answer's header comes from the token alone.
    let app = spawn_app().await;
    let bearer = format!("Bearer {}", app.token().await);
    let res = verify(
        &app,
        &[("authorization", &bearer), ("x-auth-user", "admin")],
    )
    .await;
    assert_allowed(res, "user").await;
}
