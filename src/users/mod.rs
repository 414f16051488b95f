//! Who may log in: the users file (htpasswd format: `name:hash` a line, `#` comments, blank lines
//! ignored) or the demo user, and checking a name and password against them; and the groups each
//! is in (the groups file, [`groups`]).

pub mod groups;
mod legacy;
mod password;
mod pool;
pub(crate) mod rewrite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use crate::keys::DerivedKey;

pub use groups::{Groups, GroupsError};
pub use password::{
    ARGON2_M_COST_KIB, ARGON2_MAX_M_COST_KIB, ARGON2_MAX_P_COST, ARGON2_MAX_T_COST, ARGON2_P_COST,
    ARGON2_T_COST, BCRYPT_COSTS, BCRYPT_MAX_PASSWORD, HashFormatError, StoredHash, hash_password,
};
pub use pool::{Busy, HashPool, Slot};

/// Why a users file was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read users file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `name:hash` with a supported hash.
    #[error("users file {path}, line {line}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the hash itself).
        reason: String,
    },
    /// The file names no user at all.
    #[error("users file {path} has no users; add lines `name:hash` (see `authd hash-password`)")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The users who may log in, with their password hashes.
pub struct Users {
    /// Current hashes by name; an entry changes when a login rehashes it.
    by_name: RwLock<HashMap<String, StoredHash>>,
    /// Every name, sorted: an unknown name is checked against the hash of one of them (its
    /// decoy), so that it costs the time of a real entry's check. Its answer is thrown away.
    names: Vec<String>,
    /// Picks an unknown name's decoy: the same name always gets the same entry, and without the
    /// secret nobody can tell which.
    decoy_key: DerivedKey,
    /// The file the users came from, rewritten when a login rehashes an entry.
    file: Option<PathBuf>,
    /// One rewrite of the file at a time.
    rewriting: Mutex<()>,
    /// Who is in which group (none without a groups file).
    groups: Groups,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("len", &self.names.len())
            .field("file", &self.file)
            .field("in_groups", &self.groups.members())
            .finish_non_exhaustive()
    }
}

/// The label of the key that picks decoys (see [`DerivedKey`]).
const DECOY_KEY_LABEL: &str = "authd decoy entries v1";

impl Users {
    /// Reads and checks a users file, warns when its entries cost differently or are bcrypt, and
    /// keys the choice of decoys with `secret`. No hashing happens here, so start-up stays fast.
    pub fn load(path: &Path, secret: &[u8]) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut users = Self::parse(&text, &shown)?;
        users.decoy_key = DerivedKey::derive(secret, DECOY_KEY_LABEL);
        users.file = Some(path.to_owned());
        users.warn_about_costs(&shown);
        Ok(users)
    }

    /// Parses the htpasswd text of a users file; `origin` names it in errors. Decoys are keyed
    /// with an empty secret until [`Users::load`] gives one.
    pub fn parse(text: &str, origin: &str) -> Result<Self, UsersError> {
        let mut by_name = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason: &str| UsersError::Malformed {
                path: origin.to_owned(),
                line: i + 1,
                reason: reason.to_owned(),
            };
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| malformed("expected `name:hash`"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(malformed("empty user name"));
            }
            let stored = StoredHash::parse(hash.trim()).map_err(|e| malformed(&e.to_string()))?;
            if stored.is_legacy() {
                tracing::warn!(
                    file = origin,
                    line = i + 1,
                    kind = stored.cost(),
                    "users file entry with a hash that is cheap to crack offline, accepted for \
                     checking only: it is rehashed to argon2id at the user's next successful \
                     login (or replace it: `authd hash-password`, `htpasswd -B -C 12`)"
                );
            }
            if by_name.contains_key(name) {
                return Err(malformed(&format!("user `{name}` appears twice")));
            }
            by_name.insert(name.to_owned(), stored);
        }
        if by_name.is_empty() {
            return Err(UsersError::Empty {
                path: origin.to_owned(),
            });
        }
        Ok(Self::from_map(by_name, None))
    }

    fn from_map(by_name: HashMap<String, StoredHash>, file: Option<PathBuf>) -> Self {
        let mut names: Vec<String> = by_name.keys().cloned().collect();
        names.sort();
        Self {
            by_name: RwLock::new(by_name),
            names,
            decoy_key: DerivedKey::derive(b"", DECOY_KEY_LABEL),
            file,
            rewriting: Mutex::new(()),
            groups: Groups::default(),
        }
    }

    /// The same users, in `groups`.
    #[must_use]
    pub fn with_groups(self, groups: Groups) -> Self {
        Self { groups, ..self }
    }

    /// The groups `name` is in, sorted; empty for a user in none (or no user at all).
    pub fn groups_of(&self, name: &str) -> &[String] {
        self.groups.of(name)
    }

    /// The demo user of the tutorial, `user` / `password`, hashed once here.
    pub fn demo() -> Result<Self, argon2::password_hash::Error> {
        let stored = StoredHash::Argon2(hash_password(b"password")?);
        Ok(Self::from_map(
            HashMap::from([("user".to_owned(), stored)]),
            None,
        ))
    }

    /// Warns, naming no user, when the entries' costs differ (a login's time then tells which
    /// kind of entry a name has) and when some are bcrypt (72-byte limit).
    fn warn_about_costs(&self, shown: &str) {
        let entries = self.read();
        let mut costs: Vec<String> = entries.values().map(StoredHash::cost).collect();
        costs.sort();
        costs.dedup();
        if costs.len() > 1 {
            tracing::warn!(
                file = shown,
                costs = costs.join("; "),
                "users file entries use different algorithms or costs, so a login's time tells \
                 which kind of entry a name has (an unknown name costs what one real entry \
                 costs); each entry is rehashed to argon2id with the current setting at its next \
                 successful login"
            );
        }
        let bcrypt = entries.values().filter(|h| h.is_bcrypt()).count();
        if bcrypt > 0 {
            tracing::warn!(
                file = shown,
                entries = bcrypt,
                "users file has bcrypt entries: bcrypt reads only the first {BCRYPT_MAX_PASSWORD} \
                 bytes of a password, so longer passwords are refused for them; they are \
                 rehashed to argon2id at their next successful login, or rehash them now with \
                 `authd hash-password`"
            );
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, StoredHash>> {
        // A panic while the lock was held cannot leave the map half-changed (one insert).
        self.by_name
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether `name` is a user (no hashing).
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Whether there are none (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `name` and `password` match an entry. Slow by design (one password hash) whether
    /// or not the name exists; run it through a [`HashPool`]. A match against an outdated entry
    /// (bcrypt, or argon2 with other parameters) rehashes it with the current setting, in memory
    /// and in the users file.
    pub fn check(&self, name: &str, password: &[u8]) -> bool {
        let stored = self.read().get(name).cloned();
        match stored {
            Some(stored) => {
                let ok = stored.verify(password);
                if ok && stored.is_outdated() {
                    self.rehash(name, &stored, password);
                }
                ok
            }
            None => {
                let _ = self.decoy(name).map(|d| d.verify(password));
                false
            }
        }
    }

    /// The entry whose hash an unknown `name` is checked against: chosen by a keyed MAC of the
    /// name, read at the time of the check (so that a rehashed entry's decoys cost what it costs
    /// now).
    fn decoy(&self, name: &str) -> Option<StoredHash> {
        let mac = self.decoy_key.mac(name.as_bytes());
        let mut pick = [0u8; 8];
        pick.copy_from_slice(&mac[..8]);
        let n = u64::try_from(self.names.len()).ok().filter(|n| *n > 0)?;
        let index = usize::try_from(u64::from_le_bytes(pick) % n).ok()?;
        self.read().get(self.names.get(index)?).cloned()
    }

    /// Replaces `old`, the entry of `name`, with a new argon2id hash of `password`: in memory,
    /// then in the file (atomically). Failures are logged; the login has succeeded either way.
    fn rehash(&self, name: &str, old: &StoredHash, password: &[u8]) {
        let new = match hash_password(password) {
            Ok(h) => StoredHash::Argon2(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot rehash a users file entry");
                return;
            }
        };
        {
            let mut entries = self
                .by_name
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match entries.get_mut(name) {
                Some(current) if current == old => *current = new.clone(),
                // Another login rehashed it first.
                _ => return,
            }
        }
        let Some(file) = &self.file else { return };
        let _one_at_a_time = self
            .rewriting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match rewrite::replace_entry(file, name, old.as_str(), new.as_str()) {
            Ok(true) => tracing::info!(
                file = %file.display(),
                "a users file entry was rehashed to argon2id at login"
            ),
            Ok(false) => tracing::warn!(
                file = %file.display(),
                "cannot rewrite the users file: the entry changed since it was read; the new \
                 hash is used until the next start"
            ),
            Err(e) => tracing::warn!(
                file = %file.display(),
                error = %e,
                "cannot rewrite the users file; the new hash is used until the next start"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcrypt_line(name: &str, pw: &str) -> String {
        format!(
            "{name}:{}",
            bcrypt::hash(pw, 4).unwrap().replacen("$2b$", "$2y$", 1)
        )
    }

    #[test]
    fn users_file_with_comments_blank_lines_argon2_and_bcrypt_is_read() {
        let text = format!(
            "# users\n\n{}\n  {}  \n",
            format_args!("alice:{}", hash_password(b"wonderland").unwrap()),
            bcrypt_line("bob", "builder")
        );
        let users = Users::parse(&text, "test").unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.check("alice", b"wonderland"));
        assert!(users.check("bob", b"builder"));
        assert!(!users.check("alice", b"builder"));
        assert!(!users.check("carol", b"wonderland"));
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        let good = bcrypt_line("bob", "x");
        for (text, line) in [
            (format!("{good}\nno-colon-here\n"), 2),
            (format!("# c\n\n:{}\n", &good[4..]), 3),
            (format!("{good}\neve:$apr1$abc$def\n"), 2),
            (format!("{good}\n{good}\n"), 2),
        ] {
            match Users::parse(&text, "f") {
                Err(UsersError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("expected malformed at {line}, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_line_error_does_not_echo_the_hash() {
        let err = Users::parse("eve:$2y$10$tooshortsecretish\n", "f").unwrap_err();
        assert!(!err.to_string().contains("tooshortsecretish"), "{err}");
    }

    #[test]
    fn an_unknown_name_always_gets_the_same_decoy_and_names_spread_over_entries() {
        let text = format!(
            "a:{}\nb:{}\n",
            bcrypt_line("x", "1").split_once(':').unwrap().1,
            hash_password(b"2").unwrap()
        );
        let mut users = Users::parse(&text, "f").unwrap();
        users.decoy_key = DerivedKey::derive(b"some secret", DECOY_KEY_LABEL);
        let kinds: Vec<bool> = (0..16)
            .map(|i| {
                let name = format!("stranger{i}");
                let first = users.decoy(&name).unwrap();
                assert_eq!(first, users.decoy(&name).unwrap(), "{name}");
                first.is_bcrypt()
            })
            .collect();
        assert!(kinds.contains(&true) && kinds.contains(&false), "{kinds:?}");
    }

    #[test]
    fn a_login_against_an_outdated_entry_rehashes_it_in_memory() {
        let users = Users::parse(&bcrypt_line("bob", "builder"), "f").unwrap();
        assert!(users.check("bob", b"builder"));
        let now = users.read().get("bob").cloned().unwrap();
        assert!(!now.is_bcrypt() && !now.is_outdated(), "{}", now.cost());
        assert!(users.check("bob", b"builder"));
        assert!(!users.check("bob", b"other"));
    }

    #[test]
    fn entries_with_costs_out_of_range_are_refused_naming_the_line() {
        let good = bcrypt_line("bob", "x");
        let dear = good.replacen("$04$", "$15$", 1).replacen("bob", "eve", 1);
        match Users::parse(&format!("{good}\n{dear}\n"), "f") {
            Err(UsersError::Malformed {
                line: 2, reason, ..
            }) => {
                assert!(reason.contains("cost 15"), "{reason}");
            }
            other => panic!("expected a refusal at line 2, got {other:?}"),
        }
    }

    #[test]
    fn file_without_users_is_refused() {
        assert!(matches!(
            Users::parse("# nobody\n\n", "f"),
            Err(UsersError::Empty { .. })
        ));
    }
}
