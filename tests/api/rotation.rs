//! Key rotation: tokens name their key in `kid`; previous keys still verify what they signed;
//! swapping the keys across a restart keeps every live token valid; two instances sharing a
//! database rotate through their key files, one restart at a time, and refuse no token.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretSlice;

use crate::helpers::{
    Binary, SECRET, TestApp, TestDb, now, password_hash, run_bounded, run_to_exit, spawn_app_with,
};
use crate::on_both_engines;

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

/// One instance of a deployment: its own folder holding its `secret`, `previous-keys` and
/// `next-key` files (as `/etc/authd` on its host), and a users file; the database is shared.
struct Instance {
    files: tempfile::TempDir,
    app: Option<Binary>,
}

impl Instance {
    fn new() -> Instance {
        let files = tempfile::tempdir().unwrap();
        std::fs::write(
            files.path().join("users"),
            format!("user:{}\n", password_hash()),
        )
        .unwrap();
        Instance { files, app: None }
    }

    /// Runs the guide's shell block `name` on this instance's folder: `/etc/authd/` is the
    /// folder, `sudo` is left out, and the restart it ends with is left to the caller.
    async fn run_guide(&self, name: &str) {
        let block = guide_block(name);
        let folder = format!("{}/", self.files.path().display());
        let restart = "systemctl restart authd";
        let script: Vec<String> = block
            .lines()
            .filter(|line| !line.contains(restart))
            .map(|line| line.replace("sudo ", "").replace("/etc/authd/", &folder))
            .collect();
        let restarts = block.lines().filter(|l| l.contains(restart)).count();
        let expected = usize::from(name != "rotation-setup");
        assert_eq!(restarts, expected, "{name}: {block}");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-e")
            .arg("-c")
            .arg(script.join("\n"))
            .current_dir(self.files.path());
        let (ok, output) = run_bounded(cmd, Duration::from_secs(30)).await;
        assert!(ok, "{name} failed: {output}");
    }

    /// The keys the instance's files now hold: (the secret, the verify-only ones).
    fn keys(&self) -> (String, Vec<String>) {
        let read = |name: &str| std::fs::read_to_string(self.files.path().join(name)).unwrap();
        let previous = read("previous-keys")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        (read("secret").trim_end().to_owned(), previous)
    }

    /// Stops the instance (if it runs) and starts it again on its files.
    async fn restart(&mut self, database_url: &str) {
        if let Some(mut app) = self.app.take() {
            assert!(app.terminate().await.success());
        }
        let path = |name: &str| self.files.path().join(name).display().to_string();
        let (secret, previous, users) = (path("secret"), path("previous-keys"), path("users"));
        self.app = Some(
            Binary::start(
                &[],
                &[
                    ("AUTHD_SECRET_KEY_FILE", secret.as_str()),
                    ("AUTHD_SECRET_KEY_PREVIOUS_FILE", previous.as_str()),
                    ("AUTHD_USERS", users.as_str()),
                    ("AUTHD_DATABASE_URL", database_url),
                ],
            )
            .await,
        );
    }

    fn app(&self) -> &Binary {
        self.app.as_ref().unwrap()
    }
}

/// The fenced block after `<!-- tested: NAME -->` in docs/deploy.md, its lines unindented (the
/// rotation's blocks sit in a numbered list).
fn guide_block(name: &str) -> String {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy.md")).unwrap();
    let marker = format!("<!-- tested: {name} -->");
    let after = guide
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {marker} in docs/deploy.md"))
        .1;
    let mut lines = after.lines().map(str::trim).skip_while(|l| l.is_empty());
    assert_eq!(
        lines.next(),
        Some("```sh"),
        "{name}: a sh block after the marker"
    );
    let body: Vec<&str> = lines.take_while(|l| *l != "```").collect();
    body.join("\n")
}

/// What the clients hold: every access token minted so far (with the key it names), and one
/// live refresh token per session.
#[derive(Default)]
struct Clients {
    access: Vec<(String, String)>,
    refresh: Vec<String>,
}

/// One moment of the rotation: each instance mints a token and starts a session; then every
/// token held that `live` keeps opens `/protected` and `/verify` on every instance, and every
/// session refreshes, each on the other instance than last time.
async fn every_token_works_everywhere(
    instances: &[Instance; 2],
    clients: &mut Clients,
    live: impl Fn(&str) -> bool,
    moment: &str,
) {
    for instance in instances {
        let res = instance.app().login("user", "password").await;
        assert_eq!(res.status(), 200, "{moment}: login");
        let body: serde_json::Value = res.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        clients.access.push((token, kid));
        clients
            .refresh
            .push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    let mut checked = 0;
    for (token, kid) in clients.access.iter().filter(|(_, kid)| live(kid)) {
        for (i, instance) in instances.iter().enumerate() {
            let app = instance.app();
            for route in ["/protected", "/verify"] {
                let status = app.bearer_status(&app.url(route), token).await;
                assert_eq!(status, 200, "{moment}: {route} on instance {i}, kid {kid}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{moment}: only {checked} checks");
    let turn = clients.access.len();
    for (i, refresh_token) in clients.refresh.iter_mut().enumerate() {
        let app = instances[(i + turn) % 2].app();
        let res = app
            .client
            .post(app.url("/refresh"))
            .json(&serde_json::json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{moment}: refresh of session {i}");
        let body: serde_json::Value = res.json().await.unwrap();
        *refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    }
}

on_both_engines!(two_instances_rotate_their_key_through_files_and_refuse_no_token);

/// The procedure of docs/deploy.md, "Key rotation across instances", its shell blocks read out of
/// the guide and run on two real instances sharing one database, restarted one at a time: after each restart, every token either
/// instance minted opens `/protected` and `/verify` on the other, and every session refreshes.
async fn two_instances_rotate_their_key_through_files_and_refuse_no_token(db: TestDb) {
    let (old, new) = (OLD, SECRET);
    let (old_kid, new_kid) = (documented_kid(old), documented_kid(new));
    let mut instances = [Instance::new(), Instance::new()];
    let mut clients = Clients::default();
    for instance in &mut instances {
        // Deployed before the rotation: the old key, and the new one copied to the host.
        std::fs::write(instance.files.path().join("secret"), format!("{old}\n")).unwrap();
        std::fs::write(instance.files.path().join("next-key"), format!("{new}\n")).unwrap();
        instance.run_guide("rotation-setup").await;
        assert_eq!(instance.keys(), (old.to_owned(), vec![]));
        instance.restart(&db.url).await;
    }
    every_token_works_everywhere(&instances, &mut clients, |_| true, "before").await;

    // Step 1: the new key, verify-only, everywhere; one instance at a time.
    for i in 0..2 {
        instances[i].run_guide("rotation-step-1").await;
        assert_eq!(instances[i].keys(), (old.to_owned(), vec![new.to_owned()]));
        instances[i].restart(&db.url).await;
        let moment = format!("step 1, instance {i} restarted");
        every_token_works_everywhere(&instances, &mut clients, |_| true, &moment).await;
    }
    assert!(clients.access.iter().all(|(_, kid)| *kid == old_kid));

    // Step 2: the new key signs, the old one only verifies; one instance at a time. Between the
    // two restarts, each instance signs with a key the other only verifies with.
    for i in 0..2 {
        instances[i].run_guide("rotation-step-2").await;
        assert_eq!(instances[i].keys(), (new.to_owned(), vec![old.to_owned()]));
        instances[i].restart(&db.url).await;
        let moment = format!("step 2, instance {i} restarted");
        every_token_works_everywhere(&instances, &mut clients, |_| true, &moment).await;
    }
    // From here on, no instance signs with the old key: every token it signed expires within
    // one token lifetime (plus 30 s of leeway), which is what step 3 waits for.
    let signed_by_old = clients.access.len();
    every_token_works_everywhere(&instances, &mut clients, |_| true, "step 2 done").await;
    assert!(
        clients.access[signed_by_old..]
            .iter()
            .all(|(_, kid)| *kid == new_kid)
    );

    // Step 3: the old key dropped (the wait is not run here: the tokens it signed would then be
    // expired; they are checked below to be refused, which is why the wait is needed).
    for i in 0..2 {
        instances[i].run_guide("rotation-step-3").await;
        assert_eq!(instances[i].keys(), (new.to_owned(), vec![]));
        assert!(!instances[i].files.path().join("next-key").exists());
        instances[i].restart(&db.url).await;
        let moment = format!("step 3, instance {i} restarted");
        let live = |kid: &str| kid == new_kid;
        every_token_works_everywhere(&instances, &mut clients, live, &moment).await;
    }
    for (token, _) in clients.access.iter().filter(|(_, kid)| *kid == old_kid) {
        for instance in &instances {
            let app = instance.app();
            assert_eq!(app.bearer_status(&app.url("/protected"), token).await, 403);
        }
    }
    for instance in &mut instances {
        let mut app = instance.app.take().unwrap();
        assert!(app.terminate().await.success());
        assert!(!app.output().contains(old) && !app.output().contains(new));
    }
}
