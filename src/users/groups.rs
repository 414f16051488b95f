//! The groups file (`AUTHD_GROUPS`): Apache's `AuthGroupFile` format, `group: user1 user2` a line,
//! `#` comments and blank lines ignored; read into each user's sorted list of groups. Bounded in
//! size and counts, and strict about names, so that a group never reads as two downstream.

use std::collections::{BTreeSet, HashMap};
use std::io::Read as _;
use std::path::Path;

use crate::tokens::{MAX_GROUPS, group_name_problem};

/// Largest groups file read, in bytes.
pub const MAX_GROUPS_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most distinct groups in a file.
pub const MAX_GROUPS_IN_FILE: usize = 10_000;

/// Why a groups file was refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    /// The file could not be read.
    #[error("cannot read groups file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_GROUPS_FILE_BYTES`].
    #[error("groups file {path} is larger than {MAX_GROUPS_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// A line is not `group: user ...`, or names something it may not.
    #[error("groups file {path}, line {line}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Who is in which group: each user's groups, sorted, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    by_user: HashMap<String, Vec<String>>,
}

impl Groups {
    /// Reads and checks a groups file.
    pub fn load(path: &Path) -> Result<Self, GroupsError> {
        let shown = path.display().to_string();
        let read = |source| GroupsError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        // One byte past the bound tells a file that is too large from one exactly at it.
        file.take(MAX_GROUPS_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_GROUPS_FILE_BYTES {
            return Err(GroupsError::TooLarge { path: shown });
        }
        Self::parse(&text, &shown)
    }

    /// Parses the text of a groups file; `origin` names it in errors. A group may take several
    /// lines (their members add up, as in Apache); a user named twice in a group counts once.
    pub fn parse(text: &str, origin: &str) -> Result<Self, GroupsError> {
        let mut members: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason: String| GroupsError::Malformed {
                path: origin.to_owned(),
                line: i + 1,
                reason,
            };
            let (group, users) = line
                .split_once(':')
                .ok_or_else(|| malformed("expected `group: user1 user2`".to_owned()))?;
            let group = group.trim();
            if let Some(problem) = group_name_problem(group) {
                return Err(malformed(problem.to_owned()));
            }
            if !members.contains_key(group) && members.len() >= MAX_GROUPS_IN_FILE {
                return Err(malformed(format!("more than {MAX_GROUPS_IN_FILE} groups")));
            }
            let entry = members.entry(group).or_default();
            // Split on whitespace only: every other character is part of a name, and a name
            // with a `:` or a control character is refused rather than guessed at.
            for user in users.split_whitespace() {
                if user.contains(':') || user.chars().any(char::is_control) {
                    return Err(malformed(
                        "user name with `:` or a control character".to_owned(),
                    ));
                }
                entry.insert(user);
            }
        }
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for (group, users) in &members {
            for user in users {
                by_user
                    .entry((*user).to_owned())
                    .or_default()
                    .push((*group).to_owned());
            }
        }
        for (user, groups) in &mut by_user {
            if groups.len() > MAX_GROUPS {
                return Err(GroupsError::Malformed {
                    path: origin.to_owned(),
                    line: 0,
                    reason: format!("user `{user}` is in more than {MAX_GROUPS} groups"),
                });
            }
            groups.sort();
        }
        Ok(Self { by_user })
    }

    /// The groups of `user`, sorted; empty for a user in none.
    pub fn of(&self, user: &str) -> &[String] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// How many users are in at least one group.
    pub fn members(&self) -> usize {
        self.by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apache_group_file_with_comments_blank_lines_and_repeated_groups_is_read() {
        let text =
            "# groups\n\nadmins: alice bob\n  ops:bob   carol \nadmins: dave alice\nempty:\n";
        let g = Groups::parse(text, "f").unwrap();
        assert_eq!(g.of("alice"), ["admins"]);
        assert_eq!(g.of("bob"), ["admins", "ops"]);
        assert_eq!(g.of("carol"), ["ops"]);
        assert_eq!(g.of("dave"), ["admins"]);
        assert!(g.of("eve").is_empty());
        assert_eq!(g.members(), 4);
    }

    #[test]
    fn bad_names_are_refused_with_their_line_number() {
        for (text, line) in [
            ("admins: a\nno colon here\n", 2),
            ("# c\n: alice\n", 2),
            ("a,b: alice\n", 1),
            ("ad mins: alice\n", 1),
            ("ok: alice\nad\u{7}mins: bob\n", 2),
            ("ok: alice\nother: bob:x\n", 2),
            ("ok: ali\u{1b}ce\n", 1),
        ] {
            match Groups::parse(text, "f") {
                Err(GroupsError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("expected malformed at {line} in {text:?}, got {other:?}"),
            }
        }
        let long = format!("{}: alice\n", "g".repeat(129));
        assert!(Groups::parse(&long, "f").is_err());
        assert!(Groups::parse(&format!("{}: alice\n", "g".repeat(128)), "f").is_ok());
    }

    #[test]
    fn counts_are_bounded() {
        let many: String = (0..=MAX_GROUPS).map(|i| format!("g{i}: alice\n")).collect();
        assert!(Groups::parse(&many, "f").is_err());
        let enough: String = (0..MAX_GROUPS).map(|i| format!("g{i}: alice\n")).collect();
        assert_eq!(
            Groups::parse(&enough, "f").unwrap().of("alice").len(),
            MAX_GROUPS
        );
        let groups: String = (0..=MAX_GROUPS_IN_FILE)
            .map(|i| format!("g{i}: u{i}\n"))
            .collect();
        assert!(Groups::parse(&groups, "f").is_err());
    }

    #[test]
    fn a_file_over_the_size_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups");
        let line = "admins: alice\n";
        let big = line.repeat(usize::try_from(MAX_GROUPS_FILE_BYTES).unwrap() / line.len() + 1);
        std::fs::write(&path, big).unwrap();
        assert!(matches!(
            Groups::load(&path),
            Err(GroupsError::TooLarge { .. })
        ));
    }
}
