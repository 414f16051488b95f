//! The OpenAPI document: served at `/openapi.json` as generated from the code, and listing
//! exactly the routes the server serves, with their methods, as the server itself answers them.
//! Routes are registered only in `http::api` with `routes!`, which documents them in the same
//! line; the metrics and the edge read their route list from there too.

use std::collections::BTreeSet;

use crate::helpers::spawn_app;

/// (path, METHOD) of every operation in the document.
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.insert((path.clone(), method.to_ascii_uppercase()));
        }
    }
    ops
}

/// The methods a path is served with, as the server itself says: the `Allow` header of its 405
/// answer to `TRACE`, a method no route of authd takes. HEAD, which axum adds to every GET route
/// by itself, is left out. `None` when the path is not served at all (404).
async fn served_methods(app: &crate::helpers::TestApp, path: &str) -> Option<BTreeSet<String>> {
    let res = app
        .client
        .request(reqwest::Method::TRACE, app.url(path))
        .send()
        .await
        .unwrap();
    if res.status() == 404 {
        return None;
    }
    assert_eq!(res.status(), 405, "TRACE {path}");
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    Some(
        allow
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect(),
    )
}

#[tokio::test]
async fn every_documented_path_is_served_with_exactly_its_documented_methods() {
    // `/metrics` on the main address, as by default: every route is on this router.
    let app = spawn_app().await;
    let doc = serde_json::to_value(authd::http::openapi()).unwrap();
    let documented = documented(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(p, _)| p).collect();
    assert!(paths.len() >= 8, "{paths:?}");
    for path in paths {
        let want: BTreeSet<String> = documented
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.clone())
            .collect();
        let served = served_methods(&app, path).await;
        assert_eq!(served.as_ref(), Some(&want), "{path}");
    }
    // A path the document does not have is not served (the probe can tell the two apart).
    assert_eq!(served_methods(&app, "/admin").await, None);
}

#[tokio::test]
async fn the_route_list_of_the_metrics_is_the_documents() {
    let app = spawn_app().await;
    let doc = serde_json::to_value(authd::http::openapi()).unwrap();
    let documented: BTreeSet<String> = documented(&doc).into_iter().map(|(p, _)| p).collect();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Each route has its latency histogram from the start, before any request reached it.
    let mut listed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("authd_http_request_duration_seconds_count{route=\"")
        {
            let route = rest.split('"').next().unwrap();
            if route != "unmatched" {
                listed.insert(route.to_owned());
            }
        }
    }
    assert_eq!(listed, documented, "{text}");
}

#[tokio::test]
async fn served_document_is_the_generated_openapi_3_1_document() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        served,
        serde_json::to_value(authd::http::openapi()).unwrap()
    );
    assert_eq!(served["openapi"], "3.1.0");
    let schemes = &served["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["token"]["type"], "apiKey");
    assert_eq!(schemes["token"]["in"], "query");
    assert_eq!(schemes["token"]["name"], "token");
    assert_eq!(
        served["paths"]["/login"]["post"]["security"],
        serde_json::json!([{"basic": []}])
    );
    assert_eq!(
        served["paths"]["/protected"]["get"]["security"],
        serde_json::json!([{"token": []}, {"bearer": []}])
    );
}

#[tokio::test]
async fn every_status_the_contract_tests_see_is_documented_for_its_route() {
    // Answers provoked here for real, each checked against the document's list for the route.
    let app = spawn_app().await;
    let doc = serde_json::to_value(authd::http::openapi()).unwrap();
    let token = app.token().await;
    let c = &app.client;
    let big = "x".repeat(20 * 1024);
    let cases = [
        (
            "/login",
            "post",
            c.post(app.url("/login"))
                .basic_auth("user", Some("password")),
        ),
        (
            "/login",
            "post",
            c.post(app.url("/login")).basic_auth("user", Some("wrong")),
        ),
        (
            "/login",
            "post",
            c.post(app.url("/login")).body(big.clone()),
        ),
        (
            "/protected",
            "get",
            c.get(app.url("/protected")).bearer_auth(&token),
        ),
        ("/protected", "get", c.get(app.url("/protected"))),
        (
            "/protected",
            "get",
            c.get(app.url("/protected")).query(&[("token", "x")]),
        ),
        ("/protected", "get", c.get(app.url("/protected")).body(big)),
        ("/healthz", "get", c.get(app.url("/healthz"))),
        ("/openapi.json", "get", c.get(app.url("/openapi.json"))),
        // HS256 (this app): nothing public to publish.
        (
            "/.well-known/jwks.json",
            "get",
            c.get(app.url("/.well-known/jwks.json")),
        ),
        (
            "/.well-known/openid-configuration",
            "get",
            c.get(app.url("/.well-known/openid-configuration")),
        ),
    ];
    let mut seen = BTreeSet::new();
    for (path, method, req) in cases {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16().to_string();
        assert!(
            doc["paths"][path][method]["responses"][&status].is_object(),
            "{method} {path} answered {status}, which its document does not list"
        );
        seen.insert(status);
    }
    // The cases above did provoke the statuses they are meant to.
    for status in ["200", "401", "403", "404", "413"] {
        assert!(seen.contains(status), "{status} not provoked: {seen:?}");
    }
}

#[tokio::test]
async fn the_key_routes_answers_under_a_key_pair_are_documented_with_their_fields() {
    use secrecy::ExposeSecret as _;
    let alg = authd::signing::SigningAlg::EdDsa;
    let pem = authd::signing::SigningKey::generate_pem(alg).unwrap();
    let key = authd::signing::SigningKey::from_pem(alg, pem.expose_secret().as_bytes()).unwrap();
    let app = crate::helpers::spawn_app_with(move |c, _| {
        c.signing = authd::config::Signing::KeyPair {
            key: Box::new(key),
            previous: Vec::new(),
        };
        c.tokens.issuer = Some("https://auth.example.test".to_owned());
    })
    .await;
    let doc = serde_json::to_value(authd::http::openapi()).unwrap();
    for (path, schema) in [
        ("/.well-known/jwks.json", "JwksResponse"),
        ("/.well-known/openid-configuration", "OpenIdConfiguration"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let response = &doc["paths"][path]["get"]["responses"]["200"];
        assert!(response["headers"]["Cache-Control"].is_object(), "{path}");
        assert!(res.headers().get("cache-control").is_some(), "{path}");
        // Every field served is in the documented schema, and every required one is served.
        let body: serde_json::Value = res.json().await.unwrap();
        let schema = &doc["components"]["schemas"][schema];
        let properties = schema["properties"].as_object().unwrap();
        for field in body.as_object().unwrap().keys() {
            assert!(
                properties.contains_key(field),
                "{path}: {field} undocumented"
            );
        }
        for field in schema["required"].as_array().unwrap() {
            assert!(
                body.get(field.as_str().unwrap()).is_some(),
                "{path}: no {field}"
            );
        }
    }
}
