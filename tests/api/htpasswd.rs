//! Users files made with Apache's own `htpasswd` (Debian's `apache2-utils`), as they are: its
//! default `$apr1$` (MD5-crypt) and `-s` `{SHA}` entries log in, are named in a warning at start,
//! and are rehashed to argon2id at the first successful login, so that an operator migrates by
//! doing nothing; `-B` (bcrypt) entries log in too.

use std::time::Duration;

use tokio::process::Command;

use crate::helpers::{Binary, SECRET, run_bounded};

/// The hash of `user` in the htpasswd-format `text`.
fn hash_of<'a>(text: &'a str, user: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in {text}"))
}

#[tokio::test]
#[ignore = "needs htpasswd (apache2-utils)"]
async fn htpasswd_entries_of_every_kind_log_in_and_the_old_ones_are_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    // -c creates the file; -b takes the password from the command line; -m MD5 ($apr1$, the
    // default), -s SHA-1, -B bcrypt.
    let mut cmd = Command::new("htpasswd");
    cmd.arg("-cbm").arg(&users).args(["alice", "alice-pw-1"]);
    assert!(
        run_bounded(cmd, Duration::from_secs(30)).await.0,
        "htpasswd -cbm"
    );
    for (flags, user, pw) in [("-bs", "bob", "bob-pw-2"), ("-bB", "carol", "carol-pw-3")] {
        let mut cmd = Command::new("htpasswd");
        cmd.arg(flags).arg(&users).args([user, pw]);
        let (ok, out) = run_bounded(cmd, Duration::from_secs(30)).await;
        assert!(ok, "htpasswd {flags}: {out}");
    }
    let before = std::fs::read_to_string(&users).unwrap();
    assert!(hash_of(&before, "alice").starts_with("$apr1$"), "{before}");
    assert!(hash_of(&before, "bob").starts_with("{SHA}"), "{before}");
    assert!(hash_of(&before, "carol").starts_with("$2y$"), "{before}");

    let app = Binary::start_in(
        dir,
        &[],
        &[("AUTHD_USERS", "users"), ("AUTHD_SECRET_KEY", SECRET)],
    )
    .await;
    // Each cheap entry named by its line, without a user name or a hash.
    let out = app.output();
    for line in ["line=1", "line=2"] {
        assert!(
            out.lines()
                .any(|l| l.contains("WARN") && l.contains("cheap to crack") && l.contains(line)),
            "{out}"
        );
    }
    assert!(!out.contains(hash_of(&before, "alice")), "{out}");

    for (user, pw) in [
        ("alice", "alice-pw-1"),
        ("bob", "bob-pw-2"),
        ("carol", "carol-pw-3"),
    ] {
        assert_eq!(app.login(user, "wrong").await.status(), 401, "{user}");
        assert_eq!(app.login(user, pw).await.status(), 200, "{user}");
    }
    // Rehashed in the file: the MD5 and SHA-1 entries (and the bcrypt one) are argon2id now,
    // and log in as before.
    let after = std::fs::read_to_string(app.dir.path().join("users")).unwrap();
    for user in ["alice", "bob", "carol"] {
        assert!(hash_of(&after, user).starts_with("$argon2id$"), "{after}");
    }
    for (user, pw) in [("alice", "alice-pw-1"), ("bob", "bob-pw-2")] {
        assert_eq!(app.login(user, pw).await.status(), 200, "{user}");
    }
}
