//! Schemathesis against the real binary in demo mode, with all its checks: no 5xx, every answer
//! matches `/openapi.json` (status, content type, headers, body schema), authentication is
//! enforced, wrong methods get 405 with `Allow`, and so on. Credentials come from
//! `tests/tools/schemathesis.toml` (one entry per security scheme of the document). Needs
//! Schemathesis (`AUTHD_TEST_SCHEMATHESIS`; `./scripts/test.sh` installs it in `target/test-venv`).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::{Binary, demo_token, external_tool, run_bounded};

#[tokio::test]
#[ignore = "needs Schemathesis (AUTHD_TEST_SCHEMATHESIS)"]
async fn schemathesis_finds_nothing_with_all_checks_against_the_demo_binary() {
    let st = external_tool("AUTHD_TEST_SCHEMATHESIS", "schemathesis", "Schemathesis");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/schemathesis.toml");
    let app = Binary::start(&["--demo"], &[]).await;
    let token = demo_token(&app).await;
    let documented = serde_json::to_value(authd::http::openapi()).unwrap()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum::<usize>();

    // It writes its example database and crash files in the working directory.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&st);
    cmd.current_dir(dir.path())
        .env("AUTHD_TOKEN", &token)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--max-examples", "300"])
        .args(["--request-timeout", "10"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(dir.path().join("junit.xml"));
    let (ok, output) = run_bounded(cmd, Duration::from_secs(300)).await;
    assert!(ok, "Schemathesis failed:\n{output}");

    // Not a vacuous pass: every operation but the document itself (which Schemathesis leaves
    // out) was tested, with cases generated and checked.
    let tested = format!("Tested: {}", documented - 1);
    assert!(output.contains(&tested), "expected `{tested}`:\n{output}");
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("<testcase"), "{junit}");
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}"
    );
    // The server saw the run: many requests, none answered 5xx.
    let log = app.output();
    let served = log.matches("served").count();
    assert!(served > 100, "only {served} requests served");
    assert!(!log.contains("status=5"), "a 5xx in the log:\n{log}");
}
