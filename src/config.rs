//! Configuration: the command line and its environment variables (`./.env` or `--env-file` is read
//! first), checked into a plain `Config` value. Every refusal to start is a [`ConfigError`]
//! whose message is one line saying what to do; every number and duration has a range ([`ranges`]).
//! Without the `server` feature, only what a verifying service needs: [`token_keys_from_env`]
//! and [`load_env_file`].

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::tokens::{TokenKeys, TokenSettings};
// The server's settings; a service that only verifies reads the token settings alone
// ([`token_keys_from_env`]), without clap.
#[cfg(feature = "server")]
use {
    crate::browser::{BrowserSettings, MAX_APP_NAME_CHARS},
    crate::proxies::{BadForwardedUriHeader, BadProxy, ForwardedUriHeader, TrustedProxies},
    crate::sessions::SessionSettings,
    crate::store::{DEFAULT_DATABASE_URL, MEMORY_DATABASE_URL, StoreOptions},
    crate::throttle::{ASVS_MAX_FAILURES_PER_HOUR, ThrottleSettings},
    crate::tokens::CookieLifetimes,
    clap::builder::BoolishValueParser,
    clap::{ArgAction, Args, CommandFactory as _, Parser, Subcommand},
    std::net::IpAddr,
};

mod signing;
#[cfg(feature = "server")]
mod strength;

#[cfg(feature = "server")]
pub use signing::Signing;

/// Shortest secret accepted, in bytes: HS256's key should be at least as long as its 256-bit hash
/// (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// Fewest bits of guessing work accepted in a secret, as estimated (in `config::strength`) for
/// an attacker who knows words, keyboard walks, repeats and sequences. 2^128 guesses is
/// HMAC-SHA-256's own security level and out of reach of any offline search (a million GPUs at
/// 10^10 guesses a second make about 2^78 in a year), while 32 random letters and digits carry
/// about 190 bits and `openssl rand -base64 48` about 380.
pub const MIN_SECRET_BITS: f64 = 128.0;
/// The longest access-token lifetime accepted: access tokens are meant to be short-lived.
pub const MAX_TOKEN_TTL: Duration = ranges::TOKEN_TTL.max;
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
/// The port of `/metrics` when `AUTHD_METRICS_LISTEN` names an IP alone. Not node_exporter's 9100
/// nor any port of Prometheus's own list of exporter ports (9100 to 9999, full since 2023, and on
/// past 10000): Prometheus advises applications it does not list to stay outside that range.
/// Beside authd's own 5000, and outside Linux's ephemeral ports.
pub const DEFAULT_METRICS_PORT: u16 = 5009;
/// A secret with fewer distinct bytes than this is refused as weak (`aaaa...`, `abab...`).
const MIN_DISTINCT_SECRET_BYTES: usize = 8;

/// The accepted range of every number and duration setting, in one place. Start-up refuses a
/// value outside its range: besides catching typos, the bounds keep every deadline and size
/// computed from a setting far from overflow (a timeout of 2^64 s panicked on each connection)
/// and from exhausting memory or threads (a queue or thread count of a billion).
pub mod ranges {
    use std::time::Duration;

    /// An inclusive range of accepted values.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Bounds<T> {
        /// The least value accepted.
        pub min: T,
        /// The greatest value accepted.
        pub max: T,
    }

    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    const fn secs(min: u64, max: u64) -> Bounds<Duration> {
        Bounds {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
        }
    }

    /// `AUTHD_TOKEN_TTL`: access tokens are meant to be short-lived.
    pub const TOKEN_TTL: Bounds<Duration> = secs(1, DAY);
    /// `AUTHD_REQUEST_TIMEOUT`.
    pub const REQUEST_TIMEOUT: Bounds<Duration> = secs(1, 10 * MINUTE);
    /// `AUTHD_HEADER_READ_TIMEOUT`.
    pub const HEADER_READ_TIMEOUT: Bounds<Duration> = secs(1, 10 * MINUTE);
    /// `AUTHD_REFRESH_TTL`.
    pub const REFRESH_TTL: Bounds<Duration> = secs(1, 365 * DAY);
    /// `AUTHD_SESSION_LIFETIME`.
    pub const SESSION_LIFETIME: Bounds<Duration> = secs(1, 365 * DAY);
    /// `AUTHD_THROTTLE_WINDOW`.
    pub const THROTTLE_WINDOW: Bounds<Duration> = secs(1, DAY);
    /// `AUTHD_THROTTLE_BAN`.
    pub const THROTTLE_BAN: Bounds<Duration> = secs(1, DAY);
    /// `AUTHD_HASH_CONCURRENCY`: hashing threads (19 MiB each while they hash).
    pub const HASH_CONCURRENCY: Bounds<u64> = Bounds { min: 1, max: 256 };
    /// `AUTHD_HASH_QUEUE`: logins waiting for a hashing thread (0: none wait).
    pub const HASH_QUEUE: Bounds<u64> = Bounds {
        min: 0,
        max: 10_000,
    };
    /// `AUTHD_THROTTLE_USER_MAX` (the ASVS rule in `check_throttle` usually bounds it lower).
    pub const THROTTLE_USER_MAX: Bounds<u64> = Bounds { min: 1, max: 100 };
    /// `AUTHD_THROTTLE_ADDRESS_MAX`.
    pub const THROTTLE_ADDRESS_MAX: Bounds<u64> = Bounds {
        min: 1,
        max: 10_000,
    };
    /// `AUTHD_MAX_CONNECTIONS` (it can only lower the cap the open-file limit sets).
    pub const MAX_CONNECTIONS: Bounds<u64> = Bounds {
        min: 1,
        max: 1_000_000,
    };
    /// `AUTHD_MAX_SESSIONS_PER_USER`: live sessions a user may hold.
    pub const MAX_SESSIONS_PER_USER: Bounds<u64> = Bounds {
        min: 1,
        max: 10_000,
    };
    /// `AUTHD_MAX_REVOKED_SESSIONS`: revoked sessions held in memory (53 bytes each).
    pub const MAX_REVOKED_SESSIONS: Bounds<u64> = Bounds {
        min: 1_000,
        max: 10_000_000,
    };
    /// `AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL`: how far ahead of the start the time may be. A token
    /// lives at most a day ([`TOKEN_TTL`]), so a day covers the tokens issued before an issuer or
    /// audience was turned on; further ahead, the transition would become a standing exception.
    pub const ACCEPT_MISSING_CLAIMS_AHEAD: Duration = Duration::from_secs(DAY);
    /// `AUTHD_COOKIE_IDLE`: how long a browser session may go unused.
    pub const COOKIE_IDLE: Bounds<Duration> = secs(MINUTE, DAY);
    /// `AUTHD_COOKIE_LIFETIME`: a browser session's absolute lifetime.
    pub const COOKIE_LIFETIME: Bounds<Duration> = secs(MINUTE, 30 * DAY);
    /// `AUTHD_ACCESS_LOG_RATE`: request lines a second (0: none).
    pub const ACCESS_LOG_RATE: Bounds<u64> = Bounds {
        min: 0,
        max: 100_000,
    };
}
use ranges::Bounds;

#[cfg(feature = "server")]
/// authd: a small, fast, secure JWT auth server.
///
/// `Debug` prints secrets as `[REDACTED]`: they are held in [`SecretString`] from the moment
/// clap parses them.
#[derive(Debug, Parser)]
#[command(name = "authd", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without a subcommand, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Read settings from this file instead of `./.env` (same `NAME=value` lines; real
    /// environment variables still win). `.env` is never looked for in parent folders.
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Settings of the server.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[cfg(feature = "server")]
/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a password from standard input (no echo on a terminal) and print its argon2id hash,
    /// for a line `name:hash` of the users file.
    HashPassword,
    /// List, end or move sessions (refresh-token families) in the database of AUTHD_DATABASE_URL.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Add, remove, list users or change a password in the users file of AUTHD_USERS; a running
    /// server picks the change up by itself.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Add a user to a group or take one out, in the groups file of AUTHD_GROUPS.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Make signing keys for AUTHD_SIGNING_ALG=EdDSA or ES256.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `authd keys ...`.
#[cfg(feature = "server")]
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new private key (PKCS#8 PEM) for AUTHD_SIGNING_KEY_FILE, and its `kid` on standard
    /// error. Written owner-only: `--output FILE` makes a new file with mode 0600, and standard
    /// output redirected to a file (`> key.pem`) is made 0600 too.
    Generate {
        /// EdDSA (Ed25519) or ES256 (ECDSA P-256).
        #[arg(long, default_value = "EdDSA")]
        alg: String,
        /// Write to this new file (never overwriting one) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[cfg(feature = "server")]
/// `authd users ...`. A password is asked twice on a terminal, else read as the first line of
/// standard input; it and its hash are never printed.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (the users file is made, owner-only, when it does not exist).
    Add {
        /// The user's name: no `:`, whitespace or control characters.
        name: String,
    },
    /// Set a user's password, and end the user's sessions in the database.
    Passwd {
        /// The user.
        name: String,
    },
    /// Remove a user (and from every group of the groups file), and end the user's sessions in
    /// the database. Access tokens already issued stay valid until their `exp`.
    Remove {
        /// The user.
        name: String,
    },
    /// Print the users' names, one a line (never a hash).
    List,
}

#[cfg(feature = "server")]
/// `authd groups ...`.
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Put a user in a group (the group line is made when it does not exist).
    Add {
        /// The group: no `:`, whitespace or control characters.
        group: String,
        /// The user.
        user: String,
    },
    /// Take a user out of a group (a group left empty is removed).
    Remove {
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
}

#[cfg(feature = "server")]
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
    /// Write the live sessions as JSON lines, for `import` into another database.
    ///
    /// Live: not expired, not revoked. Stop the server first. The file holds the digests of
    /// refresh tokens, never a token, but it names users: keep it private and delete it once
    /// imported.
    Export {
        /// Write to this new file (made owner-only; an existing file is never overwritten)
        /// instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read the sessions `export` wrote into this database, all or none.
    ///
    /// A malformed file, or a session already there, imports nothing. The database must exist;
    /// when it holds no table yet, it gets authd's schema first.
    Import {
        /// The file `export` wrote; `-` for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[cfg(feature = "server")]
/// The server's flags; each has an environment variable. Every one is accepted after a
/// subcommand too (`authd sessions list --database-url ...`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT.
    #[arg(
        long,
        global = true,
        env = "AUTHD_LISTEN",
        default_value = "127.0.0.1:5000"
    )]
    pub listen: String,
    /// HMAC secret that signs tokens, 32 bytes or more. Prefer the environment variable or
    /// --secret-key-file: a flag's value is visible to every local user in `ps`.
    #[arg(long, global = true, env = "AUTHD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,
    /// File holding the secret (a trailing newline is ignored).
    #[arg(long, global = true, env = "AUTHD_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Users file in htpasswd format (`name:hash` a line; argon2id or bcrypt hashes).
    #[arg(long, global = true, env = "AUTHD_USERS")]
    pub users: Option<PathBuf>,
    /// Groups file in Apache's AuthGroupFile format (`group: user1 user2` a line); without it,
    /// nobody is in a group. Also read with --demo when given.
    #[arg(long, global = true, env = "AUTHD_GROUPS")]
    pub groups: Option<PathBuf>,
    /// Access-token lifetime: `30m`, `15m`, `1h`, or seconds; 1s to 24h.
    #[arg(long, global = true, env = "AUTHD_TOKEN_TTL", default_value = DEFAULT_TOKEN_TTL)]
    pub token_ttl: String,
    /// Issuer (`iss`) put in tokens and required of them.
    #[arg(long, global = true, env = "AUTHD_ISSUER")]
    pub issuer: Option<String>,
    /// Audience (`aud`) put in tokens and required of them.
    #[arg(long, global = true, env = "AUTHD_AUDIENCE")]
    pub audience: Option<String>,
    /// Until this RFC 3339 time (`2026-12-05T09:00:00Z`), accept tokens that lack `iss` or `aud`
    /// (a wrong one never), so that turning on AUTHD_ISSUER/AUTHD_AUDIENCE logs no one out; at
    /// most 24h ahead. Issued tokens carry them at once.
    #[arg(
        long,
        global = true,
        env = "AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL",
        value_name = "TIME"
    )]
    pub accept_missing_claims_until: Option<String>,
    /// Try it out: the tutorial's user `user` / `password`, a random secret unless one is given,
    /// loopback addresses only.
    #[arg(long, global = true, env = "AUTHD_DEMO", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub demo: bool,
    /// Password hashes computed at once, 1 to 256 (default: the number of cores).
    // Numbers are read as text and checked against `ranges` by `Config::from_args`, so that a
    // bad one is refused like a bad duration: one line naming the variable and its range.
    #[arg(long, global = true, env = "AUTHD_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<String>,
    /// Logins that may wait for a hashing slot, 0 to 10000; beyond it, 503 "Server busy".
    #[arg(long, global = true, env = "AUTHD_HASH_QUEUE", default_value = "32")]
    pub hash_queue: String,
    /// Time a request may take from its headers to its answer (408 past it); 1s to 10m.
    #[arg(
        long,
        global = true,
        env = "AUTHD_REQUEST_TIMEOUT",
        default_value = "10s"
    )]
    pub request_timeout: String,
    /// Time a client has to send a request's headers; the connection is closed past it; 1s to
    /// 10m.
    #[arg(
        long,
        global = true,
        env = "AUTHD_HEADER_READ_TIMEOUT",
        default_value = "10s"
    )]
    pub header_read_timeout: String,
    /// Most connections open at once (default: the open-file limit, raised to its hard value at
    /// start, minus a reserve). Past it, the connections idle the longest are closed; 1 to
    /// 1000000.
    #[arg(long, global = true, env = "AUTHD_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Request log lines written a second at most; the rest are counted in a summary line.
    /// 0: no request lines; at most 100000.
    #[arg(
        long,
        global = true,
        env = "AUTHD_ACCESS_LOG_RATE",
        default_value = "100"
    )]
    pub access_log_rate: String,
    /// Log format: `text` (a line of text per event, for people) or `json` (one JSON object a
    /// line: timestamp, level, target, message and the event's fields, for a log pipeline).
    #[arg(
        long,
        global = true,
        env = "AUTHD_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Where sessions and login counters live: `sqlite://data/authd.db` (the default; created on
    /// first start) or `postgres://user:password@host/db` for several instances. `--demo`
    /// without it keeps them in memory.
    #[arg(
        long,
        global = true,
        env = "AUTHD_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<SecretString>,
    /// File holding the database URL (it may hold a password); instead of --database-url.
    #[arg(long, global = true, env = "AUTHD_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Refresh-token lifetime: how long a session may go unused; 1s to 365d.
    #[arg(long, global = true, env = "AUTHD_REFRESH_TTL", default_value = "14d")]
    pub refresh_ttl: String,
    /// Absolute session lifetime from its login, however often it is refreshed; 1s to 365d.
    #[arg(
        long,
        global = true,
        env = "AUTHD_SESSION_LIFETIME",
        default_value = "30d"
    )]
    pub session_lifetime: String,
    /// Most live sessions per user, 1 to 10000; a login past it ends that user's oldest session.
    #[arg(
        long,
        global = true,
        env = "AUTHD_MAX_SESSIONS_PER_USER",
        default_value = "100"
    )]
    pub max_sessions_per_user: String,
    /// Most revoked sessions held in memory, 1000 to 10000000 (53 bytes each); past it, every
    /// token with a session id issued until then is refused until it would have expired.
    #[arg(
        long,
        global = true,
        env = "AUTHD_MAX_REVOKED_SESSIONS",
        default_value = "1000000"
    )]
    pub max_revoked_sessions: String,
    /// Failed logins allowed per username in one window, 1 to 100; past it, a ban.
    #[arg(
        long,
        global = true,
        env = "AUTHD_THROTTLE_USER_MAX",
        default_value = "5"
    )]
    pub throttle_user_max: String,
    /// Failed logins allowed per client address in one window, 1 to 10000; past it, a ban.
    #[arg(
        long,
        global = true,
        env = "AUTHD_THROTTLE_ADDRESS_MAX",
        default_value = "20"
    )]
    pub throttle_address_max: String,
    /// The window failed logins are counted in; 1s to 24h.
    #[arg(
        long,
        global = true,
        env = "AUTHD_THROTTLE_WINDOW",
        default_value = "5m"
    )]
    pub throttle_window: String,
    /// How long a user or address is refused (429) once past its limit; 1s to 24h.
    #[arg(long, global = true, env = "AUTHD_THROTTLE_BAN", default_value = "5m")]
    pub throttle_ban: String,
    /// Reverse proxies whose X-Forwarded-For is believed: IPs and CIDRs, comma-separated.
    #[arg(long, global = true, env = "AUTHD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Verify-only secrets: they never sign, but tokens they signed are accepted. During a key
    /// rotation: first the next key (so that instances not yet switched accept the tokens of
    /// those that are), then the previous one until its tokens expire. Login counters are kept
    /// under each too. Comma-separated, or the flag repeated; each is checked like the secret.
    #[arg(
        long,
        global = true,
        env = "AUTHD_SECRET_KEY_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secret_key_previous: Vec<SecretString>,
    /// File holding the verify-only secrets, one a line (blank lines and `#` comments ignored);
    /// instead of --secret-key-previous.
    #[arg(long, global = true, env = "AUTHD_SECRET_KEY_PREVIOUS_FILE")]
    pub secret_key_previous_file: Option<PathBuf>,
    /// Algorithm tokens are signed with: HS256 (the shared secret; the default), or EdDSA
    /// (Ed25519) or ES256 (ECDSA P-256) with a key pair whose public keys are published at
    /// /.well-known/jwks.json, so that other services verify without a secret. Only this
    /// algorithm's tokens are accepted.
    #[arg(long, global = true, env = "AUTHD_SIGNING_ALG", value_name = "ALG")]
    pub signing_alg: Option<String>,
    /// EdDSA/ES256: the private key, PEM PKCS#8 (`authd keys generate --alg EdDSA > key.pem`),
    /// owner-only (refused when group or others may read it).
    #[arg(
        long,
        global = true,
        env = "AUTHD_SIGNING_KEY_FILE",
        value_name = "FILE"
    )]
    pub signing_key_file: Option<PathBuf>,
    /// EdDSA/ES256: previous keys (PEM, public or private), still accepted and published during a
    /// rotation. Comma-separated, or the flag repeated.
    #[arg(
        long,
        global = true,
        env = "AUTHD_SIGNING_KEY_PREVIOUS_FILES",
        value_delimiter = ',',
        value_name = "FILES"
    )]
    pub signing_key_previous_files: Vec<PathBuf>,
    /// TLS certificate chain (PEM). With --tls-key, authd serves HTTPS; re-read on SIGHUP.
    #[arg(long, global = true, env = "AUTHD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, global = true, env = "AUTHD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// RFC 6750 behaviour: `?token=` refused, 401 with `WWW-Authenticate: Bearer` challenges;
    /// needs AUTHD_ISSUER and AUTHD_AUDIENCE.
    #[arg(long, global = true, env = "AUTHD_STRICT", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub strict: bool,
    /// Serve GET /metrics on this IP:PORT, or IP alone for port 5009 (plain HTTP), instead of on
    /// the main address.
    #[arg(long, global = true, env = "AUTHD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Where /verify reads the original request target: `auto` (X-Original-URI or
    /// X-Forwarded-Uri; both present must agree), `x-original-uri` or `x-forwarded-uri` (only
    /// that one, the one your proxy sets).
    #[arg(
        long,
        global = true,
        env = "AUTHD_FORWARDED_URI_HEADER",
        default_value = "auto"
    )]
    pub forwarded_uri_header: String,
    /// Browser sessions: the cookie covers this domain and its subdomains (e.g. `example.com`,
    /// so one sign-in serves every app under it), and sign-ins may return only there. Without
    /// it the cookie is host-only (`__Host-` prefix) and only the sign-in host is returned to.
    #[arg(long, global = true, env = "AUTHD_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,
    /// Browser sessions: the cookie is `Secure` (HTTPS only). `false` only for plain-HTTP
    /// development on a loopback address without TLS, with a warning.
    #[arg(
        long,
        global = true,
        env = "AUTHD_COOKIE_SECURE",
        default_value = "true",
        value_name = "BOOL"
    )]
    pub cookie_secure: String,
    /// Browser sessions: how long one may go unused before signing in again; 1m to 24h.
    #[arg(long, global = true, env = "AUTHD_COOKIE_IDLE", default_value = "1h")]
    pub cookie_idle: String,
    /// Browser sessions: how long one lasts from its sign-in, however active; 1m to 30d, at
    /// least AUTHD_COOKIE_IDLE.
    #[arg(
        long,
        global = true,
        env = "AUTHD_COOKIE_LIFETIME",
        default_value = "12h"
    )]
    pub cookie_lifetime: String,
    /// The public address of authd's sign-in page, as browsers reach it through the proxy
    /// (e.g. `https://auth.example.com/signin`); /verify sends browsers without a session
    /// there. Without it, /verify answers 401 and never redirects.
    #[arg(long, global = true, env = "AUTHD_SIGNIN_URL", value_name = "URL")]
    pub signin_url: Option<String>,
    /// Where a sign-in lands when it was given no usable `rd` (default: the sign-in page, which
    /// then says who is signed in).
    #[arg(
        long,
        global = true,
        env = "AUTHD_DEFAULT_REDIRECT",
        value_name = "URL"
    )]
    pub default_redirect: Option<String>,
    /// A name for what the sign-in page protects ("Sign in to NAME"), at most 64 characters.
    #[arg(long, global = true, env = "AUTHD_APP_NAME")]
    pub app_name: Option<String>,
    /// Write this process's id to this file once listening (and remove it on a clean exit), for
    /// `kill -HUP "$(cat FILE)"`: never signal authd by process name, which reaches every authd
    /// on the host.
    #[arg(long, global = true, env = "AUTHD_PID_FILE", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
}

/// How log lines are written (`AUTHD_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// A line of text per event, for people: tracing-subscriber's default format.
    #[default]
    Text,
    /// One JSON object a line, for a log pipeline (Loki, Elasticsearch, journald's forwarders):
    /// `timestamp`, `level`, `target`, `message` and the event's fields beside them.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = &'static str;

    /// `text` or `json`, in any case (empty is `text`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("use `text` or `json`"),
        }
    }
}

/// The PEM files of the HTTPS certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

#[cfg(feature = "server")]
impl ServeArgs {
    /// The database URL: the configured one (or the one in its file), else in memory for
    /// `--demo`, else the default file.
    pub fn database_url(&self) -> Result<SecretString, ConfigError> {
        let from_file = match (&self.database_url, &self.database_url_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Both(
                    "AUTHD_DATABASE_URL",
                    "AUTHD_DATABASE_URL_FILE",
                ));
            }
            (_, Some(path)) => Some(read_secret_file(path)?),
            _ => None,
        };
        let configured = match &from_file {
            Some(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| ConfigError::NotText("AUTHD_DATABASE_URL_FILE"))?
                .trim(),
            None => self
                .database_url
                .as_ref()
                .map_or("", |u| u.expose_secret().trim()),
        };
        Ok(match configured {
            "" if self.demo => SecretString::from(MEMORY_DATABASE_URL),
            "" => SecretString::from(DEFAULT_DATABASE_URL),
            url => SecretString::from(url),
        })
    }

    /// The settings of the token keys.
    fn tokens(&self) -> TokenArgs {
        TokenArgs {
            secret_key: self.secret_key.clone(),
            secret_key_file: self.secret_key_file.clone(),
            secret_key_previous: self.secret_key_previous.clone(),
            secret_key_previous_file: self.secret_key_previous_file.clone(),
            token_ttl: self.token_ttl.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            accept_missing_claims_until: self.accept_missing_claims_until.clone(),
            signing_alg: self.signing_alg.clone(),
            signing_key_file: self.signing_key_file.clone(),
            signing_key_previous_files: self.signing_key_previous_files.clone(),
        }
    }
}

/// The settings of the token keys, as the command line reads them ([`ServeArgs`]) or, for a
/// service that only verifies, as [`token_keys_from_env`] reads them from the environment
/// without clap; checked the same way either way.
#[derive(Debug, Clone)]
struct TokenArgs {
    secret_key: Option<SecretString>,
    secret_key_file: Option<PathBuf>,
    secret_key_previous: Vec<SecretString>,
    secret_key_previous_file: Option<PathBuf>,
    token_ttl: String,
    issuer: Option<String>,
    audience: Option<String>,
    accept_missing_claims_until: Option<String>,
    signing_alg: Option<String>,
    signing_key_file: Option<PathBuf>,
    signing_key_previous_files: Vec<PathBuf>,
}

/// The variables [`TokenArgs::from_env`] reads: each is also a flag's (a test checks it).
const TOKEN_VARIABLES: [&str; 11] = [
    "AUTHD_SECRET_KEY",
    "AUTHD_SECRET_KEY_FILE",
    "AUTHD_SECRET_KEY_PREVIOUS",
    "AUTHD_SECRET_KEY_PREVIOUS_FILE",
    "AUTHD_TOKEN_TTL",
    "AUTHD_ISSUER",
    "AUTHD_AUDIENCE",
    "AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL",
    "AUTHD_SIGNING_ALG",
    "AUTHD_SIGNING_KEY_FILE",
    "AUTHD_SIGNING_KEY_PREVIOUS_FILES",
];

/// The token lifetime when `AUTHD_TOKEN_TTL` is not set.
const DEFAULT_TOKEN_TTL: &str = "30m";

impl TokenArgs {
    /// The token settings from the environment, read as clap reads authd's: a variable that is
    /// set counts (even empty), the previous secrets are comma-separated.
    fn from_env() -> Result<Self, ConfigError> {
        let [
            secret_key,
            secret_key_file,
            secret_key_previous,
            secret_key_previous_file,
            token_ttl,
            issuer,
            audience,
            accept_missing_claims_until,
            signing_alg,
            signing_key_file,
            signing_key_previous_files,
        ] = TOKEN_VARIABLES.map(|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Settings(format!(
                "{name}: the value is not UTF-8 text"
            ))),
        });
        Ok(Self {
            secret_key: secret_key?.map(SecretString::from),
            secret_key_file: secret_key_file?.map(PathBuf::from),
            secret_key_previous: secret_key_previous?
                .map(|v| v.split(',').map(SecretString::from).collect())
                .unwrap_or_default(),
            secret_key_previous_file: secret_key_previous_file?.map(PathBuf::from),
            token_ttl: token_ttl?.unwrap_or_else(|| DEFAULT_TOKEN_TTL.to_owned()),
            issuer: issuer?,
            audience: audience?,
            accept_missing_claims_until: accept_missing_claims_until?,
            signing_alg: signing_alg?,
            signing_key_file: signing_key_file?.map(PathBuf::from),
            signing_key_previous_files: signing_key_previous_files?
                .map(|v| v.split(',').map(PathBuf::from).collect())
                .unwrap_or_default(),
        })
    }

    /// The secret, from the flag or variable or from its file, checked; `None` when none is given.
    fn checked_secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let secret = match (&self.secret_key, &self.secret_key_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoSecrets),
            (Some(s), None) => s.expose_secret().as_bytes().to_vec(),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => return Ok(None),
        };
        check_secret(&secret)?;
        Ok(Some(secret))
    }

    /// The previous secrets, each checked like the secret.
    fn checked_previous_secrets(&self) -> Result<Vec<SecretSlice<u8>>, ConfigError> {
        self.previous_secrets()?
            .iter()
            .map(|s| s.expose_secret().trim())
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| {
                check_secret(s.as_bytes()).map_err(|e| ConfigError::PreviousSecret {
                    index: i + 1,
                    reason: Box::new(e),
                })?;
                Ok(SecretSlice::from(s.as_bytes().to_vec()))
            })
            .collect()
    }

    /// Token lifetime, issuer and audience, and the end of the transition to them.
    fn token_settings(&self) -> Result<TokenSettings, ConfigError> {
        let issuer = self.issuer.clone().filter(|s| !s.is_empty());
        let audience = self.audience.clone().filter(|s| !s.is_empty());
        let accept_missing_claims_until = match self.accept_missing_claims_until.as_deref() {
            Some(v) if !v.trim().is_empty() => {
                if issuer.is_none() && audience.is_none() {
                    return Err(ConfigError::MissingClaimsWithoutClaims);
                }
                Some(parse_transition_end(v, crate::tokens::now())?)
            }
            _ => None,
        };
        Ok(TokenSettings {
            ttl: parse_duration("AUTHD_TOKEN_TTL", &self.token_ttl, ranges::TOKEN_TTL)?,
            issuer,
            audience,
            accept_missing_claims_until,
        })
    }

    /// The previous secrets, from the flag or variable or from their file.
    fn previous_secrets(&self) -> Result<Vec<SecretString>, ConfigError> {
        match (
            &self.secret_key_previous_file,
            self.secret_key_previous.is_empty(),
        ) {
            (None, _) => Ok(self.secret_key_previous.clone()),
            (Some(_), false) => Err(ConfigError::Both(
                "AUTHD_SECRET_KEY_PREVIOUS",
                "AUTHD_SECRET_KEY_PREVIOUS_FILE",
            )),
            (Some(path), true) => {
                let bytes = read_secret_file(path)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ConfigError::NotText("AUTHD_SECRET_KEY_PREVIOUS_FILE"))?;
                Ok(text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(SecretString::from)
                    .collect())
            }
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
    /// Most connections open at once; `None`: as many as the open-file limit leaves room for.
    pub max_connections: Option<usize>,
    /// Request log lines written a second at most (0: none); the rest are counted.
    pub access_log_rate: u32,
}

/// Request log lines a second by default: enough to follow a small service line by line, too few
/// for a flood to fill a disk (about 40 KB a second).
pub const DEFAULT_ACCESS_LOG_RATE: u32 = 100;

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
            max_connections: None,
            access_log_rate: DEFAULT_ACCESS_LOG_RATE,
        }
    }
}

#[cfg(feature = "server")]
/// Everything the server needs to start, checked.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The HMAC secret under HS256; under a key pair, authd's internal secret derived from the
    /// private key (throttle counters, CSRF tokens, decoy choice).
    pub secret: SecretSlice<u8>,
    /// What signs tokens: the secret, or a key pair.
    pub signing: Signing,
    /// Where the users come from.
    pub users: UsersSource,
    /// The groups file; nobody is in a group without one.
    pub groups: Option<PathBuf>,
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
    /// Which header `/verify` reads the original request target from.
    pub forwarded_uri_header: ForwardedUriHeader,
    /// Sign-in page, session cookie and redirects for people with browsers.
    pub browser: BrowserSettings,
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
    /// `AUTHD_SIGNING_ALG` names no algorithm authd signs with.
    #[error("AUTHD_SIGNING_ALG `{0}`: use HS256, EdDSA or ES256")]
    BadSigningAlg(String),
    /// HS256 settings beside a key pair, or key-pair settings under HS256.
    #[error("{0}")]
    SigningMix(&'static str),
    /// A key pair algorithm without a key.
    #[error(
        "AUTHD_SIGNING_ALG={0} needs a private key: make one with `authd keys generate --alg {0} --output key.pem` and set AUTHD_SIGNING_KEY_FILE=key.pem"
    )]
    NoSigningKey(crate::signing::SigningAlg),
    /// A signing key file that cannot be used.
    #[error("signing key file {path}: {reason}")]
    SigningKey {
        /// The file.
        path: String,
        /// Why (never its contents).
        reason: String,
    },
    /// A key pair without `AUTHD_ISSUER`.
    #[error(
        "AUTHD_SIGNING_ALG=EdDSA or ES256 needs AUTHD_ISSUER, the https URL authd is reached at: verifiers find its keys at AUTHD_ISSUER/.well-known/jwks.json"
    )]
    IssuerNeeded,
    /// An issuer that is no URL verifiers could fetch keys from.
    #[error("AUTHD_ISSUER {0}")]
    BadIssuer(String),
    /// A setting was given both as a value and as a file.
    #[error("both {0} and {1} are set; set only one")]
    Both(&'static str, &'static str),
    /// A setting that does not parse, as the command line's parser says.
    #[error("{0}")]
    Settings(String),
    /// A file that should hold text does not.
    #[error("{0}: the file is not UTF-8 text")]
    NotText(&'static str),
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
    /// The secret is made of patterns an attacker tries first.
    #[error(
        "secret key is guessable: about {0} bits of guessing work for an attacker who tries words, keyboard walks, repeats and sequences, and {MIN_SECRET_BITS} are needed; make a random one with `openssl rand -base64 48`"
    )]
    GuessableSecret(u32),
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
        /// Its value (cut to a few dozen characters).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A time does not parse or is out of range.
    #[error("{name} `{value}`: {reason}")]
    BadTime {
        /// The variable.
        name: &'static str,
        /// Its value (cut to a few dozen characters).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A transition to issuer/audience with neither configured.
    #[error(
        "AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL is for turning on AUTHD_ISSUER or AUTHD_AUDIENCE, and neither is set: set them, or remove it"
    )]
    MissingClaimsWithoutClaims,
    /// AUTHD_FORWARDED_URI_HEADER names no header /verify reads.
    #[error("AUTHD_FORWARDED_URI_HEADER: {0}")]
    #[cfg(feature = "server")]
    BadForwardedUriHeader(#[from] BadForwardedUriHeader),
    /// A number does not parse or is out of range.
    #[error("{name} `{value}`: {reason}")]
    BadNumber {
        /// The variable.
        name: &'static str,
        /// Its value (cut to a few dozen characters).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The settings file (`./.env` or `--env-file`) cannot be read.
    #[error("cannot read settings file {path}: {source}")]
    EnvFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the settings file is not `NAME=value`. The line is not shown: it may hold a
    /// secret.
    #[error(
        "settings file {0}: a line is not NAME=value (an unclosed quote, say); fix it or remove the file"
    )]
    EnvFileSyntax(String),
    /// An entry of AUTHD_TRUSTED_PROXIES does not parse.
    #[error("AUTHD_TRUSTED_PROXIES: {0}")]
    #[cfg(feature = "server")]
    BadProxy(#[from] BadProxy),
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
    #[error(
        "AUTHD_METRICS_LISTEN `{0}` is not an IP or IP:PORT address (e.g. 127.0.0.1, which means 127.0.0.1:{DEFAULT_METRICS_PORT})"
    )]
    BadMetricsListen(String),
    /// A browser setting (`AUTHD_COOKIE_*`, `AUTHD_SIGNIN_URL`, `AUTHD_DEFAULT_REDIRECT`,
    /// `AUTHD_APP_NAME`) that cannot be used.
    #[error("{0}")]
    BadBrowser(String),
    /// The OS gave no random bytes for the demo secret.
    #[error("cannot get random bytes for the demo secret: {0}")]
    Random(String),
}

#[cfg(feature = "server")]
impl Config {
    /// Checks the flags and environment into a configuration. A secret file that group or others
    /// may read is named in a warning (through `tracing`: set up logs first).
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let listen: SocketAddr = args
            .listen
            .parse()
            .map_err(|_| ConfigError::BadListen(args.listen.clone()))?;
        if args.demo && !listen.ip().is_loopback() {
            return Err(ConfigError::DemoNotLoopback(listen));
        }
        let database_url = args.database_url()?;
        let browser = browser_settings(
            &args,
            listen,
            args.tls_cert.is_some() || args.tls_key.is_some(),
        )?;
        let token_args = args.tokens();
        let mut tokens = token_args.token_settings()?;
        let (signing, secret, previous_secrets) = match signing::key_pair(&token_args, args.demo)? {
            Some(pair) => {
                tokens.issuer = Some(signing::issuer_for_key_pair(
                    tokens.issuer.take(),
                    args.demo,
                    listen,
                )?);
                (pair.signing, pair.secret, pair.previous_secrets)
            }
            None => {
                let previous = token_args.checked_previous_secrets()?;
                let secret = match token_args.checked_secret()? {
                    Some(bytes) => bytes,
                    None if args.demo => random_secret()?,
                    None => return Err(ConfigError::NoSecret),
                };
                (Signing::Secret, SecretSlice::from(secret), previous)
            }
        };
        let users = match (args.demo, args.users) {
            (true, _) => UsersSource::Demo,
            (false, Some(path)) => UsersSource::File(path),
            (false, None) => return Err(ConfigError::NoUsers),
        };
        let request_timeout = parse_duration(
            "AUTHD_REQUEST_TIMEOUT",
            &args.request_timeout,
            ranges::REQUEST_TIMEOUT,
        )?;
        let header_read_timeout = parse_duration(
            "AUTHD_HEADER_READ_TIMEOUT",
            &args.header_read_timeout,
            ranges::HEADER_READ_TIMEOUT,
        )?;
        let sessions = SessionSettings {
            refresh_ttl: parse_duration(
                "AUTHD_REFRESH_TTL",
                &args.refresh_ttl,
                ranges::REFRESH_TTL,
            )?,
            lifetime: parse_duration(
                "AUTHD_SESSION_LIFETIME",
                &args.session_lifetime,
                ranges::SESSION_LIFETIME,
            )?,
            max_per_user: parse_number(
                "AUTHD_MAX_SESSIONS_PER_USER",
                &args.max_sessions_per_user,
                ranges::MAX_SESSIONS_PER_USER,
            )?,
            max_revoked: parse_number(
                "AUTHD_MAX_REVOKED_SESSIONS",
                &args.max_revoked_sessions,
                ranges::MAX_REVOKED_SESSIONS,
            )?,
        };
        let throttle = ThrottleSettings {
            user_max: parse_number(
                "AUTHD_THROTTLE_USER_MAX",
                &args.throttle_user_max,
                ranges::THROTTLE_USER_MAX,
            )?,
            address_max: parse_number(
                "AUTHD_THROTTLE_ADDRESS_MAX",
                &args.throttle_address_max,
                ranges::THROTTLE_ADDRESS_MAX,
            )?,
            window: parse_duration(
                "AUTHD_THROTTLE_WINDOW",
                &args.throttle_window,
                ranges::THROTTLE_WINDOW,
            )?,
            ban: parse_duration(
                "AUTHD_THROTTLE_BAN",
                &args.throttle_ban,
                ranges::THROTTLE_BAN,
            )?,
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hash_concurrency = match args.hash_concurrency.as_deref() {
            Some(n) if !n.trim().is_empty() => {
                parse_number("AUTHD_HASH_CONCURRENCY", n, ranges::HASH_CONCURRENCY)?
            }
            // The default stays within the range on a machine of more cores than it allows.
            _ => cores.clamp(
                ranges::HASH_CONCURRENCY.min as usize,
                ranges::HASH_CONCURRENCY.max as usize,
            ),
        };
        let hash_queue = parse_number("AUTHD_HASH_QUEUE", &args.hash_queue, ranges::HASH_QUEUE)?;
        check_throttle(&throttle)?;
        let trusted_proxies = args
            .trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .parse::<TrustedProxies>()?;
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsHalf),
        };
        if args.strict && (tokens.issuer.is_none() || tokens.audience.is_none()) {
            return Err(ConfigError::StrictNeedsIssuerAudience);
        }
        let metrics_listen = args
            .metrics_listen
            .filter(|s| !s.is_empty())
            .map(|s| parse_metrics_listen(&s).ok_or(ConfigError::BadMetricsListen(s)))
            .transpose()?;
        let forwarded_uri_header = args.forwarded_uri_header.parse::<ForwardedUriHeader>()?;
        Ok(Self {
            listen,
            secret,
            signing,
            users,
            groups: args.groups.filter(|p| !p.as_os_str().is_empty()),
            tokens,
            limits: Limits {
                request_timeout,
                header_read_timeout,
                max_connections: args
                    .max_connections
                    .map(|n| parse_number("AUTHD_MAX_CONNECTIONS", &n, ranges::MAX_CONNECTIONS))
                    .transpose()?,
                access_log_rate: parse_number(
                    "AUTHD_ACCESS_LOG_RATE",
                    &args.access_log_rate,
                    ranges::ACCESS_LOG_RATE,
                )?,
                ..Limits::default()
            },
            hash_concurrency,
            hash_queue,
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
            forwarded_uri_header,
            browser,
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

/// `AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL`: an RFC 3339 time, at most
/// [`ranges::ACCEPT_MISSING_CLAIMS_AHEAD`] after `now`, in seconds since the Unix epoch. A time
/// already past is accepted (a setting left behind after the transition must not stop a restart)
/// and changes nothing; it is named in a warning.
fn parse_transition_end(value: &str, now: i64) -> Result<i64, ConfigError> {
    const NAME: &str = "AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL";
    let bad = |reason: &str| ConfigError::BadTime {
        name: NAME,
        value: shown(value),
        reason: reason.to_owned(),
    };
    let until = chrono::DateTime::parse_from_rfc3339(value.trim())
        .map_err(|_| bad("not an RFC 3339 time; use e.g. `2026-12-05T09:00:00Z`"))?
        .timestamp();
    let ahead = i64::try_from(ranges::ACCEPT_MISSING_CLAIMS_AHEAD.as_secs()).unwrap_or(i64::MAX);
    if until > now.saturating_add(ahead) {
        return Err(bad(
            "more than 24h ahead; tokens live at most a day, so the transition needs no more: use the time the last instance gets the issuer/audience plus one AUTHD_TOKEN_TTL and 30s",
        ));
    }
    let shown_until = chrono::DateTime::from_timestamp(until, 0)
        .map_or_else(|| until.to_string(), |t| t.to_rfc3339());
    if until <= now {
        tracing::warn!(
            "{NAME} is past ({shown_until}): tokens without iss/aud are refused; remove the setting"
        );
    } else {
        tracing::warn!(
            "until {shown_until} ({NAME}), tokens without iss/aud are accepted (a wrong iss/aud never is)"
        );
    }
    Ok(until)
}

#[cfg(feature = "server")]
/// The browser settings, checked: a cookie domain that is a domain name (no scheme, port, IP or
/// leading dot), `Secure` off only on a loopback address without TLS (said loudly), lifetimes in
/// range with the absolute one at least the idle one, absolute `http(s)` URLs (`https` while the
/// cookie is `Secure`) with the sign-in URL inside the cookie domain, a short printable app name.
fn browser_settings(
    args: &ServeArgs,
    listen: SocketAddr,
    tls: bool,
) -> Result<BrowserSettings, ConfigError> {
    let bad = |m: String| ConfigError::BadBrowser(m);
    let cookie_secure = match args.cookie_secure.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => true,
        "0" | "false" | "no" | "off" => false,
        _ => {
            return Err(bad(format!(
                "AUTHD_COOKIE_SECURE `{}`: use `true` or `false`",
                shown(&args.cookie_secure)
            )));
        }
    };
    if !cookie_secure {
        if tls || !listen.ip().is_loopback() {
            return Err(bad(
                "AUTHD_COOKIE_SECURE=false is for plain-HTTP development on a loopback address only: \
                 a session cookie sent without TLS can be stolen on the way; leave it on"
                    .into(),
            ));
        }
        tracing::warn!(
            "AUTHD_COOKIE_SECURE=false: session cookies travel over plain HTTP; \
             DEVELOPMENT ONLY, never expose this server"
        );
    }
    let cookie_domain = match args.cookie_domain.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => {
            let d = d.to_ascii_lowercase();
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            let is_ip = d.parse::<IpAddr>().is_ok();
            if is_ip || d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
                return Err(bad(format!(
                    "AUTHD_COOKIE_DOMAIN `{}` is not a domain name such as `example.com` \
                     (no scheme, port, leading dot or IP address)",
                    shown(&d)
                )));
            }
            Some(d)
        }
    };
    let idle = parse_duration("AUTHD_COOKIE_IDLE", &args.cookie_idle, ranges::COOKIE_IDLE)?;
    let lifetime = parse_duration(
        "AUTHD_COOKIE_LIFETIME",
        &args.cookie_lifetime,
        ranges::COOKIE_LIFETIME,
    )?;
    if lifetime < idle {
        return Err(bad(
            "AUTHD_COOKIE_LIFETIME is shorter than AUTHD_COOKIE_IDLE; make it at least as long"
                .into(),
        ));
    }
    let url = |name: &str, value: &Option<String>| -> Result<Option<url::Url>, ConfigError> {
        let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let u = url::Url::parse(v).ok().filter(|u| {
            (u.scheme() == "https" || (u.scheme() == "http" && !cookie_secure))
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.fragment().is_none()
        });
        u.map(Some).ok_or_else(|| {
            bad(format!(
                "{name} `{}` is not an absolute https:// URL (http:// only with AUTHD_COOKIE_SECURE=false)",
                shown(v)
            ))
        })
    };
    let signin_url = url("AUTHD_SIGNIN_URL", &args.signin_url)?;
    if let (Some(u), Some(d)) = (&signin_url, &cookie_domain) {
        let host = u.host_str().unwrap_or_default();
        if host != d && !host.ends_with(&format!(".{d}")) {
            return Err(bad(format!(
                "AUTHD_SIGNIN_URL is on {host}, outside AUTHD_COOKIE_DOMAIN {d}: the cookie it sets would not reach the apps"
            )));
        }
    }
    let default_redirect = url("AUTHD_DEFAULT_REDIRECT", &args.default_redirect)?;
    let app_name = match args.app_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) if n.chars().count() > MAX_APP_NAME_CHARS || n.chars().any(char::is_control) => {
            return Err(bad(format!(
                "AUTHD_APP_NAME: at most {MAX_APP_NAME_CHARS} characters, none of them control characters"
            )));
        }
        Some(n) => Some(n.to_owned()),
    };
    Ok(BrowserSettings {
        cookie_domain,
        cookie_secure,
        lifetimes: CookieLifetimes { idle, lifetime },
        signin_url,
        default_redirect,
        app_name,
    })
}

#[cfg(feature = "server")]
/// `AUTHD_METRICS_LISTEN`: `IP:PORT`, or an IP alone (IPv6 with or without brackets) for
/// [`DEFAULT_METRICS_PORT`].
fn parse_metrics_listen(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    value.parse().ok().or_else(|| {
        let ip = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some(v6) => IpAddr::V6(v6.parse().ok()?),
            None => value.parse().ok()?,
        };
        Some(SocketAddr::new(ip, DEFAULT_METRICS_PORT))
    })
}

#[cfg(feature = "server")]
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

/// Reads the secret file, warning when its mode lets group or others read it (mode checked on
/// the opened file, so it is the file that was read).
fn read_secret_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let failed = |source| ConfigError::SecretFile {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map_err(failed)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "secret file {} is readable by group or others (mode {:o}); `chmod 600` it \
                 and keep it owned by the user authd runs as",
                path.display(),
                mode & 0o777
            );
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(failed)?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

/// The token keys another service needs to check authd's tokens exactly as authd does, built
/// from the same settings authd reads, checked the same way. Under `AUTHD_SIGNING_ALG=EdDSA` or
/// `ES256`: the public keys of `AUTHD_SIGNING_KEY_FILE` (a public PEM will do) and
/// `AUTHD_SIGNING_KEY_PREVIOUS_FILES`, verifying only. Under HS256: `AUTHD_SECRET_KEY` or
/// `AUTHD_SECRET_KEY_FILE`, `AUTHD_SECRET_KEY_PREVIOUS` or `AUTHD_SECRET_KEY_PREVIOUS_FILE`,
/// `AUTHD_TOKEN_TTL`, `AUTHD_ISSUER`, `AUTHD_AUDIENCE` and `AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL`,
/// from the environment (load a `.env`
/// first with [`load_env_file`] if the service keeps its settings there).
pub fn token_keys_from_env() -> Result<TokenKeys, ConfigError> {
    let args = TokenArgs::from_env()?;
    if let Some(public) = signing::verifying_keys(&args)? {
        return TokenKeys::verify_only(&public, args.token_settings()?)
            .map_err(|e| ConfigError::Settings(format!("cannot build verifying keys: {e}")));
    }
    let secret = args.checked_secret()?.ok_or(ConfigError::NoSecret)?;
    let previous = args.checked_previous_secrets()?;
    let previous: Vec<&[u8]> = previous.iter().map(|s| s.expose_secret()).collect();
    TokenKeys::with_previous(&secret, &previous, args.token_settings()?)
        .map_err(|e| ConfigError::Settings(format!("cannot build signing keys: {e}")))
}

#[cfg(feature = "server")]
/// Every environment variable authd reads (from the command line's definition, so the list
/// cannot drift from the settings).
pub fn known_variables() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

#[cfg(feature = "server")]
/// The `AUTHD_*` variables in this environment that no setting reads (a typo, or a setting that
/// does not exist, such as a guessed `_FILE` variant), each with the known name closest to it.
pub fn unknown_variables() -> Vec<(String, Option<String>)> {
    let known = known_variables();
    let mut unknown: Vec<(String, Option<String>)> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("AUTHD_") && !known.contains(name))
        .map(|name| {
            let closest = known
                .iter()
                .map(|k| (strsim::jaro_winkler(&name, k), k))
                .filter(|(score, _)| *score > 0.85)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| k.clone());
            (name, closest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Loads `NAME=value` settings into the environment, before the command line is parsed: from
/// `explicit` (`--env-file`) when given, which must then exist, else from `./.env` when there
/// is one. Never from a parent folder: dotenvy's `dotenv()` walks up to `/`, so a `.env` two
/// folders up could add a previous key an attacker knows. Variables already set win.
pub fn load_env_file(explicit: Option<&Path>) -> Result<(), ConfigError> {
    let path = explicit.unwrap_or(Path::new(".env"));
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(e) if explicit.is_none() && e.not_found() => Ok(()),
        Err(dotenvy::Error::Io(source)) => Err(ConfigError::EnvFile {
            path: path.display().to_string(),
            source,
        }),
        // Not the error's own text: it quotes the line, which may hold a secret.
        Err(_) => Err(ConfigError::EnvFileSyntax(path.display().to_string())),
    }
}

/// Refuses short, placeholder, low-variety and guessable secrets.
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
    // Bytes that are not UTF-8 (`head -c 48 /dev/urandom`) are not something a person typed,
    // and zxcvbn reads text: they are judged by the checks above only.
    // Without the server (no zxcvbn), a verifying service's secret is not judged for
    // guessability: it must be the secret authd itself accepted, judged there at start.
    #[cfg(feature = "server")]
    if let Ok(text) = std::str::from_utf8(secret) {
        let bits = strength::estimated_bits(text);
        if bits < MIN_SECRET_BITS {
            // Whole bits: the estimate's decimals would pretend to a precision it lacks.
            return Err(ConfigError::GuessableSecret(bits as u32));
        }
    }
    Ok(())
}

#[cfg(feature = "server")]
fn random_secret() -> Result<Vec<u8>, ConfigError> {
    let mut bytes = vec![0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| ConfigError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Parses `30m`, `1h30m`, `900s` or a bare number of seconds, within `range`.
pub fn parse_duration(
    name: &'static str,
    value: &str,
    range: Bounds<Duration>,
) -> Result<Duration, ConfigError> {
    let bad = |reason: String| ConfigError::BadDuration {
        name,
        value: shown(value),
        reason,
    };
    let within = format!("from {} to {}", human(range.min), human(range.max));
    let v = value.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v)
            .map_err(|e| bad(format!("{e}; use e.g. `15m`, `1h` or seconds, {within}")))?,
    };
    if d < range.min || d > range.max {
        return Err(bad(format!("out of range; use {within}")));
    }
    Ok(d)
}

/// Parses a whole number within `range`.
pub fn parse_number<T: TryFrom<u64>>(
    name: &'static str,
    value: &str,
    range: Bounds<u64>,
) -> Result<T, ConfigError> {
    let bad = |reason: String| ConfigError::BadNumber {
        name,
        value: shown(value),
        reason,
    };
    let within = format!("from {} to {}", range.min, range.max);
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| bad(format!("not a whole number; use one {within}")))?;
    if n < range.min || n > range.max {
        return Err(bad(format!("out of range; use {within}")));
    }
    T::try_from(n).map_err(|_| bad(format!("out of range; use {within}")))
}

/// A value as quoted in a refusal: cut short, so that a runaway value cannot flood the line.
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    match value.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}

/// A duration in its largest whole unit (`10m`, `365d`), as the ranges are written.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, name) in [(86_400, "d"), (3_600, "h"), (60, "m")] {
        if s >= unit && s.is_multiple_of(unit) {
            return format!("{}{name}", s / unit);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_human_and_second_forms() {
        let p = |s| parse_duration("X", s, ranges::REFRESH_TTL).unwrap();
        assert_eq!(p("15m"), Duration::from_secs(900));
        assert_eq!(p("1h"), Duration::from_secs(3600));
        assert_eq!(p("90"), Duration::from_secs(90));
        assert!(parse_duration("X", "0", ranges::REFRESH_TTL).is_err());
        assert!(parse_duration("X", "soon", ranges::REFRESH_TTL).is_err());
        assert_eq!(p("14d"), Duration::from_secs(14 * 86400));
    }

    #[test]
    fn durations_and_numbers_are_accepted_at_the_edges_of_their_range_and_refused_past_them() {
        let r = ranges::REQUEST_TIMEOUT;
        let d = |v| parse_duration("AUTHD_REQUEST_TIMEOUT", v, r);
        assert_eq!(d("1s").unwrap(), r.min);
        assert_eq!(d("10m").unwrap(), r.max);
        assert!(d("999ms").is_err());
        assert!(d("601").is_err());
        let err = d("18446744073709551615").unwrap_err().to_string();
        assert_eq!(
            err,
            "AUTHD_REQUEST_TIMEOUT `18446744073709551615`: out of range; use from 1s to 10m"
        );
        assert_eq!(human(ranges::REFRESH_TTL.max), "365d");
        let q = |v| parse_number::<usize>("AUTHD_HASH_QUEUE", v, ranges::HASH_QUEUE);
        assert_eq!(q("0").unwrap(), 0);
        assert_eq!(q("10000").unwrap(), 10_000);
        for bad in ["10001", "-1", "1e3", "", "99999999999999999999999"] {
            assert!(q(bad).is_err(), "{bad}");
        }
        let long = "9".repeat(10_000);
        assert!(q(&long).unwrap_err().to_string().len() < 200);
    }

    #[cfg(feature = "server")]
    #[test]
    fn a_metrics_address_is_ip_and_port_or_an_ip_alone_for_the_default_port() {
        use std::net::Ipv6Addr;
        let default = |ip: IpAddr| Some(SocketAddr::new(ip, DEFAULT_METRICS_PORT));
        assert_eq!(
            parse_metrics_listen("127.0.0.1"),
            default(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            parse_metrics_listen(" ::1 "),
            default(Ipv6Addr::LOCALHOST.into())
        );
        assert_eq!(
            parse_metrics_listen("[::1]"),
            default(Ipv6Addr::LOCALHOST.into())
        );
        assert_eq!(
            parse_metrics_listen("10.0.0.7:9999"),
            Some(SocketAddr::from(([10, 0, 0, 7], 9999)))
        );
        assert_eq!(
            parse_metrics_listen("[::1]:0"),
            Some(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0))
        );
        for bad in [
            "localhost",
            "127.0.0.1:",
            "127.0.0.1:65536",
            ":5009",
            "5009",
            "[127.0.0.1]",
        ] {
            assert_eq!(parse_metrics_listen(bad), None, "{bad}");
        }
        assert!(
            ConfigError::BadMetricsListen("x".into())
                .to_string()
                .contains(&format!("127.0.0.1:{DEFAULT_METRICS_PORT}"))
        );
    }

    #[test]
    fn the_transition_end_is_an_rfc_3339_time_at_most_a_day_ahead() {
        let now = 1_800_000_000;
        let at = |secs: i64| {
            chrono::DateTime::from_timestamp(secs, 0)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(
            parse_transition_end(&at(now + 3600), now).unwrap(),
            now + 3600
        );
        assert_eq!(
            parse_transition_end(&at(now + 86_400), now).unwrap(),
            now + 86_400
        );
        // Past: accepted, no effect.
        assert_eq!(parse_transition_end(&at(now - 1), now).unwrap(), now - 1);
        // With an offset: the same instant.
        assert_eq!(
            parse_transition_end("2027-01-15T10:00:00+02:00", now).unwrap(),
            parse_transition_end("2027-01-15T08:00:00Z", now).unwrap()
        );
        for bad in [
            at(now + 86_401),
            "2027-01-15".to_owned(),
            "2027-01-15 08:00".to_owned(),
            "tomorrow".to_owned(),
            "1800003600".to_owned(),
        ] {
            let err = parse_transition_end(&bad, now).unwrap_err().to_string();
            assert!(
                err.starts_with("AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL `"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn log_formats_are_text_or_json_in_any_case() {
        for (value, format) in [
            ("text", LogFormat::Text),
            ("", LogFormat::Text),
            ("json", LogFormat::Json),
            (" JSON ", LogFormat::Json),
        ] {
            assert_eq!(value.parse::<LogFormat>(), Ok(format), "{value:?}");
        }
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[cfg(feature = "server")]
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

    #[cfg(feature = "server")]
    #[test]
    fn secrets_are_checked_for_length_placeholders_variety_and_guessability() {
        assert!(check_secret(b"Kq3v9Zr1LmP0sT8wXy2B6nD4fG7hJ5cA").is_ok());
        assert!(matches!(
            check_secret(b"correct horse battery staple is a password"),
            Err(ConfigError::GuessableSecret(_))
        ));
        // Random bytes that are not text pass on length and variety alone.
        let bytes: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(97) | 0x80).collect();
        assert!(check_secret(&bytes).is_ok());
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

    #[cfg(feature = "server")]
    #[test]
    fn the_variables_a_verifying_service_reads_are_authds_own() {
        let known = known_variables();
        for name in TOKEN_VARIABLES {
            assert!(known.iter().any(|k| k == name), "{name} is not a setting");
        }
        // And the token settings are all of the command line's that end up in the keys.
        let settings: Vec<&String> = known
            .iter()
            .filter(|k| {
                ["AUTHD_SECRET_KEY", "AUTHD_TOKEN_", "AUTHD_SIGNING_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .collect();
        for name in settings {
            assert!(
                TOKEN_VARIABLES.contains(&name.as_str()),
                "{name} is not read"
            );
        }
    }
}
