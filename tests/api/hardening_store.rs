//! Issue #10, the store's part: database files owner-only (9), spent refresh tokens that do not
//! pile up and a cap on sessions per user (14), a schema dropped under a running server (17), and
//! refresh racing logout (18). On SQLite and, with `AUTHD_TEST_DATABASE_URL`, on PostgreSQL.

use std::time::{Duration, Instant};

use authd::sessions::{SessionSettings, Sessions};
use authd::store::{Store, StoreOptions};
use sqlx::Connection as _;

use crate::helpers::{Binary, TestDb, password_hash, run_to_exit, spawn_app_on};
use crate::on_both_engines;

const SECRET: &str = "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN";

/// A connection of the test's own to `db`, beside the app's.
async fn connect(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    // A SQLite file the app has not made yet is made here.
    let url = if db.engine == "sqlite" {
        format!("{}?mode=rwc", db.url)
    } else {
        db.url.clone()
    };
    sqlx::AnyConnection::connect(&url).await.unwrap()
}

/// Rows in every table of the schema but sqlx's bookkeeping: what the server keeps.
async fn rows_kept(db: &TestDb) -> i64 {
    use sqlx::Row as _;
    let mut conn = connect(db).await;
    let list = if db.engine == "sqlite" {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    } else {
        "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
         WHERE table_schema = current_schema()"
    };
    let tables: Vec<String> = sqlx::query(list)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .filter(|t| t != "_sqlx_migrations")
        .collect();
    assert!(!tables.is_empty(), "no tables on {}", db.engine);
    let mut total = 0;
    for table in tables {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        total += row.get::<i64, _>("n");
    }
    let _ = conn.close().await;
    total
}

async fn refresh_token(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

// ---- 9: database files -------------------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn sqlite_database_and_its_wal_and_shm_files_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("user:{}\n", password_hash()),
    )
    .unwrap();
    let db = dir.path().join("data").join("authd.db");
    let url = format!("sqlite://{}", db.display());
    let app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_USERS", "users"),
            ("AUTHD_SECRET_KEY", SECRET),
            ("AUTHD_DATABASE_URL", &url),
        ],
    )
    .await;
    let res = app.login("user", "password").await;
    assert_eq!(res.status(), 200);
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path} has mode {:o}", mode & 0o777);
    }
}

// ---- 14: what a session keeps, and how many a user may have ----------------------------

on_both_engines!(
    two_thousand_refreshes_of_one_session_keep_as_many_rows_as_one_and_still_catch_reuse,
    a_login_past_the_per_user_cap_ends_that_users_oldest_session_only,
    schema_dropped_under_a_running_server_is_recreated_and_healthz_never_says_ok_without_it,
    racing_refresh_and_logout_200_times_always_ends_the_session,
    a_database_from_before_the_upgrade_keeps_its_sessions_and_their_reuse_detection,
);

async fn two_thousand_refreshes_of_one_session_keep_as_many_rows_as_one_and_still_catch_reuse(
    db: TestDb,
) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let first = refresh_token(app.login("user", "password").await).await;
    let mut spent = vec![first.clone()];
    let mut current = refresh_token(app.refresh(&first).await).await;
    let after_one = rows_kept(&db).await;
    let started = Instant::now();
    for _ in 1..2000 {
        spent.push(current.clone());
        current = refresh_token(app.refresh(&current).await).await;
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
    }
    let after_2000 = rows_kept(&db).await;
    assert_eq!(
        after_2000, after_one,
        "rows after 2000 refreshes vs after 1, on {}",
        db.engine
    );

    // Any earlier token of the family is still recognised: it ends the session.
    let earlier = &spent[spent.len() / 2];
    assert_eq!(app.refresh(earlier).await.status(), 401);
    assert_eq!(
        app.refresh(&current).await.status(),
        401,
        "the family must have ended with the reuse"
    );
    // And the very first one too, on a fresh session.
    let again = refresh_token(app.login("user", "password").await).await;
    let next = refresh_token(app.refresh(&again).await).await;
    assert_eq!(app.refresh(&again).await.status(), 401);
    assert_eq!(app.refresh(&next).await.status(), 401);
}

async fn a_login_past_the_per_user_cap_ends_that_users_oldest_session_only(db: TestDb) {
    let app = spawn_app_on(&db, |config, dir| {
        config.sessions.max_per_user = 3;
        std::fs::write(
            dir.join("users"),
            format!("user:{0}\nother:{0}\n", password_hash()),
        )
        .unwrap();
    })
    .await;
    let other = refresh_token(app.login("other", "password").await).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(refresh_token(app.login("user", "password").await).await);
    }
    // The first of user's four sessions ended when the fourth began; the other three live.
    assert_eq!(app.refresh(&sessions[0]).await.status(), 401);
    for token in &sessions[1..] {
        assert_eq!(app.refresh(token).await.status(), 200, "on {}", db.engine);
    }
    // Another user's session is not counted against user.
    assert_eq!(app.refresh(&other).await.status(), 200);
}

#[tokio::test]
async fn max_sessions_per_user_outside_1_to_10000_is_refused_at_start() {
    for bad in ["0", "10001", "many"] {
        let (code, _, stderr) = run_to_exit(
            &[],
            &[
                ("AUTHD_USERS", "users"),
                ("AUTHD_SECRET_KEY", SECRET),
                ("AUTHD_MAX_SESSIONS_PER_USER", bad),
                ("AUTHD_LISTEN", "127.0.0.1:0"),
            ],
            |dir| std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap(),
        )
        .await;
        assert_eq!(code, Some(1), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bad}: {stderr}");
        assert!(
            stderr.contains("AUTHD_MAX_SESSIONS_PER_USER"),
            "{bad}: {stderr}"
        );
    }
}

/// A refresh token as authd 0.1 made them, and its stored digest.
fn legacy_token() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (token, digest)
}

async fn a_database_from_before_the_upgrade_keeps_its_sessions_and_their_reuse_detection(
    db: TestDb,
) {
    // The schema of migration 0001 alone, applied by sqlx from a directory holding just it, with
    // two sessions as it kept them: a spent token and the current one each.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_sessions.sql"),
        dir.path().join("0001_sessions.sql"),
    )
    .unwrap();
    let mut conn = connect(&db).await;
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let now = crate::helpers::now();
    let mut sessions = Vec::new();
    for family in ["f1", "f2"] {
        let (spent, spent_digest) = legacy_token();
        let (current, current_digest) = legacy_token();
        sqlx::query("INSERT INTO session_families VALUES ($1, 'user', $2, $2, $3, NULL)")
            .bind(family)
            .bind(now - 60)
            .bind(now + 86_400)
            .execute(&mut conn)
            .await
            .unwrap();
        for (digest, used) in [(&spent_digest, Some(now - 30)), (&current_digest, None)] {
            sqlx::query("INSERT INTO refresh_tokens VALUES ($1, $2, $3, $4, $5)")
                .bind(digest)
                .bind(family)
                .bind(now - 60)
                .bind(now + 3_600)
                .bind(used)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sessions.push((spent, current));
    }
    let _ = conn.close().await;

    let app = spawn_app_on(&db, |_, _| {}).await;
    // The current token of the first session refreshes, and then the chain goes on ...
    let (spent1, current1) = &sessions[0];
    let next = refresh_token(app.refresh(current1).await).await;
    let after = refresh_token(app.refresh(&next).await).await;
    // ... while every earlier token, from before the upgrade or after, is reuse and ends it.
    assert_eq!(app.refresh(spent1).await.status(), 401);
    assert_eq!(app.refresh(&after).await.status(), 401, "on {}", db.engine);
    // The second: a spent token from before the upgrade, presented first, ends it too.
    let (spent2, current2) = &sessions[1];
    assert_eq!(app.refresh(spent2).await.status(), 401);
    assert_eq!(
        app.refresh(current2).await.status(),
        401,
        "on {}",
        db.engine
    );
}

// ---- 17: the schema gone under a running server ------------------------------------------

/// Drops every table (SQLite) or the whole schema and makes it again empty (PostgreSQL).
async fn drop_schema(db: &TestDb) {
    let mut conn = connect(db).await;
    if db.engine == "sqlite" {
        for table in [
            "refresh_tokens",
            "session_families",
            "login_throttle",
            "revocations",
            "_sqlx_migrations",
        ] {
            sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    } else {
        use sqlx::Row as _;
        let schema: String = sqlx::query("SELECT CAST(current_schema() AS TEXT) AS s")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get("s");
        assert!(schema.starts_with("authd_test_"), "{schema}");
        sqlx::raw_sql(&format!(
            "DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let _ = conn.close().await;
}

async fn sessions_table_exists(db: &TestDb) -> bool {
    let mut conn = connect(db).await;
    let exists = sqlx::query("SELECT 1 FROM session_families LIMIT 1")
        .fetch_optional(&mut conn)
        .await
        .is_ok();
    let _ = conn.close().await;
    exists
}

async fn health(app: &crate::helpers::TestApp) -> serde_json::Value {
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn schema_dropped_under_a_running_server_is_recreated_and_healthz_never_says_ok_without_it(
    db: TestDb,
) {
    let app = spawn_app_on(&db, |_, _| {}).await;
    let before = refresh_token(app.login("user", "password").await).await;
    assert_eq!(health(&app).await["store"], "ok");

    drop_schema(&db).await;
    assert!(!sessions_table_exists(&db).await);

    // Within a bounded time logins, refreshes and logouts work again ...
    let deadline = Instant::now() + Duration::from_secs(10);
    let token = loop {
        let h = health(&app).await;
        if h["store"] == "ok" {
            // ... and `ok` is only ever said when the tables are there.
            assert!(sessions_table_exists(&db).await, "healthz said ok: {h}");
        } else {
            assert_eq!(
                h,
                serde_json::json!({"status": "degraded", "store": "unavailable"})
            );
        }
        let res = app.login("user", "password").await;
        if res.status() == 200 {
            break refresh_token(res).await;
        }
        assert_eq!(res.status(), 503, "on {}", db.engine);
        assert!(
            Instant::now() < deadline,
            "logins still fail 10 s after the schema was dropped, on {}",
            db.engine
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sessions_table_exists(&db).await);
    assert_eq!(health(&app).await["store"], "ok");
    let next = refresh_token(app.refresh(&token).await).await;
    assert_eq!(app.logout(&next).await.status(), 204);
    assert_eq!(app.refresh(&next).await.status(), 401);
    // The session from before the drop went with its table.
    assert_eq!(app.refresh(&before).await.status(), 401);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn healthz_says_unavailable_while_the_sessions_table_is_locked_on_postgres() {
    let db = TestDb::postgres("healthz_says_unavailable_while_the_sessions_table_is_locked").await;
    let app = spawn_app_on(&db, |config, _| {
        config.store.op_timeout = Duration::from_millis(500);
    })
    .await;
    assert_eq!(health(&app).await["store"], "ok");
    let mut locker = connect(&db).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE session_families IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let started = Instant::now();
    let h = health(&app).await;
    assert_eq!(
        h,
        serde_json::json!({"status": "degraded", "store": "unavailable"})
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    let _ = locker.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while health(&app).await["store"] != "ok" {
        assert!(Instant::now() < deadline, "healthz not ok after the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- 18: refresh racing logout -----------------------------------------------------------

/// Backends of the PostgreSQL server waiting for a lock `blocker` (a backend's pid) holds,
/// directly or behind another such waiter.
async fn waiting_behind(conn: &mut sqlx::AnyConnection, blocker: i32) -> i64 {
    use sqlx::Row as _;
    sqlx::query(
        "WITH direct AS (SELECT pid FROM pg_stat_activity \
                         WHERE $1 = ANY(pg_blocking_pids(pid))) \
         SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_stat_activity a \
         WHERE a.pid IN (SELECT pid FROM direct) \
         OR EXISTS (SELECT 1 FROM direct d WHERE d.pid = ANY(pg_blocking_pids(a.pid)))",
    )
    .bind(blocker)
    .fetch_one(&mut *conn)
    .await
    .unwrap()
    .get("n")
}

/// The reviewer's interleaving, made certain: the session's row is locked, a logout queues for
/// it, then a refresh; when the lock goes, the logout commits first. The refresh must not then
/// answer 200 (it did: it had spent its token before it waited, and carried on after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn a_refresh_that_waited_behind_a_logout_on_postgres_does_not_answer_200() {
    use sqlx::Row as _;
    let db =
        TestDb::postgres("a_refresh_that_waited_behind_a_logout_on_postgres_does_not_answer_200")
            .await;
    let app = spawn_app_on(&db, |_, _| {}).await;
    for trial in 0..5 {
        let token = refresh_token(app.login("user", "password").await).await;
        let mut locker = connect(&db).await;
        let pid: i32 = sqlx::query("SELECT pg_backend_pid() AS pid")
            .fetch_one(&mut locker)
            .await
            .unwrap()
            .get("pid");
        sqlx::raw_sql("BEGIN; SELECT id FROM session_families FOR UPDATE")
            .execute(&mut locker)
            .await
            .unwrap();
        let post = |path: &'static str| {
            let (client, url, token) = (app.client.clone(), app.url(path), token.clone());
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .json(&serde_json::json!({ "refresh_token": token }))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), Instant::now())
            })
        };
        let mut watcher = connect(&db).await;
        let logout = post("/logout");
        let deadline = Instant::now() + Duration::from_secs(5);
        while waiting_behind(&mut watcher, pid).await < 1 {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the logout never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refresh = post("/refresh");
        // The refresh waits too: on the row, or on the logout queued for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while waiting_behind(&mut watcher, pid).await < 2 {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the refresh never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
        let (l_status, l_at) = logout.await.unwrap();
        let (r_status, r_at) = refresh.await.unwrap();
        assert_eq!(l_status, 204);
        assert!(
            r_status != 200 || r_at < l_at,
            "trial {trial}: the refresh answered 200 after the logout's 204"
        );
        assert_eq!(r_status, 401, "trial {trial}");
        let _ = watcher.close().await;
        let _ = locker.close().await;
    }
}

/// 200 free races. Which commits first is up to chance; either way the session ends. Completion
/// order is not asserted here: a refresh that committed first answers within microseconds of a
/// logout that waited for it, on another connection, and which of two such answers the client
/// reads first is the scheduler's choice, not the server's (the interleaving of the issue, where
/// the refresh commits after the logout, is forced in the test above).
async fn racing_refresh_and_logout_200_times_always_ends_the_session(db: TestDb) {
    const TRIALS: usize = 200;
    let app = spawn_app_on(&db, |_, _| {}).await;
    // The sessions are started through the library, on the same database: 200 logins would
    // spend the test's time on password hashing.
    let store = Store::open(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let sessions = Sessions::new(store.clone(), SessionSettings::default());
    let now = crate::helpers::now();
    let mut tokens = Vec::with_capacity(TRIALS);
    for _ in 0..TRIALS {
        tokens.push(sessions.start("user", now).await.unwrap().refresh_token.0);
    }
    store.close().await;

    let mut late_200s = 0;
    let mut refreshed = 0;
    for (i, token) in tokens.iter().enumerate() {
        let refresh = async {
            let res = app.refresh(token).await;
            let at = Instant::now();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (
                status,
                at,
                body["refresh_token"].as_str().map(str::to_owned),
            )
        };
        let logout = async {
            // Half the trials give the refresh a head start of a few hundred microseconds, so
            // that the logout lands inside its transaction.
            if i % 2 == 1 {
                let until = Instant::now() + Duration::from_micros(200 + 50 * (i as u64 % 8));
                while Instant::now() < until {
                    tokio::task::yield_now().await;
                }
            }
            let res = app.logout(token).await;
            (res.status().as_u16(), Instant::now())
        };
        let ((r_status, r_at, next), (l_status, l_at)) = tokio::join!(refresh, logout);
        assert_eq!(l_status, 204);
        assert!(
            r_status == 200 || r_status == 401,
            "refresh answered {r_status}"
        );
        if r_status == 200 {
            refreshed += 1;
            if r_at > l_at {
                late_200s += 1;
            }
            // Whatever the order, the session is over once both have answered.
            let next = next.expect("a 200 carries a refresh token");
            assert_eq!(app.refresh(&next).await.status(), 401, "trial {i}");
        }
    }
    eprintln!(
        "{}: {refreshed} of {TRIALS} refreshes answered 200, {late_200s} read after the logout's 204",
        db.engine
    );
}
