//! Brute-force protection for `/login`: attempts are counted per username and per client address
//! in the store (so every instance sees the same counts), over a fixed window; past the limit a
//! bucket is banned for a while and attempts are refused before any password is hashed.
//! Plain Rust over the [`Store`]; every function takes `now` (seconds since the Unix epoch).
//!
//! An attempt is counted as a failure when it starts and forgiven when it succeeds, so that N
//! concurrent guesses cannot all slip in before the first failure is recorded.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::Row as _;

use crate::store::{Store, StoreError, digest};

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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An attempt admitted by [`Throttle::begin`], counted as failed until
/// [`Throttle::succeeded`] says otherwise.
#[derive(Debug)]
pub struct Attempt {
    user: String,
    address: String,
}

/// Login attempt counters in the store.
#[derive(Debug, Clone)]
pub struct Throttle {
    store: Store,
    settings: ThrottleSettings,
}

impl Throttle {
    /// Counters kept in `store`.
    pub fn new(store: Store, settings: ThrottleSettings) -> Self {
        Self { store, settings }
    }

    /// Counts an attempt by `username` from `address`, or refuses it while either is banned.
    /// The address is checked first, so that a banned address cannot add to a user's count.
    pub async fn begin(
        &self,
        username: &str,
        address: IpAddr,
        now: i64,
    ) -> Result<Attempt, ThrottleError> {
        let attempt = Attempt {
            user: bucket("user", username),
            address: bucket("address", &address_key(address)),
        };
        self.count(&attempt.address, self.settings.address_max, now)
            .await?;
        self.count(&attempt.user, self.settings.user_max, now)
            .await?;
        Ok(attempt)
    }

    /// The attempt succeeded: the user's count starts again, and the address is forgiven this
    /// attempt (not its earlier failures).
    pub async fn succeeded(&self, attempt: &Attempt, _now: i64) -> Result<(), StoreError> {
        self.store
            .bounded(async {
                sqlx::query("DELETE FROM login_throttle WHERE bucket = $1")
                    .bind(&attempt.user)
                    .execute(self.store.pool())
                    .await?;
                sqlx::query(
                    "UPDATE login_throttle SET failures = failures - 1 \
                     WHERE bucket = $1 AND failures > 0",
                )
                .bind(&attempt.address)
                .execute(self.store.pool())
                .await?;
                Ok(())
            })
            .await
    }

    /// The attempt was never judged (password hashing was saturated, 503): it is taken back from
    /// both counts, so that load alone cannot get a user or an address banned.
    pub async fn withdrawn(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.store
            .bounded(async {
                for bucket in [&attempt.user, &attempt.address] {
                    sqlx::query(
                        "UPDATE login_throttle SET failures = failures - 1 \
                         WHERE bucket = $1 AND failures > 0",
                    )
                    .bind(bucket)
                    .execute(self.store.pool())
                    .await?;
                }
                Ok(())
            })
            .await
    }

    /// Deletes up to `batch` counters whose window and ban are both over; how many went.
    pub async fn remove_expired(&self, now: i64, batch: i64) -> Result<u64, StoreError> {
        let window = secs(self.settings.window);
        self.store
            .bounded(async {
                let done = sqlx::query(
                    "DELETE FROM login_throttle WHERE bucket IN \
                     (SELECT bucket FROM login_throttle \
                      WHERE window_start <= $1 - $2 AND banned_until <= $1 LIMIT $3)",
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

    /// Adds one attempt to `bucket` in one atomic upsert; refuses when the bucket is banned or
    /// this attempt goes past `max` (which starts the ban).
    async fn count(&self, bucket: &str, max: u32, now: i64) -> Result<(), ThrottleError> {
        let window = secs(self.settings.window);
        let ban = secs(self.settings.ban);
        // Every SET expression sees the row as it was before this statement.
        let banned_until: i64 = self
            .store
            .bounded(async {
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
                     RETURNING banned_until",
                )
                .bind(bucket)
                .bind(now)
                .bind(window)
                .bind(i64::from(max))
                .bind(ban)
                .fetch_one(self.store.pool())
                .await?;
                Ok(row.try_get("banned_until")?)
            })
            .await?;
        if banned_until > now {
            let retry_after = u64::try_from(banned_until - now).unwrap_or(1).max(1);
            return Err(ThrottleError::Limited { retry_after });
        }
        Ok(())
    }
}

/// A counter's key: a digest, so that the store holds no usernames (people type passwords into
/// the username field) and no addresses.
fn bucket(kind: &str, value: &str) -> String {
    digest(format!("{kind}\0{value}").as_bytes())
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
    fn buckets_do_not_hold_the_name() {
        let b = bucket("user", "alice");
        assert_eq!(b.len(), 64);
        assert!(!b.contains("alice"));
        assert_ne!(b, bucket("address", "alice"));
    }
}
