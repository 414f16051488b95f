//! Sessions that ended before their access tokens expire: their sids, held in memory for the
//! token check ([`RevokedSet`], no database round trip per check), and recorded in the store's
//! `revocations` table, from which every instance follows the others ([`Revocations::follow`]:
//! PostgreSQL's `LISTEN/NOTIFY` with a poll behind it; SQLite by polling). Plain Rust, no HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::Row as _;

use crate::store::{Backend, Store, StoreError};

/// Default of [`RevokedSet`]'s bound: the most revoked sessions held in memory at once (53 bytes
/// each, measured by `tests/revoked_memory.rs`: 53 MB at the bound). Entries leave once their
/// tokens have expired, and each costs its maker a successful login (a password hash), so the
/// bound is reached only by someone ending over 500 sessions a second for a whole default token
/// lifetime.
pub const DEFAULT_MAX_REVOKED: usize = 1_000_000;

/// The PostgreSQL channel revocations are announced on.
const CHANNEL: &str = "authd_revocations";
/// Sids announced in one notification: PostgreSQL's payload limit is 8000 bytes, and each sid
/// takes 33 of them.
const SIDS_PER_NOTIFICATION: usize = 200;
/// Sids written by one `INSERT` statement: a parameter each, far below SQLite's and PostgreSQL's
/// parameter limits.
const SIDS_PER_INSERT: usize = 500;
/// Rows read by one query while loading or polling.
const PAGE: i64 = 2_000;
/// How far back a poll reads before its last start: a revocation committed late (a transaction
/// takes at most the store's 3 s operation timeout) or stamped within the same second is still
/// seen.
const OVERLAP_SECS: i64 = 5;
/// How often SQLite's instances poll: polling is all they have, and the bound is 1 s.
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// How often PostgreSQL's instances poll, behind the notifications.
const POSTGRES_POLL: Duration = Duration::from_secs(1);
/// How often the whole table is read again: catches a revocation stamped by a host whose clock
/// is more than [`OVERLAP_SECS`] behind, which no poll would read.
const RELOAD_EVERY: Duration = Duration::from_secs(300);
/// How often expired entries leave memory.
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// The longest wait before listening again after PostgreSQL refused the listener.
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(30);

/// A session id as tokens carry it: 128 random bits in 32 lowercase hex digits. `None` for
/// anything else (no session of ours has such an id).
pub fn parse_sid(sid: &str) -> Option<[u8; 16]> {
    let bytes = sid.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut key = [0u8; 16];
    for (k, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
        *k = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(key)
}

/// No cutoff in force.
const NO_CUTOFF: i64 = i64::MIN;

/// The revoked sessions an instance knows of, in memory: sid → when its last token expires.
///
/// Bounded: past `max` entries, the set does not forget (that would bring revoked tokens back),
/// it generalises. Every entry is replaced by one **cutoff**: every token carrying a sid issued
/// (`iat`) up to that moment is refused until the longest of those entries would have expired.
/// That ends every session's current access tokens (their holders refresh, or sign in again),
/// never lets a revoked one through, and frees the memory at once.
#[derive(Debug)]
pub struct RevokedSet {
    entries: RwLock<HashMap<[u8; 16], i64>>,
    /// How many entries: zero lets the check skip the lock.
    len: AtomicUsize,
    /// Tokens with a sid and an `iat` at or before this are refused; [`NO_CUTOFF`] when none.
    cutoff: AtomicI64,
    /// When the cutoff stops mattering: the last expiry of the entries it replaced.
    cutoff_until: AtomicI64,
    max: usize,
    /// Seconds a token issued before a revocation may still verify after it: the token lifetime
    /// and the clock leeway.
    hold: i64,
}

impl RevokedSet {
    /// An empty set holding at most `max` sessions (at least 1), whose tokens verify for at most
    /// `hold` after they were issued (the lifetime plus the leeway).
    pub fn new(max: usize, hold: Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            len: AtomicUsize::new(0),
            cutoff: AtomicI64::new(NO_CUTOFF),
            cutoff_until: AtomicI64::new(NO_CUTOFF),
            max: max.max(1),
            hold: secs(hold),
        }
    }

    /// Whether a token carrying `sid`, issued at `iat`, belongs to a revoked session. The one
    /// lookup the token check adds: a read lock and a hash probe, no I/O.
    pub fn is_revoked(&self, sid: &str, iat: Option<i64>) -> bool {
        // The entries first, then the cutoff: a cutoff replaces entries only after it is set.
        if self.len.load(Ordering::Acquire) > 0
            && let Some(key) = parse_sid(sid)
            && self.read().contains_key(&key)
        {
            return true;
        }
        let cutoff = self.cutoff.load(Ordering::Acquire);
        cutoff != NO_CUTOFF && iat.unwrap_or(i64::MIN) <= cutoff
    }

    /// How many revoked sessions are held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a cutoff is in force (the bound was reached), and until when.
    pub fn cutoff(&self) -> Option<(i64, i64)> {
        let cutoff = self.cutoff.load(Ordering::Acquire);
        (cutoff != NO_CUTOFF).then(|| (cutoff, self.cutoff_until.load(Ordering::Acquire)))
    }

    /// Adds sessions ended at `revoked_at` whose tokens their ender said expire by `until`; held
    /// until the later of that and `revoked_at` plus this instance's own hold (so an ender with a
    /// shorter token lifetime cannot shorten it). Already expired ones at `now` are skipped.
    /// Sids that are not ours (not 32 hex digits) are ignored. How many were new.
    pub fn insert<'a>(
        &self,
        sids: impl IntoIterator<Item = &'a str>,
        revoked_at: i64,
        until: i64,
        now: i64,
    ) -> usize {
        let until = until.max(revoked_at.saturating_add(self.hold));
        if until <= now {
            return 0;
        }
        let keys: Vec<[u8; 16]> = sids.into_iter().filter_map(parse_sid).collect();
        // Most polls bring back what is known already: a read lock decides, no writer blocks the
        // token checks.
        let fresh: Vec<[u8; 16]> = {
            let entries = self.read();
            keys.into_iter()
                .filter(|k| !entries.contains_key(k))
                .collect()
        };
        if fresh.is_empty() {
            return 0;
        }
        let mut entries = self.write();
        let mut added = 0;
        for key in fresh {
            if entries.len() >= self.max && !entries.contains_key(&key) {
                // The cutoff covers the tokens issued so far; this one is held as well, in case
                // its ender's clock is ahead of ours.
                self.overflow(&mut entries, until, now);
            }
            if entries.insert(key, until).is_none() {
                added += 1;
            }
        }
        self.len.store(entries.len(), Ordering::Release);
        added
    }

    /// Forgets entries whose tokens have expired by `now`, and a cutoff past its end.
    pub fn purge(&self, now: i64) {
        if self.cutoff_until.load(Ordering::Acquire) <= now
            && self.cutoff.load(Ordering::Acquire) != NO_CUTOFF
        {
            self.cutoff.store(NO_CUTOFF, Ordering::Release);
            self.cutoff_until.store(NO_CUTOFF, Ordering::Release);
            tracing::info!(target: "authd::revocations", "the revocation cutoff has ended");
        }
        if self.is_empty() {
            return;
        }
        let expired = self.read().values().any(|&until| until <= now);
        if !expired {
            return;
        }
        let mut entries = self.write();
        entries.retain(|_, until| *until > now);
        if entries.capacity() > 64 && entries.len() < entries.capacity() / 4 {
            entries.shrink_to_fit();
        }
        self.len.store(entries.len(), Ordering::Release);
    }

    /// The bound is reached: the cutoff replaces every entry.
    fn overflow(&self, entries: &mut HashMap<[u8; 16], i64>, until: i64, now: i64) {
        let last = entries.values().copied().fold(until, i64::max);
        let ends = self.cutoff_until.load(Ordering::Acquire).max(last);
        // Set before the entries go (see `is_revoked`).
        self.cutoff_until.store(ends, Ordering::Release);
        self.cutoff.store(
            self.cutoff.load(Ordering::Acquire).max(now),
            Ordering::Release,
        );
        let dropped = entries.len();
        *entries = HashMap::new();
        self.len.store(0, Ordering::Release);
        tracing::warn!(
            target: "authd::revocations",
            max = self.max,
            dropped,
            cutoff = now,
            until = ends,
            "too many revoked sessions to hold: every token with a session id issued until now is \
             refused until the last of them expires (clients refresh or sign in again)"
        );
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<[u8; 16], i64>> {
        // A panic while the lock was held leaves a map that is still whole (inserts and retains
        // do not unwind half-way through in ways that break it): go on with it.
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; 16], i64>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The revocations table, and (in a server) the set in memory that follows it.
#[derive(Debug, Clone)]
pub struct Revocations {
    store: Store,
    /// Seconds after a revocation that its tokens may still verify.
    hold: i64,
    set: Option<Arc<RevokedSet>>,
}

impl Revocations {
    /// Revocations in `store`, written with `hold` (the token lifetime plus the clock leeway) as
    /// how long each must be kept; with no set in memory (the command line's).
    pub fn new(store: Store, hold: Duration) -> Self {
        Self {
            store,
            hold: secs(hold),
            set: None,
        }
    }

    /// The same, with the revocations also put in `set` as they are made.
    #[must_use]
    pub fn held_in(self, set: Arc<RevokedSet>) -> Self {
        Self {
            set: Some(set),
            ..self
        }
    }

    /// Whether a session last given a token at `last_used_at` may still have one that verifies
    /// at `now`.
    pub(crate) fn may_be_live(&self, last_used_at: i64, now: i64) -> bool {
        last_used_at.saturating_add(self.hold) > now
    }

    /// The set in memory, if there is one.
    pub fn set(&self) -> Option<&Arc<RevokedSet>> {
        self.set.as_ref()
    }

    /// Records that the sessions `sids` ended at `now`, in the caller's transaction: their rows,
    /// and on PostgreSQL a notification to every instance (sent when the transaction commits).
    pub(crate) async fn record_in(
        &self,
        conn: &mut AnyConnection,
        sids: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let until = now.saturating_add(self.hold);
        for chunk in sids.chunks(SIDS_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, $1, $2)", i + 3))
                .collect();
            let sql = format!(
                "INSERT INTO revocations (sid, revoked_at, until) VALUES {} \
                 ON CONFLICT (sid) DO NOTHING",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now).bind(until);
            for sid in chunk {
                query = query.bind(sid);
            }
            query.execute(&mut *conn).await?;
        }
        if self.store.backend() == Backend::Postgres {
            for chunk in sids.chunks(SIDS_PER_NOTIFICATION) {
                // `pg_notify` returns `void`, which the `any` driver cannot read: counted instead.
                sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS sent")
                    .bind(CHANNEL)
                    .bind(payload(now, until, chunk))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Puts sessions ended at `now` in the set in memory, once their rows are committed.
    pub(crate) fn remember(&self, sids: &[String], now: i64) {
        if let Some(set) = &self.set {
            set.insert(
                sids.iter().map(String::as_str),
                now,
                now.saturating_add(self.hold),
                now,
            );
        }
    }

    /// Reads every revocation whose tokens may not have expired at `now` into the set: at start,
    /// and now and then to catch what polls missed. How many rows were read.
    pub async fn load(&self, now: i64) -> Result<usize, StoreError> {
        self.read_since(i64::MIN, now).await
    }

    /// Reads the revocations stamped at or after `since` into the set, a page at a time.
    async fn read_since(&self, since: i64, now: i64) -> Result<usize, StoreError> {
        let Some(set) = &self.set else {
            return Ok(0);
        };
        let mut after = (since, String::new());
        let mut read = 0;
        // Bounded: enough pages to fill the set twice over; past its bound a cutoff covers the
        // rest, which were all stamped before now.
        let pages = set.max / usize::try_from(PAGE).unwrap_or(1) * 2 + 2;
        for _ in 0..pages {
            let rows = self
                .store
                .bounded(async {
                    Ok(sqlx::query(
                        "SELECT sid, revoked_at, until FROM revocations \
                         WHERE (revoked_at > $1 OR (revoked_at = $1 AND sid > $2)) \
                         AND (until > $3 OR revoked_at > $4) \
                         ORDER BY revoked_at, sid LIMIT $5",
                    )
                    .bind(after.0)
                    .bind(&after.1)
                    .bind(now)
                    .bind(now.saturating_sub(self.hold))
                    .bind(PAGE)
                    .fetch_all(self.store.pool())
                    .await?)
                })
                .await?;
            let Some(last) = rows.last() else { break };
            after = (last.try_get("revoked_at")?, last.try_get("sid")?);
            read += rows.len();
            for row in &rows {
                let sid: String = row.try_get("sid")?;
                let revoked_at: i64 = row.try_get("revoked_at")?;
                let until: i64 = row.try_get("until")?;
                set.insert([sid.as_str()], revoked_at, until, now);
            }
            if rows.len() < usize::try_from(PAGE).unwrap_or(0) {
                break;
            }
        }
        Ok(read)
    }

    /// Deletes up to `batch` rows whose tokens have expired by `now`, by the hold of whoever
    /// wrote them and by this instance's own; how many went.
    pub async fn remove_expired(&self, now: i64, batch: i64) -> Result<u64, StoreError> {
        self.store
            .bounded(async {
                let done = sqlx::query(
                    "DELETE FROM revocations WHERE sid IN \
                     (SELECT sid FROM revocations WHERE until <= $1 AND revoked_at <= $2 LIMIT $3)",
                )
                .bind(now)
                .bind(now.saturating_sub(self.hold))
                .bind(batch)
                .execute(self.store.pool())
                .await?;
                Ok(done.rows_affected())
            })
            .await
    }

    /// Keeps the set in memory up to date with the table until dropped: on PostgreSQL, listens
    /// on the revocation channel (`listen_url`: the database's URL) and applies what it hears;
    /// polls the table in any case (every 250 ms on SQLite, every second on PostgreSQL, and at
    /// once when the listener lost its connection), purges expired entries, and reads the whole
    /// table again every five minutes. A database that does not answer changes nothing in
    /// memory: the checks go on with what is known.
    pub async fn follow(self, listen_url: Option<String>) {
        let poll_now = Arc::new(tokio::sync::Notify::new());
        let listener = async {
            match (self.store.backend(), &listen_url, &self.set) {
                (Backend::Postgres, Some(url), Some(set)) => {
                    listen(url, set, &poll_now).await;
                }
                _ => std::future::pending().await,
            }
        };
        tokio::join!(listener, self.poll_loop(&poll_now));
    }

    async fn poll_loop(&self, poll_now: &tokio::sync::Notify) {
        let every = match self.store.backend() {
            Backend::Sqlite => SQLITE_POLL,
            Backend::Postgres => POSTGRES_POLL,
        };
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = crate::tokens::now();
        let mut since = started.saturating_sub(OVERLAP_SECS);
        // The first read is whole, as the start-up load was: whatever was revoked between that
        // load and this task's start is read however long that took.
        let (mut last_reload, mut last_purge) = (i64::MIN, started);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = poll_now.notified() => {}
            }
            let now = crate::tokens::now();
            if now.saturating_sub(last_purge) >= secs(PURGE_EVERY)
                && let Some(set) = &self.set
            {
                set.purge(now);
                last_purge = now;
            }
            let reload = now.saturating_sub(last_reload) >= secs(RELOAD_EVERY);
            let from = if reload { i64::MIN } else { since };
            match self.read_since(from, now).await {
                Ok(_) => {
                    if failing {
                        tracing::info!(target: "authd::revocations", "revocations read again");
                        failing = false;
                    }
                    since = now.saturating_sub(OVERLAP_SECS);
                    if reload {
                        last_reload = now;
                    }
                }
                Err(e) => {
                    // Once per outage, not four lines a second.
                    if !failing {
                        tracing::warn!(
                            target: "authd::revocations",
                            error = %e,
                            "cannot read revocations: tokens are checked against those known \
                             until the database answers again"
                        );
                        failing = true;
                    }
                }
            }
        }
    }
}

/// Listens for revocations on PostgreSQL and puts them in `set`; asks for a poll whenever
/// something may have been missed (the connection was lost, or a payload was not ours).
async fn listen(url: &str, set: &RevokedSet, poll_now: &tokio::sync::Notify) {
    let mut retry = Duration::from_millis(250);
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect(url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(target: "authd::revocations", error = %e, "cannot listen for revocations");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LISTEN_RETRY_MAX);
                continue;
            }
        };
        retry = Duration::from_millis(250);
        // Whatever was announced before the listening began is in the table.
        poll_now.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let now = crate::tokens::now();
                    match parse_payload(notification.payload()) {
                        Some((revoked_at, until, sids)) => {
                            set.insert(sids, revoked_at, until, now);
                        }
                        None => poll_now.notify_one(),
                    }
                }
                // The connection was lost; the next call reconnects. Notifications sent meanwhile
                // are gone: the poll reads them.
                Ok(None) => poll_now.notify_one(),
                Err(e) => {
                    tracing::debug!(target: "authd::revocations", error = %e, "revocation listener failed");
                    poll_now.notify_one();
                    break;
                }
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// A notification's payload: `<revoked_at> <until> <sid>,<sid>,...`.
fn payload(revoked_at: i64, until: i64, sids: &[String]) -> String {
    format!("{revoked_at} {until} {}", sids.join(","))
}

/// The parts of a payload made by [`payload`]; `None` for anything else (a stranger's NOTIFY).
fn parse_payload(text: &str) -> Option<(i64, i64, impl Iterator<Item = &str>)> {
    let mut parts = text.splitn(3, ' ');
    let revoked_at = parts.next()?.parse().ok()?;
    let until = parts.next()?.parse().ok()?;
    let sids = parts.next()?;
    let ours = sids.split(',').count() <= SIDS_PER_NOTIFICATION
        && sids.split(',').all(|s| parse_sid(s).is_some());
    ours.then(|| (revoked_at, until, sids.split(',')))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const SID: &str = "0123456789abcdef0123456789abcdef";

    fn sid(n: u32) -> String {
        format!("{n:032x}")
    }

    #[test]
    fn sids_are_32_lowercase_hex_digits() {
        assert_eq!(parse_sid(SID).unwrap()[0], 0x01);
        for bad in [
            "",
            "0123",
            &SID.to_uppercase(),
            &format!("{SID}0"),
            "g".repeat(32).as_str(),
        ] {
            assert!(parse_sid(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_revoked_sid_is_refused_until_its_tokens_expire_and_others_pass() {
        let set = RevokedSet::new(10, Duration::from_secs(60));
        assert!(!set.is_revoked(SID, Some(NOW)));
        assert_eq!(set.insert([SID], NOW, NOW + 60, NOW), 1);
        assert_eq!(set.insert([SID], NOW, NOW + 60, NOW), 0, "already known");
        assert!(set.is_revoked(SID, Some(NOW)));
        assert!(!set.is_revoked(&sid(7), Some(NOW)));
        assert!(!set.is_revoked("not a sid", Some(NOW)));
        set.purge(NOW + 59);
        assert!(set.is_revoked(SID, Some(NOW)));
        set.purge(NOW + 60);
        assert!(!set.is_revoked(SID, Some(NOW)));
        assert!(set.is_empty());
    }

    #[test]
    fn an_enders_shorter_hold_does_not_shorten_ours_and_expired_ones_are_skipped() {
        let set = RevokedSet::new(10, Duration::from_secs(600));
        set.insert([SID], NOW, NOW + 10, NOW);
        set.purge(NOW + 500);
        assert!(set.is_revoked(SID, Some(NOW)));
        assert_eq!(set.insert([sid(1).as_str()], NOW - 700, NOW - 690, NOW), 0);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn past_the_bound_a_cutoff_refuses_every_earlier_token_with_a_sid_and_frees_the_entries() {
        let set = RevokedSet::new(3, Duration::from_secs(60));
        for n in 0..3 {
            set.insert([sid(n).as_str()], NOW, NOW + 60, NOW);
        }
        assert_eq!(set.len(), 3);
        assert!(set.cutoff().is_none());
        set.insert([sid(3).as_str()], NOW + 5, NOW + 65, NOW + 5);
        assert_eq!(set.len(), 1, "the entries are replaced, all but the newest");
        assert_eq!(set.cutoff(), Some((NOW + 5, NOW + 65)));
        for n in 0..4 {
            assert!(set.is_revoked(&sid(n), Some(NOW)), "{n}");
        }
        // Any token with a sid issued by then, revoked or not, or without an `iat`.
        assert!(set.is_revoked(&sid(99), Some(NOW + 5)));
        assert!(set.is_revoked(&sid(99), None));
        // Tokens issued after it pass, and new revocations are held again.
        assert!(!set.is_revoked(&sid(99), Some(NOW + 6)));
        set.insert([sid(50).as_str()], NOW + 10, NOW + 70, NOW + 10);
        assert!(set.is_revoked(&sid(50), Some(NOW + 10)));
        set.purge(NOW + 64);
        assert!(set.cutoff().is_some());
        set.purge(NOW + 65);
        assert!(set.cutoff().is_none());
        assert!(!set.is_revoked(&sid(0), Some(NOW)));
        assert!(set.is_revoked(&sid(50), Some(NOW + 10)));
    }

    #[test]
    fn payloads_round_trip_and_strangers_are_not_read() {
        let sids = vec![sid(1), sid(2)];
        let text = payload(NOW, NOW + 60, &sids);
        let (at, until, read) = parse_payload(&text).unwrap();
        assert_eq!((at, until), (NOW, NOW + 60));
        assert_eq!(read.collect::<Vec<_>>(), [sid(1), sid(2)]);
        for bad in [
            "",
            "hello",
            "1 2",
            "1 2 nothex",
            &format!("x {NOW} {SID}"),
            &format!("{NOW} {NOW} {SID},"),
            &payload(NOW, NOW, &(0..201).map(sid).collect::<Vec<_>>()),
        ] {
            assert!(parse_payload(bad).is_none(), "{bad}");
        }
    }
}
