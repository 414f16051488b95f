//! Oversized requests get a JSON 413, 414 or 431, and the server keeps serving.

use crate::helpers::{TestApp, assert_message, raw_request, spawn_app};

async fn still_serving(app: &TestApp) {
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn body_beyond_the_limit_is_413() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/login"))
        .basic_auth("user", Some("password"))
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_message(res, 413, "Payload Too Large").await;
    still_serving(&app).await;
}

#[tokio::test]
async fn headers_beyond_the_limit_are_431() {
    let app = spawn_app().await;
    let mut req = app.client.get(app.url("/protected"));
    for i in 0..12 {
        req = req.header(format!("x-filler-{i}"), "v".repeat(10 * 1024));
    }
    assert_message(
        req.send().await.unwrap(),
        431,
        "Request Header Fields Too Large",
    )
    .await;

    let mut req = app.client.get(app.url("/protected"));
    for i in 0..150 {
        req = req.header(format!("x-h-{i}"), "1");
    }
    assert_message(
        req.send().await.unwrap(),
        431,
        "Request Header Fields Too Large",
    )
    .await;
    still_serving(&app).await;
}

#[tokio::test]
async fn a_one_mib_query_string_is_a_json_414() {
    let app = spawn_app().await;
    let req = format!(
        "GET /protected?token={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let (status, head, body) = raw_request(app.addr, req.as_bytes()).await;
    assert_eq!(status, 414);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body, "{\"message\":\"URI Too Long\"}\n");
    still_serving(&app).await;
}

#[tokio::test]
async fn a_head_beyond_the_hard_cap_and_garbage_get_json_answers() {
    let app = spawn_app().await;
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3 * 1024 * 1024)
    );
    let (status, head, body) = raw_request(app.addr, req.as_bytes()).await;
    assert_eq!(status, 431);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body, "{\"message\":\"Request Header Fields Too Large\"}\n");

    let (status, head, body) = raw_request(app.addr, b"\x00\x01GARBAGE\xff\r\n\r\n").await;
    assert_eq!(status, 400);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body, "{\"message\":\"Bad Request\"}\n");
    still_serving(&app).await;
}
