//! Turning on an issuer and an audience (and strict mode) without logging everyone out:
//! `AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL` keeps the tokens issued before the switch valid until
//! then, on authd and in a service using the library, never a token naming another issuer or
//! audience; refresh tokens survive the switch and what they get carries both claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{Binary, SECRET, mint, now, password_hash, run_to_exit};
use crate::library::start_example;

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "example-apps";

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: i64) -> String {
    chrono::DateTime::from_timestamp(now() + secs, 0)
        .unwrap()
        .to_rfc3339()
}

/// The claims of a JWT, read without checking it.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A folder for the instances: the secret in a file, a users file, one SQLite database.
fn deployment() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("user:{}\n", password_hash()),
    )
    .unwrap();
    let secret = dir.path().join("secret").display().to_string();
    let db = format!("sqlite://{}/authd.db", dir.path().display());
    (dir, secret, db)
}

/// authd on the deployment's files, with `extra` settings; its working folder is a fresh one.
async fn start(secret: &str, db: &str, users: &str, extra: &[(&str, &str)]) -> Binary {
    let mut envs = vec![
        ("AUTHD_SECRET_KEY_FILE", secret),
        ("AUTHD_DATABASE_URL", db),
        ("AUTHD_USERS", users),
    ];
    envs.extend_from_slice(extra);
    Binary::start(&[], &envs).await
}

async fn tokens(res: reqwest::Response) -> (String, String) {
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &Binary, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/refresh"))
        .json(&serde_json::json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn turning_on_issuer_audience_and_strict_mode_with_a_transition_logs_no_one_out() {
    let (dir, secret, db) = deployment();
    let users = dir.path().join("users").display().to_string();

    // Before: no issuer, no audience.
    let mut before = start(&secret, &db, &users, &[]).await;
    let (old_token, old_refresh) = tokens(before.login("user", "password").await).await;
    let (_, spare_refresh) = tokens(before.login("user", "password").await).await;
    assert!(claims(&old_token).get("aud").is_none());
    assert!(before.terminate().await.success());

    // Without a transition, the switch refuses every token out there (a time already past is
    // no transition: accepted at start, with a warning, so that a leftover stops no restart).
    let strict = [
        ("AUTHD_STRICT", "true"),
        ("AUTHD_ISSUER", ISSUER),
        ("AUTHD_AUDIENCE", AUDIENCE),
    ];
    let past = in_secs(-60);
    let mut abrupt = strict.to_vec();
    abrupt.push(("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", past.as_str()));
    let mut without = start(&secret, &db, &users, &abrupt).await;
    assert_eq!(
        without
            .bearer_status(&without.url("/protected"), &old_token)
            .await,
        401
    );
    assert!(
        without
            .output()
            .contains("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL is past"),
        "{}",
        without.output()
    );
    assert!(without.terminate().await.success());

    // With one: the old token still opens /protected and /verify ...
    let until = in_secs(3600);
    let mut settings = strict.to_vec();
    settings.push(("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", until.as_str()));
    let after = start(&secret, &db, &users, &settings).await;
    assert!(
        after
            .output()
            .contains("tokens without iss/aud are accepted"),
        "{}",
        after.output()
    );
    assert_eq!(
        after
            .bearer_status(&after.url("/protected"), &old_token)
            .await,
        200
    );
    assert_eq!(
        after.bearer_status(&after.url("/verify"), &old_token).await,
        200
    );
    // ... but a token naming another audience or issuer never does, nor one without `exp`.
    let exp = now() + 600;
    for wrong in [
        serde_json::json!({"sub": "user", "exp": exp, "iss": ISSUER, "aud": "someone-else"}),
        serde_json::json!({"sub": "user", "exp": exp, "aud": "someone-else"}),
        serde_json::json!({"sub": "user", "exp": exp, "iss": "https://evil.example"}),
        serde_json::json!({"sub": "user", "iss": ISSUER, "aud": AUDIENCE}),
    ] {
        let token = mint(jsonwebtoken::Algorithm::HS256, SECRET, &wrong);
        for route in ["/protected", "/verify"] {
            assert_eq!(
                after.bearer_status(&after.url(route), &token).await,
                401,
                "{route} {wrong}"
            );
        }
    }
    // Refresh tokens from before the switch still refresh, and what they get carries both.
    let (refreshed, _) = tokens(refresh(&after, &old_refresh).await).await;
    let (fresh, _) = tokens(after.login("user", "password").await).await;
    for token in [&refreshed, &fresh] {
        let c = claims(token);
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(c["aud"], AUDIENCE);
        assert_eq!(
            after.bearer_status(&after.url("/protected"), token).await,
            200
        );
    }

    // A service using the library, given the same settings, accepts and refuses the same.
    let mut library = settings.clone();
    library.push(("AUTHD_SECRET_KEY_FILE", secret.as_str()));
    let (_example, listen) = start_example(&library, dir.path()).await;
    let hello = format!("http://{listen}/hello");
    assert_eq!(after.bearer_status(&hello, &old_token).await, 200);
    assert_eq!(after.bearer_status(&hello, &fresh).await, 200);
    let foreign = mint(
        jsonwebtoken::Algorithm::HS256,
        SECRET,
        &serde_json::json!({"sub": "user", "exp": exp, "iss": ISSUER, "aud": "someone-else"}),
    );
    assert_eq!(after.bearer_status(&hello, &foreign).await, 403);
    // Once the time is past, the library refuses the old token too.
    let mut ended = strict.to_vec();
    ended.push(("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", past.as_str()));
    ended.push(("AUTHD_SECRET_KEY_FILE", secret.as_str()));
    let (_ended_example, ended_listen) = start_example(&ended, dir.path()).await;
    let ended_hello = format!("http://{ended_listen}/hello");
    assert_eq!(after.bearer_status(&ended_hello, &old_token).await, 403);
    assert_eq!(after.bearer_status(&ended_hello, &fresh).await, 200);

    // A refresh token from before the switch refreshes after the transition too.
    let mut settled = start(&secret, &db, &users, &strict).await;
    let (token, _) = tokens(refresh(&settled, &spare_refresh).await).await;
    assert_eq!(claims(&token)["aud"], AUDIENCE);
    assert_eq!(
        settled
            .bearer_status(&settled.url("/protected"), &old_token)
            .await,
        401
    );
    assert!(settled.terminate().await.success());
}

#[tokio::test]
async fn a_transition_too_far_ahead_unreadable_or_without_issuer_or_audience_is_refused_at_start() {
    let far = in_secs(24 * 3600 + 120);
    let soon = in_secs(600);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("AUTHD_AUDIENCE", AUDIENCE),
                ("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", &far),
            ],
            "more than 24h ahead",
        ),
        (
            &[
                ("AUTHD_AUDIENCE", AUDIENCE),
                ("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", "tomorrow"),
            ],
            "not an RFC 3339 time",
        ),
        (
            &[
                ("AUTHD_AUDIENCE", AUDIENCE),
                ("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", "2026-12-05 09:00"),
            ],
            "not an RFC 3339 time",
        ),
        (
            &[("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL", &soon)],
            "neither is set",
        ),
    ];
    for (extra, expected) in cases {
        let mut envs = vec![("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", SECRET)];
        envs.extend_from_slice(extra);
        let (code, _, stderr) = run_to_exit(&[], &envs, |dir| {
            std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap();
        })
        .await;
        assert_eq!(code, Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL"),
            "{extra:?}: {stderr}"
        );
    }
}
