//! `/.well-known/jwks.json` and `/.well-known/openid-configuration` on the in-process app: their
//! shape under EdDSA and ES256, 404 JSON under HS256, the `kid` of issued tokens, and a rotation
//! across a restart (new key signing, the old one still published and accepted).

use authd::config::Signing;
use authd::signing::{PublicKey, SigningAlg, SigningKey};
use secrecy::ExposeSecret as _;

use crate::helpers::{TestApp, assert_message, spawn_app_with};

const ISSUER: &str = "https://auth.example.test/";

fn new_key(alg: SigningAlg) -> SigningKey {
    let pem = SigningKey::generate_pem(alg).unwrap();
    SigningKey::from_pem(alg, pem.expose_secret().as_bytes()).unwrap()
}

/// The app signing with `key`, `previous` still accepted, and [`ISSUER`] as its issuer.
async fn spawn_with_key(key: &SigningKey, previous: &[PublicKey]) -> TestApp {
    let (key, previous) = (key.clone(), previous.to_vec());
    spawn_app_with(move |c, _| {
        c.signing = Signing::KeyPair {
            key: Box::new(key),
            previous,
        };
        c.tokens.issuer = Some(ISSUER.to_owned());
    })
    .await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

/// The JWK Set served, after checking the answer's status and headers.
async fn jwks(app: &TestApp) -> Vec<serde_json::Value> {
    let res = get(app, "/.well-known/jwks.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "only `keys`: {body}");
    body["keys"].as_array().unwrap().clone()
}

/// The `kid` in the header of a token the app issues.
async fn issued_kid(app: &TestApp) -> (String, String) {
    let token = app.token().await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    (header.kid.unwrap(), token)
}

#[tokio::test]
async fn jwks_serves_the_public_ed25519_key_with_kid_alg_and_use_and_no_private_part() {
    let key = new_key(SigningAlg::EdDsa);
    let app = spawn_with_key(&key, &[]).await;
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 1);
    let jwk = keys[0].as_object().unwrap();
    let mut fields: Vec<&str> = jwk.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x"]);
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], key.public().kid());
    // The served JWK is the key: read back, it has the same thumbprint.
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).unwrap();
    assert_eq!(
        PublicKey::from_jwk(&parsed).unwrap().kid(),
        key.public().kid()
    );
    let (kid, _) = issued_kid(&app).await;
    assert_eq!(kid, key.public().kid());
}

#[tokio::test]
async fn jwks_serves_the_public_p256_key_with_x_and_y_and_tokens_name_it() {
    let key = new_key(SigningAlg::Es256);
    let app = spawn_with_key(&key, &[]).await;
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 1);
    let jwk = keys[0].as_object().unwrap();
    let mut fields: Vec<&str> = jwk.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none());
    let (kid, token) = issued_kid(&app).await;
    assert_eq!(kid, jwk["kid"].as_str().unwrap());
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
}

#[tokio::test]
async fn both_endpoints_answer_404_json_under_hs256() {
    let app = spawn_app_with(|c, _| {
        c.signing = Signing::Secret;
        c.tokens.issuer = Some(ISSUER.to_owned());
    })
    .await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let res = get(&app, path).await;
        assert!(res.headers().get("cache-control").is_none(), "{path}");
        assert_message(
            res,
            404,
            "No public keys: tokens are signed with HS256, a shared secret (set AUTHD_SIGNING_ALG=EdDSA)",
        )
        .await;
    }
}

#[tokio::test]
async fn openid_configuration_names_the_issuer_its_keys_login_and_the_one_algorithm() {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let app = spawn_with_key(&new_key(alg), &[]).await;
        let res = get(&app, "/.well-known/openid-configuration").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "public, max-age=300");
        let doc: serde_json::Value = res.json().await.unwrap();
        // The issuer exactly as configured (the tokens' `iss`); URLs under it without a double
        // slash.
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(
            doc["jwks_uri"],
            "https://auth.example.test/.well-known/jwks.json"
        );
        assert_eq!(doc["token_endpoint"], "https://auth.example.test/login");
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!([alg.name()])
        );
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public"])
        );
        let claims = doc["claims_supported"].as_array().unwrap();
        for claim in ["sub", "iss", "exp"] {
            assert!(claims.iter().any(|c| c == claim), "{claim}: {doc}");
        }
        // The issuer in the tokens is the one discovery gives.
        let token = app.token().await;
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], doc["issuer"]);
    }
}

#[tokio::test]
async fn after_a_restart_with_a_new_key_both_are_published_new_first_and_both_tokens_open_protected()
 {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let (old, new) = (new_key(alg), new_key(alg));
        let before = spawn_with_key(&old, &[]).await;
        let (old_kid, old_token) = issued_kid(&before).await;
        assert_eq!(old_kid, old.public().kid());
        drop(before);

        let after = spawn_with_key(&new, &[old.public().clone()]).await;
        let kids: Vec<String> = jwks(&after)
            .await
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [new.public().kid(), old.public().kid()]);
        let (new_kid, new_token) = issued_kid(&after).await;
        assert_eq!(new_kid, new.public().kid());
        for token in [&old_token, &new_token] {
            let res = after
                .client
                .get(after.url("/protected"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_message(res, 200, "This is a protected route.").await;
        }

        // Without the old key as previous, its tokens are refused: the rotation is what kept them.
        let without = spawn_with_key(&new, &[]).await;
        let res = without.protected_with_query(&old_token).await;
        assert_message(res, 403, "Token is invalid!").await;
    }
}
