//! Configuration: the command line and its environment variables (a `.env` file is read first when
//! present), checked into a plain [`Config`] value. Every refusal to start is a [`ConfigError`]
//! whose message is one line saying what to do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::proxies::{BadProxy, TrustedProxies};
use crate::sessions::{MAX_SESSIONS_PER_USER, SessionSettings};
use crate::store::{DEFAULT_DATABASE_URL, MEMORY_DATABASE_URL, StoreOptions};
use crate::throttle::{ASVS_MAX_FAILURES_PER_HOUR, ThrottleSettings};
use crate::tokens::TokenSettings;

/// Shortest secret accepted, in bytes: HS256's key should be at least as long as its 256-bit hash
/// (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest access-token lifetime accepted: access tokens are meant to be short-lived.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The placeholder secret in `.env.example`; refused so that a copied example cannot go live.
pub const EXAMPLE_SECRET: &str = "replace-me-with-the-output-of-openssl-rand-base64-48";
/// Secrets that are placeholders from the tutorial or our examples (compared case-insensitively,
/// as substrings).
const PLACEHOLDERS: &[&str] = &[
    "your_secret_key",
    "your-secret-key",
    "replace-me",
    "change-me",
    "changeme",
];
/// A secret with fewer distinct bytes than this is refused as weak (`aaaa...`, `abab...`).
const MIN_DISTINCT_SECRET_BYTES: usize = 8;

/// authd: a small, fast, secure JWT auth server.
#[derive(Debug, Parser)]
#[command(name = "authd", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without a subcommand, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the server.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a password from standard input (no echo on a terminal) and print its argon2id hash,
    /// for a line `name:hash` of the users file.
    HashPassword,
    /// List or end sessions (refresh-token families) in the database of AUTHD_DATABASE_URL.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// `authd sessions ...`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Show live sessions: id, user, start, last refresh, expiries (never a token).
    List {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
    },
    /// End every session of a user (after a password change, say). Access tokens already
    /// issued stay valid until their `exp`.
    Revoke {
        /// The user.
        #[arg(long)]
        user: String,
    },
}

/// The server's flags; each has an environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT.
    #[arg(long, env = "AUTHD_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: String,
    /// HMAC secret that signs tokens, 32 bytes or more. Prefer the environment variable or
    /// --secret-key-file: a flag's value is visible to every local user in `ps`.
    #[arg(long, env = "AUTHD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// File holding the secret (a trailing newline is ignored).
    #[arg(long, env = "AUTHD_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Users file in htpasswd format (`name:hash` a line; argon2id or bcrypt hashes).
    #[arg(long, env = "AUTHD_USERS")]
    pub users: Option<PathBuf>,
    /// Access-token lifetime: `30m`, `15m`, `1h`, or seconds.
    #[arg(long, env = "AUTHD_TOKEN_TTL", default_value = "30m")]
    pub token_ttl: String,
    /// Issuer (`iss`) put in tokens and required of them.
    #[arg(long, env = "AUTHD_ISSUER")]
    pub issuer: Option<String>,
    /// Audience (`aud`) put in tokens and required of them.
    #[arg(long, env = "AUTHD_AUDIENCE")]
    pub audience: Option<String>,
    /// Try it out: the tutorial's user `user` / `password`, a random secret unless one is given,
    /// loopback addresses only.
    #[arg(long, env = "AUTHD_DEMO")]
    pub demo: bool,
    /// Password hashes computed at once (default: the number of cores).
    #[arg(long, env = "AUTHD_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Logins that may wait for a hashing slot; beyond it, 503 "Server busy".
    #[arg(long, env = "AUTHD_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,
    /// Time a request may take from its headers to its answer (408 past it).
    #[arg(long, env = "AUTHD_REQUEST_TIMEOUT", default_value = "10s")]
    pub request_timeout: String,
    /// Time a client has to send a request's headers; the connection is closed past it.
    #[arg(long, env = "AUTHD_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: String,
    /// Where sessions and login counters live: `sqlite://data/authd.db` (the default; created on
    /// first start) or `postgres://user:password@host/db` for several instances. `--demo`
    /// without it keeps them in memory.
    #[arg(long, env = "AUTHD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Refresh-token lifetime: how long a session may go unused.
    #[arg(long, env = "AUTHD_REFRESH_TTL", default_value = "14d")]
    pub refresh_ttl: String,
    /// Absolute session lifetime from its login, however often it is refreshed.
    #[arg(long, env = "AUTHD_SESSION_LIFETIME", default_value = "30d")]
    pub session_lifetime: String,
    /// Most live sessions per user, 1 to 10000; a login past it ends that user's oldest session.
    #[arg(long, env = "AUTHD_MAX_SESSIONS_PER_USER", default_value = "100")]
    pub max_sessions_per_user: String,
    /// Failed logins allowed per username in one window; past it, a ban.
    #[arg(long, env = "AUTHD_THROTTLE_USER_MAX", default_value_t = 5)]
    pub throttle_user_max: u32,
    /// Failed logins allowed per client address in one window; past it, a ban.
    #[arg(long, env = "AUTHD_THROTTLE_ADDRESS_MAX", default_value_t = 20)]
    pub throttle_address_max: u32,
    /// The window failed logins are counted in.
    #[arg(long, env = "AUTHD_THROTTLE_WINDOW", default_value = "5m")]
    pub throttle_window: String,
    /// How long a user or address is refused (429) once past its limit.
    #[arg(long, env = "AUTHD_THROTTLE_BAN", default_value = "5m")]
    pub throttle_ban: String,
    /// Reverse proxies whose X-Forwarded-For is believed: IPs and CIDRs, comma-separated.
    #[arg(long, env = "AUTHD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Previous secrets, still accepted for the tokens they signed until those expire (during a
    /// key rotation). Comma-separated, or the flag repeated; each is checked like the secret.
    #[arg(
        long,
        env = "AUTHD_SECRET_KEY_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secret_key_previous: Vec<String>,
    /// TLS certificate chain (PEM). With --tls-key, authd serves HTTPS; re-read on SIGHUP.
    #[arg(long, env = "AUTHD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, env = "AUTHD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// RFC 6750 behaviour: `?token=` refused, 401 with `WWW-Authenticate: Bearer` challenges;
    /// needs AUTHD_ISSUER and AUTHD_AUDIENCE.
    #[arg(long, env = "AUTHD_STRICT")]
    pub strict: bool,
    /// Serve GET /metrics on this IP:PORT (plain HTTP) instead of on the main address.
    #[arg(long, env = "AUTHD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

/// The PEM files of the HTTPS certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl ServeArgs {
    /// The database URL: the configured one, else in memory for `--demo`, else the default file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ if self.demo => MEMORY_DATABASE_URL.to_owned(),
            _ => DEFAULT_DATABASE_URL.to_owned(),
        }
    }
}

/// Where the users come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersSource {
    /// An htpasswd-format file.
    File(PathBuf),
    /// The demo user `user` / `password`.
    Demo,
}

/// Size and time limits on requests and connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (413 past it).
    pub max_body_bytes: usize,
    /// Largest request head, target and headers together, answered in JSON (414 or 431 past it).
    pub max_head_bytes: usize,
    /// Most headers in a request (431 past it).
    pub max_headers: usize,
    /// Hard cap on what the HTTP parser buffers for one head; past it the connection gets a bare
    /// 431 and is closed. Well above `max_head_bytes`, so that the JSON answer is the usual one.
    pub hard_max_head_bytes: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a request may take to be answered.
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            // A 64 KiB token in the query or a Bearer header must still reach the check.
            max_head_bytes: 96 * 1024,
            max_headers: 100,
            hard_max_head_bytes: 2 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Everything the server needs to start, checked.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The HMAC secret.
    pub secret: SecretSlice<u8>,
    /// Where the users come from.
    pub users: UsersSource,
    /// Token lifetime, issuer and audience.
    pub tokens: TokenSettings,
    /// Request limits.
    pub limits: Limits,
    /// Password hashes computed at once.
    pub hash_concurrency: usize,
    /// Logins that may wait for a hashing slot.
    pub hash_queue: usize,
    /// Demo mode (for the warning it logs).
    pub demo: bool,
    /// The sessions database (`sqlite:...` or `postgres://...`); may hold a password.
    pub database_url: SecretString,
    /// Pool size and time limits of the store.
    pub store: StoreOptions,
    /// Refresh-token and session lifetimes.
    pub sessions: SessionSettings,
    /// Failed-login limits.
    pub throttle: ThrottleSettings,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: TrustedProxies,
    /// How often expired sessions and counters are deleted.
    pub cleanup_interval: Duration,
    /// Previous secrets that still verify the tokens they signed.
    pub previous_secrets: Vec<SecretSlice<u8>>,
    /// Serve HTTPS with these files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// RFC 6750 strict mode for the token check.
    pub strict: bool,
    /// A separate address for GET /metrics; on the main address when `None`.
    pub metrics_listen: Option<SocketAddr>,
}

/// A reason to refuse to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No secret was given.
    #[error(
        "no secret key: set AUTHD_SECRET_KEY or AUTHD_SECRET_KEY_FILE to {MIN_SECRET_BYTES}+ random bytes (e.g. `openssl rand -base64 48`), or try `authd --demo`"
    )]
    NoSecret,
    /// Both ways of giving a secret were used.
    #[error("both AUTHD_SECRET_KEY and AUTHD_SECRET_KEY_FILE are set; set only one")]
    TwoSecrets,
    /// The secret file could not be read.
    #[error("cannot read secret key file {path}: {source}")]
    SecretFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is too short.
    #[error(
        "secret key is {0} bytes; it must be at least {MIN_SECRET_BYTES} (make one with `openssl rand -base64 48`)"
    )]
    ShortSecret(usize),
    /// The secret is a known placeholder.
    #[error(
        "secret key is a placeholder from the tutorial or .env.example; make a real one with `openssl rand -base64 48`"
    )]
    PlaceholderSecret,
    /// The secret repeats too few distinct bytes.
    #[error(
        "secret key is weak ({0} distinct bytes); make a random one with `openssl rand -base64 48`"
    )]
    WeakSecret(usize),
    /// No users file outside demo mode.
    #[error(
        "no users file: set AUTHD_USERS to an htpasswd-format file (make lines with `authd hash-password`), or try `authd --demo`"
    )]
    NoUsers,
    /// The listen address does not parse.
    #[error("AUTHD_LISTEN `{0}` is not an IP:PORT address (e.g. 127.0.0.1:5000)")]
    BadListen(String),
    /// Demo mode on a non-loopback address.
    #[error(
        "--demo listens on loopback addresses only (127.0.0.1, ::1), not {0}: its user and password are public"
    )]
    DemoNotLoopback(SocketAddr),
    /// A duration does not parse or is out of range.
    #[error("{name} `{value}`: {reason}")]
    BadDuration {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry of AUTHD_TRUSTED_PROXIES does not parse.
    #[error("AUTHD_TRUSTED_PROXIES: {0}")]
    BadProxy(#[from] BadProxy),
    /// AUTHD_MAX_SESSIONS_PER_USER is not a number in range.
    #[error(
        "AUTHD_MAX_SESSIONS_PER_USER `{0}`: must be a whole number from 1 to 10000 (default 100)"
    )]
    BadMaxSessions(String),
    /// Throttle limits that are zero or too loose.
    #[error("{0}")]
    BadThrottle(String),
    /// A previous secret fails the checks the secret passes.
    #[error("AUTHD_SECRET_KEY_PREVIOUS, key {index}: {reason}")]
    PreviousSecret {
        /// 1-based position in the list.
        index: usize,
        /// What is wrong with it (never the key itself).
        reason: Box<ConfigError>,
    },
    /// Only one of the two TLS files was given.
    #[error("AUTHD_TLS_CERT and AUTHD_TLS_KEY go together: set both to serve HTTPS, or neither")]
    TlsHalf,
    /// Strict mode without an issuer and an audience.
    #[error(
        "AUTHD_STRICT needs AUTHD_ISSUER and AUTHD_AUDIENCE: tokens must name who issued them and whom they are for"
    )]
    StrictNeedsIssuerAudience,
    /// The metrics address does not parse.
    #[error("AUTHD_METRICS_LISTEN `{0}` is not an IP:PORT address (e.g. 127.0.0.1:9100)")]
    BadMetricsListen(String),
    /// The OS gave no random bytes for the demo secret.
    #[error("cannot get random bytes for the demo secret: {0}")]
    Random(String),
}

impl Config {
    /// Checks the flags and environment into a configuration.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let listen: SocketAddr = args
            .listen
            .parse()
            .map_err(|_| ConfigError::BadListen(args.listen.clone()))?;
        if args.demo && !listen.ip().is_loopback() {
            return Err(ConfigError::DemoNotLoopback(listen));
        }
        let database_url = SecretString::from(args.database_url());
        let secret = match (args.secret_key, args.secret_key_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoSecrets),
            (Some(s), None) => Some(s.into_bytes()),
            (None, Some(path)) => Some(read_secret_file(&path)?),
            (None, None) => None,
        };
        let secret = match secret {
            Some(bytes) => {
                check_secret(&bytes)?;
                bytes
            }
            None if args.demo => random_secret()?,
            None => return Err(ConfigError::NoSecret),
        };
        let users = match (args.demo, args.users) {
            (true, _) => UsersSource::Demo,
            (false, Some(path)) => UsersSource::File(path),
            (false, None) => return Err(ConfigError::NoUsers),
        };
        let ttl = parse_duration("AUTHD_TOKEN_TTL", &args.token_ttl)?;
        if ttl > MAX_TOKEN_TTL {
            return Err(ConfigError::BadDuration {
                name: "AUTHD_TOKEN_TTL",
                value: args.token_ttl,
                reason: "longer than 24h; access tokens are meant to be short-lived".into(),
            });
        }
        let request_timeout = parse_duration("AUTHD_REQUEST_TIMEOUT", &args.request_timeout)?;
        let header_read_timeout =
            parse_duration("AUTHD_HEADER_READ_TIMEOUT", &args.header_read_timeout)?;
        let sessions = SessionSettings {
            refresh_ttl: parse_duration("AUTHD_REFRESH_TTL", &args.refresh_ttl)?,
            lifetime: parse_duration("AUTHD_SESSION_LIFETIME", &args.session_lifetime)?,
            max_per_user: args
                .max_sessions_per_user
                .trim()
                .parse()
                .ok()
                .filter(|n| MAX_SESSIONS_PER_USER.contains(n))
                .ok_or(ConfigError::BadMaxSessions(args.max_sessions_per_user))?,
        };
        let throttle = ThrottleSettings {
            user_max: args.throttle_user_max,
            address_max: args.throttle_address_max,
            window: parse_duration("AUTHD_THROTTLE_WINDOW", &args.throttle_window)?,
            ban: parse_duration("AUTHD_THROTTLE_BAN", &args.throttle_ban)?,
        };
        check_throttle(&throttle)?;
        let trusted_proxies = args
            .trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .parse::<TrustedProxies>()?;
        let previous_secrets = args
            .secret_key_previous
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| {
                check_secret(s.as_bytes()).map_err(|e| ConfigError::PreviousSecret {
                    index: i + 1,
                    reason: Box::new(e),
                })?;
                Ok(SecretSlice::from(s.into_bytes()))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsHalf),
        };
        let issuer = args.issuer.filter(|s| !s.is_empty());
        let audience = args.audience.filter(|s| !s.is_empty());
        if args.strict && (issuer.is_none() || audience.is_none()) {
            return Err(ConfigError::StrictNeedsIssuerAudience);
        }
        let metrics_listen = args
            .metrics_listen
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| ConfigError::BadMetricsListen(s)))
            .transpose()?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            listen,
            secret: SecretSlice::from(secret),
            users,
            tokens: TokenSettings {
                ttl,
                issuer,
                audience,
            },
            limits: Limits {
                request_timeout,
                header_read_timeout,
                ..Limits::default()
            },
            hash_concurrency: args.hash_concurrency.unwrap_or(cores).max(1),
            hash_queue: args.hash_queue,
            demo: args.demo,
            database_url,
            store: StoreOptions::default(),
            sessions,
            throttle,
            trusted_proxies,
            cleanup_interval: Duration::from_secs(10 * 60),
            previous_secrets,
            tls,
            strict: args.strict,
            metrics_listen,
        })
    }

    /// The secret's bytes, for building keys.
    pub fn secret_bytes(&self) -> &[u8] {
        self.secret.expose_secret()
    }

    /// The previous secrets' bytes, for building keys.
    pub fn previous_secret_bytes(&self) -> Vec<&[u8]> {
        self.previous_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect()
    }
}

/// Refuses zero limits and limits that would let an account see more than ASVS's 100 failed
/// attempts an hour.
pub fn check_throttle(t: &ThrottleSettings) -> Result<(), ConfigError> {
    if t.user_max == 0 || t.address_max == 0 {
        return Err(ConfigError::BadThrottle(
            "AUTHD_THROTTLE_USER_MAX and AUTHD_THROTTLE_ADDRESS_MAX must be at least 1".into(),
        ));
    }
    let worst = t.worst_case_failures_per_hour();
    if worst > ASVS_MAX_FAILURES_PER_HOUR {
        return Err(ConfigError::BadThrottle(format!(
            "AUTHD_THROTTLE_USER_MAX {} per AUTHD_THROTTLE_WINDOW {}s allows up to {worst} failed logins an hour on one account; OWASP ASVS 2.2.1 allows {ASVS_MAX_FAILURES_PER_HOUR}: lower the limit or lengthen the window",
            t.user_max,
            t.window.as_secs()
        )));
    }
    Ok(())
}

fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|source| ConfigError::SecretFile {
        path: path.display().to_string(),
        source,
    })?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

/// Refuses short, placeholder and low-variety secrets.
pub fn check_secret(secret: &[u8]) -> Result<(), ConfigError> {
    let lower = secret.to_ascii_lowercase();
    if PLACEHOLDERS
        .iter()
        .any(|p| lower.windows(p.len()).any(|w| w == p.as_bytes()))
    {
        return Err(ConfigError::PlaceholderSecret);
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::ShortSecret(secret.len()));
    }
    let mut seen = [false; 256];
    for &b in secret {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    if distinct < MIN_DISTINCT_SECRET_BYTES {
        return Err(ConfigError::WeakSecret(distinct));
    }
    Ok(())
}

fn random_secret() -> Result<Vec<u8>, ConfigError> {
    let mut bytes = vec![0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| ConfigError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Parses `30m`, `1h30m`, `900s` or a bare number of seconds; zero is refused.
pub fn parse_duration(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let bad = |reason: String| ConfigError::BadDuration {
        name,
        value: value.to_owned(),
        reason,
    };
    let v = value.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v)
            .map_err(|e| bad(format!("{e}; use e.g. `15m`, `1h` or seconds")))?,
    };
    if d.is_zero() {
        return Err(bad("must be more than zero".into()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_human_and_second_forms() {
        let p = |s| parse_duration("X", s).unwrap();
        assert_eq!(p("15m"), Duration::from_secs(900));
        assert_eq!(p("1h"), Duration::from_secs(3600));
        assert_eq!(p("90"), Duration::from_secs(90));
        assert!(parse_duration("X", "0").is_err());
        assert!(parse_duration("X", "soon").is_err());
        assert_eq!(p("14d"), Duration::from_secs(14 * 86400));
    }

    #[test]
    fn throttle_limits_beyond_asvs_or_zero_are_refused() {
        assert!(check_throttle(&ThrottleSettings::default()).is_ok());
        let loose = ThrottleSettings {
            user_max: 10,
            ..ThrottleSettings::default()
        };
        let err = check_throttle(&loose).unwrap_err().to_string();
        assert!(err.contains("ASVS"), "{err}");
        let zero = ThrottleSettings {
            address_max: 0,
            ..ThrottleSettings::default()
        };
        assert!(check_throttle(&zero).is_err());
    }

    #[test]
    fn secrets_are_checked_for_length_placeholders_and_variety() {
        assert!(check_secret(b"Kq3v9Zr1LmP0sT8wXy2B6nD4fG7hJ5cA").is_ok());
        assert!(matches!(
            check_secret(b"short"),
            Err(ConfigError::ShortSecret(5))
        ));
        assert!(matches!(
            check_secret(b"your_secret_key"),
            Err(ConfigError::PlaceholderSecret)
        ));
        assert!(matches!(
            check_secret(EXAMPLE_SECRET.as_bytes()),
            Err(ConfigError::PlaceholderSecret)
        ));
        assert!(matches!(
            check_secret(&[b'a'; 64]),
            Err(ConfigError::WeakSecret(1))
        ));
    }
}
