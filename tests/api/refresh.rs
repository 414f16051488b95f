//! `/refresh` and `/logout` over HTTP, on SQLite and on PostgreSQL: rotation, reuse detection,
//! logout, token kinds kept apart, malformed bodies, and 20 concurrent refreshes of one token.

use crate::helpers::{TestDb, assert_message, spawn_app_on};
use crate::on_both_engines;

on_both_engines!(
    login_answers_a_refresh_token_and_refresh_rotates_it,
    replaying_a_spent_refresh_token_revokes_the_family,
    logout_ends_the_session_and_answers_204_for_any_token,
    refresh_and_access_tokens_are_not_interchangeable,
    twenty_concurrent_refreshes_of_one_token_give_exactly_one_200,
    malformed_refresh_bodies_get_json_4xx,
    healthz_reports_the_store,
);

async fn login_answers_a_refresh_token_and_refresh_rotates_it(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let res = app.login("user", "password").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1800);
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_token.len(), 43);
    assert!(
        refresh_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    // JSON body.
    let res = app.refresh(refresh_token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["content-type"], "application/json");
    let second: serde_json::Value = res.json().await.unwrap();
    assert_eq!(second["token_type"], "Bearer");
    let second_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, refresh_token);
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(second["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_message(res, 200, "This is a protected route.").await;

    // The form of RFC 6749 §6.
    let res = app
        .client
        .post(app.url("/refresh"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let third: serde_json::Value = res.json().await.unwrap();
    assert_ne!(third["refresh_token"], second["refresh_token"]);
}

async fn replaying_a_spent_refresh_token_revokes_the_family(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let first = app.tokens().await;
    let other_session = app.tokens().await;
    let res = app.refresh(&first.refresh_token).await;
    assert_eq!(res.status(), 200);
    let newest: serde_json::Value = res.json().await.unwrap();

    assert_message(
        app.refresh(&first.refresh_token).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    // The newest token of the family is dead too ...
    assert_message(
        app.refresh(newest["refresh_token"].as_str().unwrap()).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    // ... but another login's session is not.
    assert_eq!(
        app.refresh(&other_session.refresh_token).await.status(),
        200
    );
}

async fn logout_ends_the_session_and_answers_204_for_any_token(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let tokens = app.tokens().await;
    let res = app.logout(&tokens.refresh_token).await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.text().await.unwrap(), "");
    assert_message(
        app.refresh(&tokens.refresh_token).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    // Again, and with tokens that were never ours: the same answer (RFC 7009 §2.2).
    assert_eq!(app.logout(&tokens.refresh_token).await.status(), 204);
    assert_eq!(
        app.logout("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .status(),
        204
    );
    assert_eq!(app.logout("nonsense").await.status(), 204);
    // RFC 7009's form, too.
    let again = app.tokens().await;
    let res = app
        .client
        .post(app.url("/logout"))
        .form(&[
            ("token", again.refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.refresh(&again.refresh_token).await.status(), 401);
    // The access token issued in the session ends with it, at once on this instance.
    assert_message(
        app.protected_with_query(&again.token).await,
        403,
        "Token is invalid!",
    )
    .await;
}

async fn refresh_and_access_tokens_are_not_interchangeable(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let tokens = app.tokens().await;
    assert_message(
        app.protected_with_query(&tokens.refresh_token).await,
        403,
        "Token is invalid!",
    )
    .await;
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(&tokens.refresh_token)
        .send()
        .await
        .unwrap();
    assert_message(res, 403, "Token is invalid!").await;
    assert_message(
        app.refresh(&tokens.token).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    // Both still work where they belong.
    assert_eq!(app.protected_with_query(&tokens.token).await.status(), 200);
    assert_eq!(app.refresh(&tokens.refresh_token).await.status(), 200);
}

async fn twenty_concurrent_refreshes_of_one_token_give_exactly_one_200(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let tokens = app.tokens().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/refresh");
        let body = serde_json::json!({ "refresh_token": tokens.refresh_token });
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 401),
        "{statuses:?}"
    );
}

async fn malformed_refresh_bodies_get_json_4xx(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    for path in ["/refresh", "/logout"] {
        for (content_type, body, status) in [
            ("application/json", &b"{"[..], 400),
            ("application/json", b"{}", 400),
            ("application/json", br#"{"refresh_token": 42}"#, 400),
            ("application/json", b"\xff\xfe", 400),
            (
                "application/x-www-form-urlencoded",
                b"grant_type=refresh_token",
                400,
            ),
            ("text/plain", b"refresh_token=x", 415),
        ] {
            let res = app
                .client
                .post(app.url(path))
                .header("content-type", content_type)
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{path} {content_type} {body:?}");
            assert_eq!(res.headers()["content-type"], "application/json");
            let json: serde_json::Value = res.json().await.unwrap();
            assert!(json["message"].is_string(), "{json}");
        }
        // No body at all; a GET.
        let res = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 415);
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["content-type"], "application/json");
    }
    // A refresh token of the right shape that is not ours.
    assert_message(
        app.refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    assert_message(app.refresh("").await, 401, "Refresh token is invalid!").await;
}

async fn healthz_reports_the_store(db: TestDb) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok", "store": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_removed_from_the_users_file_can_no_longer_refresh() {
    let db = TestDb::sqlite();
    let before = spawn_app_on(&db, |_, _| {}).await;
    let tokens = before.tokens().await;
    // The same database, served with a users file that no longer has `user`.
    let after = spawn_app_on(&db, |c, dir| {
        let users = dir.join("users-without-user");
        std::fs::write(
            &users,
            format!("someone-else:{}\n", crate::helpers::password_hash()),
        )
        .unwrap();
        c.users = authd::config::UsersSource::File(users);
    })
    .await;
    assert_message(
        after.refresh(&tokens.refresh_token).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    // The refresh spent the token; the session it would have continued is revoked, not live.
    let store = authd::store::Store::open(&db.url, &Default::default())
        .await
        .unwrap();
    let sessions = authd::sessions::Sessions::new(store, Default::default());
    let live = sessions
        .list(Some("user"), crate::helpers::now())
        .await
        .unwrap();
    assert!(live.is_empty(), "{live:?}");
}
