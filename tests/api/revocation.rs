//! Sessions end now, not at `exp` (issue #14), against the real binary: a logout, `authd sessions
//! revoke --user`, reuse detection and the per-user cap end the access tokens issued in the
//! session, on every instance within a second (two instances on one PostgreSQL; one on SQLite
//! with the command line); a token without `sid` still works; a restart keeps the revocations.

use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::Algorithm;

use crate::helpers::{
    Binary, PASSWORD, SECRET, TestDb, USER, assert_message, mint, now, password_hash, run_to_exit,
};

/// How long another instance (or the one a command-line revocation reaches) may take.
const BOUND: Duration = Duration::from_secs(1);

/// Starts the binary on `database_url` with the test user, sharing nothing else.
async fn start_on(database_url: &str, extra: &[(&str, &str)]) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{}\nbob:{}\n", password_hash(), password_hash()),
    )
    .unwrap();
    let mut envs = vec![
        ("AUTHD_USERS", "users"),
        ("AUTHD_SECRET_KEY", SECRET),
        ("AUTHD_DATABASE_URL", database_url),
    ];
    envs.extend_from_slice(extra);
    Binary::start_in(dir, &[], &envs).await
}

#[derive(serde::Deserialize)]
struct Tokens {
    token: String,
    refresh_token: String,
}

async fn login(app: &Binary, user: &str) -> Tokens {
    let res = app.login(user, PASSWORD).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn post_json(app: &Binary, path: &str, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&serde_json::json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

/// The status of `/protected` with `token` as Bearer.
async fn protected(app: &Binary, token: &str) -> u16 {
    app.bearer_status(&app.url("/protected"), token).await
}

/// The status of `/verify` with `token` as Bearer.
async fn verify(app: &Binary, token: &str) -> u16 {
    app.bearer_status(&app.url("/verify"), token).await
}

/// Waits (bounded: three times [`BOUND`]) until `app` refuses `token` on `/protected`, and
/// returns how long that took from `since`.
async fn refused_after(app: &Binary, token: &str, since: Instant) -> Duration {
    let deadline = since + 3 * BOUND;
    loop {
        let status = protected(app, token).await;
        if status == 403 {
            let took = since.elapsed();
            eprintln!("refused {took:?} after the session ended");
            return took;
        }
        assert_eq!(status, 200, "neither accepted nor refused");
        assert!(
            Instant::now() < deadline,
            "the token was still accepted {:?} after its session ended",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The claims of a token, unverified.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn two_instances_on_one_postgres_refuse_a_token_within_a_second_of_its_logout_or_sessions_revoke()
 {
    let db = TestDb::postgres("revocation_two_instances").await;
    let a = start_on(&db.url, &[]).await;
    let b = start_on(&db.url, &[]).await;

    // A logout on A: the access token of that session is refused on B within the bound, by
    // `/protected` and `/verify` alike; another session of the same user goes on.
    let ended = login(&a, USER).await;
    let kept = login(&a, USER).await;
    assert_eq!(protected(&b, &ended.token).await, 200);
    assert_eq!(
        post_json(&a, "/logout", &ended.refresh_token)
            .await
            .status(),
        204
    );
    let took = refused_after(&b, &ended.token, Instant::now()).await;
    assert!(took < BOUND, "B refused the token only after {took:?}");
    assert_eq!(
        protected(&a, &ended.token).await,
        403,
        "A refuses it at once"
    );
    assert_eq!(verify(&b, &ended.token).await, 401);
    assert_eq!(protected(&b, &kept.token).await, 200);
    assert_eq!(verify(&b, &kept.token).await, 200);

    // `authd sessions revoke --user` runs in a process of its own and writes the database: both
    // instances refuse the user's tokens within the bound after it exits; bob's go on.
    let on_b = login(&b, USER).await;
    let bob = login(&b, "bob").await;
    assert_eq!(protected(&a, &on_b.token).await, 200);
    let (code, out, err) = run_to_exit(
        &["sessions", "revoke", "--user", USER],
        &[("AUTHD_DATABASE_URL", db.url.as_str())],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked 2 sessions"), "{out}");
    let exited = Instant::now();
    for (app, token) in [(&a, &on_b.token), (&b, &on_b.token), (&a, &kept.token)] {
        let took = refused_after(app, token, exited).await;
        assert!(
            took < BOUND,
            "refused only {took:?} after the command exited"
        );
    }
    assert_eq!(protected(&a, &bob.token).await, 200);
    assert_eq!(protected(&b, &bob.token).await, 200);
}

#[tokio::test]
async fn sessions_revoke_on_the_command_line_ends_the_access_token_of_a_sqlite_instance_within_a_second()
 {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/authd.db", data.path().display());
    let app = start_on(&url, &[]).await;
    let tokens = login(&app, USER).await;
    let bob = login(&app, "bob").await;
    assert_eq!(protected(&app, &tokens.token).await, 200);
    let (code, out, err) = run_to_exit(
        &["sessions", "revoke", "--user", USER],
        &[("AUTHD_DATABASE_URL", url.as_str())],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked 1 session of user"), "{out}");
    let took = refused_after(&app, &tokens.token, Instant::now()).await;
    assert!(
        took < BOUND,
        "refused only {took:?} after the command exited"
    );
    assert_eq!(verify(&app, &tokens.token).await, 401);
    assert_eq!(protected(&app, &bob.token).await, 200);
}

#[tokio::test]
async fn reuse_detection_ends_every_access_token_of_the_family() {
    let data = tempfile::tempdir().unwrap();
    let app = start_on(&format!("sqlite://{}/authd.db", data.path().display()), &[]).await;
    let first = login(&app, USER).await;
    let res = post_json(&app, "/refresh", &first.refresh_token).await;
    assert_eq!(res.status(), 200);
    let second: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&first.token)["sid"], claims(&second.token)["sid"]);
    assert_eq!(protected(&app, &first.token).await, 200);
    assert_eq!(protected(&app, &second.token).await, 200);

    // The spent refresh token again: the family is revoked, and both its access tokens with it.
    assert_message(
        post_json(&app, "/refresh", &first.refresh_token).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    for token in [&first.token, &second.token] {
        assert_message(
            app.client
                .get(app.url("/protected"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
            403,
            "Token is invalid!",
        )
        .await;
    }
}

#[tokio::test]
async fn a_login_past_the_session_cap_ends_the_oldest_sessions_access_token() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/authd.db", data.path().display());
    let app = start_on(&url, &[("AUTHD_MAX_SESSIONS_PER_USER", "1")]).await;
    let oldest = login(&app, USER).await;
    assert_eq!(protected(&app, &oldest.token).await, 200);
    let newest = login(&app, USER).await;
    assert_eq!(protected(&app, &oldest.token).await, 403);
    assert_eq!(protected(&app, &newest.token).await, 200);
}

#[tokio::test]
async fn tokens_carry_an_opaque_sid_and_a_token_without_one_still_works() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/authd.db", data.path().display());
    let app = start_on(&url, &[]).await;
    let tokens = login(&app, USER).await;
    let sid = claims(&tokens.token)["sid"].as_str().unwrap().to_owned();
    assert_eq!(sid.len(), 32);
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // Not the session's id that `authd sessions list` shows, nor any part of the refresh token.
    let (_, list, _) = run_to_exit(
        &["sessions", "list"],
        &[("AUTHD_DATABASE_URL", url.as_str())],
        |_| {},
    )
    .await;
    assert!(list.contains("1 live session"), "{list}");
    assert!(!list.contains(&sid), "{list}");
    let refresh = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&tokens.refresh_token)
        .unwrap();
    let refresh_hex: String = refresh.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!refresh_hex.contains(&sid[..16]) && !refresh_hex.contains(&sid[16..]));

    // The tutorial's PyJWT token (`user` and `exp` only) belongs to no session, and no
    // revocation of its user reaches it.
    let foreign = mint(
        Algorithm::HS256,
        SECRET,
        &serde_json::json!({"user": USER, "exp": now() + 600}),
    );
    assert_eq!(protected(&app, &foreign).await, 200);
    assert_eq!(
        post_json(&app, "/logout", &tokens.refresh_token)
            .await
            .status(),
        204
    );
    let (code, _, err) = run_to_exit(
        &["sessions", "revoke", "--user", USER],
        &[("AUTHD_DATABASE_URL", url.as_str())],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(protected(&app, &tokens.token).await, 403);
    assert_eq!(protected(&app, &foreign).await, 200);
}

#[tokio::test]
async fn a_restart_keeps_the_revocations() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/authd.db", data.path().display());
    let mut first = start_on(&url, &[]).await;
    let ended = login(&first, USER).await;
    let kept = login(&first, USER).await;
    assert_eq!(
        post_json(&first, "/logout", &ended.refresh_token)
            .await
            .status(),
        204
    );
    assert_eq!(protected(&first, &ended.token).await, 403);
    first.terminate().await;

    let second = start_on(&url, &[]).await;
    assert!(
        second
            .output()
            .contains("revocations loaded revoked_sessions=1"),
        "{}",
        second.output()
    );
    assert_eq!(protected(&second, &ended.token).await, 403);
    assert_eq!(protected(&second, &kept.token).await, 200);
}

#[tokio::test]
async fn max_revoked_sessions_outside_1000_to_10000000_is_refused_at_start() {
    for bad in ["999", "10000001", "0", "lots"] {
        let (code, _, stderr) = run_to_exit(
            &[],
            &[
                ("AUTHD_USERS", "users"),
                ("AUTHD_SECRET_KEY", SECRET),
                ("AUTHD_MAX_REVOKED_SESSIONS", bad),
                ("AUTHD_LISTEN", "127.0.0.1:0"),
            ],
            |dir| std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap(),
        )
        .await;
        assert_eq!(code, Some(1), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bad}: {stderr}");
        assert!(
            stderr.contains("AUTHD_MAX_REVOKED_SESSIONS"),
            "{bad}: {stderr}"
        );
    }
}

/// The `NAME=value` pair of the `Set-Cookie` line for `name` in `headers`.
fn set_cookie_pair(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"))
        .to_owned()
}

/// The hidden CSRF field of a form page.
fn csrf_field(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        .to_owned()
}

/// A browser's sign-in on `app` through the form (plain-HTTP development cookies): the CSRF
/// cookie and the session cookie, as `NAME=value` pairs.
async fn sign_in(app: &Binary) -> (String, String) {
    let page = app.client.get(app.url("/signin")).send().await.unwrap();
    let csrf = set_cookie_pair(page.headers(), "authd_csrf");
    let field = csrf_field(&page.text().await.unwrap());
    // The answer is a redirect whose Set-Cookie is wanted, not the page it leads to.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .post(app.url("/signin"))
        .header("cookie", &csrf)
        .form(&[("username", USER), ("password", PASSWORD), ("csrf", &field)])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    (csrf, set_cookie_pair(res.headers(), "authd_session"))
}

/// The status of `/verify` with the session cookie `cookie` (`NAME=value`) alone.
async fn verify_cookie(app: &Binary, cookie: &str) -> u16 {
    app.client
        .get(app.url("/verify"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (bounded: three times [`BOUND`]) until `app` refuses the session cookie on `/verify`,
/// and returns how long that took from `since`.
async fn cookie_refused_after(app: &Binary, cookie: &str, since: Instant) -> Duration {
    let deadline = since + 3 * BOUND;
    loop {
        let status = verify_cookie(app, cookie).await;
        if status == 401 {
            return since.elapsed();
        }
        assert_eq!(status, 200, "neither accepted nor refused");
        assert!(
            Instant::now() < deadline,
            "the cookie was still accepted {:?} after its session ended",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn two_instances_on_one_postgres_refuse_a_session_cookie_within_a_second_of_its_sign_out_or_sessions_revoke()
 {
    let db = TestDb::postgres("revocation_two_instances_cookie").await;
    let dev = [("AUTHD_COOKIE_SECURE", "false")];
    let a = start_on(&db.url, &dev).await;
    let b = start_on(&db.url, &dev).await;

    // Signed in on A, the cookie opens B too; a copy of it kept aside must die with the
    // sign-out on A, on B as well, within the bound.
    let (csrf, cookie) = sign_in(&a).await;
    assert_eq!(verify_cookie(&b, &cookie).await, 200);
    let page = a
        .client
        .get(a.url("/signout"))
        .header("cookie", format!("{cookie}; {csrf}"))
        .send()
        .await
        .unwrap();
    let field = csrf_field(&page.text().await.unwrap());
    let res = a
        .client
        .post(a.url("/signout"))
        .header("cookie", format!("{cookie}; {csrf}"))
        .form(&[("csrf", &field)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let took = cookie_refused_after(&b, &cookie, Instant::now()).await;
    assert!(
        took < BOUND,
        "B accepted the cookie {took:?} after the sign-out"
    );
    assert_eq!(verify_cookie(&a, &cookie).await, 401);

    // Signed in on B, ended from the command line: both instances refuse the cookie within the
    // bound after the command exits.
    let (_, cookie) = sign_in(&b).await;
    assert_eq!(verify_cookie(&a, &cookie).await, 200);
    let (code, _, err) = run_to_exit(
        &["sessions", "revoke", "--user", USER],
        &[("AUTHD_DATABASE_URL", db.url.as_str())],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let exited = Instant::now();
    for app in [&a, &b] {
        let took = cookie_refused_after(app, &cookie, exited).await;
        assert!(
            took < BOUND,
            "refused only {took:?} after the command exited"
        );
    }
}
