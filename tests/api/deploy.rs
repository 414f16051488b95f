//! The deployment guide (`docs/deploy.md`) and what `contrib/` ships, run for real. The systemd
//! unit passes `systemd-analyze verify` with no warning at all (an unknown or misspelt key is only
//! a warning there, so the test reads the output, not just the exit code) and scores as hardened
//! in `systemd-analyze security` (Debian's `systemd`; it need not run as PID 1 for these checks).
//! The guide's nginx and Caddy configurations, read out of the guide, put authd behind the real
//! proxy over HTTPS and keep working when authd's certificate is renewed.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::{binary_path, external_tool, run_bounded};

/// The highest exposure `systemd-analyze security` may give the unit, in its tenths (1.5 of 10).
const MAX_EXPOSURE_TENTHS: u32 = 15;

/// The shipped unit, with its `ExecStart` pointed at the binary under test: `verify` checks that
/// the command exists, and the unit names where `cargo install --root /usr/local` puts it.
fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/authd.service"),
    )
    .unwrap();
    let exec = "ExecStart=/usr/local/bin/authd\n";
    assert_eq!(
        shipped.matches(exec).count(),
        1,
        "one ExecStart, as documented"
    );
    let unit = dir.join("authd.service");
    let here = format!("ExecStart={}\n", binary_path().display());
    std::fs::write(&unit, shipped.replace(exec, &here)).unwrap();
    unit
}

/// `systemd-analyze ARGS UNIT`, bounded: (success, what it printed).
async fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let analyze = external_tool(
        "AUTHD_TEST_SYSTEMD_ANALYZE",
        "systemd-analyze",
        "systemd-analyze",
    );
    let mut cmd = Command::new(analyze);
    cmd.args(args).arg(unit);
    run_bounded(cmd, Duration::from_secs(60)).await
}

#[tokio::test]
#[ignore = "needs systemd-analyze (Debian's systemd)"]
async fn systemd_unit_verifies_without_a_single_warning() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let (ok, output) = systemd_analyze(&["verify"], &unit).await;
    assert!(ok, "systemd-analyze verify failed:\n{output}");
    assert_eq!(output.trim(), "", "systemd-analyze verify warned");

    // The check does catch a misspelt key: the same unit with one is not silent.
    let broken = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("ProtectSystem=strict", "ProtectSystm=strict");
    std::fs::write(&unit, broken).unwrap();
    let (_, output) = systemd_analyze(&["verify"], &unit).await;
    assert!(output.contains("ProtectSystm"), "{output}");
}

#[tokio::test]
#[ignore = "needs systemd-analyze (Debian's systemd)"]
async fn systemd_unit_is_hardened_by_systemd_analyze_security() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let threshold = format!("--threshold={MAX_EXPOSURE_TENTHS}");
    let (ok, output) = systemd_analyze(
        &["security", "--offline=true", "--no-pager", &threshold],
        &unit,
    )
    .await;
    let score = output
        .lines()
        .find_map(|l| l.split("Overall exposure level for authd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{output}"));
    assert!(
        ok && score * 10.0 <= f64::from(MAX_EXPOSURE_TENTHS),
        "exposure {score} (at most {MAX_EXPOSURE_TENTHS} tenths):\n{output}"
    );
}

/// A certificate authority made for one test, and leaf certificates it signs.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
    der: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "authd test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A new key and a certificate for `names`: (certificate DER, certificate PEM, key PEM).
    fn leaf(
        &self,
        names: &[&str],
    ) -> (
        tokio_rustls::rustls::pki_types::CertificateDer<'static>,
        String,
        String,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.der().clone(), cert.pem(), key.serialize_pem())
    }

    fn client_config(&self) -> tokio_rustls::rustls::ClientConfig {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }

    /// The proxy's own certificate for `app.example.com`, as `front.pem` and `front.key` in `dir`.
    fn write_front_pair(&self, dir: &Path) {
        let (_, cert, key) = self.leaf(&["app.example.com"]);
        std::fs::write(dir.join("front.pem"), cert).unwrap();
        std::fs::write(dir.join("front.key"), key).unwrap();
    }

    /// An HTTPS client that trusts this CA only.
    fn client(&self) -> reqwest::Client {
        crate::helpers::client();
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.client_config())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// The certificate a new TLS connection to `addr` is shown (as `name`).
    async fn served_certificate(
        &self,
        addr: std::net::SocketAddr,
        name: &'static str,
    ) -> tokio_rustls::rustls::pki_types::CertificateDer<'static> {
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(self.client_config()));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server = tokio_rustls::rustls::pki_types::ServerName::try_from(name).unwrap();
        let tls = connector.connect(server, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    }
}

/// authd over HTTPS with a certificate from `ca` (files `authd.pem`/`authd.key` in its dir), in
/// demo mode; idle connections are closed after 1 s, so that a proxy's pooled connections to it
/// are new ones soon after a certificate swap.
async fn https_authd(ca: &TestCa) -> crate::helpers::Binary {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = ca.leaf(&["authd.internal", "localhost", "127.0.0.1"]);
    std::fs::write(dir.path().join("authd.pem"), cert).unwrap();
    std::fs::write(dir.path().join("authd.key"), key).unwrap();
    crate::helpers::Binary::start_in(
        dir,
        &["--demo"],
        &[
            ("AUTHD_TLS_CERT", "authd.pem"),
            ("AUTHD_TLS_KEY", "authd.key"),
            ("AUTHD_HEADER_READ_TIMEOUT", "1s"),
        ],
    )
    .await
}

/// Replaces authd's certificate with a new one (and a new key) from the same CA, sends SIGHUP,
/// and waits until new connections are shown it and the proxy's pooled ones have been closed.
async fn renew(ca: &TestCa, authd: &crate::helpers::Binary) {
    let (der, cert, key) = ca.leaf(&["authd.internal", "localhost", "127.0.0.1"]);
    std::fs::write(authd.dir.path().join("authd.pem"), cert).unwrap();
    std::fs::write(authd.dir.path().join("authd.key"), key).unwrap();
    authd.signal("HUP");
    authd
        .wait_for_output("SIGHUP: TLS certificate and key reloaded")
        .await;
    assert_eq!(
        ca.served_certificate(authd.addr(), "authd.internal").await,
        der
    );
    // Past the 1 s header-read timeout: connections opened before the swap are gone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// A token from authd's own `/login`, over HTTPS.
async fn login(ca: &TestCa, authd: &crate::helpers::Binary) -> String {
    let res = ca
        .client()
        .post(authd.url("/login"))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Through the proxy at `front` (as `app.example.com`): 200 with the user for the token, 401 for
/// none.
async fn assert_guarded(
    client: &reqwest::Client,
    front: &str,
    token: &str,
    log: &dyn Fn() -> String,
) {
    let res = client.get(front).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", log());
    assert_eq!(res.text().await.unwrap(), "app page for [user]\n");
    let res = client.get(front).send().await.unwrap();
    assert_eq!(res.status(), 401, "{}", log());
}

/// Through the proxy: guarded with a token from authd, then still after authd's certificate is
/// renewed under the proxy.
async fn guarded_across_a_renewal(
    ca: &TestCa,
    authd: &crate::helpers::Binary,
    client: &reqwest::Client,
    page: &str,
    log: &dyn Fn() -> String,
) {
    let token = login(ca, authd).await;
    assert_guarded(client, page, &token, log).await;
    renew(ca, authd).await;
    for _ in 0..3 {
        assert_guarded(client, page, &token, log).await;
    }
}

/// An nginx `http { }` body: the guide's `block`, and the application behind it on port `app`,
/// which names the user it was given.
fn with_nginx_app(block: &str, app: u16) -> String {
    format!(
        "{block}\nserver {{\n    listen 127.0.0.1:{app};\n    default_type text/plain;\n    location / {{ return 200 \"app page for [$http_x_auth_user]\\n\"; }}\n}}\n"
    )
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_from_the_guide_checks_tokens_over_https_and_survives_a_certificate_renewal() {
    use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};
    let ca = TestCa::new();
    let authd = https_authd(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    ca.write_front_pair(&d);
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    let (front, app) = (free_port(), free_port());
    let authd_addr = authd.addr().to_string();
    let block = substitute(
        &doc_block("docs/deploy.md", "nginx-https"),
        &[
            ("server 127.0.0.1:5000;", &format!("server {authd_addr};")),
            ("listen 443 ssl;", &format!("listen 127.0.0.1:{front} ssl;")),
            (
                "/etc/ssl/app.example.com.pem",
                &format!("{}/front.pem", d.display()),
            ),
            (
                "/etc/ssl/app.example.com.key",
                &format!("{}/front.key", d.display()),
            ),
            ("/etc/authd/ca.pem", &format!("{}/ca.pem", d.display())),
            ("http://127.0.0.1:8080", &format!("http://127.0.0.1:{app}")),
        ],
    );
    // The application behind the proxy: names the user it was given.
    let http = with_nginx_app(&block, app);
    let nginx = Proxy::nginx(dir, &http, &[front, app]).await;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(ca.client_config())
        .resolve("app.example.com", ([127, 0, 0, 1], front).into())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let page = format!("https://app.example.com:{front}/");
    guarded_across_a_renewal(&ca, &authd, &client, &page, &|| nginx.log()).await;
}

#[tokio::test]
#[ignore = "needs Caddy"]
async fn caddy_from_the_guide_checks_tokens_over_https_and_survives_a_certificate_renewal() {
    use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};
    let ca = TestCa::new();
    let authd = https_authd(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let (front, app) = (free_port(), free_port());
    let authd_addr = authd.addr().to_string();
    // The site is served in the clear to the test (its own HTTPS is Caddy's business); what is
    // tested is the HTTPS from Caddy to authd.
    let site = substitute(
        &doc_block("docs/deploy.md", "caddy-https"),
        &[
            ("app.example.com {", &format!("http://127.0.0.1:{front} {{")),
            ("https://127.0.0.1:5000", &format!("https://{authd_addr}")),
            ("/etc/authd/ca.pem", &ca_path.display().to_string()),
            (
                "reverse_proxy 127.0.0.1:8080",
                &format!("reverse_proxy 127.0.0.1:{app}"),
            ),
        ],
    );
    let caddyfile = format!(
        "{site}\n\nhttp://127.0.0.1:{app} {{\n\trespond \"app page for [{{header.X-Auth-User}}]\n\" 200\n}}\n"
    );
    let caddy = Proxy::caddy(dir, &caddyfile, &[front, app]).await;
    let client = crate::helpers::client();
    let page = format!("http://127.0.0.1:{front}/");
    guarded_across_a_renewal(&ca, &authd, &client, &page, &|| caddy.log()).await;
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_front_door_from_the_guide_bans_the_client_not_the_proxy_and_logs_no_token() {
    use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};
    let ca = TestCa::new();
    let authd =
        crate::helpers::Binary::start(&["--demo"], &[("AUTHD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    ca.write_front_pair(&d);
    let (front, app) = (free_port(), free_port());
    let access_log = d.join("app.access.log");
    let block = substitute(
        &doc_block("docs/deploy.md", "nginx-front-door"),
        &[
            (
                "server 127.0.0.1:5000;",
                &format!("server {};", authd.addr()),
            ),
            ("listen 443 ssl;", &format!("listen 127.0.0.1:{front} ssl;")),
            (
                "/etc/ssl/app.example.com.pem",
                &format!("{}/front.pem", d.display()),
            ),
            (
                "/etc/ssl/app.example.com.key",
                &format!("{}/front.key", d.display()),
            ),
            (
                "/var/log/nginx/app.access.log",
                &access_log.display().to_string(),
            ),
            ("http://127.0.0.1:8080", &format!("http://127.0.0.1:{app}")),
        ],
    );
    let http = with_nginx_app(&block, app);
    let nginx = Proxy::nginx(dir, &http, &[front, app]).await;
    // Clients at two addresses of the loopback range, both reaching nginx only.
    let client_at = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .tls_backend_preconfigured(ca.client_config())
            .resolve("app.example.com", ([127, 0, 0, 1], front).into())
            .local_address(std::net::IpAddr::from(ip))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let (attacker, neighbour) = (client_at([127, 0, 0, 2]), client_at([127, 0, 0, 3]));
    let url = |path: &str| format!("https://app.example.com:{front}{path}");

    // Wrong passwords for ever new names, each with a forged X-Forwarded-For, until the
    // attacker's address is banned (the default limit is 20 failures an address).
    let mut banned = false;
    for i in 0..30 {
        let res = attacker
            .post(url("/login"))
            .basic_auth(format!("guess{i}"), Some("wrong"))
            .header("x-forwarded-for", "198.51.100.77")
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            401 => {}
            429 => {
                banned = true;
                break;
            }
            other => panic!("login through nginx answered {other}: {}", nginx.log()),
        }
    }
    assert!(banned, "the attacker's address was never banned");
    let res = attacker
        .post(url("/login"))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "the ban is on the attacker's address");

    // The neighbour behind the same proxy is not banned with it.
    let res = neighbour
        .post(url("/login"))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", nginx.log());
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The tutorial's ?token= through nginx: the app answers, and no log holds the token.
    let res = neighbour
        .get(url("/app/"))
        .query(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", nginx.log());
    assert_eq!(res.text().await.unwrap(), "app page for [user]\n");
    // nginx writes the access line once the answer is sent: wait for it (bounded).
    let mut logged = String::new();
    for _ in 0..100 {
        logged = std::fs::read_to_string(&access_log).unwrap();
        if logged.contains("GET /app/ HTTP/1.1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged.contains("GET /app/ HTTP/1.1"), "{logged}");
    assert!(!logged.contains(&token), "the access log holds the token");
    assert!(
        !nginx.log().contains(&token),
        "the error log holds the token"
    );
}
