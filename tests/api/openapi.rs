//! The OpenAPI document: served at `/openapi.json` as generated from the code, and listing
//! exactly the routes the router serves, with their methods. A route added to the router without
//! its `#[utoipa::path]` and `routes!` line fails `router_routes_and_documented_operations_are_the_same`.

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

/// (path, METHOD) of every route of the router, read from the router's `Debug` output: axum has
/// no public way to list routes, and its `Debug` shows each route's path and `Allow` methods:
/// `RouteId(1): MethodRouter(MethodRouter { ..., allow_header: Bytes(b"POST") })` and
/// `Node { paths: {RouteId(1): "/login", ...} }`. If a new axum prints them otherwise, the parse
/// finds nothing and the test fails: it cannot pass vacuously. HEAD, which axum adds to every
/// GET route by itself, is left out.
fn routed(router: &axum::Router) -> BTreeSet<(String, String)> {
    let debug = format!("{router:?}");
    // The router's own routes come before its fallback's.
    let own = &debug[..debug
        .find("fallback_router:")
        .expect("fallback_router in Debug")];
    let (routes, paths) = own
        .split_once("node: Node { paths: {")
        .expect("route paths in Debug");
    let mut methods_of = std::collections::HashMap::new();
    for chunk in routes.split("RouteId(").skip(1) {
        let Some((id, rest)) = chunk.split_once("): MethodRouter(") else {
            continue;
        };
        let allow = rest
            .split_once("allow_header: Bytes(b\"")
            .and_then(|(_, a)| a.split_once('"'))
            .map(|(a, _)| a.to_owned())
            .expect("allow_header of a route");
        methods_of.insert(id.to_owned(), allow);
    }
    let mut ops = BTreeSet::new();
    for chunk in paths.split("RouteId(").skip(1) {
        let (id, rest) = chunk.split_once("): \"").expect("RouteId(n): \"path\"");
        let path = rest.split_once('"').expect("closing quote").0;
        for method in methods_of[id].split(',').filter(|m| *m != "HEAD") {
            ops.insert((path.to_owned(), method.to_owned()));
        }
    }
    ops
}

#[tokio::test]
async fn router_routes_and_documented_operations_are_the_same() {
    // The router exactly as the server builds it from a configuration.
    let dir = tempfile::tempdir().unwrap();
    let app = authd::Application::build(crate::helpers::test_config(dir.path()))
        .await
        .unwrap();
    let service = app.router();
    let routes = routed(service.inner());
    let doc = serde_json::to_value(authd::http::openapi()).unwrap();
    let documented = documented(&doc);
    // The parse found the routes we know are there (so a change in axum's Debug cannot make the
    // comparison below pass on two empty sets).
    assert!(
        routes.contains(&("/login".to_owned(), "POST".to_owned())),
        "{routes:?}"
    );
    assert!(routes.contains(&("/openapi.json".to_owned(), "GET".to_owned())));
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (register them with \
         `.routes(routes!(handler))` and a `#[utoipa::path]`): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );
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
    for status in ["200", "401", "403", "413"] {
        assert!(seen.contains(status), "{status} not provoked: {seen:?}");
    }
}
