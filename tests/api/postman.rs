//! The Postman collection (`postman/`), run by newman against the real binary: in demo mode with
//! the demo environment (HS256, then EdDSA, whose public keys the last folder fetches), and over
//! HTTPS in strict mode with the deployment environment. Every
//! request of the collection is sent and every `pm.test` assertion holds. Needs newman
//! (`AUTHD_TEST_NEWMAN`; `./scripts/test.sh` installs it under `target/npm`).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::{Binary, external_tool, run_bounded};

/// The requests of a collection (items without sub-items), counted through its folders.
fn count_requests(items: &serde_json::Value) -> u64 {
    items.as_array().map_or(0, |items| {
        items
            .iter()
            .map(|i| {
                if i.get("request").is_some() {
                    1
                } else {
                    count_requests(&i["item"])
                }
            })
            .sum()
    })
}

/// Runs the collection with newman against `base`, with `environment` and `extra` arguments, and
/// checks newman's own summary so that the run cannot pass by doing nothing: every request sent,
/// assertions made, no failure of any kind.
async fn run_collection(base: &str, environment: &str, extra: &[&str]) {
    let newman = external_tool("AUTHD_TEST_NEWMAN", "newman", "newman");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let collection = root.join("postman/authd.postman_collection.json");
    let environment = root.join("postman").join(environment);
    let expected_requests = count_requests(
        &serde_json::from_slice::<serde_json::Value>(&std::fs::read(&collection).unwrap()).unwrap()
            ["item"],
    );
    assert!(expected_requests >= 15, "{expected_requests}");

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("newman.json");
    let mut cmd = Command::new(&newman);
    cmd.current_dir(dir.path())
        .arg("run")
        .arg(&collection)
        .arg("--environment")
        .arg(&environment)
        .args(["--env-var", &format!("baseUrl={base}")])
        .args(extra)
        .args(["--reporters", "cli,json", "--reporter-json-export"])
        .arg(&report)
        .args([
            "--color",
            "off",
            "--timeout-request",
            "10000",
            "--timeout",
            "120000",
        ]);
    let (ok, output) = run_bounded(cmd, Duration::from_secs(180)).await;
    assert!(ok, "newman failed:\n{output}");

    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let stats = &run["run"]["stats"];
    assert_eq!(stats["requests"]["total"], expected_requests, "{output}");
    assert!(
        stats["assertions"]["total"].as_u64().unwrap() >= 2 * expected_requests,
        "{output}"
    );
    for kind in ["requests", "assertions", "testScripts", "prerequestScripts"] {
        assert_eq!(stats[kind]["failed"], 0, "{kind} failed:\n{output}");
    }
    assert_eq!(run["run"]["failures"], serde_json::json!([]), "{output}");
}

#[tokio::test]
#[ignore = "needs newman (AUTHD_TEST_NEWMAN)"]
async fn postman_collection_passes_under_newman_against_the_demo_binary() {
    let app = Binary::start(&["--demo"], &[]).await;
    run_collection(&app.base, "authd.postman_environment.json", &[]).await;
}

#[tokio::test]
#[ignore = "needs newman (AUTHD_TEST_NEWMAN)"]
async fn postman_collection_passes_against_the_demo_binary_signing_with_eddsa() {
    // `--demo` makes an Ed25519 key in memory; the collection's key requests then expect 200s.
    let app = Binary::start(&["--demo"], &[("AUTHD_SIGNING_ALG", "EdDSA")]).await;
    run_collection(
        &app.base,
        "authd.postman_environment.json",
        &["--env-var", "signingAlg=EdDSA"],
    )
    .await;
}

/// 48 random bytes in base64, as `openssl rand -base64 48` makes them.
fn random_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
#[ignore = "needs newman (AUTHD_TEST_NEWMAN)"]
async fn postman_collection_passes_with_the_deployment_environment_against_https_and_strict_mode() {
    // A deployment as the README describes it: a users file, a secret of its own, HTTPS with a
    // certificate newman is told to trust (not `--insecure`), strict mode with issuer and audience.
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let password = random_secret();
    let hash = authd::users::hash_password(password.as_bytes()).unwrap();
    std::fs::write(dir.path().join("users"), format!("operator:{hash}\n")).unwrap();
    let secret = random_secret();
    let db = format!("sqlite://{}/authd.db", dir.path().display());
    let app = Binary::start_in(
        dir,
        &[],
        &[
            ("AUTHD_SECRET_KEY", secret.as_str()),
            ("AUTHD_USERS", "users"),
            ("AUTHD_DATABASE_URL", db.as_str()),
            ("AUTHD_TLS_CERT", "cert.pem"),
            ("AUTHD_TLS_KEY", "key.pem"),
            ("AUTHD_STRICT", "true"),
            ("AUTHD_ISSUER", "https://auth.example.com"),
            ("AUTHD_AUDIENCE", "example-apps"),
        ],
    )
    .await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let cert_arg = cert_path.display().to_string();
    run_collection(
        &app.base,
        "authd.deployment.postman_environment.json",
        &[
            "--ssl-extra-ca-certs",
            &cert_arg,
            "--env-var",
            "username=operator",
            "--env-var",
            &format!("password={password}"),
        ],
    )
    .await;
}
