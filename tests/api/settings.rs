//! Settings read one way: booleans in every usual spelling, a bad value refused in one line with
//! exit code 1, unknown `AUTHD_*` variables named at start with the setting they were probably
//! meant to be, and a `_FILE` variant for every setting that holds a secret.

use jsonwebtoken::Algorithm;

use crate::helpers::{Binary, demo_token, mint, now, run_to_exit};

/// 48 random bytes in base64, as `openssl rand -base64 48` makes them.
fn random_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn boolean_settings_take_one_zero_yes_no_on_off() {
    for on in ["1", "true", "yes", "on", "TRUE"] {
        let app = Binary::start(
            &[],
            &[
                ("AUTHD_DEMO", on),
                ("AUTHD_STRICT", on),
                ("AUTHD_ISSUER", "https://auth.example.com"),
                ("AUTHD_AUDIENCE", "apps"),
            ],
        )
        .await;
        let token = demo_token(&app).await;
        // Strict mode is on: the tutorial's ?token= is refused with 400.
        assert_eq!(
            app.query_token_status(&token).await,
            400,
            "AUTHD_STRICT={on}"
        );
    }
    for off in ["0", "false", "no", "off"] {
        let app = Binary::start(&["--demo"], &[("AUTHD_STRICT", off)]).await;
        let token = demo_token(&app).await;
        assert_eq!(
            app.query_token_status(&token).await,
            200,
            "AUTHD_STRICT={off}"
        );
    }
}

#[tokio::test]
async fn a_bad_boolean_or_an_unknown_flag_is_one_line_and_exit_code_1() {
    let (code, _, stderr) = run_to_exit(&["--demo"], &[("AUTHD_STRICT", "maybe")], |_| {}).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("authd: error: "), "{stderr}");
    assert!(stderr.contains("AUTHD_STRICT"), "{stderr}");
    let (code, _, stderr) = run_to_exit(&["--demo", "--no-such-flag"], &[], |_| {}).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // --help still prints the whole help, and succeeds.
    let (code, stdout, _) = run_to_exit(&["--help"], &[], |_| {}).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("AUTHD_SECRET_KEY_PREVIOUS_FILE"),
        "{stdout}"
    );
}

#[tokio::test]
async fn unknown_authd_variables_are_named_with_the_setting_they_were_probably_meant_to_be() {
    let app = Binary::start(
        &["--demo"],
        &[
            ("AUTHD_TOKEN_TTLL", "5m"),
            ("AUTHD_SECRET_KEY_PREVIOS_FILE", "/nonexistent"),
            ("AUTHD_ZZZ_QQQ", "x"),
        ],
    )
    .await;
    app.wait_for_output("AUTHD_ZZZ_QQQ is not a setting").await;
    let out = app.output();
    assert!(
        out.contains(
            "AUTHD_TOKEN_TTLL is not a setting and is ignored; did you mean AUTHD_TOKEN_TTL?"
        ),
        "{out}"
    );
    assert!(
        out.contains("AUTHD_SECRET_KEY_PREVIOS_FILE is not a setting and is ignored; did you mean AUTHD_SECRET_KEY_PREVIOUS_FILE?"),
        "{out}"
    );
    // Known variables are not reported, whichever way they are set.
    assert!(!out.contains("AUTHD_LISTEN is not"), "{out}");
}

#[tokio::test]
async fn previous_keys_and_the_database_url_can_come_from_files() {
    let old = random_key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("previous"),
        format!("# the key before the rotation\n{old}\n\n"),
    )
    .unwrap();
    let db = dir.path().join("from-file.db");
    std::fs::write(
        dir.path().join("database-url"),
        format!("sqlite://{}\n", db.display()),
    )
    .unwrap();
    let app = Binary::start_in(
        dir,
        &["--demo"],
        &[
            ("AUTHD_SECRET_KEY", random_key().as_str()),
            ("AUTHD_SECRET_KEY_PREVIOUS_FILE", "previous"),
            ("AUTHD_DATABASE_URL_FILE", "database-url"),
        ],
    )
    .await;
    // A token the previous key signed still opens /protected.
    let token = mint(
        Algorithm::HS256,
        &old,
        &serde_json::json!({"sub": "user", "user": "user", "exp": now() + 600}),
    );
    let status = app.bearer_status(&app.url("/protected"), &token).await;
    assert_eq!(status, 200, "{}", app.output());
    // The sessions database is the one the file names.
    assert!(db.exists(), "{}", app.output());

    // A setting given both ways is refused, naming both.
    for (a, b) in [
        (
            "AUTHD_SECRET_KEY_PREVIOUS",
            "AUTHD_SECRET_KEY_PREVIOUS_FILE",
        ),
        ("AUTHD_DATABASE_URL", "AUTHD_DATABASE_URL_FILE"),
    ] {
        let (code, _, stderr) = run_to_exit(
            &["--demo"],
            &[(a, random_key().as_str()), (b, "file")],
            |d| std::fs::write(d.join("file"), random_key()).unwrap(),
        )
        .await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(a) && stderr.contains(b), "{stderr}");
    }
}
