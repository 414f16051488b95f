//! Rewriting one entry of a users file in place, atomically: the new text goes to a temporary
//! file in the same folder, with the file's permissions, and is renamed over it, so that a reader
//! (or a crash) sees the old file or the new one, never half of one.

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

/// Replaces the hash of `name` in `file` by `new`, if the line still holds `old`: `Ok(false)`
/// when it does not (someone edited the file since it was read: theirs wins). Every other byte
/// of the file stays as it was.
pub(super) fn replace_entry(
    file: &Path,
    name: &str,
    old: &str,
    new: &str,
) -> std::io::Result<bool> {
    // A link is followed: the file it points to is replaced in its own folder, and the link
    // stays a link.
    let file = &std::fs::canonicalize(file)?;
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

/// Writes `bytes` to the temporary file with `file`'s permissions, syncs it, and renames it over
/// `file`; the temporary file is removed if anything fails after it was created.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let permissions = std::fs::metadata(file)?.permissions();
    let temp = temp_path(file);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        // Never wider than the original, not even for a moment.
        options.mode(permissions.mode() & 0o777);
    }
    let mut out = options
        .open(&temp)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", temp.display())))?;
    let written = (|| {
        out.write_all(bytes)?;
        // The umask may have narrowed the mode given at creation: set it exactly.
        out.set_permissions(permissions)?;
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
