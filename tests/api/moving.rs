//! SQLite to PostgreSQL, as the guide (`docs/deploy.md`) does it: the role and database its SQL
//! makes, run through the real `psql`, serve authd and allow nothing more; `authd sessions export`
//! and `import` move live sessions so that refresh tokens issued on SQLite work on PostgreSQL, and
//! refuse a bad file whole.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::helpers::{
    Binary, PASSWORD, SECRET, TestDb, Tokens, USER, external_tool, password_hash, run_to_exit,
};
use crate::on_both_engines;
use crate::proxy_servers::doc_block;

/// `authd ARGS` to its exit, from an empty folder: (exit code, stdout, stderr).
async fn authd(args: &[&str]) -> (Option<i32>, String, String) {
    run_to_exit(args, &[], |_| {}).await
}

/// Starts authd with the test user and secret on the database of `envs`.
async fn start_authd(envs: &[(&str, &str)]) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{}\n", password_hash()),
    )
    .unwrap();
    let mut all = vec![("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", SECRET)];
    all.extend_from_slice(envs);
    Binary::start_in(dir, &[], &all).await
}

async fn login(app: &Binary) -> Tokens {
    let res = app.login(USER, PASSWORD).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn refresh(app: &Binary, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/refresh"))
        .json(&serde_json::json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

/// The session ids `authd sessions list` shows for the database at `url`.
async fn listed_ids(url: &str) -> Vec<String> {
    let (code, out, err) = authd(&["sessions", "list", "--database-url", url]).await;
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .skip(1)
        .filter(|l| l.contains('\t'))
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect()
}

/// `s` with every whole word `word` (not part of a longer name) replaced by `by`.
fn replace_word(s: &str, word: &str, by: &str) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().last().or_else(|| out.chars().last());
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            out.push_str(word);
        } else {
            out.push_str(by);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// The PostgreSQL of `AUTHD_TEST_DATABASE_URL`, as its superuser.
fn admin_url(test: &str) -> String {
    std::env::var("AUTHD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{test} needs PostgreSQL: set AUTHD_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test; scripts/test.sh finds a local one)"
            )
        })
}

async fn admin_execute(options: &PgConnectOptions, sql: &str) {
    let mut conn = PgConnection::connect_with(options).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
}

/// The role and database the guide's SQL made under a name of their own, and a second role;
/// all dropped at the end, as `TestDb` drops its schema (with what the role might have made, were
/// it allowed to: `NAME_x`).
struct GuideDatabase {
    admin: PgConnectOptions,
    name: String,
    other: String,
}

impl Drop for GuideDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE); DROP DATABASE IF EXISTS {name}_x; \
             DROP ROLE IF EXISTS {name}; DROP ROLE IF EXISTS {name}_x; DROP ROLE IF EXISTS {other};",
            name = self.name,
            other = self.other,
        );
        // Drop may run inside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&admin).await.unwrap();
                for statement in sql.split_inclusive(';') {
                    let _ = sqlx::raw_sql(statement).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// Runs `conn`'s `sql`, which must be refused for want of a privilege (SQLSTATE 42501).
async fn assert_refused(conn: &mut PgConnection, sql: &str) {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => panic!("the role may run {sql:?}"),
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{sql}: {e}");
        }
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL) and psql"]
async fn postgres_role_from_the_guide_runs_authd_and_may_do_nothing_else() {
    let admin_url = admin_url("postgres_role_from_the_guide");
    let psql = external_tool(
        "AUTHD_TEST_PSQL",
        "psql",
        "psql (Debian's postgresql-client)",
    );
    let admin = PgConnectOptions::from_str(&admin_url).unwrap();
    let name = format!("authd_guide_{}", random_hex(6));
    let guard = GuideDatabase {
        admin: admin.clone(),
        name: name.clone(),
        other: format!("{name}_other"),
    };

    // The guide's SQL, through psql as the guide runs it, with this test's names and password.
    let sql = replace_word(
        &doc_block("docs/deploy.md", "postgres-role"),
        "authd",
        &name,
    );
    let password = random_hex(24);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("authd-database.sql");
    std::fs::write(&script, sql).unwrap();
    let mut cmd = tokio::process::Command::new(psql);
    cmd.arg(&admin_url)
        .args(["-v", "ON_ERROR_STOP=1", "-v"])
        .arg(format!("password={password}"))
        .stdin(std::fs::File::open(&script).unwrap())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("psql did not finish within 60 s")
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // authd as that role, its URL in a file: the schema is made at start, logins and refreshes
    // work, and the admin commands work as that role too.
    let url = format!(
        "postgres://{name}:{password}@{}:{}/{name}",
        admin.get_host(),
        admin.get_port()
    );
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let url_file = url_file.to_str().unwrap();
    let mut app = start_authd(&[("AUTHD_DATABASE_URL_FILE", url_file)]).await;
    let tokens = login(&app).await;
    assert_eq!(refresh(&app, &tokens.refresh_token).await.status(), 200);
    app.terminate().await;
    let (code, out, err) = authd(&["sessions", "list", "--database-url-file", url_file]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 live session"), "{out}");
    assert!(
        err.contains(&format!("authd: database postgres://{name}@")),
        "{err}"
    );
    assert!(!err.contains(&password), "{err}");

    // Nothing else. Another schema of the same database, and a second role, made by the admin.
    let in_db = admin.clone().database(&name);
    admin_execute(
        &in_db,
        &format!(
            "CREATE SCHEMA other; CREATE TABLE other.secrets (v TEXT); \
             INSERT INTO other.secrets VALUES ('x'); CREATE ROLE {} LOGIN;",
            guard.other
        ),
    )
    .await;
    let as_role = in_db.clone().username(&name).password(&password);
    let mut conn = PgConnection::connect_with(&as_role).await.unwrap();
    let has_tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(has_tables >= 3, "authd's tables are in the role's schema");
    for forbidden in [
        format!("CREATE DATABASE {name}_x"),
        format!("CREATE ROLE {name}_x"),
        "CREATE SCHEMA x".to_owned(),
        "CREATE TEMPORARY TABLE x (v TEXT)".to_owned(),
        "CREATE TABLE public.x (v TEXT)".to_owned(),
        "SELECT v FROM other.secrets".to_owned(),
        format!("DROP DATABASE {name}"),
    ] {
        assert_refused(&mut conn, &forbidden).await;
    }
    let _ = conn.close().await;
    let other = in_db.username(&guard.other);
    match PgConnection::connect_with(&other).await {
        Ok(_) => panic!("another role may connect to authd's database"),
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("42501"), "{e}"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn sessions_move_from_sqlite_to_postgres_and_their_refresh_tokens_work_there() {
    let pg = TestDb::postgres("sessions_move_from_sqlite_to_postgres").await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("authd.db").display());

    // A session past its lifetime: started with a one-second lifetime, awaited until the
    // database no longer counts it live.
    let mut app = start_authd(&[
        ("AUTHD_DATABASE_URL", &sqlite),
        ("AUTHD_SESSION_LIFETIME", "1s"),
    ])
    .await;
    let expired = login(&app).await;
    app.terminate().await;
    let mut waited = 0;
    while !listed_ids(&sqlite).await.is_empty() {
        waited += 1;
        assert!(waited < 100, "the one-second session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two sessions refreshed (their first tokens spent), one logged out.
    let mut app = start_authd(&[("AUTHD_DATABASE_URL", &sqlite)]).await;
    let mut refreshed = Vec::new();
    for _ in 0..2 {
        let first = login(&app).await;
        let res = refresh(&app, &first.refresh_token).await;
        assert_eq!(res.status(), 200);
        let current: Tokens = res.json().await.unwrap();
        refreshed.push((first, current));
    }
    let logged_out = login(&app).await;
    let res = app
        .client
        .post(app.url("/logout"))
        .json(&serde_json::json!({ "refresh_token": logged_out.refresh_token }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    app.terminate().await;
    let live = listed_ids(&sqlite).await;
    assert_eq!(live.len(), 2, "{live:?}");

    // Export: the live sessions only, digests and no token.
    let file = dir.path().join("sessions.jsonl");
    let file = file.to_str().unwrap();
    let (code, _, err) = authd(&[
        "sessions",
        "export",
        "--database-url",
        &sqlite,
        "--output",
        file,
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("exported 2 live sessions "), "{err}");
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        live.iter().all(|id| text.contains(id)) && text.contains(USER),
        "{text}"
    );
    let all_tokens = refreshed
        .iter()
        .flat_map(|(first, current)| [first, current])
        .chain([&expired, &logged_out]);
    for token in all_tokens {
        assert!(!text.contains(&token.refresh_token), "a token in {text}");
        assert!(!text.contains(&token.token), "a token in {text}");
    }

    // Import into PostgreSQL; a second import of the same file changes nothing.
    let (code, out, err) = authd(&["sessions", "import", file, "--database-url", &pg.url]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "imported 2 sessions\n");
    assert_eq!(listed_ids(&pg.url).await, live);
    let (code, out, err) = authd(&["sessions", "import", file, "--database-url", &pg.url]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("is already in the database"), "{err}");
    assert!(err.trim_end().ends_with("nothing imported"), "{err}");
    assert_eq!(listed_ids(&pg.url).await, live);

    // On PostgreSQL: the current token of one session refreshes. The other's token spent on
    // SQLite, presented first, is recognised there as reuse too and ends that session, current
    // token included. The logged-out and the expired sessions are unknown.
    let app = start_authd(&[("AUTHD_DATABASE_URL", &pg.url)]).await;
    let (_, kept) = &refreshed[0];
    let res = refresh(&app, &kept.refresh_token).await;
    assert_eq!(res.status(), 200);
    let (stolen_first, stolen_current) = &refreshed[1];
    assert_eq!(
        refresh(&app, &stolen_first.refresh_token).await.status(),
        401
    );
    assert_eq!(
        refresh(&app, &stolen_current.refresh_token).await.status(),
        401,
        "a token spent before the move was not recognised as reuse after it"
    );
    for gone in [&logged_out, &expired] {
        assert_eq!(refresh(&app, &gone.refresh_token).await.status(), 401);
    }
    assert_eq!(listed_ids(&pg.url).await.len(), 1);
}

on_both_engines!(sessions_import_refuses_a_bad_file_whole_and_imports_nothing);

async fn sessions_import_refuses_a_bad_file_whole_and_imports_nothing(db: TestDb) {
    // A good export of two sessions, from SQLite.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("authd.db").display());
    let mut app = start_authd(&[("AUTHD_DATABASE_URL", &sqlite)]).await;
    login(&app).await;
    login(&app).await;
    app.terminate().await;
    let (code, good, err) = authd(&["sessions", "export", "--database-url", &sqlite]).await;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 4, "{good}");

    let good_file = dir.path().join("good.jsonl");
    std::fs::write(&good_file, &good).unwrap();
    let good_file = good_file.to_str().unwrap();

    // The target must exist: a SQLite file is never made. Empty, as the guide's new database
    // is, it will do.
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let (code, out, err) =
            authd(&["sessions", "import", good_file, "--database-url", &db.url]).await;
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains("no database file"), "{err}");
        assert!(!Path::new(path).exists(), "import created a database");
        std::fs::write(path, b"").unwrap();
    }

    let joined = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    let garbled = lines[2].replacen("\"token_digest\":\"", "\"token_digest\":\"Z", 1);
    let long = format!("{} ", lines[2]).repeat(30);
    let count3 = lines[3].replace(":2", ":3");
    let bad_files = [
        ("cut short", joined(&lines[..3])),
        (
            "a garbled second session",
            joined(&[lines[0], lines[1], &garbled, lines[3]]),
        ),
        (
            "an edited count",
            joined(&[lines[0], lines[1], lines[2], &count3]),
        ),
        (
            "a session twice",
            joined(&[lines[0], lines[1], lines[2], lines[1], &count3]),
        ),
        (
            "a line too long",
            joined(&[lines[0], lines[1], &long, lines[3]]),
        ),
        ("not an export", format!("{USER}:{}\n", password_hash())),
    ];
    for (what, text) in bad_files {
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, &text).unwrap();
        let (code, out, err) = authd(&[
            "sessions",
            "import",
            file.to_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .await;
        assert_eq!(code, Some(1), "{what}: {out}{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{what}: {err}");
        assert!(errors[0].ends_with("; nothing imported"), "{what}: {err}");
        assert!(out.is_empty(), "{what}: {out}");
    }

    // None of them left a session behind: the good file imports both of its sessions whole.
    let (code, out, err) =
        authd(&["sessions", "import", good_file, "--database-url", &db.url]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "imported 2 sessions\n");
    assert_eq!(listed_ids(&db.url).await, listed_ids(&sqlite).await);
}

#[tokio::test]
async fn sessions_export_writes_an_owner_only_file_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("authd.db").display());
    let mut app = start_authd(&[("AUTHD_DATABASE_URL", &sqlite)]).await;
    login(&app).await;
    app.terminate().await;

    let file = dir.path().join("sessions.jsonl");
    let args = |f: &Path| {
        [
            "sessions".to_owned(),
            "export".to_owned(),
            "--output".to_owned(),
            f.display().to_string(),
            "--database-url".to_owned(),
            sqlite.clone(),
        ]
    };
    let run = |a: [String; 6]| async move {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        authd(&a).await
    };
    let (code, _, err) = run(args(&file)).await;
    assert_eq!(code, Some(0), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(exported.contains("\"type\":\"session\""), "{exported}");

    let (code, _, err) = run(args(&file)).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot create"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);
}

#[tokio::test]
async fn sessions_import_refuses_a_database_holding_other_tables() {
    use sqlx::SqliteConnection;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("authd.db").display());
    let mut app = start_authd(&[("AUTHD_DATABASE_URL", &sqlite)]).await;
    login(&app).await;
    app.terminate().await;
    let file = dir.path().join("sessions.jsonl");
    let file = file.to_str().unwrap();
    let (code, _, err) = authd(&[
        "sessions",
        "export",
        "--output",
        file,
        "--database-url",
        &sqlite,
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");

    // Some other program's database: not one authd uses, so nothing is written into it.
    let other = dir.path().join("other.db");
    let other_url = format!("sqlite://{}", other.display());
    let mut conn = SqliteConnection::connect(&format!("{other_url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE notes (v TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    let (code, out, err) = authd(&["sessions", "import", file, "--database-url", &other_url]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("holds tables but no authd schema"), "{err}");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, ["notes"]);
}
