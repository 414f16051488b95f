//! Issue #10, the process's settings: `.env` only from the working directory (or `--env-file`),
//! a warning for a secret file others can read, a range for every number and duration, and no
//! guessable secret, each observed on the real binary.

use std::path::Path;

use jsonwebtoken::Algorithm;

use crate::helpers::{Binary, mint, now, password_hash, run_to_exit};

/// A secret that passes every check (random-looking, 64 characters).
const GOOD_SECRET: &str = "pV7r2Qm9XkZ4sL1tB8nW3yH6cJ0fD5gA-uE2iO7aR4eT9wY1qU6oP3sD8fG0hJ5k";
/// Another one: a key an attacker planted in a `.env` the operator never meant authd to read.
const ATTACKER_KEY: &str = "Nf3Wq8Zt1Lx6Rv0Kb5Yh9Jc2Mg7Pd4Sa-Ue1Io6Ar3Et8Wy0Qu5Op2Sd7Fg9Hj4Kl";

fn users_file(dir: &Path) {
    std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap();
}

/// A token for `admin` signed with `secret`, valid for ten minutes.
fn forged_admin_token(secret: &str) -> String {
    mint(
        Algorithm::HS256,
        secret,
        &serde_json::json!({"sub": "admin", "user": "admin", "exp": now() + 600}),
    )
}

async fn protected_status(app: &Binary, token: &str) -> u16 {
    app.bearer_status(&app.url("/protected"), token).await
}

/// Runs the binary to its exit and checks the refusal: exit 1 and one `authd: error:` line on
/// stderr holding every one of `needles`.
async fn assert_refused(
    args: &[&str],
    envs: &[(&str, &str)],
    setup: impl FnOnce(&Path),
    needles: &[&str],
) -> String {
    // Port 0: should the binary start instead of refusing, it must not take a fixed port.
    let envs = [envs, &[("AUTHD_LISTEN", "127.0.0.1:0")]].concat();
    let (code, stdout, stderr) = run_to_exit(args, &envs, setup).await;
    assert_eq!(code, Some(1), "stdout: {stdout} stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with("authd: error: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    }
    stderr
}

// Point 8: `.env` is read from the working directory only.

#[tokio::test]
async fn dotenv_in_a_parent_folder_is_not_read() {
    // The attack of the issue: an `.env` two folders up adds the attacker's key as a previous key.
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(
        outer.path().join(".env"),
        format!("AUTHD_SECRET_KEY_PREVIOUS={ATTACKER_KEY}\n"),
    )
    .unwrap();
    let middle = outer.path().join("srv");
    std::fs::create_dir(&middle).unwrap();
    let workdir = tempfile::tempdir_in(&middle).unwrap();
    users_file(workdir.path());
    let app = Binary::start_in(
        workdir,
        &[],
        &[("AUTHD_SECRET_KEY", GOOD_SECRET), ("AUTHD_USERS", "users")],
    )
    .await;
    assert_eq!(
        protected_status(&app, &forged_admin_token(GOOD_SECRET)).await,
        200,
        "the configured key works"
    );
    assert_eq!(
        protected_status(&app, &forged_admin_token(ATTACKER_KEY)).await,
        403,
        "a key from ../../.env must not verify anything"
    );
}

#[tokio::test]
async fn env_file_flag_is_the_only_file_read_and_a_missing_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    users_file(dir.path());
    // `./.env` would shorten tokens to 15 minutes; with --env-file it is not read at all.
    std::fs::write(dir.path().join(".env"), "AUTHD_TOKEN_TTL=15m\n").unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(
        dir.path().join("conf/authd.env"),
        format!("AUTHD_SECRET_KEY={GOOD_SECRET}\nAUTHD_USERS=users\n"),
    )
    .unwrap();
    let app = Binary::start_in(dir, &["--env-file", "conf/authd.env"], &[]).await;
    let body: serde_json::Value = app.login("user", "password").await.json().await.unwrap();
    assert_eq!(body["expires_in"], 1800, "the default TTL, not ./.env's");

    assert_refused(
        &["--env-file", "missing.env"],
        &[],
        |_| {},
        &["missing.env"],
    )
    .await;
}

#[tokio::test]
async fn malformed_dotenv_is_refused_without_echoing_its_lines() {
    let stderr = assert_refused(
        &[],
        &[],
        |d| {
            users_file(d);
            std::fs::write(
                d.join(".env"),
                format!("AUTHD_USERS=users\nAUTHD_SECRET_KEY=\"{GOOD_SECRET}\nbroken line\n"),
            )
            .unwrap();
        },
        &[".env"],
    )
    .await;
    assert!(!stderr.contains(GOOD_SECRET), "{stderr}");
}

// Point 9: a secret file others can read is named in a warning.

#[cfg(unix)]
#[tokio::test]
async fn secret_file_readable_by_others_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
        let dir = tempfile::tempdir().unwrap();
        users_file(dir.path());
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{GOOD_SECRET}\n")).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut app = Binary::start_in(
            dir,
            &[],
            &[
                ("AUTHD_USERS", "users"),
                ("AUTHD_SECRET_KEY_FILE", "secret"),
            ],
        )
        .await;
        assert_eq!(app.login("user", "password").await.status(), 200);
        assert!(app.terminate().await.success());
        let output = app.output();
        let warnings: Vec<&str> = output
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("readable by group or others"))
            .collect();
        if warned {
            assert_eq!(warnings.len(), 1, "mode {mode:o}: {output}");
            assert!(
                warnings[0].contains("file secret "),
                "names the file: {}",
                warnings[0]
            );
            assert!(warnings[0].contains("chmod 600"), "{}", warnings[0]);
            assert!(!warnings[0].contains(GOOD_SECRET), "{}", warnings[0]);
        } else {
            assert!(warnings.is_empty(), "mode {mode:o}: {output}");
        }
    }
}

// Point 10: every duration and number has a range, and start-up refuses values outside it.

#[tokio::test]
async fn timeouts_that_would_overflow_an_instant_are_refused_at_start() {
    for name in ["AUTHD_REQUEST_TIMEOUT", "AUTHD_HEADER_READ_TIMEOUT"] {
        assert_refused(
            &[],
            &[
                ("AUTHD_SECRET_KEY", GOOD_SECRET),
                ("AUTHD_USERS", "users"),
                (name, "18446744073709551615"),
            ],
            users_file,
            &[name, "1s", "10m"],
        )
        .await;
    }
}

#[tokio::test]
async fn durations_and_sizes_outside_their_ranges_are_refused_at_start() {
    for (name, value) in [
        ("AUTHD_REQUEST_TIMEOUT", "11m"),
        ("AUTHD_HEADER_READ_TIMEOUT", "500ms"),
        ("AUTHD_TOKEN_TTL", "25h"),
        ("AUTHD_REFRESH_TTL", "400d"),
        ("AUTHD_REFRESH_TTL", "1000000000y"),
        ("AUTHD_SESSION_LIFETIME", "18446744073709551615"),
        ("AUTHD_THROTTLE_WINDOW", "2d"),
        ("AUTHD_THROTTLE_BAN", "100d"),
        ("AUTHD_HASH_CONCURRENCY", "0"),
        ("AUTHD_HASH_CONCURRENCY", "100000"),
        ("AUTHD_HASH_QUEUE", "1000000000"),
        ("AUTHD_HASH_QUEUE", "-1"),
        ("AUTHD_THROTTLE_ADDRESS_MAX", "99999999999"),
        ("AUTHD_THROTTLE_USER_MAX", "0"),
    ] {
        assert_refused(
            &[],
            &[
                ("AUTHD_SECRET_KEY", GOOD_SECRET),
                ("AUTHD_USERS", "users"),
                (name, value),
            ],
            users_file,
            &[name],
        )
        .await;
    }
}

#[tokio::test]
async fn settings_at_the_edges_of_their_ranges_start() {
    let dir = tempfile::tempdir().unwrap();
    users_file(dir.path());
    let mut app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_SECRET_KEY", GOOD_SECRET),
            ("AUTHD_USERS", "users"),
            ("AUTHD_REQUEST_TIMEOUT", "10m"),
            ("AUTHD_HEADER_READ_TIMEOUT", "1s"),
            ("AUTHD_TOKEN_TTL", "24h"),
            ("AUTHD_REFRESH_TTL", "365d"),
            ("AUTHD_SESSION_LIFETIME", "365d"),
            ("AUTHD_THROTTLE_WINDOW", "24h"),
            ("AUTHD_THROTTLE_BAN", "24h"),
            ("AUTHD_HASH_CONCURRENCY", "1"),
            ("AUTHD_HASH_QUEUE", "0"),
        ],
    )
    .await;
    let body: serde_json::Value = app.login("user", "password").await.json().await.unwrap();
    assert_eq!(body["expires_in"], 24 * 3600);
    assert!(app.terminate().await.success());
}

// Point 16: guessable secrets are refused, with how to make a good one.

/// The five secrets the reviewers started a server with.
const GUESSABLE: [&str; 5] = [
    "correct horse battery staple is a password",
    "passwordpasswordpasswordpassword1234",
    "01234567890123456789012345678901",
    "abcdefghabcdefghabcdefghabcdefgh",
    "qwertyuiopasdfghjklzxcvbnm123456",
];

/// What `openssl rand -base64 48` prints: 48 random bytes in standard base64.
fn openssl_rand_base64_48() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn guessable_secrets_are_refused_with_how_to_make_a_good_one() {
    for secret in GUESSABLE {
        let stderr = assert_refused(
            &[],
            &[("AUTHD_SECRET_KEY", secret), ("AUTHD_USERS", "users")],
            users_file,
            &["guessable", "openssl rand -base64 48"],
        )
        .await;
        assert!(!stderr.contains(secret), "{stderr}");
    }
}

#[tokio::test]
async fn guessable_previous_secret_is_refused_naming_its_place() {
    let previous = format!("{ATTACKER_KEY},{}", GUESSABLE[0]);
    assert_refused(
        &[],
        &[
            ("AUTHD_SECRET_KEY", GOOD_SECRET),
            ("AUTHD_SECRET_KEY_PREVIOUS", &previous),
            ("AUTHD_USERS", "users"),
        ],
        users_file,
        &["AUTHD_SECRET_KEY_PREVIOUS, key 2", "guessable"],
    )
    .await;
}

#[tokio::test]
async fn openssl_rand_base64_48_output_is_accepted_as_secret_and_previous_secret() {
    let (secret, previous) = (openssl_rand_base64_48(), openssl_rand_base64_48());
    let dir = tempfile::tempdir().unwrap();
    users_file(dir.path());
    let app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_SECRET_KEY", &secret),
            ("AUTHD_SECRET_KEY_PREVIOUS", &previous),
            ("AUTHD_USERS", "users"),
        ],
    )
    .await;
    assert_eq!(app.login("user", "password").await.status(), 200);
    assert_eq!(
        protected_status(&app, &forged_admin_token(&previous)).await,
        200
    );
}

/// Point 11, from the library's public face: a parsed command line, its server settings and the
/// checked configuration never print a secret through `Debug` (`ServeArgs` derived `Debug` over
/// plain strings before).
#[test]
fn debug_output_of_the_command_line_and_the_configuration_never_shows_a_secret() {
    use clap::Parser as _;
    let (secret, previous, db_password) = (
        "Gm4Xq9Lr2Vw7Tz1Kp6Nb3Hs8Jd5Fc0Ya-Qe7Ui2Oo9Aa4Ee1Rr6Tt3Yy8Pp5Ll0Kk",
        "Wb8Nc3Vd6Mf1Lg9Kh4Jj7Hk2Gl5Fm0Dn-Ao3Sp8Dq1Fr6Gs9Ht4Ju7Kv2Lw5Zx0Cy",
        "db-pass-5Jk2Lq9",
    );
    let url = format!("postgres://authd:{db_password}@db/authd");
    let cli = authd::config::Cli::try_parse_from([
        "authd",
        "--secret-key",
        secret,
        "--secret-key-previous",
        previous,
        "--database-url",
        &url,
        "--users",
        "users",
    ])
    .unwrap();
    let shown = format!("{cli:?} {cli:#?} {:?}", cli.serve);
    let config = authd::Config::from_args(cli.serve).unwrap();
    let shown = format!("{shown} {config:?} {config:#?}");
    for s in [secret, previous, db_password] {
        assert!(!shown.contains(s), "{s} shown by Debug");
    }
    assert!(shown.contains("REDACTED"), "{shown}");
    // The values are all there, for the code that needs them.
    assert_eq!(config.secret_bytes(), secret.as_bytes());
    assert_eq!(config.previous_secret_bytes(), vec![previous.as_bytes()]);
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&config.database_url),
        url
    );
}
