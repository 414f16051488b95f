//! The request log: one line per request with method, path, status and latency, and never a
//! token, a password, a secret or an Authorization header.

use base64::Engine as _;

use crate::helpers::{Binary, password_hash};

#[tokio::test]
async fn logs_carry_requests_but_no_token_password_or_secret() {
    let secret = "log-test-secret-5f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f";
    let dir = tempfile::tempdir().unwrap();
    // The password of this user is `password` (the shared test hash); the wrong one is distinct.
    std::fs::write(
        dir.path().join("users"),
        format!("alice:{}\n", password_hash()),
    )
    .unwrap();
    let mut app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_SECRET_KEY", secret),
            ("AUTHD_USERS", "users"),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let res = app.login("alice", "password").await;
    let body = res.json::<serde_json::Value>().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let first_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/refresh"))
        .json(&serde_json::json!({ "refresh_token": first_refresh }))
        .send()
        .await
        .unwrap();
    let second_refresh = res.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Reuse (logged as a warning, without the token) and logout.
    for (path, refresh_token) in [("/refresh", &first_refresh), ("/logout", &second_refresh)] {
        app.client
            .post(app.url(path))
            .json(&serde_json::json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap();
    }
    let wrong = "Wr0ng-Pa55word-that-must-not-leak";
    let res = app.login("alice", wrong).await;
    assert_eq!(res.status(), 401);
    for req in [
        app.client
            .get(app.url(&format!("/protected?token={token}"))),
        app.client.get(app.url("/protected")).bearer_auth(&token),
        app.client
            .get(app.url("/protected?token=forged.token.value")),
    ] {
        req.send().await.unwrap();
    }
    app.terminate().await;
    let logs = app.output();

    assert!(logs.contains("method=POST path=/login"), "{logs}");
    assert!(logs.contains("status=401"), "{logs}");
    assert!(logs.contains("method=GET path=/protected"), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("latency_us="), "{logs}");
    assert!(logs.contains("refresh token reused"), "{logs}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{wrong}"));
    let signature = token.rsplit('.').next().unwrap();
    for leak in [
        token.as_str(),
        first_refresh.as_str(),
        second_refresh.as_str(),
        signature,
        "forged.token.value",
        wrong,
        basic.as_str(),
        secret,
        "Bearer ",
        "Basic ",
    ] {
        assert!(
            !logs.contains(leak),
            "log output contains {leak:?}:\n{logs}"
        );
    }
}

/// The cause of a 5xx is logged once, where the error turns into the answer, with the route and
/// the status: not at each place it passed through, and never in the answer.
#[tokio::test]
async fn the_cause_of_a_503_is_logged_once_with_its_route_and_not_sent_to_the_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("alice:{}\n", password_hash()),
    )
    .unwrap();
    let db = dir.path().join("authd.db");
    let url = format!("sqlite://{}", db.display());
    let app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_SECRET_KEY", crate::helpers::SECRET),
            ("AUTHD_USERS", "users"),
            ("AUTHD_DATABASE_URL", &url),
        ],
    )
    .await;
    assert_eq!(app.login("alice", "password").await.status(), 200);
    // From now on the database refuses to start a session: the login's last step fails.
    {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER refuse_sessions BEFORE INSERT ON session_families \
             BEGIN SELECT RAISE(ABORT, 'sessions-refused-by-the-test'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let res = app.login("alice", "password").await;
    assert_eq!(res.status(), 503);
    let body = res.text().await.unwrap();
    assert_eq!(body, "{\"message\":\"Service unavailable\"}\n");
    app.wait_for_output("sessions-refused-by-the-test").await;
    // The served line comes after the cause's: once it is there, every line about it is.
    app.wait_for_output("status=503").await;
    let output = app.output();
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("sessions-refused-by-the-test"))
        .collect();
    assert_eq!(lines.len(), 1, "{output}");
    let line = lines[0];
    for part in ["ERROR", "store unavailable", "/login", "503"] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
}
