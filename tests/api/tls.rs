//! HTTPS with rustls: a certificate made in the test (rcgen), clients that trust it (reqwest, and
//! a raw rustls connection where one connection must be followed across a reload), plain HTTP to
//! the HTTPS port, and the certificate re-read on SIGHUP without dropping open connections.

use std::path::Path;
use std::sync::Arc;

use authd::config::TlsFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::helpers::{Binary, PASSWORD, USER, raw_request, spawn_app_with};

/// A self-signed certificate for `localhost` and `127.0.0.1`: (certificate DER, cert PEM, key PEM).
fn certificate() -> (CertificateDer<'static>, String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (
        c.cert.der().clone(),
        c.cert.pem(),
        c.signing_key.serialize_pem(),
    )
}

fn write_pair(dir: &Path, cert_pem: &str, key_pem: &str) {
    std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), key_pem).unwrap();
}

fn client_config(trusted: &CertificateDer<'static>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn https_client(trusted: &CertificateDer<'static>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(trusted))
        .build()
        .unwrap()
}

#[tokio::test]
async fn login_and_protected_work_over_https_with_a_client_that_trusts_the_certificate() {
    let (der, cert_pem, key_pem) = certificate();
    let app = spawn_app_with(|c, dir| {
        write_pair(dir, &cert_pem, &key_pem);
        c.tls = Some(TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        });
    })
    .await;
    assert!(app.base.starts_with("https://127.0.0.1:"), "{}", app.base);
    let client = https_client(&der);
    let res = client
        .post(app.url("/login"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = client
        .get(app.url("/protected"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Also by name, as the certificate says.
    let by_name = format!("https://localhost:{}/healthz", app.addr.port());
    assert_eq!(client.get(by_name).send().await.unwrap().status(), 200);

    // A client that does not trust this certificate gets a TLS error, not an answer.
    let (other, _, _) = certificate();
    let err = https_client(&other)
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn plain_http_to_the_https_port_gets_a_clear_json_400_and_the_server_keeps_serving() {
    let (der, cert_pem, key_pem) = certificate();
    let app = spawn_app_with(|c, dir| {
        write_pair(dir, &cert_pem, &key_pem);
        c.tls = Some(TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        });
    })
    .await;
    let (status, head, body) = raw_request(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("HTTPS"),
        "{body}"
    );
    // The same through an HTTP client that was given the wrong scheme.
    let res = crate::helpers::client()
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A broken handshake: the connection is closed (at most with a TLS alert), promptly.
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01\x00\x05hello").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("the connection was not closed")
    .ok();
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let res = https_client(&der)
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// One request on an open connection, keeping it open: (status, body).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("no answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            if body.len() >= len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
    }
}

/// Waits (bounded) until `needle` has appeared `n` times in the output.
async fn wait_for_count(app: &Binary, needle: &str, n: usize) {
    for _ in 0..200 {
        if app.output().matches(needle).count() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{needle:?} not seen {n} times within 10 s:\n{}",
        app.output()
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections_without_dropping_open_ones() {
    let (der_a, cert_a, key_a) = certificate();
    let (der_b, cert_b, key_b) = certificate();
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &cert_a, &key_a);
    let dir_path = dir.path().to_owned();
    let app = Binary::start_in(
        dir,
        &["--demo"],
        &[("AUTHD_TLS_CERT", "cert.pem"), ("AUTHD_TLS_KEY", "key.pem")],
    )
    .await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    assert!(app.output().contains("listening on https://"));
    // SIGHUP at once: watched for before "listening" was printed, so it reloads, not kills.
    app.signal("HUP");
    wait_for_count(&app, "TLS certificate and key reloaded", 1).await;

    // A connection opened with certificate A.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&der_a)));
    let tcp = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    let mut open = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(exchange(&mut open, "/healthz").await.0, 200);

    // A broken pair is refused and A stays.
    std::fs::write(dir_path.join("key.pem"), "not a key").unwrap();
    app.signal("HUP");
    app.wait_for_output("TLS reload failed").await;
    assert!(!app.output().contains("not a key"));
    let res = https_client(&der_a)
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Certificate B in place, SIGHUP.
    write_pair(&dir_path, &cert_b, &key_b);
    app.signal("HUP");
    wait_for_count(&app, "TLS certificate and key reloaded", 2).await;

    // The open connection still answers.
    assert_eq!(exchange(&mut open, "/healthz").await.0, 200);
    // New connections present B: trusted by a client that knows B only, refused by one that
    // knows A only.
    let res = https_client(&der_b)
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let err = https_client(&der_a)
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn refuses_to_start_with_half_a_tls_pair_unreadable_files_or_a_mismatched_key() {
    for (envs, needle) in [
        (
            vec![("AUTHD_TLS_CERT", "cert.pem")],
            "AUTHD_TLS_CERT and AUTHD_TLS_KEY go together",
        ),
        (
            vec![
                ("AUTHD_TLS_CERT", "missing.pem"),
                ("AUTHD_TLS_KEY", "key.pem"),
            ],
            "TLS certificate missing.pem",
        ),
        (
            vec![
                ("AUTHD_TLS_CERT", "cert.pem"),
                ("AUTHD_TLS_KEY", "cert.pem"),
            ],
            "TLS key cert.pem",
        ),
        // The key of another certificate.
        (
            vec![
                ("AUTHD_TLS_CERT", "cert.pem"),
                ("AUTHD_TLS_KEY", "other-key.pem"),
            ],
            "TLS certificate and key refused",
        ),
    ] {
        let mut all = vec![("AUTHD_DEMO", "true")];
        all.extend(envs);
        let (code, _, stderr) = crate::helpers::run_to_exit(&[], &all, |dir| {
            let (_, cert, key) = certificate();
            write_pair(dir, &cert, &key);
            let (_, _, other_key) = certificate();
            std::fs::write(dir.join("other-key.pem"), other_key).unwrap();
        })
        .await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

/// The Done-when of public-key tokens: a second service verifies authd's tokens with nothing but
/// `https://…/.well-known/jwks.json`, fetched over HTTPS (reqwest on rustls) from authd serving
/// TLS; a client that does not trust the certificate gets no keys at all.
#[tokio::test]
async fn a_service_verifies_with_nothing_but_the_https_jwks_url_and_refuses_an_untrusted_one() {
    use authd::jwks::{JwksKeys, JwksOptions};
    use authd::signing::{SigningAlg, SigningKey};
    use axum::routing::get;
    use secrecy::ExposeSecret as _;
    use tower::ServiceExt as _;

    let (der, cert_pem, key_pem) = certificate();
    let pem = SigningKey::generate_pem(SigningAlg::EdDsa).unwrap();
    let key = SigningKey::from_pem(SigningAlg::EdDsa, pem.expose_secret().as_bytes()).unwrap();
    let app = spawn_app_with(|c, dir| {
        write_pair(dir, &cert_pem, &key_pem);
        c.tls = Some(TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        });
        c.signing = authd::config::Signing::KeyPair {
            key: Box::new(key),
            previous: Vec::new(),
        };
    })
    .await;
    let url = app.url("/.well-known/jwks.json");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let client = https_client(&der);
    let res = client
        .post(app.url("/login"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The service: the URL, the pinned algorithm, and a client trusting the test's certificate
    // (a real deployment's default client trusts the platform's roots).
    let jwks = JwksKeys::from_jwks_url_with(
        &url,
        SigningAlg::EdDsa,
        authd::TokenSettings::default(),
        JwksOptions::default().client(https_client(&der)),
    )
    .await
    .unwrap();
    let service = axum::Router::new()
        .route(
            "/hello",
            get(|authd::Authenticated(c): authd::Authenticated| async move {
                c.subject().unwrap_or_default().to_owned()
            }),
        )
        .with_state(Arc::new(jwks));
    let call = |token: String| {
        let service = service.clone();
        async move {
            let req = axum::http::Request::get("/hello")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let res = service.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(call(token.clone()).await, (200, USER.to_owned()));
    let tampered = crate::jwks_library::tampered(&token);
    assert_eq!(
        call(tampered).await,
        (403, "{\"message\":\"Token is invalid!\"}\n".to_owned())
    );

    // The default client checks the certificate against the platform's roots: a self-signed one
    // is refused, and with it the key set.
    let untrusted =
        JwksKeys::from_jwks_url(&url, SigningAlg::EdDsa, authd::TokenSettings::default()).await;
    let error = untrusted.err().map(|e| e.to_string()).unwrap_or_default();
    // Refused while connecting (the handshake), not for the URL.
    assert!(
        error.contains("error sending request"),
        "a self-signed certificate was trusted, or refused for another reason: {error:?}"
    );
}
