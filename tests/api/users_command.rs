//! `authd users` / `authd groups` on the real binary, and a running server picking up the users
//! file's changes (file watch and SIGHUP) without a restart: added users log in, removed ones can
//! neither log in nor refresh, a broken file keeps the previous users and is named by its line.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::helpers::{Binary, SECRET, binary_command, join_all, run_bounded};

/// The settings every command and server here share: the users file in the run's folder, and
/// the default database (`data/authd.db` there).
const ENVS: &[(&str, &str)] = &[("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", SECRET)];

/// Runs `authd ARGS` in `dir` with [`ENVS`] and `stdin` as its standard input (not a TTY), to its
/// exit: (success, stdout, stderr).
async fn authd(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut cmd = binary_command(dir);
    cmd.args(args)
        .envs(ENVS.iter().copied())
        .env("AUTHD_GROUPS", "groups")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command refused before it reads its input closes the pipe: not an error here.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("authd did not exit within 30 s")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `authd users add NAME` with `password` on stdin and asserts it succeeded.
async fn add_user(dir: &Path, name: &str, password: &str) {
    let (ok, out, err) = authd(dir, &["users", "add", name], &format!("{password}\n")).await;
    assert!(ok, "users add {name}: {out}{err}");
}

/// How many times `needle` is in the server's output so far.
fn count(app: &Binary, needle: &str) -> usize {
    app.output().matches(needle).count()
}

/// Waits (bounded) until `needle` is in the output more than `before` times.
async fn wait_for_more(app: &Binary, needle: &str, before: usize) {
    for _ in 0..300 {
        if count(app, needle) > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new {needle:?} within 15 s:\n{}", app.output());
}

/// A server whose users file is made by `authd users add` with `users`, started in that folder.
async fn start_with(users: &[(&str, &str)]) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    for (name, pw) in users {
        add_user(dir.path(), name, pw).await;
    }
    Binary::start_in(dir, &[], ENVS).await
}

const RELOADED: &str = "users file changed: users reloaded";

#[tokio::test]
#[ignore = "needs htpasswd (apache2-utils)"]
async fn a_user_from_htpasswd_b_and_one_from_authd_users_add_both_log_in() {
    // Spawning fails, and the test with it, when apache2-utils is not installed.
    let htpasswd = "htpasswd";
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(htpasswd);
    // -c creates the file, -b takes the password from the command line, -B is bcrypt.
    cmd.arg("-cbB")
        .arg(dir.path().join("users"))
        .args(["alice", "alice-pw-1"]);
    let (ok, out) = run_bounded(cmd, Duration::from_secs(30)).await;
    assert!(ok, "htpasswd -cbB: {out}");
    let app = Binary::start_in(dir, &[], ENVS).await;
    // This login rehashes alice's entry in the file, which reloads it (one user); bob is added
    // after that reload, so that his is the only change that follows.
    assert_eq!(app.login("alice", "alice-pw-1").await.status(), 200);
    wait_for_more(&app, &format!("{RELOADED} users=1"), 0).await;
    add_user(app.dir.path(), "bob", "bob-pw-2").await;
    wait_for_more(&app, &format!("{RELOADED} users=2"), 0).await;
    assert_eq!(app.login("bob", "bob-pw-2").await.status(), 200);
    assert_eq!(app.login("bob", "alice-pw-1").await.status(), 401);
    assert_eq!(app.login("alice", "alice-pw-1").await.status(), 200);
    // One change, one reload: neither the rehash's rewrite nor the reload's own reading of the
    // file sets off reloads that follow one another for ever.
    add_user(app.dir.path(), "carol", "carol-pw-3").await;
    wait_for_more(&app, &format!("{RELOADED} users=3"), 0).await;
    assert_eq!(
        count(&app, &format!("{RELOADED} users=2")),
        1,
        "{}",
        app.output()
    );
}

#[tokio::test]
async fn a_user_added_with_authd_users_add_logs_in_without_a_restart() {
    let app = start_with(&[("alice", "alice-pw")]).await;
    assert_eq!(app.login("carol", "carol-pw").await.status(), 401);
    let before = count(&app, RELOADED);
    add_user(app.dir.path(), "carol", "carol-pw").await;
    wait_for_more(&app, RELOADED, before).await;
    assert_eq!(app.login("carol", "carol-pw").await.status(), 200);
    assert_eq!(app.login("alice", "alice-pw").await.status(), 200);
    // One change, one reload: the server's own reading of the file is not taken for a change
    // (if it were, reloads would follow one another for ever).
    add_user(app.dir.path(), "dave", "dave-pw").await;
    wait_for_more(&app, &format!("{RELOADED} users=3"), 0).await;
    assert_eq!(count(&app, RELOADED), before + 2, "{}", app.output());
}

/// Logs in and returns the refresh token.
async fn refresh_token(app: &Binary, user: &str, password: &str) -> String {
    let res = app.login(user, password).await;
    assert_eq!(res.status(), 200, "login {user}");
    let body: serde_json::Value = res.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

/// Logs in and returns the access token and the refresh token.
async fn both_tokens(app: &Binary, user: &str, password: &str) -> (String, String) {
    let res = app.login(user, password).await;
    assert_eq!(res.status(), 200, "login {user}");
    let body: serde_json::Value = res.json().await.unwrap();
    let token = |name: &str| body[name].as_str().unwrap().to_owned();
    (token("token"), token("refresh_token"))
}

/// Waits (bounded: 3 s) until `/protected` refuses `token`; asserts it took under a second.
async fn refused_within_a_second(app: &Binary, token: &str) {
    let since = std::time::Instant::now();
    while app.bearer_status(&app.url("/protected"), token).await != 403 {
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "the access token still works 3 s after its sessions ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        since.elapsed() < Duration::from_secs(1),
        "{:?}",
        since.elapsed()
    );
}

async fn refresh_status(app: &Binary, token: &str) -> u16 {
    let res = app
        .client
        .post(app.url("/refresh"))
        .json(&serde_json::json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

#[tokio::test]
async fn a_user_removed_with_authd_users_remove_can_neither_log_in_nor_refresh() {
    let app = start_with(&[("alice", "alice-pw"), ("bob", "bob-pw")]).await;
    let (bobs_access, bobs) = both_tokens(&app, "bob", "bob-pw").await;
    let (alices_access, alices) = both_tokens(&app, "alice", "alice-pw").await;
    let before = count(&app, RELOADED);
    let (ok, out, err) = authd(app.dir.path(), &["users", "remove", "bob"], "").await;
    assert!(ok, "{out}{err}");
    assert!(err.contains("authd: database "), "{err}");
    assert!(out.contains("revoked 1 session of bob"), "{out}");
    // The session is gone from the database before the command returns, and its access token
    // is refused within a second.
    assert_eq!(refresh_status(&app, &bobs).await, 401);
    refused_within_a_second(&app, &bobs_access).await;
    assert_eq!(
        app.bearer_status(&app.url("/protected"), &alices_access)
            .await,
        200
    );
    wait_for_more(&app, RELOADED, before).await;
    assert_eq!(app.login("bob", "bob-pw").await.status(), 401);
    assert_eq!(app.login("alice", "alice-pw").await.status(), 200);
    // A new password ends the user's sessions too.
    let before = count(&app, RELOADED);
    let (ok, out, err) = authd(app.dir.path(), &["users", "passwd", "alice"], "new-pw\n").await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("revoked 2 sessions of alice"), "{out}");
    assert_eq!(refresh_status(&app, &alices).await, 401);
    refused_within_a_second(&app, &alices_access).await;
    wait_for_more(&app, RELOADED, before).await;
    assert_eq!(app.login("alice", "alice-pw").await.status(), 401);
    assert_eq!(app.login("alice", "new-pw").await.status(), 200);
}

#[tokio::test]
async fn a_user_deleted_from_the_file_by_hand_cannot_refresh_once_it_is_reloaded() {
    let app = start_with(&[("alice", "alice-pw"), ("bob", "bob-pw")]).await;
    let bobs = refresh_token(&app, "bob", "bob-pw").await;
    let file = app.dir.path().join("users");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("bob:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept, text);
    let before = count(&app, RELOADED);
    // As an editor saves: write a copy, rename it into place.
    std::fs::write(app.dir.path().join("users.new"), kept).unwrap();
    std::fs::rename(app.dir.path().join("users.new"), &file).unwrap();
    wait_for_more(&app, RELOADED, before).await;
    // The session is still in the database: the refresh is refused because bob is gone.
    assert_eq!(refresh_status(&app, &bobs).await, 401);
    assert_eq!(app.login("bob", "bob-pw").await.status(), 401);
    assert_eq!(app.login("alice", "alice-pw").await.status(), 200);
}

#[tokio::test]
async fn a_users_file_that_does_not_parse_keeps_the_previous_users_and_one_error_names_its_line() {
    let app = start_with(&[("alice", "alice-pw")]).await;
    let file = app.dir.path().join("users");
    let good = std::fs::read_to_string(&file).unwrap();
    let broken = "not reloaded; the previous users stay in force";
    let before = count(&app, broken);
    std::fs::write(&file, format!("{good}no-colon-on-line-two\n")).unwrap();
    wait_for_more(&app, broken, before).await;
    let out = app.output();
    let line = out.lines().rfind(|l| l.contains(broken)).unwrap();
    assert!(line.contains("ERROR") && line.contains("line 2"), "{line}");
    assert_eq!(app.login("alice", "alice-pw").await.status(), 200);
    // Mended: the next change loads, and the broken file was reported once.
    let reloaded = count(&app, RELOADED);
    std::fs::write(&file, &good).unwrap();
    add_user(app.dir.path(), "dave", "dave-pw").await;
    wait_for_more(&app, RELOADED, reloaded).await;
    assert_eq!(app.login("dave", "dave-pw").await.status(), 200);
    assert_eq!(count(&app, broken), before + 1, "{}", app.output());
}

#[tokio::test]
async fn sighup_reloads_the_users_and_never_ends_the_process() {
    let mut app = start_with(&[("alice", "alice-pw")]).await;
    let token = refresh_token(&app, "alice", "alice-pw").await;
    let hup = "SIGHUP: users reloaded";
    for _ in 0..3 {
        let before = count(&app, hup);
        app.signal("HUP");
        wait_for_more(&app, hup, before).await;
    }
    assert!(app.child.try_wait().unwrap().is_none(), "{}", app.output());
    assert_eq!(refresh_status(&app, &token).await, 200);
    assert_eq!(app.login("alice", "alice-pw").await.status(), 200);
    assert!(app.terminate().await.success());
    // Reading the file is not a change: no reload of its own followed.
    assert_eq!(count(&app, RELOADED), 0, "{}", app.output());
}

#[tokio::test]
async fn concurrent_users_add_runs_lose_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "first", "pw-0").await;
    let path = dir.path().to_owned();
    let names: Vec<String> = (1..=8).map(|i| format!("user{i}")).collect();
    let runs = join_all(names.iter().map(|name| {
        let (path, name) = (path.clone(), name.clone());
        async move { authd(&path, &["users", "add", &name], "pw\n").await }
    }))
    .await;
    for (ok, out, err) in &runs {
        assert!(ok, "{out}{err}");
    }
    let (ok, listed, err) = authd(dir.path(), &["users", "list"], "").await;
    assert!(ok, "{err}");
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.push("first");
    expected.sort_unstable();
    assert_eq!(listed, expected);
}

#[cfg(unix)]
#[tokio::test]
async fn users_commands_keep_permissions_refuse_bad_names_and_never_print_a_hash() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    // A new file is its owner's only: it holds password hashes.
    add_user(dir.path(), "alice", "secret-pw-1").await;
    assert_eq!(mode(&file), 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut printed = String::new();
    for (args, stdin) in [
        (&["users", "add", "bob"][..], "secret-pw-2\n"),
        (&["users", "passwd", "alice"][..], "secret-pw-3\n"),
        (&["users", "remove", "bob"][..], ""),
        (&["users", "list"][..], ""),
        (&["groups", "add", "admins", "alice"][..], ""),
    ] {
        let (ok, out, err) = authd(dir.path(), args, stdin).await;
        assert!(ok, "{args:?}: {out}{err}");
        printed.push_str(&out);
        printed.push_str(&err);
    }
    assert_eq!(mode(&file), 0o640);
    let text = std::fs::read_to_string(&file).unwrap();
    let hash = text.lines().find_map(|l| l.strip_prefix("alice:")).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{text}");
    for secret in [hash, "$argon2", "secret-pw"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("groups")).unwrap(),
        "admins: alice\n"
    );
    for bad in ["a:b", "a b", "a\u{1b}b", "#a", ""] {
        let (ok, _, err) = authd(dir.path(), &["users", "add", bad], "pw\n").await;
        assert!(!ok && err.contains("user name"), "{bad:?}: {err}");
        let (ok, _, err) = authd(dir.path(), &["groups", "add", bad, "alice"], "").await;
        assert!(!ok && err.contains("group name"), "{bad:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // Missing and last users are refused with the file unchanged.
    let (ok, _, err) = authd(dir.path(), &["users", "remove", "alice"], "").await;
    assert!(!ok && err.contains("only user"), "{err}");
    let (ok, _, err) = authd(dir.path(), &["users", "passwd", "nobody"], "pw\n").await;
    assert!(!ok && err.contains("no user nobody"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
