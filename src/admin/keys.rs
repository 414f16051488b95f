//! `authd keys generate`: a new EdDSA or ES256 private key, PKCS#8 PEM, written owner-only.

use std::io::Write as _;
use std::path::Path;

use secrecy::ExposeSecret as _;

use crate::signing::{KeyError, SigningAlg, SigningKey};

/// Why a key could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The algorithm has no key pair, or no randomness.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The file could not be made (an existing one is never overwritten).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Makes a key of `alg` and writes it to the new file `output` (mode 0600; an existing file is
/// refused), or to standard output. Returns the key's `kid`, for the caller to tell.
///
/// On standard output redirected to a file (`> key.pem`), that file is made owner-only too (on
/// Linux), since the shell made it with the umask's mode.
pub fn generate(alg: SigningAlg, output: Option<&Path>) -> Result<String, KeysError> {
    let pem = SigningKey::generate_pem(alg)?;
    let kid = SigningKey::from_pem(alg, pem.expose_secret().as_bytes())?
        .public()
        .kid()
        .to_owned();
    let write_failed = |path: &str| {
        let path = path.to_owned();
        move |source| KeysError::Write { path, source }
    };
    match output {
        Some(path) => {
            let shown = path.display().to_string();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(write_failed(&shown))?;
            file.write_all(pem.expose_secret().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(write_failed(&shown))?;
        }
        None => {
            let stdout = std::io::stdout();
            #[cfg(target_os = "linux")]
            owner_only_if_file(&stdout).map_err(write_failed("standard output"))?;
            let mut out = stdout.lock();
            out.write_all(pem.expose_secret().as_bytes())
                .and_then(|()| out.flush())
                .map_err(write_failed("standard output"))?;
        }
    }
    Ok(kid)
}

/// `chmod 600` on standard output when it is a regular file.
#[cfg(target_os = "linux")]
fn owner_only_if_file(stdout: &std::io::Stdout) -> std::io::Result<()> {
    use rustix::fs::{FileType, Mode, fchmod, fstat};
    let stat = fstat(stdout)?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
        fchmod(stdout, Mode::from_raw_mode(0o600))?;
    }
    Ok(())
}
