//! Brute-force protection over HTTP, on SQLite and on PostgreSQL: bans per user and per address
//! with `Retry-After`, reset on success, no password hash for a refused attempt, and
//! `X-Forwarded-For` believed only from trusted proxies; counts and bans that hold across a key
//! rotation (instances that disagree on the current key share one budget).

use std::time::Duration;

use authd::Config;
use authd::throttle::ThrottleSettings;
use secrecy::SecretSlice;

use crate::helpers::{
    PASSWORD, SECRET, TestApp, TestDb, USER, assert_message, join_all, password_hash, spawn_app_on,
    spawn_app_with,
};
use crate::on_both_engines;

const BAN_SECS: u64 = 300;

fn limits(user_max: u32, address_max: u32) -> ThrottleSettings {
    ThrottleSettings {
        user_max,
        address_max,
        window: Duration::from_secs(600),
        ban: Duration::from_secs(BAN_SECS),
    }
}

async fn login_from(
    app: &TestApp,
    user: &str,
    password: &str,
    xff: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/login"))
        .basic_auth(user, Some(password));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

/// A 429 "Too many attempts" whose Retry-After is within the ban.
async fn assert_throttled(res: reqwest::Response) {
    assert_eq!(res.status(), 429, "not throttled: {:?}", res.headers());
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=BAN_SECS).contains(&retry_after), "{retry_after}");
    assert_message(res, 429, "Too many attempts").await;
}

on_both_engines!(
    failed_logins_past_the_user_limit_get_429_with_retry_after,
    a_successful_login_resets_the_users_count,
    failed_logins_past_the_address_limit_get_429_whatever_the_user,
    a_throttled_attempt_computes_no_password_hash,
    forwarded_for_from_a_trusted_proxy_names_the_client,
    forwarded_for_from_an_untrusted_peer_changes_nothing,
    a_ban_made_under_the_old_key_holds_once_the_new_key_is_current,
    instances_mid_rotation_share_one_budget_and_the_ban_outlives_the_old_key,
    a_success_under_two_keys_resets_the_count_under_each,
    concurrent_logins_on_instances_with_swapped_keys_all_succeed,
);

async fn failed_logins_past_the_user_limit_get_429_with_retry_after(db: TestDb) {
    let app = spawn_app_on(&db, |c, _| c.throttle = limits(3, 100)).await;
    for _ in 0..3 {
        assert_message(app.login(USER, "wrong").await, 401, "Could not verify").await;
    }
    // Banned: even the right password is refused now.
    assert_throttled(app.login(USER, PASSWORD).await).await;
    assert_throttled(app.login(USER, "wrong").await).await;
    // Other users are not.
    assert_message(app.login("someone", "wrong").await, 401, "Could not verify").await;
}

async fn a_successful_login_resets_the_users_count(db: TestDb) {
    let app = spawn_app_on(&db, |c, _| c.throttle = limits(3, 100)).await;
    for _ in 0..2 {
        assert_eq!(app.login(USER, "wrong").await.status(), 401);
    }
    assert_eq!(app.login(USER, PASSWORD).await.status(), 200);
    // Without the reset the count would be past 3 within these.
    for _ in 0..3 {
        assert_eq!(app.login(USER, "wrong").await.status(), 401);
    }
    assert_throttled(app.login(USER, "wrong").await).await;
}

async fn failed_logins_past_the_address_limit_get_429_whatever_the_user(db: TestDb) {
    let app = spawn_app_on(&db, |c, _| c.throttle = limits(5, 3)).await;
    for user in ["u1", "u2", "u3"] {
        assert_eq!(app.login(user, "wrong").await.status(), 401);
    }
    assert_throttled(app.login("u4", "wrong").await).await;
    assert_throttled(app.login(USER, PASSWORD).await).await;
}

async fn a_throttled_attempt_computes_no_password_hash(db: TestDb) {
    // `slow` has a bcrypt hash of cost 14 (the highest a users file may hold), 2^10 times the
    // work of cost 4: checking it takes a second or more, so an attempt that hashed would
    // answer 401, late. Only a refusal before hashing answers 429.
    let cheap = bcrypt::hash("x", 4).unwrap();
    let slow = cheap.replacen("$04$", "$14$", 1);
    let app = spawn_app_on(&db, |c, dir| {
        c.throttle = limits(5, 3);
        let users = dir.join("users-slow");
        std::fs::write(&users, format!("{USER}:{}\nslow:{slow}\n", password_hash())).unwrap();
        c.users = authd::config::UsersSource::File(users);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.login(USER, "wrong").await.status(), 401);
    }
    assert_throttled(app.login("slow", "anything").await).await;
}

async fn forwarded_for_from_a_trusted_proxy_names_the_client(db: TestDb) {
    let app = spawn_app_on(&db, |c, _| {
        c.throttle = limits(100, 3);
        c.trusted_proxies = "127.0.0.1/32, ::1".parse().unwrap();
    })
    .await;
    let a = Some("203.0.113.1");
    for user in ["u1", "u2", "u3"] {
        assert_eq!(login_from(&app, user, "wrong", a).await.status(), 401);
    }
    assert_throttled(login_from(&app, "u4", "wrong", a).await).await;
    // Another client behind the same proxy is not banned ...
    let res = login_from(&app, USER, PASSWORD, Some("203.0.113.2")).await;
    assert_eq!(res.status(), 200);
    // ... and a client cannot escape by prepending an address: the right-most untrusted counts.
    let forged = Some("198.51.100.7, 203.0.113.1");
    assert_throttled(login_from(&app, "u5", "wrong", forged).await).await;
}

async fn forwarded_for_from_an_untrusted_peer_changes_nothing(db: TestDb) {
    let app = spawn_app_on(&db, |c, _| c.throttle = limits(100, 3)).await;
    for (i, user) in ["u1", "u2", "u3"].iter().enumerate() {
        let xff = format!("203.0.113.{i}");
        assert_eq!(
            login_from(&app, user, "wrong", Some(&xff)).await.status(),
            401
        );
    }
    // Each attempt claimed another address; all counted against the socket's.
    assert_throttled(login_from(&app, "u4", "wrong", Some("203.0.113.99")).await).await;
}

/// A client that ignores `Retry-After` and asks again on the same connection at once waits: one
/// answer per connection per pause, so a flood of refused logins cannot take the CPU from the
/// token checks. Another connection is not held up.
#[tokio::test]
async fn a_connection_told_to_retry_later_waits_before_its_next_request() {
    let app = spawn_app_with(|c, _| c.throttle = limits(1, 100)).await;
    assert_eq!(app.login(USER, "wrong").await.status(), 401);
    let asked = std::time::Instant::now();
    let refused = app.login(USER, "wrong").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    refused.bytes().await.unwrap();
    // The same client, one connection kept alive: the next request waits out the pause.
    let next = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    let waited = asked.elapsed();
    assert!(
        waited >= authd::http::RETRY_PAUSE,
        "answered {waited:?} after the refused login; the pause is {:?}",
        authd::http::RETRY_PAUSE
    );
    // A new connection is answered without the pause (no timing asserted: only that it works).
    let other = crate::helpers::client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

/// The key a rotation brings in; [`SECRET`] is the one it retires.
const NEW_SECRET: &str = "rotated-in-1c9Vq7ZKe0wXb4yHn2Tg8LmRa5Ds3Pu6";

/// Signs with `current` and verifies with `previous` too (the throttle counts under each).
fn keys(config: &mut Config, current: &str, previous: &[&str]) {
    config.secret = SecretSlice::from(current.as_bytes().to_vec());
    config.previous_secrets = previous
        .iter()
        .map(|p| SecretSlice::from(p.as_bytes().to_vec()))
        .collect();
}

/// An instance past the rotation: the new key alone.
async fn new_only(db: &TestDb) -> TestApp {
    spawn_app_on(db, |c, _| {
        c.throttle = limits(5, 100);
        keys(c, NEW_SECRET, &[]);
    })
    .await
}

async fn a_ban_made_under_the_old_key_holds_once_the_new_key_is_current(db: TestDb) {
    let before = spawn_app_on(&db, |c, _| c.throttle = limits(5, 100)).await;
    for _ in 0..5 {
        assert_eq!(before.login(USER, "wrong").await.status(), 401);
    }
    assert_throttled(before.login(USER, "wrong").await).await;
    drop(before);

    // What the old key's rows guard against: an instance that knows only the new key has never
    // seen the ban.
    assert_eq!(
        new_only(&db).await.login(USER, PASSWORD).await.status(),
        200
    );

    // Restarted with the keys swapped: the ban was counted under SECRET alone, and still holds.
    let after = spawn_app_on(&db, |c, _| {
        c.throttle = limits(5, 100);
        keys(c, NEW_SECRET, &[SECRET]);
    })
    .await;
    assert_throttled(after.login(USER, PASSWORD).await).await;
    drop(after);
    // The refused attempt copied the ban to the new key's row: it holds without the old key.
    assert_throttled(new_only(&db).await.login(USER, PASSWORD).await).await;
}

async fn instances_mid_rotation_share_one_budget_and_the_ban_outlives_the_old_key(db: TestDb) {
    // Step 2 of a rotation, half done: one instance signs with the new key, the other still with
    // the old one; each verifies with both.
    let switched = spawn_app_on(&db, |c, _| {
        c.throttle = limits(5, 100);
        keys(c, NEW_SECRET, &[SECRET]);
    })
    .await;
    let not_yet = spawn_app_on(&db, |c, _| {
        c.throttle = limits(5, 100);
        keys(c, SECRET, &[NEW_SECRET]);
    })
    .await;
    // Five wrong passwords spread over both (three on one, two on the other): one budget of five.
    for app in [&switched, &not_yet, &switched, &not_yet, &switched] {
        assert_message(app.login(USER, "wrong").await, 401, "Could not verify").await;
    }
    assert_throttled(not_yet.login(USER, "wrong").await).await;
    assert_throttled(switched.login(USER, PASSWORD).await).await;
    assert_throttled(not_yet.login(USER, PASSWORD).await).await;
    drop((switched, not_yet));

    // Step 3, the old key dropped: the ban was written under the new key too, and holds.
    assert_throttled(new_only(&db).await.login(USER, PASSWORD).await).await;
}

async fn a_success_under_two_keys_resets_the_count_under_each(db: TestDb) {
    let both = spawn_app_on(&db, |c, _| {
        c.throttle = limits(5, 100);
        keys(c, NEW_SECRET, &[SECRET]);
    })
    .await;
    for _ in 0..4 {
        assert_eq!(both.login(USER, "wrong").await.status(), 401);
    }
    assert_eq!(both.login(USER, PASSWORD).await.status(), 200);
    drop(both);
    // Each key alone now finds a fresh count: four more failures and a success pass on each
    // (with a row left at four, the fifth failure here would make nine, past the limit).
    for current in [SECRET, NEW_SECRET] {
        let one = spawn_app_on(&db, |c, _| {
            c.throttle = limits(5, 100);
            keys(c, current, &[]);
        })
        .await;
        for _ in 0..4 {
            assert_eq!(one.login(USER, "wrong").await.status(), 401);
        }
        assert_eq!(one.login(USER, PASSWORD).await.status(), 200);
    }
}

async fn concurrent_logins_on_instances_with_swapped_keys_all_succeed(db: TestDb) {
    // Each login locks a row per key: instances whose current keys differ must take them in the
    // same order, or their transactions deadlock on PostgreSQL (one would fail with a 503).
    // Limits high enough that no count is reached: each instance's gate sees only its own
    // attempts in flight, so concurrent correct logins over two instances may be refused at the
    // default limit (they are counted as failures until they succeed), with one key as with two.
    let a = spawn_app_on(&db, |c, _| {
        c.throttle = limits(100, 1000);
        keys(c, SECRET, &[NEW_SECRET]);
    })
    .await;
    let b = spawn_app_on(&db, |c, _| {
        c.throttle = limits(100, 1000);
        keys(c, NEW_SECRET, &[SECRET]);
    })
    .await;
    let statuses = join_all((0..16).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let res = app
            .client
            .post(app.url("/login"))
            .basic_auth(USER, Some(PASSWORD))
            .send();
        async move { res.await.unwrap().status().as_u16() }
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "on {}: {statuses:?}",
        db.engine
    );
}
