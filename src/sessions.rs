//! Sessions: refresh-token families (RFC 9700 §4.14.2). A login starts a family; a refresh spends
//! the presented token and issues the next one in one atomic step; presenting a spent token again
//! revokes the whole family. One row per session, however often refreshed: its current token's
//! digest, and the digest of the 128 random bits all its tokens start with (each token adds 128
//! fresh ones), which recognises any earlier token. Only SHA-256 digests are stored. Each session
//! also has a `sid` its access tokens carry; ending a session early records it as revoked
//! ([`Revocations`]), so that those tokens end too. Plain Rust over the [`Store`]; every function
//! takes `now` (seconds since the Unix epoch).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::Row as _;
use sqlx::{AnyConnection, Connection as _};

use crate::revocations::Revocations;
use crate::store::{Store, StoreError, digest, hex};
use crate::throttle::{Attempt, Throttle};
use crate::tokens::{LEEWAY_SECS, TokenSettings};

/// Length of a refresh token: 32 random bytes in unpadded base64url.
pub const REFRESH_TOKEN_LEN: usize = 43;

/// Default of [`SessionSettings::max_per_user`] (`AUTHD_MAX_SESSIONS_PER_USER`).
pub const DEFAULT_MAX_SESSIONS_PER_USER: u32 = 100;

/// Lifetimes of refresh tokens and of the sessions they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// How long one refresh token may wait to be used.
    pub refresh_ttl: Duration,
    /// Absolute lifetime of a session, counted from its login, however often it is refreshed.
    pub lifetime: Duration,
    /// Most live sessions one user may hold; a login past it ends that user's oldest.
    pub max_per_user: u32,
    /// Most revoked sessions a server holds in memory (`AUTHD_MAX_REVOKED_SESSIONS`; see
    /// [`crate::revocations::RevokedSet`] for what happens past it).
    pub max_revoked: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(14 * 24 * 60 * 60),
            lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            max_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            max_revoked: crate::revocations::DEFAULT_MAX_REVOKED,
        }
    }
}

/// Why a refresh was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown, expired or revoked (or not a refresh token at all).
    #[error("refresh token is invalid")]
    Invalid,
    /// Already spent: presented again, so its whole family has been revoked.
    #[error("refresh token was already used; its session is revoked")]
    Reused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS gave no random bytes for a new token.
    #[error("no random bytes from the OS: {0}")]
    Random(String),
}

/// A new refresh token, for the answer to the client. `Debug` does not show it.
pub struct RefreshToken(pub String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

/// A new session: its first refresh token, and the id its access tokens carry.
#[derive(Debug)]
pub struct Started {
    /// The first refresh token.
    pub refresh_token: RefreshToken,
    /// The session's id for tokens (`sid`): 128 random bits in hex, derived from nothing.
    pub sid: String,
}

/// A successful refresh: whose session it is, and the token that replaces the spent one.
#[derive(Debug)]
pub struct Rotated {
    /// The user the session belongs to.
    pub username: String,
    /// The next refresh token.
    pub refresh_token: RefreshToken,
    /// The session's id for tokens (`sid`).
    pub sid: String,
}

/// A live session, as `authd sessions list` shows it (no token in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The family's id (random; not a credential).
    pub id: String,
    /// The user.
    pub username: String,
    /// When the session started (the login).
    pub created_at: i64,
    /// When it was last refreshed (or started).
    pub last_used_at: i64,
    /// When its current refresh token expires unless used.
    pub idle_expires_at: i64,
    /// When the session ends whatever happens.
    pub expires_at: i64,
}

/// A live session as `authd sessions export` writes it and `authd sessions import` reads it:
/// what the store holds of it, so the digests of its refresh tokens, never a token. Whoever holds
/// one cannot log in with it, but it names a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRecord {
    /// The family's id: 32 hex digits.
    pub id: String,
    /// The user.
    pub username: String,
    /// When the session started (the login).
    pub created_at: i64,
    /// When it was last refreshed (or started).
    pub last_used_at: i64,
    /// When the session ends whatever happens.
    pub expires_at: i64,
    /// When its current refresh token expires unless used.
    pub token_expires_at: i64,
    /// SHA-256 of its current refresh token, in hex.
    pub token_digest: String,
    /// SHA-256 of the bytes all its tokens start with, in hex; none for a session from before
    /// migration 0002 not refreshed since (its first refresh sets it).
    pub lookup: Option<String>,
    /// Orders the sessions started within one second.
    pub started_order: i64,
    /// The session's id in its access tokens: 32 hex digits; none in files from an authd
    /// without it (the session gets one at its next refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl SessionRecord {
    /// Why this record cannot be a session authd made, if it cannot: the shapes of its id and
    /// digests, a user name, times in order.
    pub fn check(&self) -> Result<(), String> {
        let hex_of = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex_of(&self.id, 32) {
            return Err("`id` is not 32 lowercase hex digits".into());
        }
        if !hex_of(&self.token_digest, 64) {
            return Err("`token_digest` is not 64 lowercase hex digits".into());
        }
        if self.lookup.as_deref().is_some_and(|l| !hex_of(l, 64)) {
            return Err("`lookup` is not 64 lowercase hex digits".into());
        }
        if self.sid.as_deref().is_some_and(|l| !hex_of(l, 32)) {
            return Err("`sid` is not 32 lowercase hex digits".into());
        }
        if self.username.is_empty() || self.username.chars().any(char::is_control) {
            return Err("`username` is empty or holds control characters".into());
        }
        let ordered = 0 <= self.created_at
            && self.created_at <= self.last_used_at
            && self.created_at <= self.expires_at
            && self.token_expires_at <= self.expires_at;
        if !ordered {
            return Err("the session's times are out of order".into());
        }
        Ok(())
    }

    /// Whether the session can still be refreshed at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now && self.token_expires_at > now
    }
}

/// Sessions being written into the store by `authd sessions import`: one transaction, so all of
/// them or none ([`Import::commit`]; dropped without it, nothing is written).
#[derive(Debug)]
pub struct Import {
    store: Store,
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Import {
    /// Writes `record` as it is (no per-user cap: the next login of its user trims). `false`,
    /// with nothing written, when its id or a digest of it is already in the store.
    pub async fn add(&mut self, record: &SessionRecord) -> Result<bool, StoreError> {
        let Self { store, tx } = self;
        store
            .bounded(async {
                let done = sqlx::query(
                    "INSERT INTO session_families \
                     (id, username, created_at, last_used_at, expires_at, revoked_at, \
                      lookup, token_digest, token_expires_at, started_order, sid) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&record.id)
                .bind(&record.username)
                .bind(record.created_at)
                .bind(record.last_used_at)
                .bind(record.expires_at)
                .bind(&record.lookup)
                .bind(&record.token_digest)
                .bind(record.token_expires_at)
                .bind(record.started_order)
                .bind(&record.sid)
                .execute(&mut **tx)
                .await?;
                Ok(done.rows_affected() == 1)
            })
            .await
    }

    /// Makes every session added visible at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        let Self { store, tx } = self;
        store.bounded(async { Ok(tx.commit().await?) }).await
    }
}

/// Refresh-token families in the store.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    settings: SessionSettings,
    revocations: Revocations,
}

impl Sessions {
    /// Sessions kept in `store`; the sessions they end are recorded as revoked for the default
    /// token lifetime (see [`Sessions::with_revocations`]).
    pub fn new(store: Store, settings: SessionSettings) -> Self {
        let hold = TokenSettings::default().ttl + Duration::from_secs(LEEWAY_SECS.unsigned_abs());
        let revocations = Revocations::new(store.clone(), hold);
        Self {
            store,
            settings,
            revocations,
        }
    }

    /// The same sessions, recording the ones they end in `revocations` (a server's: with the
    /// token lifetime configured, and the set in memory its token check reads).
    #[must_use]
    pub fn with_revocations(self, revocations: Revocations) -> Self {
        Self {
            revocations,
            ..self
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where ended sessions are recorded.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Starts a session for `username` (after a successful login) and returns its first token.
    /// Past [`SessionSettings::max_per_user`] live sessions, the user's oldest end (their rows
    /// go, with those of the user's dead sessions, so a login loop grows nothing). One
    /// transaction; see [`Sessions::start_after`] for a login's.
    pub async fn start(&self, username: &str, now: i64) -> Result<Started, SessionError> {
        let (token, new) = self.new_session(now)?;
        let trimmed = self
            .store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                let trimmed = self.start_in(&mut tx, username, &new).await?;
                tx.commit().await?;
                Ok(trimmed)
            })
            .await?;
        self.revocations.remember(&trimmed, now);
        Ok(Started {
            refresh_token: token,
            sid: new.sid,
        })
    }

    /// Records a successful login in one transaction, so with one commit: `throttle` forgives
    /// `attempt` (the attempt it admitted), and a session starts for `username` as
    /// [`Sessions::start`] starts one. The throttle's rows are written first, then the sessions'
    /// (the order of [`Throttle::begin`]'s rows, then these), so that concurrent logins on
    /// PostgreSQL cannot deadlock; the forgiveness locks the user's throttle row, so two logins
    /// of one user trim that user's sessions one after the other, never side by side.
    pub async fn start_after(
        &self,
        throttle: &Throttle,
        attempt: &Attempt,
        username: &str,
        now: i64,
    ) -> Result<Started, SessionError> {
        self.start_after_for(throttle, attempt, username, now, self.settings.lifetime)
            .await
    }

    /// [`Sessions::start_after`], for a session that ends `lifetime` from `now`.
    async fn start_after_for(
        &self,
        throttle: &Throttle,
        attempt: &Attempt,
        username: &str,
        now: i64,
        lifetime: Duration,
    ) -> Result<Started, SessionError> {
        let (token, new) = self.new_session_for(now, lifetime)?;
        let trimmed = self
            .store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                throttle.forgive_in(&mut tx, attempt).await?;
                let trimmed = self.start_in(&mut tx, username, &new).await?;
                tx.commit().await?;
                Ok(trimmed)
            })
            .await?;
        throttle.forgiven(attempt);
        self.revocations.remember(&trimmed, now);
        Ok(Started {
            refresh_token: token,
            sid: new.sid,
        })
    }

    /// Records a successful sign-in from a browser as [`Sessions::start_after`] records a
    /// login, for a session that ends `lifetime` from `now` (the cookie's absolute lifetime), and
    /// returns the session's `sid`, which the cookie carries. Its refresh token is made as any
    /// session's is (so the row is like every other) and thrown away unseen: only its digest is
    /// stored, and the sid is random, so nothing a cookie carries leads to a refresh token.
    pub async fn start_cookie_session(
        &self,
        throttle: &Throttle,
        attempt: &Attempt,
        username: &str,
        now: i64,
        lifetime: Duration,
    ) -> Result<String, SessionError> {
        let started = self
            .start_after_for(throttle, attempt, username, now, lifetime)
            .await?;
        Ok(started.sid)
    }

    /// A new session's id, first token and lifetimes, made before its transaction begins.
    fn new_session(&self, now: i64) -> Result<(RefreshToken, NewSession), SessionError> {
        self.new_session_for(now, self.settings.lifetime)
    }

    /// [`Sessions::new_session`], for a session that ends `lifetime` from `now`.
    fn new_session_for(
        &self,
        now: i64,
        lifetime: Duration,
    ) -> Result<(RefreshToken, NewSession), SessionError> {
        let family = random_id()?;
        let sid = random_id()?;
        let mut lookup = [0u8; LOOKUP_BYTES];
        getrandom::fill(&mut lookup).map_err(|e| SessionError::Random(e.to_string()))?;
        let (token, presented) = new_token(&lookup)?;
        let expires_at = now.saturating_add(secs(lifetime));
        let token_expires_at = now
            .saturating_add(secs(self.settings.refresh_ttl))
            .min(expires_at);
        let new = NewSession {
            family,
            sid,
            presented,
            now,
            expires_at,
            token_expires_at,
        };
        Ok((token, new))
    }

    /// Writes `new` for `username` and trims the user's sessions to the cap, in the caller's
    /// transaction ([`Sessions::start`]); the sids of the sessions the trim ended, recorded as
    /// revoked in the transaction, for the caller to remember once it commits.
    async fn start_in(
        &self,
        conn: &mut AnyConnection,
        username: &str,
        new: &NewSession,
    ) -> Result<Vec<String>, StoreError> {
        let now = new.now;
        sqlx::query(
            "INSERT INTO session_families \
             (id, username, created_at, last_used_at, expires_at, revoked_at, \
              lookup, token_digest, token_expires_at, started_order, sid) \
             VALUES ($1, $2, $3, $3, $4, NULL, $5, $6, $7, $8, $9)",
        )
        .bind(&new.family)
        .bind(username)
        .bind(now)
        .bind(new.expires_at)
        .bind(&new.presented.lookup)
        .bind(&new.presented.digest)
        .bind(new.token_expires_at)
        .bind(started_order())
        .bind(&new.sid)
        .execute(&mut *conn)
        .await?;
        // After the insert, so that the new session counts among the newest. On PostgreSQL the
        // statement sees every session of the user committed before it starts (READ COMMITTED).
        // In a savepoint, so that its failure (on PostgreSQL, a deadlock with the cleanup's
        // deletes, an admin's revocations or a concurrent `start` of the same user; logins
        // through `start_after` trim one at a time) leaves the new session valid: the next
        // login trims.
        // The sessions it ends that were not ended before, and whose last access token may
        // still be valid (issued at the last refresh), are recorded as revoked in the same
        // savepoint.
        let mut trim = conn.begin().await?;
        let trimmed = async {
            let rows = sqlx::query(
                "DELETE FROM session_families WHERE username = $1 AND id NOT IN \
                 (SELECT id FROM session_families WHERE username = $1 \
                  AND revoked_at IS NULL AND expires_at > $2 AND token_expires_at > $2 \
                  ORDER BY created_at DESC, started_order DESC LIMIT $3) \
                 RETURNING sid, revoked_at, last_used_at",
            )
            .bind(username)
            .bind(now)
            .bind(i64::from(self.settings.max_per_user.max(1)))
            .fetch_all(&mut *trim)
            .await?;
            let mut ended = Vec::new();
            for row in rows {
                let sid: Option<String> = row.try_get("sid")?;
                let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                let last_used_at: i64 = row.try_get("last_used_at")?;
                if let Some(sid) = sid
                    && revoked_at.is_none()
                    && self.revocations.may_be_live(last_used_at, now)
                {
                    ended.push(sid);
                }
            }
            self.revocations.record_in(&mut trim, &ended, now).await?;
            Ok::<_, StoreError>(ended)
        }
        .await;
        match trimmed {
            Ok(ended) => {
                trim.commit().await?;
                Ok(ended)
            }
            Err(e) => {
                tracing::warn!(target: "authd::sessions", error = %e, "could not trim old sessions");
                trim.rollback().await?;
                Ok(Vec::new())
            }
        }
    }

    /// Spends `presented` and issues its successor, atomically: of N concurrent calls with the
    /// same token exactly one succeeds. Any earlier token of the session revokes it
    /// ([`SessionError::Reused`]).
    pub async fn rotate(&self, presented: &str, now: i64) -> Result<Rotated, SessionError> {
        self.rotate_then(presented, now, |r| {
            Some(Rotated {
                username: r.username.clone(),
                refresh_token: RefreshToken(r.refresh_token.0.clone()),
                sid: r.sid.clone(),
            })
        })
        .await
    }

    /// [`Sessions::rotate`], with the caller's answer made by `answer` while the session's row
    /// is still held, before the rotation commits: once it is visible to a logout, the refresh's
    /// answer is ready, so a refresh that commits first also answers first (a logout waiting on
    /// the row still has its own commit to make). `answer` returning `None` (the user is gone,
    /// say) ends the session instead, and the call fails with [`SessionError::Invalid`].
    pub async fn rotate_then<T>(
        &self,
        presented: &str,
        now: i64,
        answer: impl FnOnce(&Rotated) -> Option<T>,
    ) -> Result<T, SessionError> {
        let presented = Presented::parse(presented).ok_or(SessionError::Invalid)?;
        let (token, next) = new_token(&presented.lookup_bytes)?;
        let ttl = secs(self.settings.refresh_ttl);
        // One conditional UPDATE of the session's row is the spend and the liveness check
        // together. Every condition is on that row, so on PostgreSQL a rotation that waited for
        // the row lock of a concurrent logout (or rotation) re-checks them on the row as that
        // transaction left it (READ COMMITTED's re-evaluation of an UPDATE's WHERE), and finds it
        // ended (or spent): once a logout has committed, no rotation of its session succeeds.
        // It takes the same lock a `SELECT ... FOR UPDATE` would, in one statement that SQLite
        // also runs (there, the UPDATE opening the transaction takes the one writer's lock). The
        // `lookup` assignment is a no-op except on the first refresh of a session from before
        // migration 0002, which adopts it.
        let mut answer = Some(answer);
        // A session from before migration 0003 gets its sid at its first refresh.
        let sid = random_id()?;
        let outcome = self
            .store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                let row = sqlx::query(
                    "UPDATE session_families SET token_digest = $1, lookup = $2, \
                     last_used_at = $3, \
                     token_expires_at = CASE WHEN expires_at < $4 THEN expires_at ELSE $4 END, \
                     sid = COALESCE(sid, $6) \
                     WHERE token_digest = $5 AND revoked_at IS NULL \
                     AND expires_at > $3 AND token_expires_at > $3 \
                     RETURNING id, username, sid",
                )
                .bind(&next.digest)
                .bind(&presented.lookup)
                .bind(now)
                .bind(now.saturating_add(ttl))
                .bind(&presented.digest)
                .bind(&sid)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let family: String = row.try_get("id")?;
                let rotated = Rotated {
                    username: row.try_get("username")?,
                    refresh_token: RefreshToken(token.0.clone()),
                    sid: row.try_get("sid")?,
                };
                let made = answer.take().and_then(|f| f(&rotated));
                if made.is_none() {
                    sqlx::query("UPDATE session_families SET revoked_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(&family)
                        .execute(&mut *tx)
                        .await?;
                    self.revocations
                        .record_in(&mut tx, std::slice::from_ref(&rotated.sid), now)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some((made, rotated.sid)))
            })
            .await?;
        match outcome {
            Some((Some(made), _)) => return Ok(made),
            Some((None, sid)) => {
                self.revocations.remember(&[sid], now);
                return Err(SessionError::Invalid);
            }
            None => {}
        }
        // Not rotated: unknown, expired, revoked, or an earlier token of a session. An earlier
        // token means reuse: a thief or the rightful client holds a copy, and the session cannot
        // tell which, so it ends.
        let revoked = self
            .store
            .bounded(async {
                let found = sqlx::query(
                    "SELECT id, token_digest FROM session_families \
                     WHERE lookup = $1 OR token_digest = $2 \
                     OR id IN (SELECT family_id FROM refresh_tokens WHERE digest = $2)",
                )
                .bind(&presented.lookup)
                .bind(&presented.digest)
                .fetch_optional(self.store.pool())
                .await?;
                let Some(found) = found else {
                    return Ok(None);
                };
                let current: Option<String> = found.try_get("token_digest")?;
                if current.as_deref() == Some(presented.digest.as_str()) {
                    // The current token of a session that has ended: nothing to revoke.
                    return Ok(None);
                }
                let family: String = found.try_get("id")?;
                let (n, _) = self.end_where("id = $2", &family, now).await?;
                Ok(Some((family, n)))
            })
            .await?;
        match revoked {
            Some((family, n)) => {
                if n > 0 {
                    tracing::warn!(
                        target: "authd::sessions",
                        family = %family,
                        "refresh token reused: session revoked"
                    );
                }
                Err(SessionError::Reused)
            }
            None => Err(SessionError::Invalid),
        }
    }

    /// Revokes the session `presented` (any of its tokens) belongs to. Whether anything was
    /// revoked; a token that is not one of ours is no error (RFC 7009 §2.2). Once this has
    /// returned, no rotation of that session succeeds (see [`Sessions::rotate`]).
    pub async fn revoke(&self, presented: &str, now: i64) -> Result<bool, StoreError> {
        let Some(presented) = Presented::parse(presented) else {
            return Ok(false);
        };
        self.store
            .bounded(async {
                // `lookup` does not change when the session rotates, so a logout that waited for
                // a rotation's row lock still matches the row as the rotation left it.
                let mut tx = self.store.pool().begin().await?;
                let rows = sqlx::query(
                    "UPDATE session_families SET revoked_at = $1 \
                     WHERE revoked_at IS NULL \
                     AND (lookup = $2 OR token_digest = $3 \
                          OR id IN (SELECT family_id FROM refresh_tokens WHERE digest = $3)) \
                     RETURNING sid",
                )
                .bind(now)
                .bind(&presented.lookup)
                .bind(&presented.digest)
                .fetch_all(&mut *tx)
                .await?;
                let ended = self.record_ended(&mut tx, &rows, now).await?;
                tx.commit().await?;
                self.revocations.remember(&ended, now);
                Ok(!rows.is_empty())
            })
            .await
    }

    /// Revokes every live session of `username`, and with them the access tokens issued in them;
    /// how many there were.
    pub async fn revoke_user(&self, username: &str, now: i64) -> Result<u64, StoreError> {
        self.store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                let rows = sqlx::query(
                    "UPDATE session_families SET revoked_at = $1 \
                     WHERE username = $2 AND revoked_at IS NULL AND expires_at > $1 \
                     RETURNING sid",
                )
                .bind(now)
                .bind(username)
                .fetch_all(&mut *tx)
                .await?;
                let ended = self.record_ended(&mut tx, &rows, now).await?;
                tx.commit().await?;
                self.revocations.remember(&ended, now);
                Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
            })
            .await
    }

    /// Ends the session whose tokens carry `sid` (a sign-out), and with it those tokens: the sid
    /// is recorded as revoked even when its session is gone already. Whether a live session
    /// ended.
    pub async fn end_by_id(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        if crate::revocations::parse_sid(sid).is_none() {
            return Ok(false);
        }
        let (ended, _) = self
            .store
            .bounded(async { self.end_where("sid = $2", sid, now).await })
            .await?;
        if ended == 0 {
            let sids = [sid.to_owned()];
            self.store
                .bounded(async {
                    let mut tx = self.store.pool().begin().await?;
                    self.revocations.record_in(&mut tx, &sids, now).await?;
                    tx.commit().await?;
                    Ok(())
                })
                .await?;
            self.revocations.remember(&sids, now);
        }
        Ok(ended > 0)
    }

    /// Ends the live session whose `column` (in `condition`, as `$2`) is `value`, recording it
    /// as revoked, in one transaction; how many sessions ended, and their sids.
    async fn end_where(
        &self,
        condition: &str,
        value: &str,
        now: i64,
    ) -> Result<(usize, Vec<String>), StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let rows = sqlx::query(&format!(
            "UPDATE session_families SET revoked_at = $1 \
             WHERE {condition} AND revoked_at IS NULL RETURNING sid"
        ))
        .bind(now)
        .bind(value)
        .fetch_all(&mut *tx)
        .await?;
        let ended = self.record_ended(&mut tx, &rows, now).await?;
        tx.commit().await?;
        self.revocations.remember(&ended, now);
        Ok((rows.len(), ended))
    }

    /// Records the sessions of `rows` (each with its `sid`, none for a session never refreshed
    /// since before migration 0003, whose tokens carry none) as revoked; their sids.
    async fn record_ended(
        &self,
        conn: &mut AnyConnection,
        rows: &[sqlx::any::AnyRow],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut sids = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(sid) = row.try_get::<Option<String>, _>("sid")? {
                sids.push(sid);
            }
        }
        self.revocations.record_in(conn, &sids, now).await?;
        Ok(sids)
    }

    /// Live sessions (not revoked, not expired, with a usable token), of one user or all.
    pub async fn list(
        &self,
        username: Option<&str>,
        now: i64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        const SELECT: &str = "SELECT id, username, created_at, last_used_at, expires_at, \
             token_expires_at FROM session_families \
             WHERE revoked_at IS NULL AND expires_at > $1 AND token_expires_at > $1";
        const ORDER: &str = "ORDER BY username, created_at, started_order";
        let sql = match username {
            Some(_) => format!("{SELECT} AND username = $2 {ORDER}"),
            None => format!("{SELECT} {ORDER}"),
        };
        self.store
            .bounded(async {
                let mut query = sqlx::query(&sql).bind(now);
                if let Some(name) = username {
                    query = query.bind(name);
                }
                let rows = query.fetch_all(self.store.pool()).await?;
                let mut sessions = Vec::with_capacity(rows.len());
                for row in rows {
                    sessions.push(SessionInfo {
                        id: row.try_get("id")?,
                        username: row.try_get("username")?,
                        created_at: row.try_get("created_at")?,
                        last_used_at: row.try_get("last_used_at")?,
                        idle_expires_at: row.try_get("token_expires_at")?,
                        expires_at: row.try_get("expires_at")?,
                    });
                }
                Ok(sessions)
            })
            .await
    }

    /// Up to `limit` live sessions (as [`Sessions::list`] counts them) whose ids come after
    /// `after`, in id order: `authd sessions export` pages through them this way, so that each
    /// page is one bounded query.
    pub async fn export_page(
        &self,
        now: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.store
            .bounded(async {
                let rows = sqlx::query(
                    "SELECT id, username, created_at, last_used_at, expires_at, \
                     token_expires_at, token_digest, lookup, started_order, sid \
                     FROM session_families \
                     WHERE revoked_at IS NULL AND expires_at > $1 AND token_expires_at > $1 \
                     AND token_digest IS NOT NULL AND id > $2 \
                     ORDER BY id LIMIT $3",
                )
                .bind(now)
                .bind(after)
                .bind(limit)
                .fetch_all(self.store.pool())
                .await?;
                let mut page = Vec::with_capacity(rows.len());
                for row in rows {
                    page.push(SessionRecord {
                        id: row.try_get("id")?,
                        username: row.try_get("username")?,
                        created_at: row.try_get("created_at")?,
                        last_used_at: row.try_get("last_used_at")?,
                        expires_at: row.try_get("expires_at")?,
                        token_expires_at: row.try_get("token_expires_at")?,
                        token_digest: row.try_get("token_digest")?,
                        lookup: row.try_get("lookup")?,
                        started_order: row.try_get("started_order")?,
                        sid: row.try_get("sid")?,
                    });
                }
                Ok(page)
            })
            .await
    }

    /// Starts writing exported sessions into the store, in one transaction.
    pub async fn import(&self) -> Result<Import, StoreError> {
        let tx = self
            .store
            .bounded(async { Ok(self.store.pool().begin().await?) })
            .await?;
        Ok(Import {
            store: self.store.clone(),
            tx,
        })
    }

    /// Deletes up to `batch` dead sessions (past their lifetime, or their current token past
    /// its idle expiry, revoked ones included) and up to `batch` expired tokens from before
    /// migration 0002; how many rows went. A session's row is all that recognises its earlier
    /// tokens, so it stays as long as the session could otherwise be refreshed.
    pub async fn remove_expired(&self, now: i64, batch: i64) -> Result<u64, StoreError> {
        self.store
            .bounded(async {
                let tokens = sqlx::query(
                    "DELETE FROM refresh_tokens WHERE digest IN \
                     (SELECT digest FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
                )
                .bind(now)
                .bind(batch)
                .execute(self.store.pool())
                .await?;
                let families = sqlx::query(
                    // The condition again outside the subquery: checked on the row as it is
                    // when the delete reaches it, not as the subquery's snapshot saw it.
                    "DELETE FROM session_families WHERE id IN \
                     (SELECT id FROM session_families \
                      WHERE expires_at <= $1 OR token_expires_at <= $1 LIMIT $2) \
                     AND (expires_at <= $1 OR token_expires_at <= $1)",
                )
                .bind(now)
                .bind(batch)
                .execute(self.store.pool())
                .await?;
                Ok(tokens.rows_affected() + families.rows_affected())
            })
            .await
    }
}

/// What [`Sessions::new_session`] made for a session about to be written.
struct NewSession {
    family: String,
    sid: String,
    presented: Presented,
    now: i64,
    expires_at: i64,
    token_expires_at: i64,
}

/// Random bytes every token of one session starts with; the rest of a token is fresh each time.
const LOOKUP_BYTES: usize = 16;
/// Bytes of a refresh token: the session's lookup bytes, then 16 bytes of its own.
const TOKEN_BYTES: usize = 32;

/// A refresh token as presented, digested: SHA-256 of the whole token (the current token is
/// stored under it) and of its first 16 bytes (the session's `lookup`, the same in every token
/// of the session, so an earlier token is recognised). Neither digest gives a token back.
struct Presented {
    digest: String,
    lookup: String,
    lookup_bytes: [u8; LOOKUP_BYTES],
}

impl Presented {
    /// `None` when `presented` cannot be one of ours (an access token, say): such input never
    /// reaches the database.
    fn parse(presented: &str) -> Option<Self> {
        let ours = presented.len() == REFRESH_TOKEN_LEN
            && presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ours {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(presented).ok()?;
        let lookup_bytes: [u8; LOOKUP_BYTES] = bytes.get(..LOOKUP_BYTES)?.try_into().ok()?;
        Some(Self {
            digest: digest(presented.as_bytes()),
            lookup: digest(&lookup_bytes),
            lookup_bytes,
        })
    }
}

/// When a session started, in wall-clock nanoseconds: orders sessions started within one second.
fn started_order() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A fresh token of the session whose tokens start with `lookup`, and its digests.
fn new_token(lookup: &[u8; LOOKUP_BYTES]) -> Result<(RefreshToken, Presented), SessionError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    bytes[..LOOKUP_BYTES].copy_from_slice(lookup);
    getrandom::fill(&mut bytes[LOOKUP_BYTES..]).map_err(|e| SessionError::Random(e.to_string()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let presented = Presented {
        digest: digest(token.as_bytes()),
        lookup: digest(lookup),
        lookup_bytes: *lookup,
    };
    Ok((RefreshToken(token), presented))
}

fn random_id() -> Result<String, SessionError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_43_base64url_chars_distinct_and_share_their_sessions_lookup() {
        let lookup = [7u8; LOOKUP_BYTES];
        let (a, da) = new_token(&lookup).unwrap();
        let (b, db) = new_token(&lookup).unwrap();
        assert_eq!(a.0.len(), REFRESH_TOKEN_LEN);
        assert_ne!(a.0, b.0);
        assert_ne!(da.digest, db.digest);
        assert_eq!(da.lookup, db.lookup);
        let parsed = Presented::parse(&a.0).unwrap();
        assert_eq!(parsed.digest, da.digest);
        assert_eq!(parsed.lookup, da.lookup);
        assert_ne!(parsed.lookup, parsed.digest);
        assert!(!format!("{a:?}").contains(&a.0));
    }

    #[test]
    fn jwts_and_junk_are_not_refresh_tokens() {
        for junk in [
            "",
            "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoiYSJ9.c2ln",
            "not a token",
            &"A".repeat(44),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        ] {
            assert!(Presented::parse(junk).is_none(), "{junk}");
        }
    }
}
