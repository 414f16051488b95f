//! The store: sessions and login throttle counters in SQL. sqlx's `any` driver runs the very same
//! queries on embedded SQLite (the default, one instance) and PostgreSQL (several instances).
//! Opening it runs the embedded migrations; every operation is bounded in time. A schema found
//! missing under a running server (a database dropped and made again empty) is applied again.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// The default database: a SQLite file under the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/authd.db";
/// The database of `--demo` when none is configured: SQLite in memory, gone at exit.
pub const MEMORY_DATABASE_URL: &str = "sqlite::memory:";

/// The schema, embedded in the binary and applied in order at start (recorded in
/// `_sqlx_migrations`, so each runs once; several instances starting at once take turns).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "sessions and login throttle",
        include_str!("../../migrations/0001_sessions.sql"),
    ),
    (
        2,
        "one row per session",
        include_str!("../../migrations/0002_one_row_per_session.sql"),
    ),
    (
        3,
        "revocations",
        include_str!("../../migrations/0003_revocations.sql"),
    ),
];

/// Shortest pause between two attempts to apply a missing schema again, so that a schema that
/// cannot be repaired does not make every failing request run the migrator.
const REPAIR_PAUSE: Duration = Duration::from_secs(1);

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: a file (WAL mode) or memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections in the pool (SQLite in memory always uses one).
    pub max_connections: u32,
    /// Longest any one operation may take, waiting for a connection included; past it the
    /// operation fails with [`StoreError::Timeout`] (and the HTTP layer answers 503).
    pub op_timeout: Duration,
    /// Longest the first connection and the migrations may take at start.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            op_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the store could not be opened or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported engine.
    #[error(
        "AUTHD_DATABASE_URL must start with `sqlite:` (e.g. sqlite://data/authd.db) or `postgres://`"
    )]
    UnsupportedUrl,
    /// The directory of the SQLite file could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database refused or failed an operation, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file could not be created.
    #[error("cannot create the database file {path}: {source}")]
    CreateFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database did not answer in time.
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    /// An admin command found no authd database where it looked.
    #[error("{0}")]
    NoDatabase(String),
}

/// A pool of connections to the sessions database. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    op_timeout: Duration,
    connect_timeout: Duration,
    /// Held while the schema is applied again; when that was last tried.
    repair: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Store {
    /// Connects to `url` (`sqlite:...` or `postgres://...`) and runs the migrations. A SQLite
    /// file and its directory are created when missing, and put in WAL mode.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        Self::open_as(Target::parse(url)?, options).await
    }

    /// Opens authd's database at `url` for the admin commands: one that exists and holds authd's
    /// schema, never a new one (an empty database made on the spot would answer "no sessions"
    /// about a database that is somewhere else). The schema is brought up to date.
    pub async fn open_existing(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let target = Target::existing(url)?;
        if !matches!(Self::contents(&target, options).await?, Contents::Authd) {
            return Err(StoreError::NoDatabase(
                "the database holds no authd schema (is it the one the server uses?)".into(),
            ));
        }
        Self::open_as(target, options).await
    }

    /// Opens the database at `url` that `authd sessions import` writes into: one that exists
    /// (a SQLite file is never created, a PostgreSQL database must be there to connect to) and
    /// holds either authd's schema or no table at all, usually one just made for authd, which
    /// then gets the schema as the server's first start would give it. A database holding other
    /// tables is refused: it is not one authd uses.
    pub async fn open_for_import(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let target = Target::existing(url)?;
        if matches!(Self::contents(&target, options).await?, Contents::Other) {
            return Err(StoreError::NoDatabase(
                "the database holds tables but no authd schema (is it the one the server uses?)"
                    .into(),
            ));
        }
        Self::open_as(target, options).await
    }

    /// What the database of `target` holds, read over a connection of its own.
    async fn contents(target: &Target, options: &StoreOptions) -> Result<Contents, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_url = target.connect_url();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.op_timeout)
            .connect(&connect_url);
        let pool = tokio::time::timeout(options.connect_timeout, pool)
            .await
            .map_err(|_| StoreError::Timeout(options.connect_timeout))??;
        let authd = sqlx::query("SELECT 1 FROM _sqlx_migrations LIMIT 1")
            .fetch_optional(&pool)
            .await;
        let contents = if matches!(authd, Ok(Some(_))) {
            Ok(Contents::Authd)
        } else {
            // Tables where authd's would go: SQLite's file, PostgreSQL's current schema (the
            // first of the search path, where the migrations would create them).
            let tables = match target.backend() {
                Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                Backend::Postgres => {
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema()"
                }
            };
            let query = sqlx::query_scalar::<_, i64>(tables).fetch_one(&pool);
            match tokio::time::timeout(options.op_timeout, query).await {
                Ok(Ok(0)) => Ok(Contents::Empty),
                Ok(Ok(_)) => Ok(Contents::Other),
                Ok(Err(e)) => Err(StoreError::Database(e)),
                Err(_) => Err(StoreError::Timeout(options.op_timeout)),
            }
        };
        pool.close().await;
        contents
    }

    async fn open_as(target: Target, options: &StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if let Target::SqliteFile { path, creates, .. } = &target {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            if *creates {
                create_private_file(path).map_err(|source| StoreError::CreateFile {
                    path: path.display().to_string(),
                    source,
                })?;
            }
        }
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.op_timeout);
        if matches!(target, Target::SqliteMemory { .. }) {
            // One connection that never closes: the database lives as long as it does.
            pool_options = pool_options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let backend = target.backend();
        let connect_url = target.connect_url();
        let open = async {
            let pool = pool_options.connect(&connect_url).await?;
            if matches!(target, Target::SqliteFile { .. }) {
                // Persistent in the file: readers do not block the writer, and a commit is on
                // disk before it is acknowledged (synchronous stays FULL).
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
            }
            migrator().await?.run(&pool).await?;
            Ok::<_, StoreError>(pool)
        };
        let pool = tokio::time::timeout(options.connect_timeout, open)
            .await
            .map_err(|_| StoreError::Timeout(options.connect_timeout))??;
        if let Target::SqliteFile { path, .. } = &target {
            warn_if_readable_by_others(path);
        }
        Ok(Self {
            pool,
            backend,
            op_timeout: options.op_timeout,
            connect_timeout: options.connect_timeout,
            repair: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether what logins, refreshes and logouts need answers, within the operation timeout:
    /// their tables exist and take writes now. A missing schema is applied again first.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.probe().await {
            Err(StoreError::Database(e)) if schema_missing(&e) => {
                self.repair_schema().await;
                self.probe().await
            }
            other => other,
        }
    }

    /// `SELECT 1` said ok while the tables were gone or locked and every login timed out. A
    /// `DELETE` that matches nothing names the tables and needs the lock every write takes
    /// (PostgreSQL's ROW EXCLUSIVE; SQLite's writer lock), so a table locked against writers
    /// keeps it waiting into the timeout; it changes nothing.
    async fn probe(&self) -> Result<(), StoreError> {
        let probe = async {
            for table in ["session_families", "login_throttle", "revocations"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE 1 = 0"))
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        };
        tokio::time::timeout(self.op_timeout, probe)
            .await
            .map_err(|_| StoreError::Timeout(self.op_timeout))?
    }

    /// Applies the migrations again after a query found a table missing (the database dropped
    /// and made again under us, say). One caller at a time; the others wait for its outcome, and
    /// a second try comes a second after the first at the soonest. When the migrations
    /// table says the schema is there but its tables are not, nothing is dropped or guessed: an
    /// error asks for a person.
    pub async fn repair_schema(&self) {
        let mut last = match self.repair.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone is at it: wait for them rather than run the migrator twice.
                let _ = self.repair.lock().await;
                return;
            }
        };
        if last.is_some_and(|t| t.elapsed() < REPAIR_PAUSE) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(
            target: "authd::store",
            "database tables missing (database dropped or made again?): applying the schema again"
        );
        let run = async { migrator().await?.run(&self.pool).await };
        match tokio::time::timeout(self.connect_timeout, run).await {
            Ok(Ok(())) => match self.probe().await {
                Ok(()) => tracing::warn!(target: "authd::store", "database schema applied again"),
                Err(StoreError::Database(e)) if schema_missing(&e) => tracing::error!(
                    target: "authd::store",
                    "database tables missing but _sqlx_migrations says they were made: restore the \
                     database from a backup, or drop _sqlx_migrations to have authd make them empty"
                ),
                Err(e) => {
                    tracing::error!(target: "authd::store", error = %e, "database schema check failed")
                }
            },
            Ok(Err(e)) => {
                tracing::error!(target: "authd::store", error = %e, "database schema could not be applied");
            }
            Err(_) => tracing::error!(
                target: "authd::store",
                timeout = ?self.connect_timeout,
                "database schema could not be applied in time"
            ),
        }
    }

    /// Closes every connection; later operations fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `op` within the operation timeout. When it fails on a missing table, the schema is
    /// applied again in the background ([`Store::repair_schema`]); this request still fails.
    pub(crate) async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.op_timeout, op)
            .await
            .map_err(|_| StoreError::Timeout(self.op_timeout))?;
        if let Err(StoreError::Database(e)) = &result
            && schema_missing(e)
        {
            let store = self.clone();
            tokio::spawn(async move { store.repair_schema().await });
        }
        result
    }
}

/// What an existing database holds, for the admin commands.
enum Contents {
    /// authd's schema (its migrations table).
    Authd,
    /// No table at all where authd's would go.
    Empty,
    /// Tables, but not authd's.
    Other,
}

/// A URL checked and sorted by engine.
enum Target {
    /// `creates`: authd makes the file when missing (no `mode=` in the URL but `rwc`).
    SqliteFile {
        path: PathBuf,
        url: String,
        creates: bool,
    },
    SqliteMemory {
        url: String,
    },
    Postgres {
        url: String,
    },
}

impl Target {
    /// The target of `url` for the admin commands: a database that exists, never one made on the
    /// spot (a SQLite file opened `rw`, whatever the URL asked for; no in-memory database).
    fn existing(url: &str) -> Result<Self, StoreError> {
        match Self::parse(url)? {
            Self::SqliteMemory { .. } => Err(StoreError::NoDatabase(
                "an in-memory database (the demo's) lives only inside the server".into(),
            )),
            Self::SqliteFile { path, url, .. } => {
                if !path.is_file() {
                    return Err(StoreError::NoDatabase(format!(
                        "no database file at {}",
                        path.display()
                    )));
                }
                let url = url.replace("mode=rwc", "mode=rw");
                Ok(Self::SqliteFile {
                    path,
                    url,
                    creates: false,
                })
            }
            postgres @ Self::Postgres { .. } => Ok(postgres),
        }
    }

    fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: url.to_owned(),
            });
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or(StoreError::UnsupportedUrl)?;
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        if database == ":memory:" || params.split('&').any(|p| p == "mode=memory") {
            // sqlx makes a new database for each connection to `:memory:`; a named shared-cache
            // one is the same for every connection of this process.
            let mut name = [0u8; 8];
            let _ = getrandom::fill(&mut name);
            let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
            return Ok(Self::SqliteMemory {
                url: format!("sqlite:file:authd-{name}?mode=memory&cache=shared"),
            });
        }
        if database.is_empty() {
            return Err(StoreError::UnsupportedUrl);
        }
        // Created when missing, unless the URL says otherwise.
        let mode = params.split('&').find_map(|p| p.strip_prefix("mode="));
        let url = if mode.is_some() {
            url.to_owned()
        } else if params.is_empty() {
            format!("{url}?mode=rwc")
        } else {
            format!("{url}&mode=rwc")
        };
        Ok(Self::SqliteFile {
            path: Path::new(database).to_path_buf(),
            url,
            creates: mode.is_none_or(|m| m == "rwc"),
        })
    }

    fn backend(&self) -> Backend {
        match self {
            Self::SqliteFile { .. } | Self::SqliteMemory { .. } => Backend::Sqlite,
            Self::Postgres { .. } => Backend::Postgres,
        }
    }

    fn connect_url(&self) -> String {
        match self {
            Self::SqliteFile { url, .. } | Self::SqliteMemory { url } | Self::Postgres { url } => {
                url.clone()
            }
        }
    }
}

/// The database `url` names, for a person: a SQLite path, or a PostgreSQL URL without its password.
pub fn describe(url: &str) -> String {
    let url = url.trim();
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let scheme = &url[..url.len() - rest.len()];
        return match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(name, _)| name);
                format!("{scheme}{user}@{host}")
            }
            None => url.to_owned(),
        };
    }
    url.to_owned()
}

/// Whether `e` says a table is missing: PostgreSQL's `undefined_table`, SQLite's "no such table".
fn schema_missing(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
        }
        _ => false,
    }
}

/// Creates `dir` and its missing parents, owner-only (0700): journal files appear beside the
/// database. Directories that exist are left as they are.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the SQLite file owner-only (0600) before SQLite opens it, when missing; an existing
/// file is not touched. SQLite creates `-wal` and `-shm` with the mode of the database file, so
/// they are 0600 too. Not `umask`: it is process-wide, and other threads create files meanwhile.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Warns, naming the file, when the database or its `-wal` / `-shm` can be read by group or
/// others (made so by an older authd, or by hand). Left as they are: the mode may be meant.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                target: "authd::store",
                file = %file.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "database file is readable by group or others; `chmod 600` it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The embedded migrations, as a sqlx migration source.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        description.into(),
                        MigrationType::Simple,
                        sql.into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The SHA-256 digest of `data`, in hex: how tokens and throttle buckets are keyed.
pub(crate) fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode_and_their_directory() {
        let Target::SqliteFile { path, url, creates } =
            Target::parse("sqlite://data/authd.db").unwrap()
        else {
            panic!("not a file")
        };
        assert_eq!(path, Path::new("data/authd.db"));
        assert_eq!(url, "sqlite://data/authd.db?mode=rwc");
        assert!(creates);
        let Target::SqliteFile { url, creates, .. } =
            Target::parse("sqlite:///tmp/x.db?mode=rw").unwrap()
        else {
            panic!("not a file")
        };
        assert_eq!(url, "sqlite:///tmp/x.db?mode=rw");
        assert!(!creates, "mode=rw opens an existing file only");
    }

    #[test]
    fn memory_urls_become_named_shared_databases_and_others_are_refused() {
        for url in ["sqlite::memory:", "sqlite://x?mode=memory"] {
            let Target::SqliteMemory { url } = Target::parse(url).unwrap() else {
                panic!("not memory: {url}")
            };
            assert!(url.starts_with("sqlite:file:authd-"), "{url}");
        }
        assert!(matches!(
            Target::parse("postgres://u@h/db").unwrap(),
            Target::Postgres { .. }
        ));
        for bad in ["mysql://x", "data/authd.db", "sqlite://", ""] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
