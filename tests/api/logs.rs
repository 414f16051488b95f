//! The request log: one line per request with method, path, status and latency, and never a
//! token, a password, a secret or an Authorization header.

use base64::Engine as _;

use crate::helpers::{Binary, password_hash, run_to_exit};

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

/// Every line of `output` as a JSON object: a line that is not one fails the test. Each has the
/// keys a log pipeline reads: an RFC 3339 `timestamp`, a `level` and a `target`.
fn json_lines(output: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(!output.is_empty(), "no output at all");
    output
        .lines()
        .map(|line| {
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}\n{output}"));
            let text = |key: &str| object.get(key).and_then(|v| v.as_str()).unwrap_or_default();
            assert!(
                chrono::DateTime::parse_from_rfc3339(text("timestamp")).is_ok(),
                "timestamp: {line}"
            );
            let levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
            assert!(levels.contains(&text("level")), "level: {line}");
            assert!(!text("target").is_empty(), "target: {line}");
            object
        })
        .collect()
}

/// Every string in a JSON value, keys included, at any depth (span fields too).
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => out.push(value.to_string()),
    }
}

/// The one line whose fields include all of `fields`, e.g. `("message", "served")`.
fn find_line<'a>(
    lines: &'a [serde_json::Map<String, serde_json::Value>],
    fields: &[(&str, serde_json::Value)],
) -> &'a serde_json::Map<String, serde_json::Value> {
    lines
        .iter()
        .find(|l| fields.iter().all(|(k, v)| l.get(*k) == Some(v)))
        .unwrap_or_else(|| panic!("no line with {fields:?} in {lines:#?}"))
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_and_hold_no_token_password_or_secret() {
    use serde_json::json;
    let secret = "json-log-secret-8e2a7c41d9b35f06e1c8a2b4d6f09e7c";
    let unknown_value = "json-log-other-secret-4c1a9e7b2d5f8036a1c4e7b9";
    let password = "C0rrect-h0rse-json-logs-3f9a";
    let wrong = "Wr0ng-json-logs-7d2c-must-not-leak";
    let dir = tempfile::tempdir().unwrap();
    let hash = authd::users::hash_password(password.as_bytes()).unwrap();
    std::fs::write(dir.path().join("users"), format!("alice:{hash}\n")).unwrap();
    // A secret file others may read: a start-up warning.
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mut app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_LOG_FORMAT", "json"),
            ("AUTHD_SECRET_KEY_FILE", "secret"),
            ("AUTHD_USERS", "users"),
            // Not a setting: a warning naming it, never its value.
            ("AUTHD_SECRET_KEY_PREVIUS", unknown_value),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;

    let res = app.login("alice", password).await;
    assert_eq!(res.status(), 200);
    let body = res.json::<serde_json::Value>().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let first_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.login("alice", wrong).await.status(), 401);
    assert_eq!(app.query_token_status(&token).await, 200);
    assert_eq!(app.bearer_status(&app.url("/protected"), &token).await, 200);
    assert_eq!(app.query_token_status("forged.token.value").await, 403);
    // A path that matches no route is logged as it is, without its query.
    let res = app
        .client
        .get(app.url("/nope"))
        .query(&[("token", &token)])
        .send()
        .await;
    assert_eq!(res.unwrap().status(), 404);
    let refresh = |refresh_token: String| {
        let req = app.client.post(app.url("/refresh"));
        req.json(&json!({ "refresh_token": refresh_token })).send()
    };
    let res = refresh(first_refresh.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let second_refresh = res.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The spent one again: reuse, logged as a warning (without the token).
    assert_eq!(refresh(first_refresh.clone()).await.unwrap().status(), 401);
    let res = app.login("alice", password).await;
    let third_refresh = res.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/logout"))
        .form(&[("token", &third_refresh)])
        .send();
    assert!(res.await.unwrap().status().is_success());
    app.terminate().await;
    let output = app.output();
    let lines = json_lines(&output);

    // No secret in any line, as written or as decoded.
    let credentials =
        |user_password: String| base64::engine::general_purpose::STANDARD.encode(user_password);
    let signature = token.rsplit('.').next().unwrap();
    let leaks = [
        token.as_str(),
        signature,
        first_refresh.as_str(),
        second_refresh.as_str(),
        third_refresh.as_str(),
        "forged.token.value",
        password,
        wrong,
        &credentials(format!("alice:{password}")),
        &credentials(format!("alice:{wrong}")),
        secret,
        unknown_value,
        "Bearer ",
        "Basic ",
    ];
    for (line, object) in output.lines().zip(&lines) {
        let mut values = Vec::new();
        strings(&serde_json::Value::Object(object.clone()), &mut values);
        for leak in leaks {
            assert!(!line.contains(leak), "{leak:?} in {line}");
            assert!(
                !values.iter().any(|v| v.contains(leak)),
                "{leak:?} in {line}"
            );
        }
    }

    // The request lines, with their fields as JSON values (numbers as numbers).
    let served = |method: &str, path: &str, status: u16| {
        find_line(
            &lines,
            &[
                ("target", json!("authd::http")),
                ("message", json!("served")),
                ("method", json!(method)),
                ("path", json!(path)),
                ("status", json!(status)),
            ],
        )
    };
    assert!(served("POST", "/login", 401)["latency_us"].is_u64());
    served("POST", "/login", 200);
    served("GET", "/protected", 200);
    served("GET", "/protected", 403);
    served("GET", "/nope", 404);
    served("POST", "/refresh", 200);
    served("POST", "/logout", 204);
    // The guide's example line has the keys of a real one.
    let example = crate::proxy_servers::doc_block("docs/deploy.md", "json-log-line");
    let example: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(example.trim()).unwrap();
    let keys = |line: &serde_json::Map<String, serde_json::Value>| {
        let mut keys: Vec<String> = line.keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&example), keys(served("GET", "/protected", 200)));
    // Start-up warnings and the life of the process, in JSON like the rest.
    let messages: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            let level = l["level"].as_str().unwrap();
            (
                level,
                l.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let has = |level: &str, text: &str| {
        assert!(
            messages
                .iter()
                .any(|(l, m)| *l == level && m.contains(text)),
            "no {level} line saying {text:?}:\n{output}"
        );
    };
    has("WARN", "AUTHD_SECRET_KEY_PREVIUS is not a setting");
    has("WARN", "is readable by group or others");
    has("WARN", "refresh token reused");
    has("INFO", "listening on http://");
    has("INFO", "shutting down");
}

/// A way to make authd refuse to start.
struct Refusal<'a> {
    args: &'a [&'a str],
    envs: Vec<(&'a str, &'a str)>,
    /// A `.env` to write in its working directory.
    env_file: Option<&'a str>,
    /// What the error says.
    says: &'a str,
}

#[tokio::test]
async fn with_json_logs_even_a_refusal_to_start_is_a_json_line() {
    let short_secret = "short-but-secret-9d1e";
    let db_password = "db-pa55-json-logs-6b2e";
    let database_url = format!("postgres://authd:{db_password}@127.0.0.1:1/authd");
    let cases = [
        // The command line's own refusals, before anything is set up.
        Refusal {
            args: &["--demo"],
            envs: vec![("AUTHD_LOG_FORMAT", "json"), ("AUTHD_STRICT", "maybe")],
            env_file: None,
            says: "AUTHD_STRICT",
        },
        Refusal {
            args: &["--demo", "--log-format", "json", "--no-such-flag"],
            envs: vec![],
            env_file: None,
            says: "--no-such-flag",
        },
        // A `.env` that cannot be read as settings: the environment asked for json.
        Refusal {
            args: &["--demo"],
            envs: vec![("AUTHD_LOG_FORMAT", "json")],
            env_file: Some("AUTHD_TOKEN_TTL='5m\n"),
            says: "settings file",
        },
        // Settings refused once the logs are set up, json asked for in `.env`.
        Refusal {
            args: &["--demo"],
            envs: vec![],
            env_file: Some("AUTHD_LOG_FORMAT=json\nAUTHD_TOKEN_TTL=forever\n"),
            says: "AUTHD_TOKEN_TTL",
        },
        Refusal {
            args: &["--log-format=json", "--users", "users"],
            envs: vec![("AUTHD_SECRET_KEY", short_secret)],
            env_file: None,
            says: "secret key is",
        },
        // The database cannot be opened: its password is not in the error.
        Refusal {
            args: &["--demo"],
            envs: vec![
                ("AUTHD_LOG_FORMAT", "json"),
                ("AUTHD_DATABASE_URL", database_url.as_str()),
            ],
            env_file: None,
            says: "cannot open the database",
        },
    ];
    for case in cases {
        let (code, stdout, stderr) = run_to_exit(case.args, &case.envs, |dir| {
            std::fs::write(dir.join("users"), format!("alice:{}\n", password_hash())).unwrap();
            if let Some(text) = case.env_file {
                std::fs::write(dir.join(".env"), text).unwrap();
            }
        })
        .await;
        let output = format!("{stdout}{stderr}");
        let what = format!("{:?} {:?}: {output}", case.args, case.envs);
        assert_eq!(code, Some(1), "{what}");
        let lines = json_lines(&output);
        let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
        assert_eq!(errors.len(), 1, "{what}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(
            message.contains(case.says),
            "{:?} not in {message:?}",
            case.says
        );
        for leak in [short_secret, db_password] {
            assert!(!output.contains(leak), "{leak} in {output}");
        }
    }
}

#[tokio::test]
async fn a_log_format_other_than_text_or_json_is_refused_in_one_line() {
    for (args, envs) in [
        (&[][..], &[("AUTHD_LOG_FORMAT", "xml")][..]),
        (&["--log-format", "yaml"][..], &[][..]),
    ] {
        let (code, stdout, stderr) = run_to_exit(args, envs, |_| {}).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("authd: error: invalid value"),
            "{stderr}"
        );
        assert!(stderr.contains("use `text` or `json`"), "{stderr}");
        assert!(stderr.contains("AUTHD_LOG_FORMAT"), "{stderr}");
    }
}
