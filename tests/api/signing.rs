//! Public-key signing settings, from the real binary: every refusal to start (one stderr line,
//! exit 1, no key material in it), and `authd keys generate` (owner-only files, no overwriting,
//! the `kid` it tells being the one `/.well-known/jwks.json` then serves).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use authd::signing::{SigningAlg, SigningKey};
use secrecy::ExposeSecret as _;

use crate::helpers::{Binary, binary_command, password_hash, run_to_exit, write_private};

const ISSUER: &str = "https://auth.example.test";

fn new_key(alg: SigningAlg) -> String {
    SigningKey::generate_pem(alg)
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// The base64 lines of a PEM: what must never appear in a message.
fn key_material(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs the binary with a users file and `key.pem` holding `key` (mode `mode`), asserts the one
/// line on stderr and exit 1, that it contains `needle`, and that no line of `key` is in it.
async fn assert_refused(envs: &[(&str, &str)], key: &str, mode: u32, needle: &str) {
    let (code, stdout, stderr) = run_to_exit(&[], envs, |dir| {
        std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap();
        let path = dir.join("key.pem");
        std::fs::write(&path, key).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    })
    .await;
    assert_eq!(code, Some(1), "stdout: {stdout} stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with("authd: error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    for line in key_material(key) {
        assert!(!stderr.contains(&line), "key material in {stderr}");
        assert!(!stdout.contains(&line), "key material in {stdout}");
    }
}

/// A key pair deployment's settings, with `key.pem` as its key file.
fn eddsa_envs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AUTHD_USERS", "users"),
        ("AUTHD_SIGNING_ALG", "EdDSA"),
        ("AUTHD_SIGNING_KEY_FILE", "key.pem"),
        ("AUTHD_ISSUER", ISSUER),
    ]
}

#[tokio::test]
async fn a_good_key_with_its_issuer_starts_so_the_refusals_below_are_each_for_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("user:{}\n", password_hash()),
    )
    .unwrap();
    write_private(&dir.path().join("key.pem"), &new_key(SigningAlg::EdDsa));
    let app = Binary::start_in(dir, &[], &eddsa_envs()).await;
    let res = app.login("user", "password").await;
    assert_eq!(res.status(), 200, "{}", app.output());
}

#[tokio::test]
async fn a_key_file_that_is_no_key_is_refused_without_showing_its_contents() {
    let not_a_key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXRoYXQtaXMtbm90LWEta2V5LXNlY3JldA==\n-----END PRIVATE KEY-----\n";
    assert_refused(&eddsa_envs(), not_a_key, 0o600, "not a PKCS#8 PEM key").await;
    assert_refused(&eddsa_envs(), "hunter2-secret-text\n", 0o600, "key.pem").await;
}

#[tokio::test]
async fn an_es256_key_under_eddsa_and_an_eddsa_key_under_es256_are_refused() {
    let es256 = new_key(SigningAlg::Es256);
    assert_refused(
        &eddsa_envs(),
        &es256,
        0o600,
        "not a PKCS#8 PEM key of the algorithm's type",
    )
    .await;
    let mut envs = eddsa_envs();
    envs[1] = ("AUTHD_SIGNING_ALG", "ES256");
    assert_refused(
        &envs,
        &new_key(SigningAlg::EdDsa),
        0o600,
        "(AUTHD_SIGNING_ALG=ES256)",
    )
    .await;
}

#[tokio::test]
async fn a_private_key_readable_by_group_or_others_is_refused() {
    for mode in [0o644, 0o640, 0o604] {
        assert_refused(
            &eddsa_envs(),
            &new_key(SigningAlg::EdDsa),
            mode,
            &format!("readable by group or others (mode {mode:o}); `chmod 600` it"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_hs256_secret_beside_a_key_pair_is_refused() {
    for secret_setting in [
        (
            "AUTHD_SECRET_KEY",
            "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN",
        ),
        ("AUTHD_SECRET_KEY_FILE", "secret"),
        (
            "AUTHD_SECRET_KEY_PREVIOUS",
            "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN",
        ),
    ] {
        let mut envs = eddsa_envs();
        envs.push(secret_setting);
        assert_refused(
            &envs,
            &new_key(SigningAlg::EdDsa),
            0o600,
            "AUTHD_SECRET_KEY and AUTHD_SECRET_KEY_PREVIOUS are HS256's",
        )
        .await;
    }
}

#[tokio::test]
async fn a_key_file_under_hs256_is_refused() {
    for alg in [None, Some("HS256")] {
        let mut envs = vec![
            ("AUTHD_USERS", "users"),
            (
                "AUTHD_SECRET_KEY",
                "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN",
            ),
            ("AUTHD_SIGNING_KEY_FILE", "key.pem"),
        ];
        envs.extend(alg.map(|a| ("AUTHD_SIGNING_ALG", a)));
        assert_refused(
            &envs,
            &new_key(SigningAlg::EdDsa),
            0o600,
            "are for AUTHD_SIGNING_ALG=EdDSA or ES256; HS256 signs with AUTHD_SECRET_KEY",
        )
        .await;
    }
    let envs = [
        ("AUTHD_USERS", "users"),
        (
            "AUTHD_SECRET_KEY",
            "Zq8s0vB3nW6yT1xK4mR7pL2cF5hJ9dG0aE3uI6oN",
        ),
        ("AUTHD_SIGNING_KEY_PREVIOUS_FILES", "key.pem"),
    ];
    assert_refused(
        &envs,
        &new_key(SigningAlg::EdDsa),
        0o600,
        "are for AUTHD_SIGNING_ALG=EdDSA or ES256",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_algorithm_is_refused_by_name() {
    for alg in ["RS256", "none", "HS512"] {
        let mut envs = eddsa_envs();
        envs[1] = ("AUTHD_SIGNING_ALG", alg);
        assert_refused(
            &envs,
            &new_key(SigningAlg::EdDsa),
            0o600,
            &format!("AUTHD_SIGNING_ALG `{alg}`: use HS256, EdDSA or ES256"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_key_pair_without_a_key_file_is_refused_with_how_to_make_one() {
    let envs: Vec<_> = eddsa_envs()
        .into_iter()
        .filter(|(k, _)| *k != "AUTHD_SIGNING_KEY_FILE")
        .collect();
    assert_refused(
        &envs,
        "",
        0o600,
        "needs a private key: make one with `authd keys generate --alg EdDSA --output key.pem`",
    )
    .await;
}

#[tokio::test]
async fn a_key_pair_without_an_issuer_is_refused() {
    let envs: Vec<_> = eddsa_envs()
        .into_iter()
        .filter(|(k, _)| *k != "AUTHD_ISSUER")
        .collect();
    assert_refused(
        &envs,
        &new_key(SigningAlg::EdDsa),
        0o600,
        "needs AUTHD_ISSUER",
    )
    .await;
}

#[tokio::test]
async fn an_http_issuer_is_refused_unless_on_a_loopback_host() {
    for issuer in [
        "http://auth.example.test",
        "http://10.0.0.1:5000",
        "ftp://127.0.0.1",
        "auth.example.test",
        "https://auth.example.test/?x=1",
    ] {
        let mut envs = eddsa_envs();
        envs[3] = ("AUTHD_ISSUER", issuer);
        assert_refused(&envs, &new_key(SigningAlg::EdDsa), 0o600, "AUTHD_ISSUER").await;
    }
    // On loopback, http is fine: it starts.
    for issuer in [
        "http://127.0.0.1:5000",
        "http://localhost",
        "http://[::1]:8080",
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users"),
            format!("user:{}\n", password_hash()),
        )
        .unwrap();
        write_private(&dir.path().join("key.pem"), &new_key(SigningAlg::EdDsa));
        let mut envs = eddsa_envs();
        envs[3] = ("AUTHD_ISSUER", issuer);
        let mut app = Binary::start_in(dir, &[], &envs).await;
        assert_eq!(app.terminate().await.code(), Some(0), "{}", app.output());
    }
}

/// Runs `authd keys generate` with `args` in `dir`: (exit code, stdout, stderr).
async fn keys_generate(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = binary_command(dir);
    cmd.args(["keys", "generate"]).args(args);
    let out = cmd.output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The kid from `authd: made an ALG key, kid KID`.
fn told_kid(stderr: &str) -> String {
    stderr
        .trim()
        .rsplit_once(", kid ")
        .unwrap_or_else(|| panic!("no kid in {stderr:?}"))
        .1
        .to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn keys_generate_writes_an_owner_only_file_and_never_overwrites_one() {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let (code, stdout, stderr) =
            keys_generate(dir.path(), &["--alg", alg.name(), "--output", "key.pem"]).await;
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, "", "the key goes to the file only");
        assert_eq!(mode(&path), 0o600);
        let pem = std::fs::read_to_string(&path).unwrap();
        let key = SigningKey::from_pem(alg, pem.as_bytes()).unwrap();
        assert_eq!(told_kid(&stderr), key.public().kid());
        for line in key_material(&pem) {
            assert!(!stderr.contains(&line), "{stderr}");
        }
        // A second run with the same file: refused, the first key kept.
        let (code, _, stderr) =
            keys_generate(dir.path(), &["--alg", alg.name(), "--output", "key.pem"]).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.starts_with("authd: error: cannot write key.pem"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    }
    // HS256 has no key pair to make.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = keys_generate(dir.path(), &["--alg", "HS256"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("openssl rand"), "{stderr}");
}

#[tokio::test]
async fn keys_generate_redirected_to_a_file_makes_it_owner_only_despite_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = tokio::process::Command::new("sh");
    sh.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .arg("-c")
        .arg("umask 022; \"$0\" keys generate --alg EdDSA > key.pem")
        .arg(crate::helpers::binary_path());
    let out = sh.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let path = dir.path().join("key.pem");
    assert_eq!(mode(&path), 0o600);
    let pem = std::fs::read_to_string(&path).unwrap();
    let key = SigningKey::from_pem(SigningAlg::EdDsa, pem.as_bytes()).unwrap();
    assert_eq!(told_kid(&stderr), key.public().kid());
}

#[tokio::test]
async fn the_kid_keys_generate_tells_is_the_one_the_jwks_serves_and_tokens_carry() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        keys_generate(dir.path(), &["--alg", "ES256", "--output", "key.pem"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let kid = told_kid(&stderr);
    std::fs::write(
        dir.path().join("users"),
        format!("user:{}\n", password_hash()),
    )
    .unwrap();
    let mut envs = eddsa_envs();
    envs[1] = ("AUTHD_SIGNING_ALG", "ES256");
    let app = Binary::start_in(dir, &[], &envs).await;
    let jwks: serde_json::Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    let res = app.login("user", "password").await;
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}
