//! Issue #10, logins: concurrent correct logins, address bans not caused by user bans, a
//! many-address flood, per-name decoy hashes, rehash on login, bcrypt's 72-byte limit, hash
//! parameter bounds and keyed throttle counters; each against the real binary where it is the
//! binary's behaviour.

use std::path::Path;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher as _;

use crate::helpers::{Binary, Target, join_all, login_as, run_to_exit, start_with_users, target};

const SECRET: &str = "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN";

/// An argon2id hash with cheap parameters (4 MiB, one pass): a few milliseconds, so that tests
/// that make many logins stay quick.
fn cheap_argon2(password: &str) -> String {
    let params = argon2::Params::new(4096, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// A bcrypt hash as `htpasswd -B` writes it (`$2y$`).
fn htpasswd_bcrypt(password: &str, cost: u32) -> String {
    bcrypt::hash(password, cost)
        .unwrap()
        .replacen("$2b$", "$2y$", 1)
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

// Point 1.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_correct_logins_all_succeed_with_the_default_throttle() {
    let app = Binary::start(&["--demo"], &[]).await;
    let t = target(&app);
    let statuses: Vec<u16> = join_all((0..32).map(|_| {
        let t = t.clone();
        async move { login_as(&t, "user", "password", "192.0.2.1").await }
    }))
    .await;
    assert_eq!(count(&statuses, 200), 32, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn correct_logins_whose_clients_hang_up_leave_no_failure_behind() {
    // A load test's client timing out, a browser tab closed: the login is cut off after the
    // throttle counted it and before its verdict. Each used to stay counted as a failure, and a
    // handful banned the user (and then the address) for guesses nobody made.
    let app = Binary::start(&["--demo"], &[]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(8))
        .build()
        .unwrap();
    for _ in 0..12 {
        let _ = impatient
            .post(app.url("/login"))
            .basic_auth("user", Some("password"))
            .send()
            .await;
    }
    // The hashes of the abandoned logins finish on the server; then the next one counts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = app.login("user", "password").await;
    assert_eq!(res.status(), 200, "{}", app.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_wrong_guesses_get_exactly_user_max_checked() {
    let app = Binary::start(&["--demo"], &[]).await;
    let t = target(&app);
    let statuses: Vec<u16> = join_all((0..30).map(|_| {
        let t = t.clone();
        async move { login_as(&t, "user", "guess", "192.0.2.1").await }
    }))
    .await;
    // The default user_max is 5: five guesses are checked (401), every other one refused (429).
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 25, "{statuses:?}");
    // And the right password is refused too now: the account is banned.
    assert_eq!(app.login("user", "password").await.status(), 429);
}

// Point 2.

#[tokio::test]
async fn attempts_refused_by_a_user_ban_do_not_count_against_the_address() {
    let users = format!(
        "alice:{}\ncarol:{}\n",
        cheap_argon2("alice-pw"),
        cheap_argon2("carol-pw")
    );
    let app = start_with_users(&users, &[("AUTHD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let app = target(&app);
    let (a, b) = ("203.0.113.1", "203.0.113.2");
    for _ in 0..5 {
        assert_eq!(login_as(&app, "alice", "wrong", a).await, 401);
    }
    assert_eq!(login_as(&app, "alice", "wrong", a).await, 429);
    // Alice is banned; her right password from B is refused, 25 times (past the address limit
    // of 20 if those refusals were counted against B).
    for _ in 0..25 {
        assert_eq!(login_as(&app, "alice", "alice-pw", b).await, 429);
    }
    // Everyone else behind B may still log in.
    assert_eq!(login_as(&app, "carol", "carol-pw", b).await, 200);
}

// Point 3 (a many-address flood) is in tests/resilience, which runs its tests alone.

// Point 4.

/// The shortest time of three wrong logins as `name`: load on the machine only ever adds time,
/// so the shortest is the closest to the cost of the hash.
async fn login_time(app: &Target, name: &str) -> Duration {
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let status = login_as(app, name, "not-the-password", "127.0.0.1").await;
        fastest = fastest.min(started.elapsed());
        assert_eq!(status, 401, "{name}");
    }
    fastest
}

#[tokio::test]
async fn an_unknown_name_costs_what_one_real_entry_costs_chosen_by_the_name() {
    // The first entry is cheap (bcrypt cost 4, ~1 ms), the second dear (bcrypt cost 11, over
    // 100 ms): today every unknown name pays the first entry's cost.
    let users = format!(
        "dave:{}\nbob:{}\n",
        htpasswd_bcrypt("dave-pw", 4),
        htpasswd_bcrypt("bob-pw", 11)
    );
    let app = start_with_users(
        &users,
        &[
            ("AUTHD_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTHD_THROTTLE_USER_MAX", "50"),
            ("AUTHD_THROTTLE_WINDOW", "1h"),
            ("AUTHD_THROTTLE_ADDRESS_MAX", "100"),
        ],
    )
    .await;
    let t = target(&app);
    let cheap = login_time(&t, "dave").await;
    let dear = login_time(&t, "bob").await;
    assert!(dear > cheap * 8, "cheap {cheap:?}, dear {dear:?}");
    // Half-way on a log scale.
    let threshold = Duration::from_secs_f64((cheap.as_secs_f64() * dear.as_secs_f64()).sqrt());
    let mut classes = Vec::new();
    for i in 0..8 {
        let name = format!("stranger{i}");
        let first = login_time(&t, &name).await > threshold;
        // The same name always pays the same entry's cost.
        let again = login_time(&t, &name).await > threshold;
        assert_eq!(first, again, "{name} changed its cost");
        classes.push(first);
    }
    assert!(
        classes.contains(&true) && classes.contains(&false),
        "eight unknown names all paid one entry's cost: {classes:?} (true = bob's)"
    );
    // The start-up said the entries cost differently.
    let out = app.output();
    assert!(
        out.contains("WARN") && out.contains("different algorithms or costs"),
        "{out}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_login_against_a_weaker_hash_rewrites_it_as_argon2id_in_the_users_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let users = format!(
        "# team\nbob:{}\n\nalice:{}\ncarol:{}\n",
        htpasswd_bcrypt("bob-pw", 4),
        cheap_argon2("alice-pw"),
        authd::users::hash_password(b"carol-pw").unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, &users).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let app = Binary::start_in(
        dir,
        &[],
        &[("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", SECRET)],
    )
    .await;
    let path = app.dir.path().join("users");
    for (name, pw) in [
        ("bob", "bob-pw"),
        ("alice", "alice-pw"),
        ("carol", "carol-pw"),
    ] {
        assert_eq!(app.login(name, pw).await.status(), 200, "{name}");
    }
    let current = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        authd::users::ARGON2_M_COST_KIB,
        authd::users::ARGON2_T_COST,
        authd::users::ARGON2_P_COST
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0], "# team");
    assert_eq!(lines[2], "");
    assert!(lines[1].starts_with(&format!("bob:{current}")), "{text}");
    assert!(lines[3].starts_with(&format!("alice:{current}")), "{text}");
    // carol's hash was already the current setting: untouched.
    assert_eq!(lines[4], users.lines().nth(4).unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(
        !text.contains("$2y$"),
        "no bcrypt hash left in the file: {text}"
    );
    // The new hashes work, in memory and from the file at the next start.
    assert_eq!(app.login("bob", "bob-pw").await.status(), 200);
    assert_eq!(app.login("bob", "wrong").await.status(), 401);
    let no_temp_files = std::fs::read_dir(app.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .all(|e| !e.file_name().to_string_lossy().contains("tmp"));
    assert!(no_temp_files, "a temporary file was left behind");
}

#[tokio::test]
async fn a_users_file_that_cannot_be_rewritten_only_logs_a_warning() {
    let users = format!("bob:{}\n", htpasswd_bcrypt("bob-pw", 4));
    let app = start_with_users(&users, &[]).await;
    // Where the new file would be written first, a directory: the write fails.
    std::fs::create_dir(app.dir.path().join(".users.authd-tmp")).unwrap();
    assert_eq!(app.login("bob", "bob-pw").await.status(), 200);
    assert_eq!(
        std::fs::read_to_string(app.dir.path().join("users")).unwrap(),
        users
    );
    app.wait_for_output("cannot rewrite the users file").await;
    assert!(app.output().contains("WARN"), "{}", app.output());
    // The login still works, with the new hash kept in memory.
    assert_eq!(app.login("bob", "bob-pw").await.status(), 200);
}

// Point 15.

#[tokio::test]
async fn a_bcrypt_user_with_a_password_over_72_bytes_is_refused() {
    let long = "x".repeat(80);
    let users = format!("bob:{}\n", htpasswd_bcrypt(&long, 4));
    let app = start_with_users(&users, &[]).await;
    let out = app.output();
    assert!(
        out.contains("WARN") && out.contains("bcrypt") && out.contains("72"),
        "a warning suggests rehashing bcrypt users: {out}"
    );
    // bcrypt reads only the first 72 bytes: any tail would do, so none is accepted.
    let other_tail = format!("{}yyyyyyyy", &long[..72]);
    assert_eq!(app.login("bob", &other_tail).await.status(), 401);
    assert_eq!(app.login("bob", &long).await.status(), 401);
}

// Point 10 (the users file).

async fn assert_users_file_refused(hash: &str, needle: &str) {
    let users = format!("# ok\nalice:{}\nmallory:{hash}\n", cheap_argon2("pw"));
    let (code, stdout, stderr) = run_to_exit(
        &[],
        &[("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", SECRET)],
        |d: &Path| std::fs::write(d.join("users"), &users).unwrap(),
    )
    .await;
    assert_eq!(code, Some(1), "{hash}: stdout {stdout} stderr {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

#[tokio::test]
async fn users_file_entries_with_parameters_out_of_range_are_refused_at_start() {
    let bcrypt4 = htpasswd_bcrypt("pw", 4);
    assert_users_file_refused(&bcrypt4.replacen("$04$", "$15$", 1), "cost").await;
    assert_users_file_refused(&bcrypt4.replacen("$04$", "$31$", 1), "cost").await;
    assert_users_file_refused(&bcrypt4.replacen("$04$", "$03$", 1), "cost").await;
    let argon = cheap_argon2("pw");
    let with = |params: &str| argon.replacen("m=4096,t=1,p=1", params, 1);
    assert_users_file_refused(&with("m=262145,t=1,p=1"), "memory").await;
    assert_users_file_refused(&with("m=4096,t=11,p=1"), "passes").await;
    assert_users_file_refused(&with("m=4096,t=1,p=17"), "parallelism").await;
}

#[tokio::test]
async fn users_file_entries_at_the_edge_of_the_ranges_load() {
    let argon = cheap_argon2("pw");
    let users = format!(
        "a:{}\nb:{}\nc:{}\n",
        htpasswd_bcrypt("pw", 4),
        htpasswd_bcrypt("pw", 4).replacen("$04$", "$14$", 1),
        argon.replacen("m=4096,t=1,p=1", "m=262144,t=10,p=16", 1),
    );
    let app = start_with_users(&users, &[]).await;
    assert_eq!(app.login("a", "pw").await.status(), 200);
}

// Point 9 (the counter keys).

#[tokio::test]
async fn throttle_counters_in_the_database_are_keyed_not_plain_digests() {
    use sha2::Digest as _;
    use sqlx::Connection as _;
    use sqlx::Row as _;
    let users = format!("alice:{}\n", cheap_argon2("alice-pw"));
    let app = start_with_users(
        &users,
        &[
            ("AUTHD_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTHD_DATABASE_URL", "sqlite://authd.db"),
        ],
    )
    .await;
    for name in ["alice", "Alice"] {
        assert_eq!(
            login_as(&target(&app), name, "wrong", "203.0.113.9").await,
            401
        );
    }
    let db = app.dir.path().join("authd.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let buckets: Vec<String> = sqlx::query("SELECT bucket FROM login_throttle")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("bucket"))
        .collect();
    assert_eq!(
        buckets.len(),
        3,
        "alice, Alice and the address: {buckets:?}"
    );
    let hex = |data: &[u8]| {
        sha2::Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for plain in [
        "user\0alice",
        "user\0Alice",
        "address\x00203.0.113.9",
        "alice",
        "203.0.113.9",
    ] {
        let unkeyed = hex(plain.as_bytes());
        assert!(
            !buckets.contains(&unkeyed),
            "the counter of {plain:?} is its plain SHA-256"
        );
    }
}
