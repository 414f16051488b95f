//! Rewriting a users (or groups) file in place, atomically: the new text goes to a temporary
//! file in the same folder, with the file's permissions, and is renamed over it, so that a reader
//! (or a crash) sees the old file or the new one, never half of one. Every rewrite, the server's
//! rehash at login and the `authd users` / `authd groups` commands alike, holds an advisory
//! `flock` on a lock file beside the file, so that two edits never lose one another's change.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The temporary file beside `file`: `.NAME.authd-tmp`. Created only if it does not exist (never
/// through a link someone left there); a stale one from a crash stops rewrites until removed, and
/// the warning names the file.
pub(super) fn temp_path(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!(".{name}.authd-tmp"))
}

/// An exclusive advisory lock on a users or groups file, held until dropped: a `flock(2)` on
/// `.NAME.authd-lock` beside the file (the file itself is replaced by a rename, so a lock on it
/// would be on the old copy). Only authd's own edits take it; an editor or `htpasswd` does not.
#[derive(Debug)]
pub(crate) struct EditLock {
    /// The file to edit, its links followed: the file replaced, in its own folder.
    path: PathBuf,
    /// Closing it releases the lock.
    _lock: std::fs::File,
}

impl EditLock {
    /// Waits for the lock on `file` (which need not exist yet).
    pub(crate) fn acquire(file: &Path) -> std::io::Result<Self> {
        // A link is followed: the file it points to is replaced in its own folder, and the link
        // stays a link. A file not made yet is locked where it will be made.
        let path = match std::fs::canonicalize(file) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => file.to_owned(),
            Err(e) => return Err(e),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock_path = path.with_file_name(format!(".{name}.authd-lock"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let lock = options
            .open(&lock_path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", lock_path.display())))?;
        // Called as the trait's method: std's `File::lock` is newer than our rust-version.
        fs4::FileExt::lock(&lock)?;
        Ok(Self { path, _lock: lock })
    }

    /// The file this lock is for, links followed.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text; empty when it does not exist yet.
    pub(crate) fn read(&self) -> std::io::Result<String> {
        match std::fs::read_to_string(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            other => other,
        }
    }

    /// Replaces the file with `text`, atomically, keeping its permissions (owner-only for a new
    /// file).
    pub(crate) fn write(&self, text: &str) -> std::io::Result<()> {
        write_atomically(&self.path, text.as_bytes())
    }
}

/// One line of a `name:rest` file (users: `name:hash`; groups: `group: user user`), split into
/// its name and the rest, or `None` for a blank or `#` comment line.
pub(crate) fn entry(line: &str) -> Option<(&str, &str)> {
    let entry = line.trim();
    if entry.is_empty() || entry.starts_with('#') {
        return None;
    }
    entry.split_once(':').map(|(n, rest)| (n.trim(), rest))
}

/// `text` with each entry line (see [`entry`]) passed through `edit`: `None` keeps the line as
/// it was, `Some(None)` drops it, `Some(Some(body))` replaces it (line ending kept). Every other
/// byte stays as it was.
pub(crate) fn edit_lines(
    text: &str,
    mut edit: impl FnMut(&str, &str) -> Option<Option<String>>,
) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        match entry(body).and_then(|(name, rest)| edit(name, rest)) {
            None => out.push_str(line),
            Some(None) => {}
            Some(Some(new)) => {
                out.push_str(&new);
                out.push_str(ending);
            }
        }
    }
    out
}

/// `text` with `line` added at the end, on a line of its own.
pub(crate) fn append_line(text: &str, line: &str) -> String {
    let mut out = String::with_capacity(text.len() + line.len() + 2);
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// Replaces the hash of `name` in `file` by `new`, if the line still holds `old`: `Ok(false)`
/// when it does not (someone edited the file since it was read: theirs wins). Every other byte
/// of the file stays as it was. Takes the [`EditLock`].
pub(super) fn replace_entry(
    file: &Path,
    name: &str,
    old: &str,
    new: &str,
) -> std::io::Result<bool> {
    let lock = EditLock::acquire(file)?;
    let file = lock.path();
    let text = std::fs::read_to_string(file)?;
    let mut out = String::with_capacity(text.len() + new.len());
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let entry = body.trim();
        let matches = !entry.starts_with('#')
            && entry
                .split_once(':')
                .is_some_and(|(n, h)| n.trim() == name && h.trim() == old);
        if matches && !replaced {
            out.push_str(name);
            out.push(':');
            out.push_str(new);
            out.push_str(ending);
            replaced = true;
        } else {
            out.push_str(line);
        }
    }
    if !replaced {
        return Ok(false);
    }
    write_atomically(file, out.as_bytes())?;
    Ok(true)
}

/// Writes `bytes` to the temporary file with `file`'s permissions (owner read and write only when
/// `file` does not exist yet), syncs it, and renames it over `file`; the temporary file is
/// removed if anything fails after it was created.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // `None`: a new file, which holds password hashes, so its owner's only.
    let permissions = match std::fs::metadata(file) {
        Ok(m) => Some(m.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let temp = temp_path(file);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        // Never wider than the original, not even for a moment.
        options.mode(permissions.as_ref().map_or(0o600, |p| p.mode() & 0o777));
    }
    let mut out = options
        .open(&temp)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", temp.display())))?;
    let written = (|| {
        out.write_all(bytes)?;
        // The umask may have narrowed the mode given at creation: set it exactly.
        if let Some(permissions) = permissions {
            out.set_permissions(permissions)?;
        }
        out.sync_all()?;
        drop(out);
        std::fs::rename(&temp, file)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    // The rename is durable once the folder is synced; a failure here leaves the new file in
    // place, so it is not reported.
    if let Some(dir) = file.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_entry_with_the_old_hash_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        let text = "# alice:OLD in a comment\r\nalice:OLD\r\n\n  bob : OLD  \nalice2:OLD";
        std::fs::write(&file, text).unwrap();
        assert!(replace_entry(&file, "bob", "OLD", "NEW").unwrap());
        assert!(replace_entry(&file, "alice", "OLD", "NEW").unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "# alice:OLD in a comment\r\nalice:NEW\r\n\nbob:NEW\nalice2:OLD"
        );
        // Changed since: not touched.
        assert!(!replace_entry(&file, "alice", "OLD", "NEWER").unwrap());
        assert!(!temp_path(&file).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_file_is_rewritten_where_it_is_and_the_link_stays() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("users"), "bob:OLD\n").unwrap();
        let link = dir.path().join("users");
        std::os::unix::fs::symlink(real.join("users"), &link).unwrap();
        assert!(replace_entry(&link, "bob", "OLD", "NEW").unwrap());
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(
            std::fs::read_to_string(real.join("users")).unwrap(),
            "bob:NEW\n"
        );
    }
}
