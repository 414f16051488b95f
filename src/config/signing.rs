//! `AUTHD_SIGNING_ALG`, `AUTHD_SIGNING_KEY_FILE` and `AUTHD_SIGNING_KEY_PREVIOUS_FILES`: which
//! algorithm signs tokens and with which key pair, checked at start.

use std::io::Read as _;
use std::path::Path;

use secrecy::{ExposeSecret as _, SecretSlice};

use super::{ConfigError, TokenArgs};
#[cfg(feature = "server")]
use crate::signing::SigningKey;
use crate::signing::{KeyError, PublicKey, SigningAlg};

/// The key pair settings, checked: what signs, authd's internal secret, and the previous
/// internal secrets (of previous private keys).
#[cfg(feature = "server")]
pub(super) struct KeyPairSettings {
    pub(super) signing: Signing,
    pub(super) secret: SecretSlice<u8>,
    pub(super) previous_secrets: Vec<SecretSlice<u8>>,
}

/// What signs tokens.
#[cfg(feature = "server")]
#[derive(Debug, Clone)]
pub enum Signing {
    /// HS256 with `AUTHD_SECRET_KEY` (and the previous secrets verify).
    Secret,
    /// EdDSA or ES256: `key` signs; it and `previous` verify, and both are published.
    KeyPair {
        /// The current key (boxed: the enum is mostly `Secret`).
        key: Box<SigningKey>,
        /// Public keys still accepted (a rotation's previous key).
        previous: Vec<PublicKey>,
    },
}

#[cfg(feature = "server")]
impl Signing {
    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        match self {
            Self::Secret => SigningAlg::Hs256,
            Self::KeyPair { key, .. } => key.public().alg(),
        }
    }
}

/// The key pair settings, checked: the algorithm, the key (made in memory under `--demo` when no
/// file is given), the previous public keys, and authd's own internal secret derived from the
/// private key (and from each previous private key), as [`Signing::KeyPair`] needs no
/// `AUTHD_SECRET_KEY`. `None` under HS256.
#[cfg(feature = "server")]
pub(super) fn key_pair(
    args: &TokenArgs,
    demo: bool,
) -> Result<Option<KeyPairSettings>, ConfigError> {
    let alg = match args.signing_alg.as_deref().map(str::trim) {
        None | Some("") => SigningAlg::Hs256,
        Some(v) => v
            .parse::<SigningAlg>()
            .map_err(|_| ConfigError::BadSigningAlg(super::shown(v)))?,
    };
    let key_file = args
        .signing_key_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty());
    let previous_files: Vec<&Path> = args
        .signing_key_previous_files
        .iter()
        .map(|p| p.as_path())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if !alg.is_asymmetric() {
        if key_file.is_some() || !previous_files.is_empty() {
            return Err(ConfigError::SigningMix(
                "AUTHD_SIGNING_KEY_FILE and AUTHD_SIGNING_KEY_PREVIOUS_FILES are for AUTHD_SIGNING_ALG=EdDSA or ES256; HS256 signs with AUTHD_SECRET_KEY",
            ));
        }
        return Ok(None);
    }
    // Under a key pair an HMAC secret would sign nothing, yet suggest that HS256 tokens are
    // still accepted: refused rather than silently ignored.
    if args.secret_key.is_some()
        || args.secret_key_file.is_some()
        || !args.secret_key_previous.is_empty()
        || args.secret_key_previous_file.is_some()
    {
        return Err(ConfigError::SigningMix(
            "AUTHD_SECRET_KEY and AUTHD_SECRET_KEY_PREVIOUS are HS256's; under AUTHD_SIGNING_ALG=EdDSA or ES256 tokens are signed with AUTHD_SIGNING_KEY_FILE only (and HS256 tokens are refused): unset them",
        ));
    }
    let key = match key_file {
        Some(path) => {
            let pem = read_key_file(path, true)?;
            SigningKey::from_pem(alg, pem.expose_secret()).map_err(|e| key_error(path, alg, e))?
        }
        None if demo => {
            let pem =
                SigningKey::generate_pem(alg).map_err(|e| ConfigError::Random(e.to_string()))?;
            SigningKey::from_pem(alg, pem.expose_secret().as_bytes())
                .map_err(|e| ConfigError::Random(e.to_string()))?
        }
        None => return Err(ConfigError::NoSigningKey(alg)),
    };
    let mut previous = Vec::new();
    let mut previous_secrets = Vec::new();
    for path in previous_files {
        let pem = read_key_file(path, false)?;
        let bytes = pem.expose_secret();
        // A private key among the previous ones keeps counting logins under its derived key.
        if let Ok(private) = SigningKey::from_pem(alg, bytes) {
            previous_secrets.push(internal_secret(&private));
        }
        previous.push(PublicKey::from_pem(alg, bytes).map_err(|e| key_error(path, alg, e))?);
    }
    let secret = internal_secret(&key);
    Ok(Some(KeyPairSettings {
        signing: Signing::KeyPair {
            key: Box::new(key),
            previous,
        },
        secret,
        previous_secrets,
    }))
}

/// The public keys a verifying service checks authd's tokens with, from the same settings:
/// `AUTHD_SIGNING_KEY_FILE` (here a public key will do; a private one must be owner-only) and
/// `AUTHD_SIGNING_KEY_PREVIOUS_FILES`. `None` under HS256.
pub(super) fn verifying_keys(args: &TokenArgs) -> Result<Option<Vec<PublicKey>>, ConfigError> {
    let alg = match args.signing_alg.as_deref().map(str::trim) {
        None | Some("") => return Ok(None),
        Some(v) => v
            .parse::<SigningAlg>()
            .map_err(|_| ConfigError::BadSigningAlg(super::shown(v)))?,
    };
    if !alg.is_asymmetric() {
        return Ok(None);
    }
    let files = args
        .signing_key_file
        .iter()
        .chain(&args.signing_key_previous_files)
        .filter(|p| !p.as_os_str().is_empty());
    let mut keys = Vec::new();
    for path in files {
        let pem = read_key_file(path, false)?;
        keys.push(
            PublicKey::from_pem(alg, pem.expose_secret()).map_err(|e| key_error(path, alg, e))?,
        );
    }
    if keys.is_empty() {
        return Err(ConfigError::NoSigningKey(alg));
    }
    Ok(Some(keys))
}

/// authd's own secret under a key pair (throttle counters, the sign-in form's CSRF tokens, the
/// decoy hash): `HMAC-SHA256(private key's PKCS#8, label)`, so one file is the whole secret.
#[cfg(feature = "server")]
fn internal_secret(key: &SigningKey) -> SecretSlice<u8> {
    let derived =
        crate::keys::DerivedKey::derive(key.der().expose_secret(), "authd internal secret");
    SecretSlice::from(derived.mac(b"").to_vec())
}

fn key_error(path: &Path, alg: SigningAlg, e: KeyError) -> ConfigError {
    ConfigError::SigningKey {
        path: path.display().to_string(),
        reason: format!("{e} (AUTHD_SIGNING_ALG={alg})"),
    }
}

/// Most bytes a key file may have: a PEM key is a few hundred.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a PEM key file. One that holds a private key must not be readable by group or others:
/// unlike the HMAC secret's file (a warning, kept for existing setups), this setting is new, and
/// a signing key anyone on the host can read lets them mint tokens for every service.
fn read_key_file(path: &Path, must_be_private: bool) -> Result<SecretSlice<u8>, ConfigError> {
    let failed = |e: std::io::Error| ConfigError::SigningKey {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    let bytes = SecretSlice::from(bytes);
    if bytes.expose_secret().len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(ConfigError::SigningKey {
            path: path.display().to_string(),
            reason: "larger than 64 KiB: not a PEM key".to_owned(),
        });
    }
    let private = must_be_private
        || bytes
            .expose_secret()
            .windows(b"PRIVATE KEY".len())
            .any(|w| w == b"PRIVATE KEY");
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(failed)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(ConfigError::SigningKey {
                path: path.display().to_string(),
                reason: format!(
                    "a private key readable by group or others (mode {:o}); `chmod 600` it",
                    mode & 0o777
                ),
            });
        }
    }
    Ok(bytes)
}

/// Under a key pair, `AUTHD_ISSUER` is where verifiers find the keys (`{issuer}/.well-known/...`):
/// required, an absolute `https` URL (`http` on a loopback host only) without query or fragment.
/// Under `--demo` it defaults to the listen address.
#[cfg(feature = "server")]
pub(super) fn issuer_for_key_pair(
    issuer: Option<String>,
    demo: bool,
    listen: std::net::SocketAddr,
) -> Result<String, ConfigError> {
    let issuer = match issuer {
        Some(i) => i,
        None if demo => return Ok(format!("http://{listen}")),
        None => return Err(ConfigError::IssuerNeeded),
    };
    let bad = |why: &str| ConfigError::BadIssuer(format!("{}: {why}", super::shown(&issuer)));
    let url = url::Url::parse(&issuer).map_err(|_| bad("not an absolute URL"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("no query, fragment or user name allowed"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(issuer),
        "http" if loopback => Ok(issuer),
        _ => Err(bad("must be https (http on a loopback host only)")),
    }
}
