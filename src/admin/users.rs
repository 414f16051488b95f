//! The `authd users` and `authd groups` commands' edits: a users file (htpasswd, `name:hash`) and
//! a groups file (Apache AuthGroupFile, `group: user1 user2`), changed a line at a time under the
//! edit lock and written atomically (see `users::rewrite`). Nothing here prints or returns a hash.

use std::path::Path;

use crate::users::hash_password;
use crate::users::rewrite::{EditLock, append_line, edit_lines, entry};

/// Why an edit was refused or failed. No variant holds a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A user or group name that the files cannot hold.
    #[error("{kind} name {shown}: {reason}")]
    BadName {
        /// `user` or `group`.
        kind: &'static str,
        /// The name, quoted and escaped (it may hold control characters).
        shown: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `users add` of a name already in the file.
    #[error("user {0} already exists (change the password with `authd users passwd {0}`)")]
    Exists(String),
    /// The user is not in the users file.
    #[error("no user {name} in {file}")]
    NoUser {
        /// The user.
        name: String,
        /// The users file.
        file: String,
    },
    /// Removing the only user: the server refuses a users file without users, and would keep
    /// the previous one (with this user) in force.
    #[error(
        "{0} is the only user: a users file without users is refused (stop the server instead)"
    )]
    LastUser(String),
    /// The user is not in the group.
    #[error("user {user} is not in group {group}")]
    NotInGroup {
        /// The user.
        user: String,
        /// The group.
        group: String,
    },
    /// The new hash could not be made.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The file could not be locked, read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Refuses a name the files cannot hold: empty, with `:` (the field separator), whitespace (the
/// groups file's separator), control characters, or starting with `#` (a comment line).
pub fn check_name(kind: &'static str, name: &str) -> Result<(), EditError> {
    let bad = |reason| EditError::BadName {
        kind,
        shown: format!("{name:?}"),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.contains(':') {
        return Err(bad("contains `:`"));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(bad("contains whitespace"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    if name.starts_with('#') {
        return Err(bad("starts with `#` (a comment line)"));
    }
    Ok(())
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> EditError + '_ {
    move |source| EditError::Io {
        file: file.display().to_string(),
        source,
    }
}

fn lock(file: &Path) -> Result<EditLock, EditError> {
    EditLock::acquire(file).map_err(io(file))
}

fn new_hash(password: &[u8]) -> Result<String, EditError> {
    hash_password(password).map_err(|e| EditError::Hash(e.to_string()))
}

/// The names in a users file's text, in file order.
fn names(text: &str) -> Vec<&str> {
    text.lines().filter_map(entry).map(|(n, _)| n).collect()
}

/// Adds `name` with an argon2id hash of `password` to the users file `file`, made (owner-only)
/// when it does not exist.
pub fn add_user(file: &Path, name: &str, password: &[u8]) -> Result<(), EditError> {
    check_name("user", name)?;
    // Hashed before the lock is taken: a hash takes a while, and the lock stops other edits.
    let hash = new_hash(password)?;
    let lock = lock(file)?;
    let text = lock.read().map_err(io(file))?;
    if names(&text).contains(&name) {
        return Err(EditError::Exists(name.to_owned()));
    }
    lock.write(&append_line(&text, &format!("{name}:{hash}")))
        .map_err(io(file))
}

/// Replaces the hash of `name` in `file` with an argon2id hash of `password`.
pub fn set_password(file: &Path, name: &str, password: &[u8]) -> Result<(), EditError> {
    check_name("user", name)?;
    let hash = new_hash(password)?;
    let lock = lock(file)?;
    let text = lock.read().map_err(io(file))?;
    let mut found = false;
    let out = edit_lines(&text, |n, _| {
        (n == name).then(|| {
            found = true;
            Some(format!("{name}:{hash}"))
        })
    });
    if !found {
        return Err(no_user(file, name));
    }
    lock.write(&out).map_err(io(file))
}

fn no_user(file: &Path, name: &str) -> EditError {
    EditError::NoUser {
        name: name.to_owned(),
        file: file.display().to_string(),
    }
}

/// Removes `name` from the users file `file`, and from every group of `groups` when given (so
/// that a user made later under the same name does not inherit them).
pub fn remove_user(file: &Path, groups: Option<&Path>, name: &str) -> Result<(), EditError> {
    check_name("user", name)?;
    {
        let lock = lock(file)?;
        let text = lock.read().map_err(io(file))?;
        let all = names(&text);
        if !all.contains(&name) {
            return Err(no_user(file, name));
        }
        if all.iter().all(|n| *n == name) {
            return Err(EditError::LastUser(name.to_owned()));
        }
        let out = edit_lines(&text, |n, _| (n == name).then_some(None));
        lock.write(&out).map_err(io(file))?;
    }
    if let Some(groups) = groups {
        let lock = lock(groups)?;
        let text = lock.read().map_err(io(groups))?;
        let out = edit_lines(&text, |group, members| {
            let members: Vec<&str> = members.split_whitespace().collect();
            members
                .contains(&name)
                .then(|| group_line(group, members.iter().copied().filter(|m| *m != name)))
        });
        if out != text {
            lock.write(&out).map_err(io(groups))?;
        }
    }
    Ok(())
}

/// The users' names in `file`, in file order.
pub fn list_users(file: &Path) -> Result<Vec<String>, EditError> {
    let text = std::fs::read_to_string(file).map_err(io(file))?;
    Ok(names(&text).into_iter().map(ToOwned::to_owned).collect())
}

/// A groups file line for `group` with `members`; `None` (drop the line) when there are none.
fn group_line<'a>(group: &str, members: impl Iterator<Item = &'a str>) -> Option<String> {
    let members: Vec<&str> = members.collect();
    (!members.is_empty()).then(|| format!("{group}: {}", members.join(" ")))
}

/// Puts `user` in `group` in the groups file `file` (made, owner-only, when it does not exist):
/// on the group's line, or a new line. `Ok(false)` when the user was in the group already.
pub fn add_to_group(file: &Path, group: &str, user: &str) -> Result<bool, EditError> {
    check_name("group", group)?;
    check_name("user", user)?;
    let lock = lock(file)?;
    let text = lock.read().map_err(io(file))?;
    let mut seen = false;
    let mut already = false;
    let out = edit_lines(&text, |g, members| {
        if g != group || seen {
            return None;
        }
        seen = true;
        let members: Vec<&str> = members.split_whitespace().collect();
        if members.contains(&user) {
            already = true;
            return None;
        }
        Some(group_line(
            group,
            members.into_iter().chain(std::iter::once(user)),
        ))
    });
    if already {
        return Ok(false);
    }
    let out = if seen {
        out
    } else {
        append_line(&text, &format!("{group}: {user}"))
    };
    lock.write(&out).map_err(io(file))?;
    Ok(true)
}

/// Takes `user` out of `group` (every line of it) in the groups file `file`; a line left without
/// members goes.
pub fn remove_from_group(file: &Path, group: &str, user: &str) -> Result<(), EditError> {
    check_name("group", group)?;
    check_name("user", user)?;
    let lock = lock(file)?;
    let text = lock.read().map_err(io(file))?;
    let mut found = false;
    let out = edit_lines(&text, |g, members| {
        let members: Vec<&str> = members.split_whitespace().collect();
        (g == group && members.contains(&user)).then(|| {
            found = true;
            group_line(group, members.into_iter().filter(|m| *m != user))
        })
    });
    if !found {
        return Err(EditError::NotInGroup {
            user: user.to_owned(),
            group: group.to_owned(),
        });
    }
    lock.write(&out).map_err(io(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_files_cannot_hold_are_refused() {
        for bad in [
            "", "a:b", "a b", "a\tb", "a\nb", "a\u{7}b", "#a", "a\u{a0}b",
        ] {
            assert!(check_name("user", bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "bob.smith@example.org", "ünïcode", "a#b"] {
            assert!(check_name("user", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn users_are_added_changed_and_removed_with_other_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "# team\nalice:$2y$04$x\n\nbob:$2y$04$y").unwrap();
        add_user(&file, "carol", b"pw").unwrap();
        assert!(matches!(
            add_user(&file, "alice", b"pw"),
            Err(EditError::Exists(_))
        ));
        set_password(&file, "alice", b"new").unwrap();
        remove_user(&file, None, "bob").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# team");
        assert!(lines[1].starts_with("alice:$argon2id$"), "{text}");
        assert_eq!(lines[2], "");
        assert!(lines[3].starts_with("carol:$argon2id$"), "{text}");
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(list_users(&file).unwrap(), ["alice", "carol"]);
        assert!(matches!(
            remove_user(&file, None, "bob"),
            Err(EditError::NoUser { .. })
        ));
    }

    #[test]
    fn the_last_user_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "alice:$2y$04$x\n").unwrap();
        assert!(matches!(
            remove_user(&file, None, "alice"),
            Err(EditError::LastUser(_))
        ));
    }

    #[test]
    fn group_members_are_added_and_removed_and_empty_groups_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("groups");
        std::fs::write(&file, "# groups\nadmins: alice\nops:bob  alice\n").unwrap();
        assert!(add_to_group(&file, "admins", "bob").unwrap());
        assert!(!add_to_group(&file, "admins", "bob").unwrap());
        assert!(add_to_group(&file, "devs", "carol").unwrap());
        remove_from_group(&file, "ops", "bob").unwrap();
        assert!(matches!(
            remove_from_group(&file, "ops", "bob"),
            Err(EditError::NotInGroup { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "# groups\nadmins: alice bob\nops: alice\ndevs: carol\n"
        );
        remove_from_group(&file, "ops", "alice").unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "# groups\nadmins: alice bob\ndevs: carol\n"
        );
    }

    #[test]
    fn a_removed_user_leaves_every_group() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        let groups = dir.path().join("groups");
        std::fs::write(&users, "alice:$2y$04$x\nbob:$2y$04$y\n").unwrap();
        std::fs::write(&groups, "a: alice bob\nb: bob\nc: alice\n").unwrap();
        remove_user(&users, Some(&groups), "bob").unwrap();
        assert_eq!(
            std::fs::read_to_string(&groups).unwrap(),
            "a: alice\nc: alice\n"
        );
    }
}
