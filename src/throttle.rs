//! Brute-force protection for `/login`: attempts are counted per username and per client address
//! in the store (so every instance sees the same counts), over a fixed window; past the limit a
//! bucket is banned for a while and attempts are refused before any password is hashed.
//! Plain Rust over the [`Store`]; every function takes `now` (seconds since the Unix epoch).
//!
//! An attempt is counted as a failure when it starts and forgiven when it succeeds, so that N
//! concurrent guesses cannot all slip in before the first failure is recorded. In front of the
//! store count, each instance keeps a gate per bucket: once the attempts in flight would spend
//! the rest of a bucket's budget, further ones wait (up to [`WAIT_LIMIT`]) for their verdicts
//! instead of being counted at once, so that concurrent *correct* logins are not mistaken for
//! guesses. The store count stays the authority: instances sharing a database never let more
//! guesses through than it allows, at worst they refuse more.
//!
//! Counter keys are HMAC-SHA256 under a key derived from the signing secret: a copy of the
//! database names no user and no address (plain digests of IPv4 addresses are reversed by trying
//! them all). During a key rotation each instance has the current and the previous secrets, and
//! instances do not agree on which is current: an attempt is counted in the row of every key, and
//! the rows of one user (or address) are then made equal to the strictest of them, so that
//! instances mid-rotation share one budget and a ban counted under the old key holds under the new.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::Row as _;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::keys::DerivedKey;
use crate::store::{Store, StoreError, hex};

/// The longest an attempt waits at a gate for earlier attempts' verdicts; past it, it is counted
/// in the store like any other (and may be refused there).
pub const WAIT_LIMIT: Duration = Duration::from_secs(3);

/// The label of the key that counter keys are made with (see [`DerivedKey`]).
const BUCKET_KEY_LABEL: &str = "authd throttle buckets v1";

/// OWASP ASVS 2.2.1: at most this many failed attempts an hour on one account.
pub const ASVS_MAX_FAILURES_PER_HOUR: u64 = 100;

/// Limits on failed logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failed attempts allowed per username in one window; the next one is refused and bans.
    pub user_max: u32,
    /// Failed attempts allowed per client address in one window.
    pub address_max: u32,
    /// Length of the counting window.
    pub window: Duration,
    /// How long a bucket stays banned once over its limit.
    pub ban: Duration,
}

impl Default for ThrottleSettings {
    /// 5 failures in 5 minutes per user (at most 65 an hour, within ASVS's 100), 20 per address,
    /// then 5 minutes of ban: in the spirit of Authelia's regulation (3 in 2 minutes, 5 minutes).
    fn default() -> Self {
        Self {
            user_max: 5,
            address_max: 20,
            window: Duration::from_secs(5 * 60),
            ban: Duration::from_secs(5 * 60),
        }
    }
}

impl ThrottleSettings {
    /// The most failed attempts one account can see in any hour, worst case: a window admits
    /// `user_max` failures, and an hour overlaps at most `ceil(3600 / window) + 1` windows.
    pub fn worst_case_failures_per_hour(&self) -> u64 {
        let window = self.window.as_secs().max(1);
        u64::from(self.user_max).saturating_mul(3600u64.div_ceil(window) + 1)
    }
}

/// A login attempt may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// Too many failures for this user or address: try again in `retry_after` seconds.
    #[error("too many attempts; retry in {retry_after} s")]
    Limited {
        /// Seconds until the ban ends (at least 1).
        retry_after: u64,
    },
    /// Earlier attempts on the same user or address were still undecided after [`WAIT_LIMIT`]:
    /// try again shortly (nothing was counted).
    #[error("earlier attempts are still being checked")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An attempt admitted by [`Throttle::begin`], counted as failed until
/// [`Throttle::succeeded`] says otherwise. Dropping it ends its turn at the gates.
#[derive(Debug)]
pub struct Attempt {
    user: Ticket,
    address: Ticket,
    /// The user's rows in the store, one per key (see [`Throttle::rows`]).
    user_rows: Vec<String>,
    /// The address's rows in the store, one per key.
    address_rows: Vec<String>,
}

/// Login attempt counters in the store.
#[derive(Debug, Clone)]
pub struct Throttle {
    store: Store,
    settings: ThrottleSettings,
    /// The current secret's key: it names this instance's gates.
    current: DerivedKey,
    /// One key per secret, the current one's too: rows are counted under each.
    keys: Arc<[DerivedKey]>,
    gates: Arc<Gates>,
}

impl Throttle {
    /// Counters kept in `store`, keyed with a key derived from `secret` (the signing secret):
    /// instances sharing a database must share the secret too.
    pub fn new(store: Store, settings: ThrottleSettings, secret: &[u8]) -> Self {
        Self::with_previous(store, settings, secret, &[])
    }

    /// Counters keyed with the current `secret` and with each `previous` one (the secrets the
    /// token keys verify with), so that instances that disagree on which secret is current
    /// (a rotation under way) still share every count and every ban.
    pub fn with_previous(
        store: Store,
        settings: ThrottleSettings,
        secret: &[u8],
        previous: &[&[u8]],
    ) -> Self {
        let current = DerivedKey::derive(secret, BUCKET_KEY_LABEL);
        let keys = std::iter::once(current.clone())
            .chain(
                previous
                    .iter()
                    .map(|s| DerivedKey::derive(s, BUCKET_KEY_LABEL)),
            )
            .collect();
        Self {
            store,
            settings,
            current,
            keys,
            gates: Arc::default(),
        }
    }

    /// Counts an attempt by `username` from `address`, or refuses it while either is banned.
    /// The address is checked first, so that a banned address cannot add to a user's count; an
    /// attempt the user's ban refuses is taken back from the address, so that a locked account
    /// does not lock out everyone behind the address its owner tries from.
    ///
    /// The attempt waits at both gates (the address's, then the user's) and is then counted for
    /// both in one transaction: one commit, the rows locked in the order every transaction here
    /// takes them (address, then user, as a success does too; within each, one row per key in
    /// sorted order of their digests, the same on every instance), so that concurrent logins
    /// on PostgreSQL cannot deadlock.
    pub async fn begin(
        &self,
        username: &str,
        address: IpAddr,
        now: i64,
    ) -> Result<Attempt, ThrottleError> {
        let deadline = Instant::now() + WAIT_LIMIT;
        let address_max = self.settings.address_max;
        let user_max = self.settings.user_max;
        let address_key = address_key(address);
        let address_rows = self.rows("address", &address_key);
        let user_rows = self.rows("user", username);
        // The gates are this instance's own: the current key's digest names them.
        let address = self
            .gates
            .enter(
                self.bucket(&self.current, "address", &address_key),
                i64::from(address_max),
                deadline,
            )
            .await
            .ok_or(ThrottleError::Busy)?;
        let Some(user) = self
            .gates
            .enter(
                self.bucket(&self.current, "user", username),
                i64::from(user_max),
                deadline,
            )
            .await
        else {
            self.gates.not_counted(&address.bucket);
            return Err(ThrottleError::Busy);
        };
        let counted = self
            .store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                let at_address = self
                    .count_all(&mut tx, &address_rows, address_max, now)
                    .await?;
                let at_user = match at_address.retry_after(now) {
                    Some(_) => None,
                    None => Some(self.count_all(&mut tx, &user_rows, user_max, now).await?),
                };
                if at_user
                    .as_ref()
                    .is_some_and(|u| u.retry_after(now).is_some())
                {
                    take_back_all(&mut tx, &address_rows).await?;
                }
                tx.commit().await?;
                Ok((at_address, at_user))
            })
            .await;
        let (at_address, at_user) = match counted {
            Ok(counts) => counts,
            Err(e) => {
                self.gates.not_counted(&address.bucket);
                self.gates.not_counted(&user.bucket);
                return Err(ThrottleError::Store(e));
            }
        };
        let known = |failures: i64| move |known: i64| known.max(failures);
        self.gates
            .set_known(&address.bucket, known(at_address.failures), |_| 0);
        let Some(at_user) = at_user else {
            self.gates.not_counted(&user.bucket);
            return Err(limited(&at_address, now));
        };
        self.gates
            .set_known(&user.bucket, known(at_user.failures), |_| 0);
        if at_user.retry_after(now).is_some() {
            self.gates.taken_back(&address.bucket);
            return Err(limited(&at_user, now));
        }
        Ok(Attempt {
            user,
            address,
            user_rows,
            address_rows,
        })
    }

    /// The attempt succeeded: the user's count starts again, and the address is forgiven this
    /// attempt (not its earlier failures). One transaction; a login that also starts a session
    /// records both in one ([`crate::sessions::Sessions::start_after`]).
    pub async fn succeeded(&self, attempt: &Attempt, _now: i64) -> Result<(), StoreError> {
        self.store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                self.forgive_in(&mut tx, attempt).await?;
                tx.commit().await?;
                Ok(())
            })
            .await?;
        self.forgiven(attempt);
        Ok(())
    }

    /// The store's half of [`Throttle::succeeded`], in the caller's transaction: the address is
    /// forgiven this attempt, then the user's count starts again. Call [`Throttle::forgiven`]
    /// once it has committed.
    ///
    /// The user's row is reset to a count that starts afresh (as if it were not there) rather
    /// than deleted, so that this always locks it on PostgreSQL, even when a concurrent success
    /// has just deleted it: the successes of one user follow one another from here to their
    /// commit, and what they do next in the same transaction (trimming the user's sessions) never
    /// runs side by side. Rows are locked address first, then user, as in [`Throttle::begin`].
    pub(crate) async fn forgive_in(
        &self,
        conn: &mut AnyConnection,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        take_back_all(&mut *conn, &attempt.address_rows).await?;
        for row in &attempt.user_rows {
            sqlx::query(
                "INSERT INTO login_throttle (bucket, window_start, failures, banned_until) \
                 VALUES ($1, 0, 0, 0) \
                 ON CONFLICT (bucket) DO UPDATE SET \
                 window_start = 0, failures = 0, banned_until = 0",
            )
            .bind(row)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// The gates' half of [`Throttle::succeeded`], once [`Throttle::forgive_in`] has committed.
    pub(crate) fn forgiven(&self, attempt: &Attempt) {
        // The other attempts in flight may have been counted after the reset (their upserts
        // raced with it): assume they were, so that the gate never lets the store count past
        // the limit on its own account.
        self.gates
            .set_known(&attempt.user.bucket, |_| 0, |in_flight| in_flight - 1);
        self.gates.taken_back(&attempt.address.bucket);
    }

    /// The attempt was never judged (password hashing was saturated, 503): it is taken back from
    /// both counts, in one transaction, so that load alone cannot get a user or an address banned.
    pub async fn withdrawn(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                take_back_all(&mut tx, &attempt.address_rows).await?;
                take_back_all(&mut tx, &attempt.user_rows).await?;
                tx.commit().await?;
                Ok(())
            })
            .await?;
        self.gates.taken_back(&attempt.address.bucket);
        self.gates.taken_back(&attempt.user.bucket);
        Ok(())
    }

    /// Deletes up to `batch` counters whose window and ban are both over; how many went.
    pub async fn remove_expired(&self, now: i64, batch: i64) -> Result<u64, StoreError> {
        let window = secs(self.settings.window);
        self.store
            .bounded(async {
                let done = sqlx::query(
                    // The condition twice: the subquery picks rows from the statement's snapshot,
                    // and on PostgreSQL a row a login updates meanwhile (a count, a ban copied
                    // to it) is deleted once that login commits unless the outer condition is
                    // checked again on the row as it is then. A lost ban was seen in tests.
                    "DELETE FROM login_throttle WHERE bucket IN \
                     (SELECT bucket FROM login_throttle \
                      WHERE window_start <= $1 - $2 AND banned_until <= $1 LIMIT $3) \
                     AND window_start <= $1 - $2 AND banned_until <= $1",
                )
                .bind(now)
                .bind(window)
                .bind(batch)
                .execute(self.store.pool())
                .await?;
                Ok(done.rows_affected())
            })
            .await
    }

    /// Adds one attempt to each of `rows` (the rows of one user or one address, one per key),
    /// then sets every row that came out less strict than the strictest to its state, in the
    /// caller's transaction. The strictest is the one banned longest, else the one with the most
    /// failures, else the one whose window started last (it counts the longest): a ban or a count
    /// kept under one key holds under every key, and an attempt a ban refuses is added nowhere,
    /// as with one key. With one key this is one upsert, as before rotations counted.
    async fn count_all(
        &self,
        conn: &mut AnyConnection,
        rows: &[String],
        max: u32,
        now: i64,
    ) -> Result<Count, StoreError> {
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            counts.push(self.count(&mut *conn, row, max, now).await?);
        }
        let strictest = counts
            .iter()
            .copied()
            .max_by_key(|c| (c.banned_until, c.failures, c.window_start))
            .unwrap_or(Count {
                failures: 0,
                window_start: now,
                banned_until: 0,
            });
        for (row, count) in rows.iter().zip(&counts) {
            if *count != strictest {
                sqlx::query(
                    "UPDATE login_throttle SET window_start = $2, failures = $3, \
                     banned_until = $4 WHERE bucket = $1",
                )
                .bind(row)
                .bind(strictest.window_start)
                .bind(strictest.failures)
                .bind(strictest.banned_until)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(strictest)
    }

    /// Adds one attempt to `bucket` in one atomic upsert, in the caller's transaction; refused
    /// ([`Count::retry_after`]) when the bucket is banned or this attempt goes past `max` (which
    /// starts the ban).
    async fn count(
        &self,
        conn: &mut AnyConnection,
        bucket: &str,
        max: u32,
        now: i64,
    ) -> Result<Count, StoreError> {
        let window = secs(self.settings.window);
        let ban = secs(self.settings.ban);
        // Every SET expression sees the row as it was before this statement.
        let row = sqlx::query(
            "INSERT INTO login_throttle (bucket, window_start, failures, banned_until) \
             VALUES ($1, $2, 1, 0) \
             ON CONFLICT (bucket) DO UPDATE SET \
             failures = CASE \
                 WHEN login_throttle.banned_until > $2 THEN login_throttle.failures \
                 WHEN login_throttle.window_start <= $2 - $3 THEN 1 \
                 ELSE login_throttle.failures + 1 END, \
             window_start = CASE \
                 WHEN login_throttle.banned_until > $2 THEN login_throttle.window_start \
                 WHEN login_throttle.window_start <= $2 - $3 THEN $2 \
                 ELSE login_throttle.window_start END, \
             banned_until = CASE \
                 WHEN login_throttle.banned_until > $2 THEN login_throttle.banned_until \
                 WHEN login_throttle.window_start <= $2 - $3 THEN 0 \
                 WHEN login_throttle.failures + 1 > $4 THEN $2 + $5 \
                 ELSE 0 END \
             RETURNING banned_until, failures, window_start",
        )
        .bind(bucket)
        .bind(now)
        .bind(window)
        .bind(i64::from(max))
        .bind(ban)
        .fetch_one(conn)
        .await?;
        Ok(Count {
            failures: row.try_get("failures")?,
            window_start: row.try_get("window_start")?,
            banned_until: row.try_get("banned_until")?,
        })
    }

    /// The rows counting `value` of `kind` in the store: its bucket under every key, sorted and
    /// without repeats. Sorted, so that every instance locks them in the same order whatever its
    /// current key (one with A then B and one with B then A would otherwise deadlock on
    /// PostgreSQL).
    fn rows(&self, kind: &str, value: &str) -> Vec<String> {
        let mut rows: Vec<String> = self
            .keys
            .iter()
            .map(|key| self.bucket(key, kind, value))
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// A counter's key: a keyed digest, so that the store holds no usernames (people type
    /// passwords into the username field) and no addresses, not even reversibly.
    fn bucket(&self, key: &DerivedKey, kind: &str, value: &str) -> String {
        hex(&key.mac(format!("{kind}\0{value}").as_bytes()))
    }
}

/// A bucket's row after [`Throttle::count`] added an attempt to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    /// The count.
    failures: i64,
    /// When its window started, seconds since the Unix epoch.
    window_start: i64,
    /// Banned until then (seconds since the Unix epoch); 0 or past when not banned.
    banned_until: i64,
}

impl Count {
    /// Banned for this many seconds (at least 1) after `now`: the attempt is refused.
    fn retry_after(&self, now: i64) -> Option<u64> {
        (self.banned_until > now)
            .then(|| u64::try_from(self.banned_until - now).unwrap_or(1).max(1))
    }
}

/// The refusal of an attempt that `count` banned.
fn limited(count: &Count, now: i64) -> ThrottleError {
    ThrottleError::Limited {
        retry_after: count.retry_after(now).unwrap_or(1),
    }
}

/// [`take_back`] on each of `rows`, in order.
async fn take_back_all(conn: &mut AnyConnection, rows: &[String]) -> Result<(), StoreError> {
    for row in rows {
        take_back(&mut *conn, row).await?;
    }
    Ok(())
}

/// Takes one attempt back from the count of `bucket`, in the caller's transaction (the gate is
/// told with [`Gates::taken_back`] once it has committed).
async fn take_back(conn: &mut AnyConnection, bucket: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE login_throttle SET failures = failures - 1 WHERE bucket = $1 AND failures > 0",
    )
    .bind(bucket)
    .execute(conn)
    .await?;
    Ok(())
}

/// The gates of this instance: for each bucket with attempts in flight here, how many, what
/// count the store last showed (plus the attempts admitted since), and the attempts waiting for
/// room, in the order they came. Entries go when their last attempt does, so the map is bounded
/// by the attempts in flight and waiting (themselves bounded by the hashing pool's places).
#[derive(Debug, Default)]
struct Gates {
    buckets: Mutex<HashMap<String, Gate>>,
}

#[derive(Debug)]
struct Gate {
    max: i64,
    in_flight: u32,
    /// The bucket's count as the store last said, plus attempts admitted since; `None` until the
    /// first attempt in flight has been counted.
    known: Option<i64>,
    /// Attempts waiting for room, first come first served: a waiter that came early is never
    /// overtaken (with a wake-everyone signal, some waited past the limit under load while
    /// later ones got in).
    waiting: VecDeque<Waiter>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    admit: oneshot::Sender<()>,
}

impl Gate {
    fn new(max: i64) -> Self {
        Self {
            max,
            in_flight: 0,
            known: None,
            waiting: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Whether one more attempt fits: nothing in flight, or the count with the attempts in flight
    /// leaves room under the limit.
    fn has_room(&self) -> bool {
        self.in_flight == 0 || self.known.is_some_and(|k| k < self.max)
    }

    fn admit(&mut self) {
        self.in_flight += 1;
        self.known = self.known.map(|k| k + 1);
    }

    /// Lets waiters in, in order, while there is room.
    fn let_in(&mut self) {
        while self.has_room() {
            let Some(waiter) = self.waiting.pop_front() else {
                return;
            };
            self.admit();
            if waiter.admit.send(()).is_err() {
                // Its caller went away: the room goes on to the next.
                self.in_flight = self.in_flight.saturating_sub(1);
                self.known = self.known.map(|k| k - 1);
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.waiting.is_empty()
    }
}

impl Gates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gate>> {
        // Every change under the lock is a few integer and queue updates: a panic cannot leave
        // it torn.
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits an attempt on `bucket` at once when no one waits and there is room under `max`;
    /// otherwise it waits its turn, until `deadline` (then `None`: a busy answer is better than a
    /// ban no guess earned).
    async fn enter(
        self: &Arc<Self>,
        bucket: String,
        max: i64,
        deadline: Instant,
    ) -> Option<Ticket> {
        let (id, admitted) = {
            let mut gates = self.lock();
            let gate = gates
                .entry(bucket.clone())
                .or_insert_with(|| Gate::new(max));
            if gate.waiting.is_empty() && gate.has_room() {
                gate.admit();
                return Some(Ticket {
                    gates: Arc::clone(self),
                    bucket,
                });
            }
            let id = gate.next_id;
            gate.next_id = gate.next_id.wrapping_add(1);
            let (admit, admitted) = oneshot::channel();
            gate.waiting.push_back(Waiter { id, admit });
            (id, admitted)
        };
        // From here a ticket exists once admitted: if this future is dropped while waiting, the
        // guard takes it out of the line (or, admitted meanwhile, lets the room go).
        let mut guard = Queued {
            gates: Arc::clone(self),
            bucket,
            id,
            admitted,
            settled: false,
        };
        let outcome = tokio::time::timeout_at(deadline, &mut guard.admitted).await;
        guard.settled = true;
        let in_line = self.leave_line(&guard.bucket, id);
        let admitted =
            matches!(outcome, Ok(Ok(()))) || (!in_line && guard.admitted.try_recv().is_ok());
        admitted.then(|| Ticket {
            gates: Arc::clone(self),
            bucket: std::mem::take(&mut guard.bucket),
        })
    }

    /// Changes the known count of `bucket` (when it has attempts in flight) to the greater of
    /// `change(known)` and `floor(in_flight)`, and lets waiters in if that made room.
    fn set_known(
        &self,
        bucket: &str,
        change: impl FnOnce(i64) -> i64,
        floor: impl FnOnce(i64) -> i64,
    ) {
        let mut gates = self.lock();
        if let Some(gate) = gates.get_mut(bucket) {
            let changed = change(gate.known.unwrap_or(0));
            gate.known = Some(changed.max(floor(i64::from(gate.in_flight))));
            gate.let_in();
        }
    }

    /// One attempt was taken back from `bucket`'s count in the store.
    fn taken_back(&self, bucket: &str) {
        self.set_known(bucket, |known| (known - 1).max(0), |_| 0);
    }

    /// An attempt admitted at `bucket`'s gate was not counted in the store after all (the other
    /// gate kept it waiting too long, the address was banned, or the store failed): the known
    /// count loses what [`Gate::admit`] added for it.
    fn not_counted(&self, bucket: &str) {
        let mut gates = self.lock();
        if let Some(gate) = gates.get_mut(bucket) {
            gate.known = gate.known.map(|k| k - 1);
            gate.let_in();
        }
    }

    /// Takes waiter `id` out of `bucket`'s line; whether it was still there (not yet admitted).
    fn leave_line(&self, bucket: &str, id: u64) -> bool {
        let mut gates = self.lock();
        let Some(gate) = gates.get_mut(bucket) else {
            return false;
        };
        let Some(i) = gate.waiting.iter().position(|w| w.id == id) else {
            return false;
        };
        gate.waiting.remove(i);
        if gate.is_idle() {
            gates.remove(bucket);
        }
        true
    }

    /// An admitted attempt is over: its room goes to the next in line.
    fn leave(&self, bucket: &str) {
        let mut gates = self.lock();
        if let Some(gate) = gates.get_mut(bucket) {
            gate.in_flight = gate.in_flight.saturating_sub(1);
            gate.let_in();
            if gate.is_idle() {
                gates.remove(bucket);
            }
        }
    }
}

/// An attempt waiting in a gate's line; dropped before it is settled (its caller went away), it
/// leaves the line, or gives back the room it was just given.
struct Queued {
    gates: Arc<Gates>,
    bucket: String,
    id: u64,
    admitted: oneshot::Receiver<()>,
    settled: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let in_line = self.gates.leave_line(&self.bucket, self.id);
        if !in_line && self.admitted.try_recv().is_ok() {
            self.gates.leave(&self.bucket);
        }
    }
}

/// An attempt's turn at one bucket's gate; dropping it lets the next one in.
struct Ticket {
    gates: Arc<Gates>,
    bucket: String,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gates.leave(&self.bucket);
    }
}

/// IPv4 addresses count one by one; IPv6 ones by their /64, since one host commonly holds a whole
/// /64 and could otherwise spread its guesses over 2^64 addresses.
fn address_key(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The client a login is counted as when hashing places are shared out: IPv4 addresses one by
/// one, IPv6 by their /56 (what providers commonly give one customer), so that a host with a
/// whole /48 to draw from (65,536 /64s) weighs 256 clients in the line, not 65,536.
pub(crate) fn site_key(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/56", s[0], s[1], s[2], s[3] & 0xff00)
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_stay_within_asvs() {
        let s = ThrottleSettings::default();
        assert_eq!(s.worst_case_failures_per_hour(), 5 * 13);
        assert!(s.worst_case_failures_per_hour() <= ASVS_MAX_FAILURES_PER_HOUR);
        let loose = ThrottleSettings {
            user_max: 5,
            window: Duration::from_secs(120),
            ..s
        };
        assert_eq!(loose.worst_case_failures_per_hour(), 5 * 31);
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7");
    }

    #[test]
    fn hashing_places_are_shared_per_ipv6_56() {
        let a: IpAddr = "2001:db8:1:2ff::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:200::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:300::1".parse().unwrap();
        assert_eq!(site_key(a), site_key(b));
        assert_ne!(site_key(a), site_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(site_key(mapped), "192.0.2.7");
    }

    #[tokio::test]
    async fn buckets_are_keyed_digests_that_do_not_hold_the_name() {
        let store = Store::open(crate::store::MEMORY_DATABASE_URL, &Default::default())
            .await
            .unwrap();
        let t = Throttle::new(store.clone(), ThrottleSettings::default(), b"one secret");
        let b = t.bucket(&t.current, "user", "alice");
        assert_eq!(b.len(), 64);
        assert!(!b.contains("alice"));
        assert_ne!(b, t.bucket(&t.current, "address", "alice"));
        assert_ne!(b, crate::store::digest(b"user\0alice"));
        assert_eq!(t.rows("user", "alice"), vec![b.clone()]);
        let other = Throttle::new(store, ThrottleSettings::default(), b"another secret");
        assert_ne!(b, other.bucket(&other.current, "user", "alice"));
    }

    #[tokio::test]
    async fn instances_that_disagree_on_the_current_key_count_in_the_same_rows_in_the_same_order() {
        let store = Store::open(crate::store::MEMORY_DATABASE_URL, &Default::default())
            .await
            .unwrap();
        let settings = ThrottleSettings::default;
        let a_first = Throttle::with_previous(store.clone(), settings(), b"key a", &[b"key b"]);
        let b_first = Throttle::with_previous(store.clone(), settings(), b"key b", &[b"key a"]);
        let a_only = Throttle::new(store.clone(), settings(), b"key a");
        let rows = a_first.rows("user", "alice");
        assert_eq!(rows.len(), 2);
        assert!(rows.is_sorted());
        assert_eq!(rows, b_first.rows("user", "alice"));
        assert!(rows.contains(&a_only.rows("user", "alice")[0]));
        // The gates stay named by each instance's current key.
        assert_ne!(
            a_first.bucket(&a_first.current, "user", "alice"),
            b_first.bucket(&b_first.current, "user", "alice")
        );
        // The same secret twice is one row.
        let twice = Throttle::with_previous(store, settings(), b"key a", &[b"key a"]);
        assert_eq!(twice.rows("user", "alice").len(), 1);
    }
}
