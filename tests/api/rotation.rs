//! Key rotation: tokens name their key in `kid`; previous keys still verify what they signed;
//! swapping the keys across a restart keeps every live token valid.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretSlice;

use crate::helpers::{Binary, SECRET, TestApp, now, password_hash, run_to_exit, spawn_app_with};

const OLD: &str = "an-older-secret-9f8e7d6c5b4a3928170615243342";
const OLDER: &str = "oldest-UF1P24T1bukSUUkeNOqC5v8YdU4SAM4cqsQRN7b5";
const STRANGER: &str = "nobody-configured-this-secret-0123456789abcdef";

/// The `kid` the README documents: `printf %s "$KEY" | sha256sum | cut -c1-16`.
fn documented_kid(secret: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sign(secret: &str, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &serde_json::json!({"user": "user", "exp": now() + 600}),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn rotated_app() -> TestApp {
    spawn_app_with(|c, _| {
        c.previous_secrets = vec![SecretSlice::from(OLD.as_bytes().to_vec())];
    })
    .await
}

async fn status_of(app: &TestApp, token: &str) -> u16 {
    app.client
        .get(app.url("/protected"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn issued_tokens_carry_the_current_keys_digest_as_kid_never_the_key() {
    let app = rotated_app().await;
    let token = app.token().await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid, Some(documented_kid(SECRET)));
    assert!(!token.contains(SECRET));
}

#[tokio::test]
async fn token_from_the_previous_key_passes_with_or_without_kid() {
    let app = rotated_app().await;
    assert_eq!(
        status_of(&app, &sign(OLD, Some(&documented_kid(OLD)))).await,
        200
    );
    assert_eq!(status_of(&app, &sign(OLD, None)).await, 200);
}

#[tokio::test]
async fn token_from_an_unknown_key_or_with_a_kid_naming_no_key_fails() {
    let app = rotated_app().await;
    for token in [
        sign(STRANGER, None),
        sign(STRANGER, Some(&documented_kid(STRANGER))),
        // Our own signature, but a kid that names no key.
        sign(SECRET, Some("0123456789abcdef")),
        // The old key's kid on a token the current key signed.
        sign(SECRET, Some(&documented_kid(OLD))),
    ] {
        assert_eq!(status_of(&app, &token).await, 403);
    }
}

async fn start(current: &str, previous: &str) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("user:{}\n", password_hash()),
    )
    .unwrap();
    Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", current),
            ("AUTHD_SECRET_KEY_PREVIOUS", previous),
        ],
    )
    .await
}

async fn login(app: &Binary) -> String {
    let res = app.login("user", "password").await;
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn opens(app: &Binary, token: &str) -> bool {
    app.client
        .get(app.url("/protected"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn a_restart_with_the_keys_swapped_keeps_every_live_token_valid() {
    // Before: OLD signs, OLDER still verifies.
    let mut before = start(OLD, OLDER).await;
    let from_old = login(&before).await;
    let from_older = sign(OLDER, Some(&documented_kid(OLDER)));
    assert!(opens(&before, &from_old).await);
    assert!(opens(&before, &from_older).await);
    assert!(before.terminate().await.success());

    // The two keys swapped: OLDER signs, OLD verifies.
    let mut swapped = start(OLDER, OLD).await;
    let from_swapped = login(&swapped).await;
    for token in [&from_old, &from_older, &from_swapped] {
        assert!(opens(&swapped, token).await);
    }
    assert!(swapped.terminate().await.success());

    // A new key: SECRET signs; OLD and OLDER (comma-separated) still verify.
    let after = start(SECRET, &format!("{OLD},{OLDER}")).await;
    let from_new = login(&after).await;
    assert_eq!(
        jsonwebtoken::decode_header(&from_new).unwrap().kid,
        Some(documented_kid(SECRET))
    );
    for token in [&from_old, &from_older, &from_swapped, &from_new] {
        assert!(opens(&after, token).await);
    }
    // A key dropped from the list stops verifying its tokens.
    let dropped = start(SECRET, OLD).await;
    assert!(opens(&dropped, &from_old).await);
    assert!(!opens(&dropped, &from_older).await);
}

#[tokio::test]
async fn a_weak_previous_key_is_refused_at_start() {
    let (code, _, stderr) = run_to_exit(
        &[],
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", SECRET),
            (
                "AUTHD_SECRET_KEY_PREVIOUS",
                &format!("{OLD},your_secret_key"),
            ),
        ],
        |dir| std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap(),
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("AUTHD_SECRET_KEY_PREVIOUS, key 2: secret key is a placeholder"),
        "{stderr}"
    );
    assert!(!stderr.contains(OLD), "{stderr}");
}
