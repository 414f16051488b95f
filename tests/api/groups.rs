//! Groups (the groups file, `AUTHD_GROUPS`), the `groups` claim, `/verify`'s headers for every
//! proxy convention and its per-route rules (`allowed_groups`, `allowed_users`), and the library's
//! way to require a group.

use std::path::Path;
use std::sync::Arc;

use authd::config::UsersSource;
use authd::{Application, Config, InGroup, RequireToken, TokenKeys, TokenSettings};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{PASSWORD, SECRET, TestApp, mint, now, password_hash, spawn_app_with};

/// alice is in admins and ops, bob in ops, carol in none.
const GROUPS: &str = "# who may do what\nadmins: alice\nops: alice bob\n";

fn with_people(config: &mut Config, dir: &Path) {
    let users = dir.join("people");
    let lines: String = ["alice", "bob", "carol"]
        .iter()
        .map(|u| format!("{u}:{}\n", password_hash()))
        .collect();
    std::fs::write(&users, lines).unwrap();
    config.users = UsersSource::File(users);
    let groups = dir.join("groups");
    std::fs::write(&groups, GROUPS).unwrap();
    config.groups = Some(groups);
}

async fn spawn() -> TestApp {
    spawn_app_with(with_people).await
}

async fn login(app: &TestApp, user: &str) -> serde_json::Value {
    let res = app.login(user, PASSWORD).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn token(app: &TestApp, user: &str) -> String {
    login(app, user).await["token"].as_str().unwrap().to_owned()
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn verify(app: &TestApp, query: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/verify{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn assert_forbidden(res: reqwest::Response) {
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("remote-user").is_none());
    assert!(res.headers().get("x-auth-user").is_none());
    assert!(res.headers().get("content-type").is_none());
    assert_eq!(res.bytes().await.unwrap().len(), 0, "a 403 body would leak");
}

#[tokio::test]
async fn login_and_refresh_tokens_carry_the_users_groups_and_none_for_a_user_in_none() {
    let app = spawn().await;
    let alice = login(&app, "alice").await;
    assert_eq!(
        payload(alice["token"].as_str().unwrap())["groups"],
        serde_json::json!(["admins", "ops"])
    );
    let res = app.refresh(alice["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let refreshed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        payload(refreshed["token"].as_str().unwrap())["groups"],
        serde_json::json!(["admins", "ops"])
    );
    assert_eq!(
        payload(&token(&app, "bob").await)["groups"],
        serde_json::json!(["ops"])
    );
    let carol = payload(&token(&app, "carol").await);
    assert!(carol.get("groups").is_none(), "{carol}");
}

#[tokio::test]
async fn verify_names_the_user_and_groups_in_every_proxy_convention() {
    let app = spawn().await;
    let res = verify(&app, "", &token(&app, "alice").await).await;
    assert_eq!(res.status(), 200);
    let h = res.headers();
    for name in ["remote-user", "x-auth-request-user", "x-auth-user"] {
        assert_eq!(h[name], "alice", "{name}");
    }
    for name in ["remote-groups", "x-auth-request-groups"] {
        assert_eq!(h[name], "admins,ops", "{name}");
    }
    assert!(h.contains_key("x-auth-expires"));
    // A user in no group: the user headers, and the group headers empty (so that a proxy
    // copying them overwrites a client's own).
    let res = verify(&app, "", &token(&app, "carol").await).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["remote-user"], "carol");
    for name in ["remote-groups", "x-auth-request-groups"] {
        assert_eq!(res.headers().get_all(name).iter().count(), 1, "{name}");
        assert_eq!(res.headers()[name], "", "{name}");
    }
}

#[tokio::test]
async fn verify_rules_let_members_and_named_users_through_and_answer_the_rest_an_empty_403() {
    let app = spawn().await;
    let (alice, bob, carol) = (
        token(&app, "alice").await,
        token(&app, "bob").await,
        token(&app, "carol").await,
    );
    let cases: [(&str, [bool; 3]); 8] = [
        ("?allowed_groups=admins", [true, false, false]),
        ("?allowed_groups=admins,ops", [true, true, false]),
        ("?allowed_groups=nobody-has-it", [false, false, false]),
        ("?allowed_users=bob,%20carol", [false, true, true]),
        (
            "?allowed_groups=ops&allowed_users=alice",
            [true, false, false],
        ),
        // A rule naming nobody (a template left empty) closes the route.
        ("?allowed_groups=", [false, false, false]),
        ("?allowed_users=,", [false, false, false]),
        ("?other=1", [true, true, true]),
    ];
    for (query, allowed) in cases {
        for (who, ok) in [
            (&alice, allowed[0]),
            (&bob, allowed[1]),
            (&carol, allowed[2]),
        ] {
            let res = verify(&app, query, who).await;
            if ok {
                assert_eq!(res.status(), 200, "{query}");
            } else {
                assert_forbidden(res).await;
            }
        }
    }
    // Not authenticated stays 401, whatever the rule.
    let res = app
        .client
        .get(app.url("/verify?allowed_groups=admins"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A token from elsewhere without a groups claim is in no group, but still valid.
    let foreign = mint(
        jsonwebtoken::Algorithm::HS256,
        SECRET,
        &serde_json::json!({"sub": "alice", "exp": now() + 600}),
    );
    assert_eq!(app.protected_with_query(&foreign).await.status(), 200);
    assert_forbidden(verify(&app, "?allowed_groups=admins", &foreign).await).await;
    assert_eq!(
        verify(&app, "?allowed_users=alice", &foreign)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn verify_refuses_repeated_escaped_and_oversized_rules_with_403_even_for_a_member() {
    let app = spawn().await;
    let alice = token(&app, "alice").await;
    let huge = format!("?allowed_groups={}", vec!["admins"; 257].join(","));
    for query in [
        "?allowed_groups=admins&allowed_groups=admins",
        "?allowed_groups=nobody&allowed_groups=admins",
        "?allowed%5Fgroups=admins",
        "?allowed_groups=admins&allowed%5Fgroups=nobody",
        "?allowed_users=alice&allowed_users=alice",
        &huge,
    ] {
        assert_forbidden(verify(&app, query, &alice).await).await;
    }
    // Without any token, too: the rule cannot be read, so no token would do.
    let res = app
        .client
        .get(app.url("/verify?allowed_groups=a&allowed_groups=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn verify_reads_x_original_url_and_refuses_original_headers_that_disagree() {
    let app = spawn().await;
    let alice = token(&app, "alice").await;
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = app.client.get(app.url("/verify"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let url = format!("https://app.example.com/page?token={alice}");
    let res = get(vec![("x-original-url", url.clone())]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["remote-user"], "alice");
    // The same target in the nginx header too: one reading, let through.
    let uri = format!("/page?token={alice}");
    let res = get(vec![
        ("x-original-url", url.clone()),
        ("x-original-uri", uri),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    // Another target (no token) beside it, or a URL that is not one: refused.
    for headers in [
        vec![
            ("x-original-url", url.clone()),
            ("x-forwarded-uri", "/page".to_owned()),
        ],
        vec![("x-original-url", format!("/page?token={alice}"))],
    ] {
        assert_eq!(get(headers).await.unwrap().status(), 401);
    }
}

#[tokio::test]
async fn original_request_headers_are_believed_only_from_trusted_proxies_when_some_are_set() {
    // The test client (127.0.0.1) is not among the trusted proxies.
    let app = spawn_app_with(|config, dir| {
        with_people(config, dir);
        config.trusted_proxies = "10.0.0.0/8".parse().unwrap();
    })
    .await;
    let alice = token(&app, "alice").await;
    let target = format!("/page?token={alice}");
    for name in ["x-original-uri", "x-forwarded-uri"] {
        let res = app
            .client
            .get(app.url("/verify"))
            .header(name, &target)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{name} believed from an untrusted peer");
        // Its own query is read instead, the header left aside.
        let res = app
            .client
            .get(app.url("/verify"))
            .query(&[("token", &alice)])
            .header(name, "/page")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
    }
    // Trusted: believed as before.
    let app = spawn_app_with(|config, dir| {
        with_people(config, dir);
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let alice = token(&app, "alice").await;
    let res = app
        .client
        .get(app.url("/verify"))
        .header("x-original-uri", format!("/page?token={alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_groups_file_with_a_bad_line_refuses_the_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(dir.path());
    let groups = dir.path().join("groups");
    std::fs::write(&groups, "admins: user\nops,dev: user\n").unwrap();
    config.groups = Some(groups);
    let err = Application::build(config).await.err().expect("refused");
    let shown = err.to_string();
    assert!(shown.contains("line 2"), "{shown}");
    assert!(shown.contains(','), "{shown}");
}

struct Admins;
impl authd::Group for Admins {
    const NAME: &'static str = "admins";
}

#[tokio::test]
async fn the_library_requires_a_group_by_extractor_and_by_layer_with_403_forbidden() {
    let app = spawn().await;
    let keys = Arc::new(TokenKeys::new(SECRET.as_bytes(), TokenSettings::default()).unwrap());
    let service = axum::Router::new()
        .route(
            "/admin",
            get(|InGroup(claims, _): InGroup<Admins>| async move {
                format!("admin {}", claims.subject().unwrap_or("?"))
            }),
        )
        .merge(
            axum::Router::new()
                .route("/ops", get(|| async { "ops" }))
                .route_layer(RequireToken::new(Arc::clone(&keys)).in_group("ops")),
        )
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    let (alice, bob, carol) = (
        token(&app, "alice").await,
        token(&app, "bob").await,
        token(&app, "carol").await,
    );
    let get = |path: &str, token: &str| {
        app.client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
    };
    let res = get("/admin", &alice).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "admin alice");
    assert_eq!(get("/ops", &bob).await.unwrap().status(), 200);
    for (path, who) in [("/admin", &bob), ("/admin", &carol), ("/ops", &carol)] {
        let res = get(path, who).await.unwrap();
        crate::helpers::assert_message(res, 403, "Forbidden").await;
    }
    // Not authenticated: the token check's own answer, not "Forbidden".
    let res = get("/admin", "nonsense").await.unwrap();
    crate::helpers::assert_message(res, 403, "Token is invalid!").await;
}
