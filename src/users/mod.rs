//! Who may log in: the users file (htpasswd format: `name:hash` a line, `#` comments, blank lines
//! ignored) or the demo user, and checking a name and password against them.

mod password;
mod pool;

use std::collections::HashMap;
use std::path::Path;

pub use password::{
    ARGON2_M_COST_KIB, ARGON2_P_COST, ARGON2_T_COST, HashFormatError, StoredHash, hash_password,
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
#[derive(Debug, Clone)]
pub struct Users {
    by_name: HashMap<String, StoredHash>,
    /// Checked instead when the name is unknown, so that an unknown name costs the same time as
    /// a wrong password: a real entry's hash, with its real cost parameters. Its answer is thrown
    /// away.
    decoy: StoredHash,
}

impl Users {
    /// Reads and checks a users file. No hashing happens here, so start-up stays fast.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses the htpasswd text of a users file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, UsersError> {
        let mut by_name = HashMap::new();
        let mut first = None;
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
            if by_name.contains_key(name) {
                return Err(malformed(&format!("user `{name}` appears twice")));
            }
            first.get_or_insert_with(|| stored.clone());
            by_name.insert(name.to_owned(), stored);
        }
        let decoy = first.ok_or_else(|| UsersError::Empty {
            path: origin.to_owned(),
        })?;
        Ok(Self { by_name, decoy })
    }

    /// The demo user of the tutorial, `user` / `password`, hashed once here.
    pub fn demo() -> Result<Self, argon2::password_hash::Error> {
        let stored = StoredHash::Argon2(hash_password(b"password")?);
        Ok(Self {
            by_name: HashMap::from([("user".to_owned(), stored.clone())]),
            decoy: stored,
        })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether `name` is a user (no hashing).
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Whether there are none (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether `name` and `password` match an entry. Slow by design (one password hash) whether
    /// or not the name exists; run it through a [`HashPool`].
    pub fn check(&self, name: &str, password: &[u8]) -> bool {
        match self.by_name.get(name) {
            Some(stored) => stored.verify(password),
            None => {
                let _ = self.decoy.verify(password);
                false
            }
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
    fn file_without_users_is_refused() {
        assert!(matches!(
            Users::parse("# nobody\n\n", "f"),
            Err(UsersError::Empty { .. })
        ));
    }
}
