//! How many transactions a login commits to the SQLite file, counted from its write-ahead log
//! (each commit costs a sync with `synchronous = FULL`), and concurrent correct logins past the
//! per-user session cap on both engines (on PostgreSQL, rows locked by one login's transaction
//! must not deadlock another's).

use std::path::Path;

use authd::sessions::{SessionSettings, Sessions};
use authd::store::{Store, StoreOptions};

use crate::helpers::{
    Binary, PASSWORD, TestDb, USER, join_all, now, password_hash, spawn_app_on, start_with_users,
};
use crate::on_both_engines;

/// The write-ahead log as SQLite left it: its salts (new each time the log starts over) and how
/// many commits it holds. A frame whose "database size after commit" field is non-zero ends a
/// commit; the frames of the log's current generation are those carrying the header's salts, from
/// the start (<https://sqlite.org/fileformat2.html#walformat>).
fn wal_commits(db: &Path) -> ((u32, u32), usize) {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::read(&wal).unwrap();
    let be = |at: usize| u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
    assert!(matches!(be(0), 0x377f_0682 | 0x377f_0683), "not a WAL");
    let page_size = match be(8) {
        1 => 65_536,
        n => n as usize,
    };
    let salts = (be(16), be(20));
    let mut commits = 0;
    let mut frame = 32;
    while frame + 24 + page_size <= wal.len() && (be(frame + 8), be(frame + 12)) == salts {
        commits += usize::from(be(frame + 4) != 0);
        frame += 24 + page_size;
    }
    (salts, commits)
}

/// The commits that `step` made to the database of `app`.
async fn commits_of<F: Future<Output = u16>>(app: &Binary, step: F) -> (u16, usize) {
    let db = app.dir.path().join("authd.db");
    let (salts, before) = wal_commits(&db);
    let status = step.await;
    let (salts_after, after) = wal_commits(&db);
    assert_eq!(salts, salts_after, "the log started over: count again");
    (status, after - before)
}

#[tokio::test]
async fn a_login_commits_at_most_twice_to_the_sqlite_file_and_a_wrong_one_once() {
    let users = format!("{USER}:{}\n", password_hash());
    let app = start_with_users(&users, &[("AUTHD_DATABASE_URL", "sqlite://authd.db")]).await;
    // A first login, so that every table and index has its pages in the file already.
    assert_eq!(app.login(USER, PASSWORD).await.status(), 200);

    let login = async { app.login(USER, PASSWORD).await.status().as_u16() };
    let (status, commits) = commits_of(&app, login).await;
    assert_eq!(status, 200);
    // Counting the attempt (address and user); its success (forgiveness, the session, the cap).
    assert!((1..=2).contains(&commits), "{commits} commits for a login");

    let wrong = async { app.login(USER, "wrong").await.status().as_u16() };
    let (status, commits) = commits_of(&app, wrong).await;
    assert_eq!(status, 401);
    assert_eq!(commits, 1, "{commits} commits for a wrong password");
}

on_both_engines!(concurrent_correct_logins_past_the_session_cap_all_succeed);

async fn concurrent_correct_logins_past_the_session_cap_all_succeed(db: TestDb) {
    // A cap of 2 with 32 logins at once: nearly every login's transaction trims sessions that
    // others want to trim too, while others count their attempts on the same user's row.
    let app = spawn_app_on(&db, |c, _| c.sessions.max_per_user = 2).await;
    let statuses = join_all((0..32).map(|_| {
        let client = app.client.clone();
        let url = app.url("/login");
        async move {
            let res = client.post(url).basic_auth(USER, Some(PASSWORD)).send();
            res.await.unwrap().status().as_u16()
        }
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "on {}: {statuses:?}",
        db.engine
    );
    // One more, alone, sees them all committed and leaves the user the cap's two sessions.
    assert_eq!(app.login(USER, PASSWORD).await.status(), 200);
    let store = Store::open(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let sessions = Sessions::new(store, SessionSettings::default());
    let live = sessions.list(Some(USER), now()).await.unwrap();
    assert_eq!(live.len(), 2, "on {}", db.engine);
}
