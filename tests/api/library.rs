//! The token check as a library: `examples/protected_service.rs` (its router, included here as it
//! is) runs beside the real authd binary; a token from authd's `/login` opens the example's
//! routes, and a tampered, foreign or missing one gets authd's own 403 answers.

use std::sync::Arc;

use authd::{TokenKeys, TokenSettings};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{Binary, SECRET, assert_message};

#[path = "../../examples/protected_service.rs"]
#[allow(dead_code)]
mod protected_service;

/// The example service on a loopback port 0, checking tokens with `secret`.
async fn spawn_example(secret: &str) -> String {
    let keys = Arc::new(TokenKeys::new(secret.as_bytes(), TokenSettings::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, protected_service::app(keys))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

async fn authd_token(authd: &Binary) -> String {
    let res = authd.login("user", "password").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_from_authd_opens_the_example_service_by_extractor_and_by_layer() {
    let authd = Binary::start(&["--demo"], &[("AUTHD_SECRET_KEY", SECRET)]).await;
    let example = spawn_example(SECRET).await;
    let token = authd_token(&authd).await;
    let client = crate::helpers::client();

    let res = client
        .get(format!("{example}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "user");
    assert_eq!(body["message"], "Hello, user!");

    let res = client
        .get(format!("{example}/reports"))
        .query(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "user");
}

#[tokio::test]
async fn tampered_foreign_or_missing_tokens_get_authds_403_answers_from_the_example() {
    let authd = Binary::start(&["--demo"], &[("AUTHD_SECRET_KEY", SECRET)]).await;
    let example = spawn_example(SECRET).await;
    let token = authd_token(&authd).await;
    let client = crate::helpers::client();

    // The payload changed to another user, the signature kept.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["user"] = "admin".into();
    claims["sub"] = "admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");

    // A token from an authd with another secret.
    let other = Binary::start(
        &["--demo"],
        &[(
            "AUTHD_SECRET_KEY",
            "another-pLR3j25lIme09e1j+yoi3We3R/DurCso089B90Dm",
        )],
    )
    .await;
    let foreign = authd_token(&other).await;

    for path in ["/hello", "/reports"] {
        for bad in [&tampered, &foreign] {
            let res = client
                .get(format!("{example}{path}"))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_message(res, 403, "Token is invalid!").await;
            let res = client
                .get(format!("{example}{path}"))
                .query(&[("token", bad)])
                .send()
                .await
                .unwrap();
            assert_message(res, 403, "Token is invalid!").await;
        }
        let res = client.get(format!("{example}{path}")).send().await.unwrap();
        assert_message(res, 403, "Token is missing!").await;
    }
    // The open route and unknown paths are not guarded.
    let res = client
        .get(format!("{example}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{example}/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// An example's own executable, built by cargo beside the test binary's `authd`.
fn example_binary(name: &str) -> std::path::PathBuf {
    let authd = crate::helpers::binary_path();
    let dir = authd.parent().unwrap().join("examples");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The example binary, started in `dir` with nothing but `settings` (authd's own variables) and
/// a free loopback port; the process (killed when dropped) and its `IP:PORT`, once it listens.
pub async fn start_example(
    settings: &[(&str, &str)],
    dir: &std::path::Path,
) -> (tokio::process::Child, String) {
    start_example_named(
        "protected_service",
        "PROTECTED_SERVICE_LISTEN",
        settings,
        dir,
    )
    .await
}

/// The example `name` started as [`start_example`] does, told its address in `listen_var`.
pub async fn start_example_named(
    name: &str,
    listen_var: &str,
    settings: &[(&str, &str)],
    dir: &std::path::Path,
) -> (tokio::process::Child, String) {
    let port = crate::proxy_servers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let binary = example_binary(name);
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.env_clear()
        .envs(settings.iter().copied())
        .env(listen_var, &listen)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut example = cmd.spawn().unwrap_or_else(|e| panic!("{binary:?}: {e}"));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return (example, listen);
        }
        if let Ok(Some(status)) = example.try_wait() {
            let out = example.wait_with_output().await.unwrap();
            panic!(
                "the example exited with {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the example did not listen within 10 s");
}

#[tokio::test]
async fn the_example_reads_authds_own_settings_and_accepts_a_strict_authds_token() {
    // authd as in production: the secret in a file, strict mode with an issuer and an audience.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret_path = secret_file.display().to_string();
    let settings = [
        ("AUTHD_SECRET_KEY_FILE", secret_path.as_str()),
        ("AUTHD_STRICT", "true"),
        ("AUTHD_ISSUER", "https://auth.example.com"),
        ("AUTHD_AUDIENCE", "example-apps"),
    ];
    let authd = Binary::start(&["--demo"], &settings).await;
    let token = authd_token(&authd).await;

    // The example, given nothing but authd's own settings.
    let (_example, listen) = start_example(&settings, dir.path()).await;
    let res = authd
        .client
        .get(format!("http://{listen}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "user");
    // And a token for another audience is refused there as by authd.
    let foreign = crate::helpers::mint(
        jsonwebtoken::Algorithm::HS256,
        SECRET,
        &serde_json::json!({"sub": "user", "user": "user", "exp": crate::helpers::now() + 600,
            "iss": "https://auth.example.com", "aud": "someone-else"}),
    );
    let hello = format!("http://{listen}/hello");
    assert_eq!(authd.bearer_status(&hello, &foreign).await, 403);
}
