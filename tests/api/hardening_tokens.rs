//! Issue #10, points 5, 6, 7 and 19, against the real binary: repeated tokens and `Authorization`
//! headers, `X-Original-URI` and `X-Forwarded-Uri` that disagree (and the setting choosing one),
//! tokens that live longer than authd issues them for or name two users, and strict mode's
//! `?access_token=`.

use std::sync::Arc;

use authd::{Authenticated, RequireToken, TokenKeys, TokenSettings};
use axum::Router;
use axum::routing;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::helpers::{Binary, PASSWORD, SECRET, USER, assert_message, mint, now, run_to_exit};

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "my-api";
/// The `/verify` challenge of a strict-mode malformed request.
const INVALID_REQUEST: &str = r#"error="invalid_request""#;

/// The demo binary signing with the test secret, with `envs` on top.
async fn start(envs: &[(&str, &str)]) -> Binary {
    let mut all = vec![("AUTHD_SECRET_KEY", SECRET)];
    all.extend_from_slice(envs);
    Binary::start(&["--demo"], &all).await
}

async fn start_strict(envs: &[(&str, &str)]) -> Binary {
    let mut all = vec![
        ("AUTHD_STRICT", "true"),
        ("AUTHD_ISSUER", ISSUER),
        ("AUTHD_AUDIENCE", AUDIENCE),
    ];
    all.extend_from_slice(envs);
    start(&all).await
}

async fn token(app: &Binary) -> String {
    let res = app.login(USER, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// A correctly formed token for another user, signed with a key authd does not know: what an
/// upstream that reads the wrong copy would believe.
fn forged() -> String {
    mint(
        Algorithm::HS256,
        "the-attackers-own-secret-0123456789-abcdef",
        &json!({"user": "admin", "sub": "admin", "exp": now() + 600}),
    )
}

/// `GET path_and_query` with these headers, each appended (so a name may repeat).
async fn get(app: &Binary, path_and_query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url(path_and_query));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// `/verify`'s answer: the status and the `X-Auth-User` or `WWW-Authenticate` header.
async fn verify(app: &Binary, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let res = get(app, path_and_query, headers).await;
    let status = res.status().as_u16();
    let named = if status == 200 {
        "x-auth-user"
    } else {
        "www-authenticate"
    };
    let value = res
        .headers()
        .get(named)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, value)
}

// Point 5: a repeat is refused, whether the copies differ or not.

#[tokio::test]
async fn repeated_token_parameter_is_invalid_on_protected_even_when_the_copies_agree() {
    let app = start(&[]).await;
    let good = token(&app).await;
    let bad = forged();
    // The control: one copy opens the route.
    let res = get(&app, &format!("/protected?token={good}"), &[]).await;
    assert_message(res, 200, "This is a protected route.").await;
    for query in [
        format!("token={good}&token={bad}"),
        format!("token={bad}&token={good}"),
        format!("token={good}&token={good}"),
        // The name is decoded before it is compared, as Flask and every form decoder do.
        format!("token={good}&t%6Fken={bad}"),
        format!("t%6Fken={good}&x=1&token={good}"),
        // An empty second copy is a copy too.
        format!("token={good}&token="),
    ] {
        let res = get(&app, &format!("/protected?{query}"), &[]).await;
        assert_message(res, 403, "Token is invalid!").await;
    }
}

#[tokio::test]
async fn repeated_authorization_header_is_invalid_on_protected() {
    let app = start(&[]).await;
    let good = format!("Bearer {}", token(&app).await);
    let bad = format!("Bearer {}", forged());
    let res = get(&app, "/protected", &[("authorization", &good)]).await;
    assert_message(res, 200, "This is a protected route.").await;
    for pair in [[&good, &bad], [&bad, &good], [&good, &good]] {
        let headers = [
            ("authorization", pair[0].as_str()),
            ("authorization", pair[1]),
        ];
        let res = get(&app, "/protected", &headers).await;
        assert_message(res, 403, "Token is invalid!").await;
    }
}

#[tokio::test]
async fn verify_refuses_repeated_tokens_in_the_original_uri_its_own_query_and_authorization() {
    let app = start(&[]).await;
    let good = token(&app).await;
    let bad = forged();
    let bearer = format!("Bearer {good}");
    assert_eq!(
        verify(&app, "/verify", &[("authorization", &bearer)]).await,
        (200, USER.to_owned())
    );
    let repeated = format!("/app?token={good}&token={bad}");
    let same_twice = format!("/app?t%6Fken={good}&token={good}");
    for header in ["x-original-uri", "x-forwarded-uri"] {
        for target in [&repeated, &same_twice] {
            let (status, _) = verify(&app, "/verify", &[(header, target)]).await;
            assert_eq!(status, 401, "{header}: {target}");
        }
    }
    let (status, _) = verify(&app, &format!("/verify?token={good}&token={bad}"), &[]).await;
    assert_eq!(status, 401);
    let forged_bearer = format!("Bearer {bad}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("authorization", &forged_bearer),
    ];
    let (status, _) = verify(&app, "/verify", &headers).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn strict_mode_answers_a_repeated_authorization_header_400_invalid_request() {
    // RFC 6750 §3.1: a request that "repeats the same parameter" is `invalid_request`.
    let app = start_strict(&[]).await;
    let bearer = format!("Bearer {}", token(&app).await);
    let res = get(&app, "/protected", &[("authorization", &bearer)]).await;
    assert_eq!(res.status(), 200);
    let headers = [
        ("authorization", bearer.as_str()),
        ("authorization", &bearer),
    ];
    let res = get(&app, "/protected", &headers).await;
    assert_eq!(res.status(), 400);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains(INVALID_REQUEST), "{challenge}");
    let (status, challenge) = verify(&app, "/verify", &headers).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(INVALID_REQUEST), "{challenge}");
}

// Point 6: the two original-URI headers must agree, unless a setting names the one to believe.

#[tokio::test]
async fn verify_refuses_an_original_uri_and_a_forwarded_uri_that_disagree() {
    let app = start(&[]).await;
    let good = token(&app).await;
    let bearer = format!("Bearer {good}");
    let with_forged = format!("/app?token={}", forged());
    // The review's request: Traefik's X-Forwarded-Uri carries a forged query token, the client
    // added an X-Original-URI without one, and the Bearer token is good.
    let headers = [
        ("x-forwarded-uri", with_forged.as_str()),
        ("x-original-uri", "/app"),
        ("authorization", &bearer),
    ];
    let (status, challenge) = verify(&app, "/verify", &headers).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer realm="authd""#)
    );
    // The other way round, and with no Bearer at all.
    let target = format!("/app?token={good}");
    let headers = [
        ("x-original-uri", target.as_str()),
        ("x-forwarded-uri", "/app"),
    ];
    assert_eq!(verify(&app, "/verify", &headers).await.0, 401);
    // Both present and the same: a proxy chain that sets both is fine.
    let headers = [
        ("x-original-uri", target.as_str()),
        ("x-forwarded-uri", &target),
    ];
    assert_eq!(
        verify(&app, "/verify", &headers).await,
        (200, USER.to_owned())
    );
    // One of them sent twice is a disagreement too.
    let headers = [
        ("x-forwarded-uri", target.as_str()),
        ("x-forwarded-uri", "/app"),
    ];
    assert_eq!(verify(&app, "/verify", &headers).await.0, 401);
}

#[tokio::test]
async fn strict_verify_refuses_disagreeing_uris_instead_of_missing_the_query_token() {
    let app = start_strict(&[]).await;
    let good = token(&app).await;
    let bearer = format!("Bearer {good}");
    // The query token that strict mode refuses, hidden behind a client-added X-Original-URI.
    let leaking = format!("/app?token={good}");
    let headers = [
        ("x-forwarded-uri", leaking.as_str()),
        ("x-original-uri", "/app"),
        ("authorization", &bearer),
    ];
    let (status, challenge) = verify(&app, "/verify", &headers).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(INVALID_REQUEST), "{challenge}");
    // Without the disagreement the Bearer token passes.
    let headers = [("x-forwarded-uri", "/app"), ("authorization", &bearer)];
    assert_eq!(verify(&app, "/verify", &headers).await.0, 200);
}

#[tokio::test]
async fn forwarded_uri_header_setting_names_the_only_header_believed() {
    for (believed, ignored) in [
        ("x-forwarded-uri", "x-original-uri"),
        ("x-original-uri", "x-forwarded-uri"),
    ] {
        // Any case, as header names are.
        let setting = believed.to_ascii_uppercase();
        let app = start(&[("AUTHD_FORWARDED_URI_HEADER", &setting)]).await;
        let good = token(&app).await;
        let with_good = format!("/app?token={good}");
        let with_forged = format!("/app?token={}", forged());
        // The believed header's query token counts...
        assert_eq!(
            verify(&app, "/verify", &[(believed, &with_good)]).await,
            (200, USER.to_owned()),
            "{believed}"
        );
        // ...the other header is not read at all, not even for a token...
        let (status, _) = verify(&app, "/verify", &[(ignored, &with_good)]).await;
        assert_eq!(status, 401, "{ignored} read with {believed} set");
        // ...so it cannot disagree: what it says does not matter.
        let headers = [(believed, with_good.as_str()), (ignored, &with_forged)];
        assert_eq!(
            verify(&app, "/verify", &headers).await,
            (200, USER.to_owned())
        );
        let headers = [(believed, with_forged.as_str()), (ignored, &with_good)];
        assert_eq!(verify(&app, "/verify", &headers).await.0, 401);
    }
}

#[tokio::test]
async fn an_unknown_forwarded_uri_header_setting_refuses_to_start() {
    let (code, _, stderr) = run_to_exit(
        &["--demo"],
        &[
            ("AUTHD_SECRET_KEY", SECRET),
            ("AUTHD_FORWARDED_URI_HEADER", "x-real-uri"),
        ],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AUTHD_FORWARDED_URI_HEADER"), "{stderr}");
    assert!(stderr.contains("x-forwarded-uri"), "{stderr}");
}

// Point 7: a token's life is bounded by what authd issues, and it names one user or none.

/// What `/protected` and `/verify` answer for `claims` signed with the test secret.
async fn answers(app: &Binary, claims: &serde_json::Value) -> (u16, u16) {
    let bearer = format!("Bearer {}", mint(Algorithm::HS256, SECRET, claims));
    let protected = get(app, "/protected", &[("authorization", &bearer)]).await;
    let verified = get(app, "/verify", &[("authorization", &bearer)]).await;
    (protected.status().as_u16(), verified.status().as_u16())
}

#[tokio::test]
async fn tokens_that_expire_later_than_the_configured_lifetime_allows_are_invalid() {
    let app = start(&[("AUTHD_TOKEN_TTL", "1h")]).await;
    let ten_years = now() + 10 * 365 * 24 * 3600;
    for exp in [ten_years, i64::MAX, now() + 3600 + 300] {
        let claims = json!({"user": USER, "exp": exp});
        assert_eq!(answers(&app, &claims).await, (403, 401), "exp {exp}");
        let bearer = format!("Bearer {}", mint(Algorithm::HS256, SECRET, &claims));
        let res = get(&app, "/protected", &[("authorization", &bearer)]).await;
        assert_message(res, 403, "Token is invalid!").await;
    }
    // Within the lifetime (and at its edge, as authd itself issues them): accepted.
    for exp in [now() + 600, now() + 3600] {
        let claims = json!({"user": USER, "exp": exp});
        assert_eq!(answers(&app, &claims).await, (200, 200), "exp {exp}");
    }
    // authd's own tokens pass at the default lifetime too.
    let app = start(&[]).await;
    let bearer = format!("Bearer {}", token(&app).await);
    let res = get(&app, "/protected", &[("authorization", &bearer)]).await;
    assert_eq!(res.status(), 200);
    let claims = json!({"user": USER, "exp": now() + 3600});
    assert_eq!(answers(&app, &claims).await, (403, 401));
}

#[tokio::test]
async fn empty_subjects_and_a_sub_and_user_that_disagree_are_invalid() {
    let app = start(&[]).await;
    let exp = now() + 600;
    for claims in [
        json!({"sub": "", "exp": exp}),
        json!({"sub": "", "user": USER, "exp": exp}),
        json!({"user": "", "exp": exp}),
        json!({"sub": "admin", "user": USER, "exp": exp}),
        json!({"sub": USER, "user": "admin", "exp": exp}),
    ] {
        assert_eq!(answers(&app, &claims).await, (403, 401), "{claims}");
    }
    // The tutorial's (PyJWT's) tokens carry only `user`; standard ones only `sub`; authd's both.
    for claims in [
        json!({"user": USER, "exp": exp}),
        json!({"sub": USER, "exp": exp}),
        json!({"sub": USER, "user": USER, "exp": exp}),
    ] {
        assert_eq!(answers(&app, &claims).await, (200, 200), "{claims}");
    }
}

#[tokio::test]
async fn the_library_extractor_and_layer_apply_the_same_lifetime_and_subject_rules() {
    // A service linking authd, as `examples/protected_service.rs` does.
    let keys = Arc::new(TokenKeys::new(SECRET.as_bytes(), TokenSettings::default()).unwrap());
    let app = Router::new()
        .route("/reports", routing::get(|| async { "reports" }))
        .route_layer(RequireToken::new(Arc::clone(&keys)))
        .route(
            "/hello",
            routing::get(
                |Authenticated(c): Authenticated| async move { format!("{:?}", c.subject()) },
            ),
        )
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = crate::helpers::client();
    let exp = now() + 600;
    for (claims, status) in [
        (
            json!({"user": USER, "exp": now() + 10 * 365 * 24 * 3600}),
            403,
        ),
        (json!({"user": USER, "exp": i64::MAX}), 403),
        (json!({"sub": "", "exp": exp}), 403),
        (json!({"sub": "admin", "user": USER, "exp": exp}), 403),
        (json!({"user": USER, "exp": exp}), 200),
    ] {
        let token = mint(Algorithm::HS256, SECRET, &claims);
        for path in ["/hello", "/reports"] {
            let res = client
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{path} {claims}");
        }
    }
}

// Point 19: RFC 6750's own query name is refused in strict mode like `?token=`.

#[tokio::test]
async fn strict_mode_refuses_access_token_in_the_query_alone_or_next_to_a_bearer_header() {
    let app = start_strict(&[]).await;
    let good = token(&app).await;
    let bearer = format!("Bearer {good}");
    let path = format!("/protected?access_token={good}");
    for headers in [&[][..], &[("authorization", bearer.as_str())][..]] {
        let res = get(&app, &path, headers).await;
        assert_eq!(res.status(), 400, "{headers:?}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains(INVALID_REQUEST), "{challenge}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{body}"
        );
    }
    // Decoded names count here too; and an empty one still leaks the habit.
    for query in ["acce%73s_token=x", "access_token="] {
        let res = get(
            &app,
            &format!("/protected?{query}"),
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(res.status(), 400, "{query}");
    }
    // On /verify, in the original URI: still a 401, with the reason in the challenge.
    let target = format!("/app?access_token={good}");
    let headers = [
        ("x-forwarded-uri", target.as_str()),
        ("authorization", &bearer),
    ];
    let (status, challenge) = verify(&app, "/verify", &headers).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(INVALID_REQUEST), "{challenge}");
}

#[tokio::test]
async fn default_mode_ignores_access_token_as_the_tutorial_knows_only_token() {
    let app = start(&[]).await;
    let good = token(&app).await;
    let res = get(&app, &format!("/protected?access_token={good}"), &[]).await;
    assert_message(res, 403, "Token is missing!").await;
}
