//! The admin commands (`authd sessions ...`) as an operator runs them during an incident: they
//! act on an existing authd database only, say which one on every run, and take their settings
//! after the subcommand as well as before.

use crate::helpers::{Binary, PASSWORD, USER, binary_command, run_to_exit};

#[tokio::test]
async fn sessions_revoke_where_there_is_no_database_fails_and_creates_none() {
    // Run from a folder with no `.env` and no database: the default relative path finds nothing.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(dir.path());
    cmd.args(["sessions", "revoke", "--user", "alice"]);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("authd: database sqlite://data/authd.db"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no database file at data/authd.db"),
        "{stderr}"
    );
    assert!(!stdout.contains("revoked"), "{stdout}");
    assert!(!dir.path().join("data").exists(), "a database was created");
}

#[tokio::test]
async fn sessions_commands_take_the_database_after_the_subcommand_and_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("authd.db");
    let url = format!("sqlite://{}", db.display());
    let app = Binary::start(&["--demo"], &[("AUTHD_DATABASE_URL", url.as_str())]).await;
    assert_eq!(app.login(USER, PASSWORD).await.status(), 200);

    let (code, out, err) =
        run_to_exit(&["sessions", "list", "--database-url", &url], &[], |_| {}).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(&format!("authd: database {url}")), "{err}");
    assert!(out.contains("1 live session"), "{out}");
    let (code, out, err) = run_to_exit(
        &["sessions", "revoke", "--user", USER, "--database-url", &url],
        &[],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked 1 session"), "{out}");
}

#[tokio::test]
async fn sessions_commands_refuse_a_database_that_is_not_authds() {
    let (code, out, err) = run_to_exit(
        &["sessions", "list", "--database-url", "sqlite://other.db"],
        &[],
        |d| {
            // An SQLite file of some other program.
            std::fs::write(d.join("other.db"), b"").unwrap();
        },
    )
    .await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("no authd schema"), "{err}");
}

#[test]
fn a_postgres_url_is_named_without_its_password() {
    assert_eq!(
        authd::store::describe("postgres://authd:s3cret@db.internal:5432/authd"),
        "postgres://authd@db.internal:5432/authd"
    );
    assert_eq!(
        authd::store::describe("sqlite://data/authd.db"),
        "sqlite://data/authd.db"
    );
}
