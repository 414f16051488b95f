//! Interoperability with PyJWT, the tutorial's library: its tokens open our routes, ours decode
//! in it. Needs a Python with PyJWT: `AUTHD_TEST_PYTHON` (the test script sets up a venv), else
//! `python3`. The tests are ignored unless asked for (scripts/test.sh and CI ask), and fail without
//! PyJWT.

use std::process::Command;

use crate::helpers::{
    Binary, SECRET, TEST_ISSUER, assert_message, signing_alg, signing_envs, test_key_pem,
};

fn python() -> String {
    let py = std::env::var("AUTHD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import jwt"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs PyJWT, but `{py} -c 'import jwt'` failed (set AUTHD_TEST_PYTHON; scripts/test.sh makes a venv)"
    );
    py
}

fn run_python(py: &str, script: &str, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The demo binary, signing as the deployment under test (the test secret or key pair).
async fn demo_as_deployed() -> Binary {
    Binary::start(&["--demo"], &signing_envs()).await
}

/// The tutorial's HS256: PyJWT signing with the shared secret. Not part of the key-pair pass,
/// where HS256 tokens are refused by design.
mod hs256_only {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PyJWT (AUTHD_TEST_PYTHON)"]
    async fn token_made_by_pyjwt_as_in_the_tutorial_opens_protected() {
        let py = python();
        // The tutorial's own code, with our secret.
        let script = "import jwt, datetime, sys\n\
            print(jwt.encode({'user': 'user', 'exp': datetime.datetime.utcnow() + datetime.timedelta(minutes=30)}, sys.argv[1], algorithm='HS256'))";
        let token = run_python(&py, script, &[SECRET]);
        let app = Binary::start(&["--demo"], &[("AUTHD_SECRET_KEY", SECRET)]).await;
        let res = app
            .client
            .get(app.url("/protected"))
            .query(&[("token", &token)])
            .send()
            .await
            .unwrap();
        assert_message(res, 200, "This is a protected route.").await;

        // The same library with another secret, or an expired token: refused.
        let script = "import jwt, time, sys\n\
            print(jwt.encode({'user': 'user', 'exp': int(time.time()) + int(sys.argv[2])}, sys.argv[1], algorithm='HS256'))";
        for (secret, ttl) in [
            ("another-secret-another-secret-another", "600"),
            (SECRET, "-600"),
        ] {
            let token = run_python(&py, script, &[secret, ttl]);
            let res = app
                .client
                .get(app.url("/protected"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_message(res, 403, "Token is invalid!").await;
        }
    }
}

#[tokio::test]
#[ignore = "needs PyJWT (AUTHD_TEST_PYTHON)"]
async fn our_token_decodes_in_pyjwt_with_the_deployments_key() {
    let py = python();
    let app = demo_as_deployed().await;
    let res = app.login("user", "password").await;
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims: serde_json::Value = match test_key_pem() {
        None => {
            let script = "import jwt, json, sys\n\
                print(json.dumps(jwt.decode(sys.argv[1], sys.argv[2], algorithms=['HS256'])))";
            serde_json::from_str(&run_python(&py, script, &[&token, SECRET])).unwrap()
        }
        Some(pem) => {
            // The public key is taken from the private one by `cryptography`, not by authd; PyJWT
            // checks the algorithm it is told, the signature, `exp` and the issuer.
            let script = "import jwt, json, sys\n\
                from cryptography.hazmat.primitives.serialization import load_pem_private_key\n\
                public = load_pem_private_key(sys.argv[2].encode(), None).public_key()\n\
                print(json.dumps(jwt.decode(sys.argv[1], public, algorithms=[sys.argv[3]], issuer=sys.argv[4])))";
            let alg = signing_alg().name();
            serde_json::from_str(&run_python(&py, script, &[&token, pem, alg, TEST_ISSUER]))
                .unwrap()
        }
    };
    assert_eq!(claims["user"], "user");
    assert_eq!(claims["sub"], "user");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1800
    );
}

#[tokio::test]
#[ignore = "needs PyJWT (AUTHD_TEST_PYTHON)"]
async fn token_made_by_pyjwt_with_the_deployments_key_opens_protected_and_another_key_does_not() {
    let py = python();
    let app = demo_as_deployed().await;
    // PyJWT signing as the deployment does (HS256 with the secret, or the private key), without
    // a `kid`, as another library would; then with a key that is not the deployment's.
    let (alg, key, other) = match test_key_pem() {
        None => (
            "HS256",
            SECRET.to_owned(),
            "another-secret-another-secret-another".to_owned(),
        ),
        Some(pem) => {
            let other = authd::signing::SigningKey::generate_pem(signing_alg()).unwrap();
            use secrecy::ExposeSecret as _;
            (
                signing_alg().name(),
                pem.to_owned(),
                other.expose_secret().to_owned(),
            )
        }
    };
    let script = "import jwt, time, sys\n\
        print(jwt.encode({'user': 'user', 'iss': sys.argv[3], 'exp': int(time.time()) + 600}, sys.argv[1], algorithm=sys.argv[2]))";
    let good = run_python(&py, script, &[&key, alg, TEST_ISSUER]);
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_message(res, 200, "This is a protected route.").await;
    let bad = run_python(&py, script, &[&other, alg, TEST_ISSUER]);
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(&bad)
        .send()
        .await
        .unwrap();
    assert_message(res, 403, "Token is invalid!").await;
}

#[tokio::test]
#[ignore = "needs PyJWT with cryptography (AUTHD_TEST_PYTHON)"]
async fn pyjwk_client_fetches_authds_key_set_and_verifies_eddsa_and_es256_tokens() {
    use authd::signing::SigningAlg;
    let py = python();
    // PyJWT's own JWKS client: fetches the set, picks the key by `kid`, verifies with the
    // algorithm the caller pins and the issuer it expects; a tampered token must fail.
    let script = "import jwt, sys\n\
        url, token, tampered, alg, issuer = sys.argv[1:6]\n\
        client = jwt.PyJWKClient(url)\n\
        key = client.get_signing_key_from_jwt(token)\n\
        claims = jwt.decode(token, key.key, algorithms=[alg], issuer=issuer)\n\
        try:\n    jwt.decode(tampered, key.key, algorithms=[alg], issuer=issuer)\n    verdict = 'accepted'\n\
        except jwt.InvalidSignatureError:\n    verdict = 'refused'\n\
        print(claims['sub'], key.key_id == jwt.get_unverified_header(token)['kid'], verdict)";
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let keys = tempfile::tempdir().unwrap();
        let key = crate::jwks_library::write_key(keys.path(), "key.pem", alg);
        let authd = crate::jwks_library::start_authd(0, alg, &key, None).await;
        let token = crate::helpers::demo_token(&authd).await;
        let tampered = crate::jwks_library::tampered(&token);
        let url = authd.url("/.well-known/jwks.json");
        let out = run_python(
            &py,
            script,
            &[&url, &token, &tampered, alg.name(), &authd.base],
        );
        assert_eq!(out, "user True refused", "{alg:?}");
    }
}
