//! Sessions and throttle counters at the library level, with the clock injected (`now` passed in):
//! rotation, reuse, expiry, revocation, listing, cleanup, and atomic counting, each on SQLite and
//! on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use authd::revocations::{Revocations, RevokedSet};
use authd::sessions::{SessionError, SessionSettings, Sessions};
use authd::store::{Store, StoreOptions};
use authd::throttle::{Throttle, ThrottleError, ThrottleSettings};

use crate::helpers::TestDb;
use crate::on_both_engines;

const T0: i64 = 1_900_000_000;
const DAY: i64 = 86_400;

async fn sessions(db: &TestDb) -> Sessions {
    let store = Store::open(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    Sessions::new(
        store,
        SessionSettings {
            refresh_ttl: Duration::from_secs(14 * DAY as u64),
            lifetime: Duration::from_secs(30 * DAY as u64),
            ..SessionSettings::default()
        },
    )
}

async fn throttle(db: &TestDb, settings: ThrottleSettings) -> Throttle {
    let store = Store::open(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    Throttle::new(store, settings, crate::helpers::SECRET.as_bytes())
}

on_both_engines!(
    a_session_ended_by_its_sid_is_revoked_in_memory_and_for_whoever_reads_the_table,
    rotation_spends_the_token_and_reuse_revokes_the_family,
    refresh_token_expires_after_its_ttl_and_the_session_after_its_lifetime,
    revoked_sessions_stay_revoked_and_other_sessions_live_on,
    cleanup_deletes_expired_rows_and_keeps_live_ones,
    concurrent_rotations_of_one_token_let_exactly_one_through,
    throttle_bans_past_the_limit_until_the_ban_ends,
    throttle_counts_concurrent_attempts_atomically,
);

async fn rotation_spends_the_token_and_reuse_revokes_the_family(db: TestDb) {
    let s = sessions(&db).await;
    let first = s.start("alice", T0).await.unwrap().refresh_token;
    let second = s.rotate(&first.0, T0 + 60).await.unwrap();
    assert_eq!(second.username, "alice");
    assert_ne!(second.refresh_token.0, first.0);
    let third = s.rotate(&second.refresh_token.0, T0 + 120).await.unwrap();

    // `first` is spent: presenting it again is reuse, and the whole family ends with it.
    assert!(matches!(
        s.rotate(&first.0, T0 + 180).await,
        Err(SessionError::Reused)
    ));
    assert!(matches!(
        s.rotate(&third.refresh_token.0, T0 + 181).await,
        Err(SessionError::Invalid)
    ));
    assert!(s.list(Some("alice"), T0 + 182).await.unwrap().is_empty());
}

async fn refresh_token_expires_after_its_ttl_and_the_session_after_its_lifetime(db: TestDb) {
    let s = sessions(&db).await;
    // Unused for longer than the refresh TTL: gone.
    let idle = s.start("alice", T0).await.unwrap().refresh_token;
    assert!(matches!(
        s.rotate(&idle.0, T0 + 14 * DAY).await,
        Err(SessionError::Invalid)
    ));
    // Used just in time: fine, and each refresh buys another TTL ...
    let mut token = s.start("alice", T0).await.unwrap().refresh_token.0;
    let mut now = T0;
    for _ in 0..2 {
        now += 14 * DAY - 1;
        token = s.rotate(&token, now).await.unwrap().refresh_token.0;
    }
    // ... but never beyond the absolute lifetime (30 days from the login).
    assert_eq!(now, T0 + 28 * DAY - 2);
    let listed = s.list(Some("alice"), now).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].expires_at, T0 + 30 * DAY);
    assert_eq!(
        listed[0].idle_expires_at,
        T0 + 30 * DAY,
        "capped by the lifetime"
    );
    assert!(matches!(
        s.rotate(&token, T0 + 30 * DAY).await,
        Err(SessionError::Invalid)
    ));
}

async fn a_session_ended_by_its_sid_is_revoked_in_memory_and_for_whoever_reads_the_table(
    db: TestDb,
) {
    let hold = Duration::from_secs(1830);
    let set = Arc::new(RevokedSet::new(1000, hold));
    let plain = sessions(&db).await;
    let s = plain
        .clone()
        .with_revocations(Revocations::new(plain.store().clone(), hold).held_in(Arc::clone(&set)));
    let ended = s.start("alice", T0).await.unwrap();
    let other = s.start("alice", T0 + 1).await.unwrap();
    assert_ne!(ended.sid, other.sid);
    assert!(!set.is_revoked(&ended.sid, Some(T0)));

    assert!(s.end_by_id(&ended.sid, T0 + 2).await.unwrap());
    assert!(set.is_revoked(&ended.sid, Some(T0)));
    assert!(!set.is_revoked(&other.sid, Some(T0 + 1)));
    assert!(matches!(
        s.rotate(&ended.refresh_token.0, T0 + 3).await,
        Err(SessionError::Invalid)
    ));
    assert!(
        !s.end_by_id(&ended.sid, T0 + 3).await.unwrap(),
        "ended already"
    );
    assert!(!s.end_by_id("not a sid", T0 + 3).await.unwrap());

    // Another instance, loading the table, knows it too; the other session goes on.
    let elsewhere = Arc::new(RevokedSet::new(1000, hold));
    Revocations::new(plain.store().clone(), hold)
        .held_in(Arc::clone(&elsewhere))
        .load(T0 + 4)
        .await
        .unwrap();
    assert!(elsewhere.is_revoked(&ended.sid, Some(T0)));
    assert!(!elsewhere.is_revoked(&other.sid, Some(T0 + 1)));
    assert_eq!(
        s.rotate(&other.refresh_token.0, T0 + 5).await.unwrap().sid,
        other.sid
    );
    // Gone from the table once its tokens have expired.
    assert_eq!(
        plain
            .revocations()
            .remove_expired(T0 + 2 + 1830, 100)
            .await
            .unwrap(),
        1
    );
}

async fn revoked_sessions_stay_revoked_and_other_sessions_live_on(db: TestDb) {
    let s = sessions(&db).await;
    let a1 = s.start("alice", T0).await.unwrap().refresh_token;
    let a2 = s.start("alice", T0 + 1).await.unwrap().refresh_token;
    let b = s.start("bob", T0 + 2).await.unwrap().refresh_token;

    assert_eq!(s.list(None, T0 + 3).await.unwrap().len(), 3);
    assert!(s.revoke(&a1.0, T0 + 3).await.unwrap());
    assert!(!s.revoke(&a1.0, T0 + 4).await.unwrap(), "idempotent");
    assert!(!s.revoke("no-such-token", T0 + 4).await.unwrap());
    assert!(matches!(
        s.rotate(&a1.0, T0 + 5).await,
        Err(SessionError::Invalid)
    ));
    let listed = s.list(Some("alice"), T0 + 5).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].created_at, T0 + 1);

    assert_eq!(s.revoke_user("alice", T0 + 6).await.unwrap(), 1);
    assert!(matches!(
        s.rotate(&a2.0, T0 + 7).await,
        Err(SessionError::Invalid)
    ));
    assert!(s.rotate(&b.0, T0 + 7).await.is_ok());
    let all = s.list(None, T0 + 8).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].username, "bob");
    assert_eq!(all[0].last_used_at, T0 + 7);
}

async fn cleanup_deletes_expired_rows_and_keeps_live_ones(db: TestDb) {
    let s = sessions(&db).await;
    let t = throttle(&db, ThrottleSettings::default()).await;
    let old = s.start("alice", T0).await.unwrap().refresh_token;
    s.rotate(&old.0, T0 + 10).await.unwrap();
    t.begin("alice", "192.0.2.1".parse().unwrap(), T0)
        .await
        .unwrap();
    // A session started later is still live when the first one has expired.
    let live = s.start("bob", T0 + 10 * DAY).await.unwrap().refresh_token;

    assert_eq!(s.remove_expired(T0 + DAY, 1000).await.unwrap(), 0);
    let later = T0 + 15 * DAY;
    // Alice's session (one row, however often refreshed); the throttle's two counters.
    let removed = authd::remove_expired(&s, &t, later).await.unwrap();
    assert_eq!(removed, 1 + 2);
    assert_eq!(authd::remove_expired(&s, &t, later).await.unwrap(), 0);
    assert!(s.rotate(&live.0, later).await.is_ok());
}

async fn concurrent_rotations_of_one_token_let_exactly_one_through(db: TestDb) {
    let s = sessions(&db).await;
    let token = s.start("alice", T0).await.unwrap().refresh_token.0;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            s.rotate(&token, T0 + 1).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 1, "on {}", db.engine);
}

async fn throttle_bans_past_the_limit_until_the_ban_ends(db: TestDb) {
    let settings = ThrottleSettings {
        user_max: 3,
        address_max: 100,
        window: Duration::from_secs(600),
        ban: Duration::from_secs(300),
    };
    let t = throttle(&db, settings).await;
    let addr = "192.0.2.1".parse().unwrap();
    for i in 0..3 {
        t.begin("alice", addr, T0 + i).await.unwrap();
    }
    match t.begin("alice", addr, T0 + 10).await {
        Err(ThrottleError::Limited { retry_after }) => assert_eq!(retry_after, 300),
        other => panic!("expected a ban, got {other:?}"),
    }
    // Banned attempts do not extend the ban.
    match t.begin("alice", addr, T0 + 110).await {
        Err(ThrottleError::Limited { retry_after }) => assert_eq!(retry_after, 200),
        other => panic!("expected a ban, got {other:?}"),
    }
    // Another user is not affected.
    t.begin("bob", addr, T0 + 110).await.unwrap();
    // When the ban ends inside the window, the count still stands: one more failure bans again.
    match t.begin("alice", addr, T0 + 310).await {
        Err(ThrottleError::Limited { retry_after }) => assert_eq!(retry_after, 300),
        other => panic!("expected a new ban, got {other:?}"),
    }
    // After window and ban, a fresh start; and a success resets the user's count.
    let later = T0 + 310 + 600;
    let a = t.begin("alice", addr, later).await.unwrap();
    t.begin("alice", addr, later).await.unwrap();
    t.succeeded(&a, later).await.unwrap();
    for _ in 0..3 {
        t.begin("alice", addr, later + 1).await.unwrap();
    }
    assert!(t.begin("alice", addr, later + 1).await.is_err());
}

async fn throttle_counts_concurrent_attempts_atomically(db: TestDb) {
    let settings = ThrottleSettings {
        user_max: 5,
        address_max: 100,
        ..ThrottleSettings::default()
    };
    let t = throttle(&db, settings).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.begin("alice", "192.0.2.9".parse().unwrap(), T0)
                .await
                .is_ok()
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 5, "on {}", db.engine);
}
