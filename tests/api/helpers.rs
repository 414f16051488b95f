//! Test harness: `spawn_app` builds the app from a `Config` in-process on port 0;
//! `Binary` runs the real `authd` executable (the optimised `test-release` build under `scripts/test.sh`).
//! Both sign as the deployment under test does: HS256 with [`SECRET`], or, under
//! `AUTHD_TEST_SIGNING_ALG=EdDSA` (or `ES256`), a key pair made once per test process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use authd::config::{Limits, UsersSource};
use authd::proxies::{ForwardedUriHeader, TrustedProxies};
use authd::sessions::SessionSettings;
use authd::store::StoreOptions;
use authd::throttle::ThrottleSettings;
use authd::{Application, Config, TokenSettings};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The secret every in-process test app signs with.
pub const SECRET: &str = "test-CCPKteHUMt5wVR1u/h8XLrdXFvB2lWQYJ5LIkQKC";
pub const USER: &str = "user";
pub const PASSWORD: &str = "password";

/// An argon2id hash of `password`, made once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| authd::users::hash_password(PASSWORD.as_bytes()).unwrap())
}

/// An HTTP client for the tests. reqwest is built without a TLS crypto provider of its own (the
/// HTTPS tests use ring, like the server), so the process-wide default is set here first: build
/// clients through this function, not `reqwest::Client::new()`, which panics without it.
pub fn client() -> reqwest::Client {
    static PROVIDER: OnceLock<()> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        // Err only when another test thread installed it first: the same provider.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

pub fn now() -> i64 {
    authd::tokens::now()
}

/// Signs `claims` with any algorithm and secret, the way another JWT library would.
pub fn mint(alg: Algorithm, secret: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Signs `claims` the way the deployment under test does ([`signing_alg`]): HS256 with
/// [`SECRET`], or the test key pair (with its `kid`). Under a key pair the deployment requires
/// `iss`, so claims without one get [`TEST_ISSUER`]. For tests about claims (expiry, subject,
/// audience), not about the algorithm.
pub fn mint_deployed(claims: &serde_json::Value) -> String {
    match test_key_pem() {
        None => mint(Algorithm::HS256, SECRET, claims),
        Some(pem) => mint_with_pem(signing_alg(), pem, &with_test_issuer(claims)),
    }
}

/// Signs `claims` as [`mint_deployed`] would, but with a key that is not the deployment's: another
/// HS256 secret, or a new key pair of the same algorithm.
pub fn mint_with_other_key(claims: &serde_json::Value) -> String {
    let alg = signing_alg();
    if !alg.is_asymmetric() {
        return mint(
            Algorithm::HS256,
            "another-secret-another-secret-another-secret",
            claims,
        );
    }
    let pem = authd::signing::SigningKey::generate_pem(alg).unwrap();
    mint_with_pem(alg, pem.expose_secret(), &with_test_issuer(claims))
}

fn with_test_issuer(claims: &serde_json::Value) -> serde_json::Value {
    let mut claims = claims.clone();
    if claims.get("iss").is_none() {
        claims["iss"] = TEST_ISSUER.into();
    }
    claims
}

/// Signs `claims` with the private key `pem` of `alg` (EdDSA or ES256), naming the key in `kid`
/// as authd does.
pub fn mint_with_pem(
    alg: authd::signing::SigningAlg,
    pem: &str,
    claims: &serde_json::Value,
) -> String {
    use authd::signing::{SigningAlg, SigningKey};
    let encoding = match alg {
        SigningAlg::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
        SigningAlg::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        SigningAlg::Hs256 => panic!("HS256 has no key pair"),
    }
    .unwrap();
    let mut header = Header::new(alg.jwt());
    let key = SigningKey::from_pem(alg, pem.as_bytes()).unwrap();
    header.kid = Some(key.public().kid().to_owned());
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

/// The algorithm the deployment under test signs with: `AUTHD_TEST_SIGNING_ALG` (HS256, EdDSA or
/// ES256; HS256 when unset). `scripts/test.sh` runs the suites that must hold under any algorithm
/// a second time with EdDSA.
pub fn signing_alg() -> authd::signing::SigningAlg {
    static ALG: OnceLock<authd::signing::SigningAlg> = OnceLock::new();
    *ALG.get_or_init(|| match std::env::var("AUTHD_TEST_SIGNING_ALG") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("AUTHD_TEST_SIGNING_ALG={v:?}: use HS256, EdDSA or ES256")),
        _ => authd::signing::SigningAlg::Hs256,
    })
}

/// The issuer the harness gives a key-pair deployment (which must have one; `http` is allowed on
/// loopback).
pub const TEST_ISSUER: &str = "http://127.0.0.1";

/// The private key (PKCS#8 PEM) of the test key pair, made once per test process; `None` under
/// HS256.
pub fn test_key_pem() -> Option<&'static str> {
    static PEM: OnceLock<Option<String>> = OnceLock::new();
    PEM.get_or_init(|| {
        let alg = signing_alg();
        alg.is_asymmetric().then(|| {
            authd::signing::SigningKey::generate_pem(alg)
                .unwrap()
                .expose_secret()
                .to_owned()
        })
    })
    .as_deref()
}

/// The test key pair; `None` under HS256.
pub fn test_signing_key() -> Option<&'static authd::signing::SigningKey> {
    static KEY: OnceLock<Option<authd::signing::SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        test_key_pem()
            .map(|pem| authd::signing::SigningKey::from_pem(signing_alg(), pem.as_bytes()).unwrap())
    })
    .as_ref()
}

/// The key file the binary reads under a key pair, relative to its working directory.
pub const TEST_KEY_FILE: &str = "signing-key.pem";

/// The settings that make the binary sign as the deployment under test does: the secret under
/// HS256; under a key pair, the algorithm, [`TEST_KEY_FILE`] (written into the binary's
/// directory by [`write_test_key`]) and [`TEST_ISSUER`].
pub fn signing_envs() -> Vec<(&'static str, &'static str)> {
    if test_key_pem().is_none() {
        return vec![("AUTHD_SECRET_KEY", SECRET)];
    }
    vec![
        ("AUTHD_SIGNING_ALG", signing_alg().name()),
        ("AUTHD_SIGNING_KEY_FILE", TEST_KEY_FILE),
        ("AUTHD_ISSUER", TEST_ISSUER),
    ]
}

/// Writes the test private key into `dir` as [`TEST_KEY_FILE`], owner-only, unless it is there
/// already (a binary restarted in its directory); nothing under HS256.
pub fn write_test_key(dir: &Path) {
    let path = dir.join(TEST_KEY_FILE);
    if let Some(pem) = test_key_pem()
        && !path.exists()
    {
        write_private(&path, pem);
    }
}

/// Writes a new file readable by its owner only, as a private key must be.
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The separate metrics address, when the config asked for one.
    pub metrics_addr: Option<SocketAddr>,
    pub base: String,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// What `/login` and `/refresh` answer on success.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/login"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
    }

    /// Logs in as the test user and returns the token.
    pub async fn token(&self) -> String {
        let res = self.login(USER, PASSWORD).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Logs in as the test user and returns both tokens.
    pub async fn tokens(&self) -> Tokens {
        let res = self.login(USER, PASSWORD).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        res.json().await.unwrap()
    }

    /// `POST /refresh` with a JSON body.
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/refresh"))
            .json(&serde_json::json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap()
    }

    /// `POST /logout` with a JSON body.
    pub async fn logout(&self, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/logout"))
            .json(&serde_json::json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap()
    }

    pub async fn protected_with_query(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.url("/protected"))
            .query(&[("token", token)])
            .send()
            .await
            .unwrap()
    }
}

/// A config for tests: port 0, the test secret, a users file holding `user:<hash>`; under a key
/// pair ([`signing_alg`]) the test key signs and [`TEST_ISSUER`] is the issuer (the secret is then
/// only authd's internal one).
pub fn test_config(dir: &Path) -> Config {
    let users = dir.join("users");
    std::fs::write(&users, format!("{USER}:{}\n", password_hash())).unwrap();
    let (signing, issuer) = match test_signing_key() {
        None => (authd::config::Signing::Secret, None),
        Some(key) => (
            authd::config::Signing::KeyPair {
                key: Box::new(key.clone()),
                previous: Vec::new(),
            },
            Some(TEST_ISSUER.to_owned()),
        ),
    };
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        secret: SecretSlice::from(SECRET.as_bytes().to_vec()),
        signing,
        users: UsersSource::File(users),
        groups: None,
        tokens: TokenSettings {
            issuer,
            ..TokenSettings::default()
        },
        limits: Limits::default(),
        hash_concurrency: 2,
        hash_queue: 32,
        demo: false,
        database_url: SecretString::from(authd::store::MEMORY_DATABASE_URL),
        store: StoreOptions::default(),
        sessions: SessionSettings::default(),
        throttle: ThrottleSettings::default(),
        trusted_proxies: TrustedProxies::default(),
        cleanup_interval: Duration::from_secs(600),
        previous_secrets: Vec::new(),
        tls: None,
        strict: false,
        metrics_listen: None,
        forwarded_uri_header: ForwardedUriHeader::default(),
        browser: authd::browser::BrowserSettings::default(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_, _| {}).await
}

/// Starts the app in-process after `adjust` has changed the test config (the temp dir is passed
/// for files it wants to write).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config, &Path)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    adjust(&mut config, dir.path());
    let app = Application::build(config).await.unwrap();
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let base = format!("{}://{addr}", app.scheme());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        metrics_addr,
        base,
        client: client(),
        _stop: stop,
        _dir: dir,
    }
}

// Tests that need a tool from outside cargo (PostgreSQL, PyJWT, nginx, newman, Schemathesis) are
// `#[ignore = "needs …"]`: a plain `cargo test` reports them as not run, never as passed.
// `scripts/test.sh` runs them (`--include-ignored`) when it found the tool, and CI always does; a
// test that runs without its tool fails, naming it.

/// A database of its own for one test: a SQLite file in a temp dir, or a fresh schema in the
/// PostgreSQL of `AUTHD_TEST_DATABASE_URL` (dropped at the end), so that tests run in parallel.
pub struct TestDb {
    pub url: String,
    pub engine: &'static str,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/authd.db", dir.path().display());
        TestDb {
            url,
            engine: "sqlite",
            pg: None,
            _dir: Some(dir),
        }
    }

    /// A fresh schema in `AUTHD_TEST_DATABASE_URL` (a test that calls this is ignored unless asked
    /// for: it fails, naming the variable, without one).
    pub async fn postgres(test: &str) -> TestDb {
        let base = std::env::var("AUTHD_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{test} needs PostgreSQL: set AUTHD_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test; scripts/test.sh finds a local one)"
                )
            });
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let schema = format!(
            "authd_test_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        pg_execute(&base, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        TestDb {
            url,
            engine: "postgres",
            pg: Some((base, schema)),
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg.take() {
            // Drop may run inside a runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(pg_execute(
                    &base,
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                ));
            })
            .join();
        }
    }
}

async fn pg_execute(url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to AUTHD_TEST_DATABASE_URL: {e}"));
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
}

/// Runs a test body once on SQLite and once on PostgreSQL: `on_both_engines!(name)` makes
/// `name::sqlite` and `name::postgres` from `async fn name(db: TestDb)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestDb::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
            async fn postgres() {
                super::$name($crate::helpers::TestDb::postgres(module_path!()).await).await;
            }
        }
    )*};
}

/// Starts the app in-process on `db`, after `adjust`.
pub async fn spawn_app_on(db: &TestDb, adjust: impl FnOnce(&mut Config, &Path)) -> TestApp {
    let url = db.url.clone();
    spawn_app_with(move |config, dir| {
        config.database_url = SecretString::from(url);
        adjust(config, dir);
    })
    .await
}

/// The `authd` executable under test: `AUTHD_BIN` when set, else the one cargo built with the
/// tests (the optimised `test-release` build under `scripts/test.sh`).
pub fn binary_path() -> PathBuf {
    std::env::var_os("AUTHD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_authd")))
}

/// A command for the binary with a clean environment (no AUTHD_* from the caller, no `.env`: it
/// runs in an empty temp dir).
pub fn binary_command(dir: &Path) -> Command {
    let mut cmd = Command::new(binary_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A running `authd` process, with everything it printed on stdout kept for inspection.
pub struct Binary {
    pub child: Child,
    /// The tasks copying stdout and stderr into `output`; they end when the process closes them.
    readers: Vec<tokio::task::JoinHandle<()>>,
    pub base: String,
    pub client: reqwest::Client,
    pub output: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
}

impl Binary {
    /// `POST /login` with these Basic credentials.
    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/login"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
    }

    /// Starts the binary with `args` and `envs` on port 0 and waits for its "listening on" line
    /// (`http://` or `https://`). Under a key pair ([`signing_alg`]) it signs with the test key
    /// ([`signing_envs`]) unless `envs` set `AUTHD_SIGNING_ALG`.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args, envs).await
    }

    pub async fn start_in(dir: tempfile::TempDir, args: &[&str], envs: &[(&str, &str)]) -> Binary {
        let cmd = binary_command(dir.path());
        Self::start_command(cmd, dir, args, envs).await
    }

    /// Starts the binary as [`Binary::start`] does, but through `sh -c '<shell>; exec authd ...'`,
    /// for what only the shell can set before the process starts (`ulimit -n 256`).
    pub async fn start_after_shell(shell: &str, args: &[&str], envs: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = Command::new("sh");
        sh.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .arg("-c")
            .arg(format!("{shell}; exec \"$0\" \"$@\""))
            .arg(binary_path());
        // `exec` keeps the process id: `child.id()` and signals reach authd itself.
        Self::start_command(sh, dir, args, envs).await
    }

    async fn start_command(
        mut cmd: Command,
        dir: tempfile::TempDir,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Binary {
        cmd.args(args).env("AUTHD_LISTEN", "127.0.0.1:0");
        // Under a key pair the binary signs with the test key, unless the test chose its own
        // algorithm. A test that also sets an HS256 secret is refused at start: it fails rather
        // than quietly testing HS256 in the key-pair pass.
        write_test_key(dir.path());
        if signing_alg().is_asymmetric() && !envs.iter().any(|(k, _)| *k == "AUTHD_SIGNING_ALG") {
            cmd.envs(signing_envs());
        }
        cmd.envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out = Arc::clone(&output);
        let stdout_reader = tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(i) = line.find("listening on http")
                    && let Some(tx) = addr_tx.take()
                {
                    // The URL ends the text line; in a JSON line, a quote ends it.
                    let rest = &line[i + "listening on ".len()..];
                    let url = rest.split(['"', ' ']).next().unwrap_or_default();
                    let _ = tx.send(url.trim().to_owned());
                }
                out.lock().unwrap().push_str(&line);
                out.lock().unwrap().push('\n');
            }
        });
        let err = Arc::clone(&output);
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                err.lock().unwrap().push_str(&line);
                err.lock().unwrap().push('\n');
            }
        });
        let base = match tokio::time::timeout(Duration::from_secs(20), addr_rx).await {
            Ok(Ok(a)) => a,
            _ => panic!("authd did not start: {}", output.lock().unwrap().as_str()),
        };
        Binary {
            child,
            readers: vec![stdout_reader, stderr_reader],
            base,
            client: client(),
            output,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The status of `GET url` (a whole URL, this server's or another's) with `token` as Bearer.
    pub async fn bearer_status(&self, url: &str, token: &str) -> u16 {
        let res = self.client.get(url).bearer_auth(token).send().await;
        res.unwrap().status().as_u16()
    }

    /// The status of `GET /protected?token=...` on this server.
    pub async fn query_token_status(&self, token: &str) -> u16 {
        let res = self
            .client
            .get(self.url("/protected"))
            .query(&[("token", token)])
            .send()
            .await;
        res.unwrap().status().as_u16()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.base.rsplit('/').next().unwrap().parse().unwrap()
    }

    /// Sends a signal (`TERM`, `HUP`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) until the output holds `needle`.
    pub async fn wait_for_output(&self, needle: &str) {
        for _ in 0..200 {
            if self.output().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {needle:?} in the output within 10 s:\n{}",
            self.output()
        );
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("authd did not exit within 15 s of SIGTERM")
            .unwrap();
        // Everything the process wrote before exiting is in `output` once the readers end.
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status
    }
}

/// Runs the binary to its exit (bounded) and returns (exit code, stdout, stderr).
pub async fn run_to_exit(
    args: &[&str],
    envs: &[(&str, &str)],
    setup: impl FnOnce(&Path),
) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut cmd = binary_command(dir.path());
    cmd.args(args).envs(envs.iter().copied());
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("authd did not exit within 20 s")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a JSON `{"message": ...}` answer with this status and message.
pub async fn assert_message(res: reqwest::Response, status: u16, message: &str) {
    assert_eq!(res.status(), status, "status");
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("application/json".to_owned())
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "message": message }));
}

/// A raw HTTP exchange over TCP, for requests that HTTP clients refuse to send (a target over
/// 64 KiB, bytes that are not HTTP). Returns (status, lower-cased head, body).
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything; that is fine.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// An external test tool: the path in `env` when set, else `default` on PATH. The test that asks
/// is `#[ignore]`d unless asked for, so a missing tool here is a failure that names it.
pub fn external_tool(env: &str, default: &str, what: &str) -> PathBuf {
    let tool = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    let runs = std::process::Command::new(&tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "this test needs {what}, but `{tool:?} --version` failed: set {env} (./scripts/test.sh installs it)"
    );
    tool
}

/// Runs `cmd` to its end within `limit`, returning (success, stdout and stderr together).
pub async fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {limit:?}"))
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Logs in to a running binary as the demo user and returns the token.
pub async fn demo_token(app: &Binary) -> String {
    let res = app
        .client
        .post(app.url("/login"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Starts the binary with `users` as its users file, signing as the deployment under test (the
/// good secret, or the test key pair), and `envs`.
pub async fn start_with_users(users: &str, envs: &[(&str, &str)]) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), users).unwrap();
    let mut all = vec![("AUTHD_USERS", "users")];
    if !signing_alg().is_asymmetric() {
        all.push(("AUTHD_SECRET_KEY", SECRET));
    }
    all.extend_from_slice(envs);
    Binary::start_in(dir, &[], &all).await
}

/// A running binary's address and a client: cheap to clone into spawned tasks.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
}

pub fn target(app: &Binary) -> Target {
    Target {
        client: app.client.clone(),
        base: app.base.clone(),
    }
}

/// Runs every future in its own task and collects the outputs in order.
pub async fn join_all<T: Send + 'static>(
    futures: impl IntoIterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// `POST /login` as `user` from `xff` (the binary must trust 127.0.0.1 as a proxy).
pub async fn login_as(app: &Target, user: &str, password: &str, xff: &str) -> u16 {
    app.client
        .post(format!("{}/login", app.base))
        .basic_auth(user, Some(password))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
