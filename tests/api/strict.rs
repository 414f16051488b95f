//! Strict mode (`AUTHD_STRICT`): RFC 6750 answers, no `?token=`, `iss` and `aud` required. The
//! default keeps the tutorial's contract; both are checked side by side.

use crate::helpers::{
    TestApp, mint_deployed, now, password_hash, run_to_exit, signing_alg, signing_envs, spawn_app,
    spawn_app_with, write_test_key,
};

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "my-api";

async fn strict_app() -> TestApp {
    spawn_app_with(|c, _| {
        c.strict = true;
        c.tokens.issuer = Some(ISSUER.into());
        c.tokens.audience = Some(AUDIENCE.into());
    })
    .await
}

/// Status, `WWW-Authenticate`, and the JSON message.
async fn answer(res: reqwest::Response) -> (u16, Option<String>, String) {
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = res.json().await.unwrap();
    (
        status,
        challenge,
        body["message"].as_str().unwrap().to_owned(),
    )
}

async fn protected(
    app: &TestApp,
    query_token: Option<&str>,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut req = app.client.get(app.url("/protected"));
    if let Some(t) = query_token {
        req = req.query(&[("token", t)]);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn strict_mode_accepts_a_bearer_token_with_its_issuer_and_audience() {
    let app = strict_app().await;
    let token = app.token().await;
    let res = protected(&app, None, Some(&token)).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn strict_mode_refuses_a_query_token_with_400_invalid_request() {
    let app = strict_app().await;
    let token = app.token().await;
    // Alone, or alongside the same token in the header: either way the URL carried it.
    for bearer in [None, Some(token.as_str())] {
        let (status, challenge, message) =
            answer(protected(&app, Some(&token), bearer).await).await;
        assert_eq!(status, 400);
        let challenge = challenge.unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="authd", error="invalid_request""#),
            "{challenge}"
        );
        assert!(message.contains("Authorization: Bearer"), "{message}");
    }
}

#[tokio::test]
async fn strict_mode_answers_a_missing_token_401_with_a_bare_bearer_challenge() {
    let app = strict_app().await;
    let (status, challenge, message) = answer(protected(&app, None, None).await).await;
    assert_eq!(status, 401);
    // RFC 6750 §3.1: no error code when the request carried no credentials.
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="authd""#));
    assert_eq!(message, "Token is missing!");
}

#[tokio::test]
async fn strict_mode_answers_invalid_expired_and_audienceless_tokens_401_invalid_token() {
    let app = strict_app().await;
    let claims = |exp: i64, with_aud: bool| {
        let mut c = serde_json::json!({"sub": "user", "iss": ISSUER, "exp": exp});
        if with_aud {
            c["aud"] = AUDIENCE.into();
        }
        c
    };
    let good = mint_deployed(&claims(now() + 600, true));
    assert_eq!(protected(&app, None, Some(&good)).await.status(), 200);
    for token in [
        mint_deployed(&claims(now() - 3600, true)),
        mint_deployed(&claims(now() + 600, false)),
        "nonsense".to_owned(),
    ] {
        let (status, challenge, message) = answer(protected(&app, None, Some(&token)).await).await;
        assert_eq!(status, 401);
        let challenge = challenge.unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="authd", error="invalid_token""#),
            "{challenge}"
        );
        assert_eq!(message, "Token is invalid!");
    }
}

#[tokio::test]
async fn strict_verify_refuses_a_token_in_the_original_uri() {
    let app = strict_app().await;
    let token = app.token().await;
    let res = app
        .client
        .get(app.url("/verify"))
        .header("x-forwarded-uri", format!("/p?token={token}"))
        .send()
        .await
        .unwrap();
    // Still a 401 (what proxies understand), with the reason in the challenge.
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_request""#),
        "{challenge}"
    );
    let res = app
        .client
        .get(app.url("/verify"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn default_mode_keeps_the_tutorials_403_answers_without_challenges() {
    let app = spawn_app().await;
    let token = app.token().await;
    assert_eq!(protected(&app, Some(&token), None).await.status(), 200);
    let (status, challenge, message) = answer(protected(&app, None, None).await).await;
    assert_eq!(
        (status, challenge, message.as_str()),
        (403, None, "Token is missing!")
    );
    let (status, challenge, message) = answer(protected(&app, Some("nonsense"), None).await).await;
    assert_eq!(
        (status, challenge, message.as_str()),
        (403, None, "Token is invalid!")
    );
}

#[tokio::test]
async fn strict_mode_refuses_to_start_without_issuer_and_audience() {
    let setup = |dir: &std::path::Path| {
        std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap();
        write_test_key(dir);
    };
    // Signing as the deployment under test, without the harness's issuer: under a key pair
    // AUTHD_ISSUER is needed for the keys' sake too, and that refusal comes first.
    let key_pair = signing_alg().is_asymmetric();
    let strict_needs = "AUTHD_STRICT needs AUTHD_ISSUER and AUTHD_AUDIENCE";
    let key_pair_needs = "needs AUTHD_ISSUER, the https URL authd is reached at";
    let no_issuer = if key_pair {
        key_pair_needs
    } else {
        strict_needs
    };
    for (extra, needle) in [
        (&[][..], no_issuer),
        (&[("AUTHD_ISSUER", ISSUER)][..], strict_needs),
        (&[("AUTHD_AUDIENCE", AUDIENCE)][..], no_issuer),
    ] {
        let mut envs: Vec<_> = signing_envs()
            .into_iter()
            .filter(|(k, _)| *k != "AUTHD_ISSUER")
            .collect();
        envs.extend_from_slice(&[("AUTHD_USERS", "users"), ("AUTHD_STRICT", "true")]);
        envs.extend_from_slice(extra);
        let (code, _, stderr) = run_to_exit(&[], &envs, setup).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
}
