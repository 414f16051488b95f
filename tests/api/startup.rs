//! Every refusal to start: one clear line on stderr and a non-zero exit, from the real binary.

use crate::helpers::{Binary, password_hash, run_to_exit};

const GOOD_SECRET: &str = "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN";

fn users_file(dir: &std::path::Path) {
    std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap();
}

async fn assert_refused(envs: &[(&str, &str)], setup: impl FnOnce(&std::path::Path), needle: &str) {
    let (code, stdout, stderr) = run_to_exit(&[], envs, setup).await;
    assert_eq!(code, Some(1), "stdout: {stdout} stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with("authd: error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

#[tokio::test]
async fn refuses_to_start_without_a_secret() {
    assert_refused(&[("AUTHD_USERS", "users")], users_file, "no secret key").await;
}

#[tokio::test]
async fn refuses_a_secret_shorter_than_32_bytes() {
    assert_refused(
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", "Zq8s0vB3nW6yT1xK4mR7"),
        ],
        users_file,
        "secret key is 20 bytes",
    )
    .await;
}

#[tokio::test]
async fn refuses_the_tutorials_placeholder_secret() {
    assert_refused(
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", "your_secret_key"),
        ],
        users_file,
        "placeholder",
    )
    .await;
}

#[tokio::test]
async fn a_copied_env_example_sets_no_secret_and_its_old_placeholder_is_still_refused() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    assert!(
        !example
            .lines()
            .any(|l| l.starts_with("AUTHD_SECRET_KEY=") || l.starts_with("AUTHD_SECRET_KEY_FILE=")),
        ".env.example must not set a secret"
    );
    // Copied to `.env` as it is, beside the users file it names: refused for want of a secret.
    assert_refused(
        &[],
        |dir| {
            std::fs::write(dir.join(".env"), &example).unwrap();
            std::fs::write(
                dir.join("users.htpasswd"),
                format!("user:{}\n", crate::helpers::password_hash()),
            )
            .unwrap();
        },
        "no secret key",
    )
    .await;
    // The placeholder older copies of the example carry is refused by name.
    assert_refused(
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", authd::config::EXAMPLE_SECRET),
        ],
        users_file,
        "placeholder",
    )
    .await;
}

#[tokio::test]
async fn refuses_a_weak_secret() {
    let weak = "ab".repeat(32);
    assert_refused(
        &[("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", &weak)],
        users_file,
        "weak",
    )
    .await;
}

#[tokio::test]
async fn refuses_to_start_without_a_users_file() {
    assert_refused(
        &[("AUTHD_SECRET_KEY", GOOD_SECRET)],
        |_| {},
        "no users file",
    )
    .await;
}

#[tokio::test]
async fn refuses_an_unreadable_users_file() {
    assert_refused(
        &[
            ("AUTHD_SECRET_KEY", GOOD_SECRET),
            ("AUTHD_USERS", "missing"),
        ],
        |_| {},
        "cannot read users file",
    )
    .await;
}

#[tokio::test]
async fn refuses_a_malformed_users_file_naming_the_line() {
    assert_refused(
        &[("AUTHD_SECRET_KEY", GOOD_SECRET), ("AUTHD_USERS", "users")],
        |d| {
            std::fs::write(
                d.join("users"),
                format!("# ok\nuser:{}\n\nbroken line\n", password_hash()),
            )
            .unwrap()
        },
        "line 4",
    )
    .await;
}

#[tokio::test]
async fn refuses_an_unparsable_ttl() {
    assert_refused(
        &[
            ("AUTHD_SECRET_KEY", GOOD_SECRET),
            ("AUTHD_USERS", "users"),
            ("AUTHD_TOKEN_TTL", "soon"),
        ],
        users_file,
        "AUTHD_TOKEN_TTL",
    )
    .await;
}

#[tokio::test]
async fn demo_mode_refuses_a_non_loopback_address() {
    let (code, _, stderr) = run_to_exit(&["--demo", "--listen", "0.0.0.0:0"], &[], |_| {}).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[tokio::test]
async fn secret_file_is_read_and_a_short_one_refused() {
    assert_refused(
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY_FILE", "secret"),
        ],
        |d| {
            users_file(d);
            std::fs::write(d.join("secret"), "tooshort\n").unwrap();
        },
        "secret key is 8 bytes",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    users_file(dir.path());
    std::fs::write(dir.path().join("secret"), format!("{GOOD_SECRET}\n")).unwrap();
    let app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY_FILE", "secret"),
        ],
    )
    .await;
    let res = app.login("user", "password").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn dotenv_file_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    users_file(dir.path());
    std::fs::write(
        dir.path().join(".env"),
        format!("AUTHD_SECRET_KEY={GOOD_SECRET}\nAUTHD_USERS=users\nAUTHD_TOKEN_TTL=15m\n"),
    )
    .unwrap();
    let app = Binary::start_in(dir, &[], &[]).await;
    let res = app.login("user", "password").await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 900);
}

#[tokio::test]
async fn hash_password_prints_an_argon2id_hash_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::helpers::binary_command(dir.path());
    cmd.arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use tokio::io::AsyncWriteExt as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let stored = authd::users::StoredHash::parse(hash).unwrap();
    assert!(stored.verify(b"s3cret pass"));
    assert!(!stored.verify(b"s3cret pass\n"));
}

#[tokio::test]
async fn refuses_throttle_limits_beyond_asvs() {
    assert_refused(
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", GOOD_SECRET),
            ("AUTHD_THROTTLE_USER_MAX", "50"),
        ],
        users_file,
        "ASVS",
    )
    .await;
}

#[tokio::test]
async fn refuses_an_unsupported_database_url() {
    assert_refused(
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", GOOD_SECRET),
            ("AUTHD_DATABASE_URL", "mysql://localhost/authd"),
        ],
        users_file,
        "AUTHD_DATABASE_URL must start with",
    )
    .await;
}

#[tokio::test]
async fn default_database_is_a_sqlite_file_in_wal_mode_created_on_first_start() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    users_file(dir.path());
    let mut app = Binary::start_in(
        dir,
        &[],
        &[("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", GOOD_SECRET)],
    )
    .await;
    let db = app.dir.path().join("data/authd.db");
    assert!(db.exists(), "{}", app.output());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN \
         ('session_families', 'refresh_tokens', 'login_throttle')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 3);
    conn.close().await.unwrap();
    assert!(app.terminate().await.success());
}
