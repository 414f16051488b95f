//! Sessions: refresh-token families (RFC 9700 §4.14.2). A login starts a family; a refresh spends
//! the presented token and issues the next one in one atomic step; presenting a spent token again
//! revokes the whole family. Tokens are 256-bit random, base64url, stored only as SHA-256 digests.
//! Plain Rust over the [`Store`]; every function takes `now` (seconds since the Unix epoch).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::Row as _;

use crate::store::{Store, StoreError, digest, hex};

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
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(14 * 24 * 60 * 60),
            lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            max_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
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

/// A successful refresh: whose session it is, and the token that replaces the spent one.
#[derive(Debug)]
pub struct Rotated {
    /// The user the session belongs to.
    pub username: String,
    /// The next refresh token.
    pub refresh_token: RefreshToken,
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

/// Refresh-token families in the store.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    settings: SessionSettings,
}

impl Sessions {
    /// Sessions kept in `store`.
    pub fn new(store: Store, settings: SessionSettings) -> Self {
        Self { store, settings }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts a session for `username` (after a successful login) and returns its first token.
    pub async fn start(&self, username: &str, now: i64) -> Result<RefreshToken, SessionError> {
        let family = random_id()?;
        let (token, token_digest) = new_token()?;
        let family_expires = now.saturating_add(secs(self.settings.lifetime));
        let token_expires = now
            .saturating_add(secs(self.settings.refresh_ttl))
            .min(family_expires);
        self.store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                sqlx::query(
                    "INSERT INTO session_families \
                     (id, username, created_at, last_used_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $3, $4, NULL)",
                )
                .bind(&family)
                .bind(username)
                .bind(now)
                .bind(family_expires)
                .execute(&mut *tx)
                .await?;
                insert_token(&mut tx, &token_digest, &family, now, token_expires).await?;
                tx.commit().await?;
                Ok(())
            })
            .await?;
        Ok(token)
    }

    /// Spends `presented` and issues its successor, atomically: of N concurrent calls with the
    /// same token exactly one succeeds. A token already spent revokes its family
    /// ([`SessionError::Reused`]).
    pub async fn rotate(&self, presented: &str, now: i64) -> Result<Rotated, SessionError> {
        let presented_digest = token_digest(presented).ok_or(SessionError::Invalid)?;
        let (token, next_digest) = new_token()?;
        let ttl = secs(self.settings.refresh_ttl);
        let rotated = self
            .store
            .bounded(async {
                let mut tx = self.store.pool().begin().await?;
                // The conditional UPDATE is the lock: only one caller sees the row unspent.
                let spent = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $1 \
                     WHERE digest = $2 AND used_at IS NULL AND expires_at > $1 \
                     AND family_id IN (SELECT id FROM session_families \
                                       WHERE revoked_at IS NULL AND expires_at > $1) \
                     RETURNING family_id",
                )
                .bind(now)
                .bind(&presented_digest)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(spent) = spent else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let family: String = spent.try_get("family_id")?;
                let row = sqlx::query(
                    "UPDATE session_families SET last_used_at = $1 WHERE id = $2 \
                     RETURNING username, expires_at",
                )
                .bind(now)
                .bind(&family)
                .fetch_one(&mut *tx)
                .await?;
                let username: String = row.try_get("username")?;
                let family_expires: i64 = row.try_get("expires_at")?;
                let expires = now.saturating_add(ttl).min(family_expires);
                insert_token(&mut tx, &next_digest, &family, now, expires).await?;
                tx.commit().await?;
                Ok(Some(username))
            })
            .await?;
        if let Some(username) = rotated {
            return Ok(Rotated {
                username,
                refresh_token: token,
            });
        }
        // Not rotated: unknown, expired, revoked, or spent. Spent means reuse: a thief or the
        // rightful client holds a copy, and the family cannot tell which, so it ends.
        let revoked = self
            .store
            .bounded(async {
                let spent = sqlx::query(
                    "SELECT family_id FROM refresh_tokens WHERE digest = $1 AND used_at IS NOT NULL",
                )
                .bind(&presented_digest)
                .fetch_optional(self.store.pool())
                .await?;
                let Some(spent) = spent else {
                    return Ok(None);
                };
                let family: String = spent.try_get("family_id")?;
                let done = sqlx::query(
                    "UPDATE session_families SET revoked_at = $1 \
                     WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&family)
                .execute(self.store.pool())
                .await?;
                Ok(Some((family, done.rows_affected())))
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

    /// Revokes the session `presented` belongs to. Whether anything was revoked; a token that
    /// is not one of ours is no error (RFC 7009 §2.2).
    pub async fn revoke(&self, presented: &str, now: i64) -> Result<bool, StoreError> {
        let Some(presented_digest) = token_digest(presented) else {
            return Ok(false);
        };
        self.store
            .bounded(async {
                let done = sqlx::query(
                    "UPDATE session_families SET revoked_at = $1 \
                     WHERE revoked_at IS NULL \
                     AND id = (SELECT family_id FROM refresh_tokens WHERE digest = $2)",
                )
                .bind(now)
                .bind(&presented_digest)
                .execute(self.store.pool())
                .await?;
                Ok(done.rows_affected() > 0)
            })
            .await
    }

    /// Revokes every live session of `username`; how many there were.
    pub async fn revoke_user(&self, username: &str, now: i64) -> Result<u64, StoreError> {
        self.store
            .bounded(async {
                let done = sqlx::query(
                    "UPDATE session_families SET revoked_at = $1 \
                     WHERE username = $2 AND revoked_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(username)
                .execute(self.store.pool())
                .await?;
                Ok(done.rows_affected())
            })
            .await
    }

    /// Live sessions (not revoked, not expired, with a usable token), of one user or all.
    pub async fn list(
        &self,
        username: Option<&str>,
        now: i64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        const SELECT: &str = "SELECT f.id, f.username, f.created_at, f.last_used_at, \
             f.expires_at, t.expires_at AS idle_expires_at \
             FROM session_families f JOIN refresh_tokens t ON t.family_id = f.id \
             WHERE f.revoked_at IS NULL AND f.expires_at > $1 \
             AND t.used_at IS NULL AND t.expires_at > $1";
        let sql = match username {
            Some(_) => format!("{SELECT} AND f.username = $2 ORDER BY f.username, f.created_at"),
            None => format!("{SELECT} ORDER BY f.username, f.created_at"),
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
                        idle_expires_at: row.try_get("idle_expires_at")?,
                        expires_at: row.try_get("expires_at")?,
                    });
                }
                Ok(sessions)
            })
            .await
    }

    /// Deletes up to `batch` expired tokens and up to `batch` dead sessions (past their
    /// lifetime, or with no token left); how many rows went. Spent tokens stay until they expire,
    /// so that reuse is recognised until then.
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
                    "DELETE FROM session_families WHERE id IN \
                     (SELECT f.id FROM session_families f WHERE f.expires_at <= $1 \
                      OR NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id) \
                      LIMIT $2)",
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

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token_digest: &str,
    family: &str,
    now: i64,
    expires: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (digest, family_id, issued_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(token_digest)
    .bind(family)
    .bind(now)
    .bind(expires)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A fresh token and its digest.
fn new_token() -> Result<(RefreshToken, String), SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let d = digest(token.as_bytes());
    Ok((RefreshToken(token), d))
}

/// The digest a presented token is stored under, or `None` when it cannot be one of ours (an
/// access token, say): such input never reaches the database.
fn token_digest(presented: &str) -> Option<String> {
    let ours = presented.len() == REFRESH_TOKEN_LEN
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ours.then(|| digest(presented.as_bytes()))
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
    fn new_tokens_are_43_base64url_chars_and_distinct() {
        let (a, da) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_eq!(a.0.len(), REFRESH_TOKEN_LEN);
        assert_ne!(a.0, b.0);
        assert_eq!(token_digest(&a.0), Some(da));
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
            assert_eq!(token_digest(junk), None, "{junk}");
        }
    }
}
