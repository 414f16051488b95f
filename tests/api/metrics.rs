//! `/metrics`, read with a real Prometheus text-format parser: after known traffic, each counter
//! and histogram moved by exactly the right amount. Every app has its own recorder, so tests
//! running in parallel do not disturb each other's counts.

use std::collections::HashMap;
use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use prometheus_parse::{Scrape, Value};

use crate::helpers::{PASSWORD, SECRET, TestApp, USER, mint, now, spawn_app, spawn_app_with};

/// Every sample of a scrape keyed as `name{label=value,...}` (labels sorted); a histogram's
/// value is its `+Inf` bucket, i.e. its count.
async fn scrape(client: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(!parsed.samples.is_empty(), "{text}");
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map(|b| b.count)
                    .unwrap(),
                Value::Summary(_) => panic!("{} is a summary, not a histogram", s.metric),
            };
            (format!("{}{{{}}}", s.metric, labels.join(",")), value)
        })
        .collect()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    let a = after
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from {after:?}"));
    a - before.get(key).copied().unwrap_or(0.0)
}

async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> u16 {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn metrics_count_logins_token_checks_and_latency_by_route_exactly() {
    let app = spawn_app().await;
    let metrics_url = app.url("/metrics");
    let before = scrape(&app.client, &metrics_url).await;

    // Logins: one good, two bad (a wrong password, no credentials at all).
    let token = app.token().await;
    assert_eq!(app.login(USER, "wrong").await.status(), 401);
    let res = app.client.post(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // Token checks on /protected: ok, missing, invalid, expired.
    let expired = mint(
        Algorithm::HS256,
        SECRET,
        &serde_json::json!({"user": USER, "exp": now() - 3600}),
    );
    assert_eq!(get(&app, "/protected", Some(&token)).await, 200);
    assert_eq!(get(&app, "/protected", None).await, 403);
    assert_eq!(get(&app, "/protected", Some("nonsense")).await, 403);
    assert_eq!(get(&app, "/protected", Some(&expired)).await, 403);
    // And on /verify: ok, missing.
    assert_eq!(get(&app, "/verify", Some(&token)).await, 200);
    assert_eq!(get(&app, "/verify", None).await, 401);
    // A path that matches no route, twice.
    assert_eq!(get(&app, "/nope/1", None).await, 404);
    assert_eq!(get(&app, "/nope/2", None).await, 404);

    let after = scrape(&app.client, &metrics_url).await;
    let expected = [
        ("authd_logins_total{outcome=ok}", 1.0),
        ("authd_logins_total{outcome=bad_credentials}", 2.0),
        ("authd_logins_total{outcome=busy}", 0.0),
        ("authd_token_checks_total{outcome=ok}", 2.0),
        ("authd_token_checks_total{outcome=missing}", 2.0),
        ("authd_token_checks_total{outcome=invalid}", 1.0),
        ("authd_token_checks_total{outcome=expired}", 1.0),
        ("authd_http_request_duration_seconds{route=/login}", 3.0),
        ("authd_http_request_duration_seconds{route=/protected}", 4.0),
        ("authd_http_request_duration_seconds{route=/verify}", 2.0),
        // The raw paths differ; the series is one.
        ("authd_http_request_duration_seconds{route=unmatched}", 2.0),
        // The first scrape, recorded once it was answered.
        ("authd_http_request_duration_seconds{route=/metrics}", 1.0),
        (
            "authd_http_request_duration_seconds_count{route=/protected}",
            4.0,
        ),
    ];
    for (key, want) in expected {
        assert_eq!(delta(&before, &after, key), want, "{key}");
    }
    assert!(
        !after.keys().any(|k| k.contains("/nope")),
        "raw paths leaked into labels"
    );
    assert_eq!(after["authd_password_hashes_in_flight{}"], 0.0);
}

#[tokio::test]
async fn busy_logins_are_counted_as_busy_and_the_rest_as_ok() {
    // One hashing slot and no queue: of simultaneous logins some are turned away.
    let app = spawn_app_with(|c, _| {
        c.hash_concurrency = 1;
        c.hash_queue = 0;
        // Eight attempts at once by one user from one address: keep the throttle out of it.
        c.throttle.user_max = 50;
        c.throttle.address_max = 50;
    })
    .await;
    let before = scrape(&app.client, &app.url("/metrics")).await;
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/login"));
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .basic_auth(USER, Some(PASSWORD))
                    .send()
                    .await;
                res.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for login in logins {
        statuses.push(login.await.unwrap());
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + busy, 8, "{statuses:?}");
    assert!(ok >= 1, "{statuses:?}");
    let after = scrape(&app.client, &app.url("/metrics")).await;
    assert_eq!(
        delta(&before, &after, "authd_logins_total{outcome=ok}"),
        ok as f64
    );
    assert_eq!(
        delta(&before, &after, "authd_logins_total{outcome=busy}"),
        busy as f64
    );
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    let app = spawn_app_with(|c, _| {
        c.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let side = app.metrics_addr.unwrap();
    assert_ne!(side, app.addr);
    // Not on the main address any more.
    assert_eq!(get(&app, "/metrics", None).await, 404);
    let token = app.token().await;
    assert_eq!(get(&app, "/protected", Some(&token)).await, 200);
    let after = scrape(&app.client, &format!("http://{side}/metrics")).await;
    assert_eq!(after["authd_logins_total{outcome=ok}"], 1.0);
    assert_eq!(after["authd_token_checks_total{outcome=ok}"], 1.0);
    // The main address's 404 for /metrics is an unmatched request there.
    assert_eq!(
        after["authd_http_request_duration_seconds{route=unmatched}"],
        1.0
    );
    let res = app
        .client
        .get(format!("http://{side}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn refreshes_are_counted_by_outcome() {
    let app = spawn_app().await;
    let res = app.login(USER, PASSWORD).await;
    let first = res.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = scrape(&app.client, &app.url("/metrics")).await;
    let refresh = |token: String| {
        let (client, url) = (app.client.clone(), app.url("/refresh"));
        async move {
            client
                .post(url)
                .json(&serde_json::json!({ "refresh_token": token }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(refresh(first.clone()).await, 200);
    // The spent token again: reuse, the session is revoked.
    assert_eq!(refresh(first).await, 401);
    assert_eq!(refresh("not-a-refresh-token".to_owned()).await, 401);
    let after = scrape(&app.client, &app.url("/metrics")).await;
    for (outcome, want) in [
        ("ok", 1.0),
        ("reused", 1.0),
        ("invalid", 1.0),
        ("unavailable", 0.0),
    ] {
        assert_eq!(
            delta(
                &before,
                &after,
                &format!("authd_refreshes_total{{outcome={outcome}}}")
            ),
            want,
            "{outcome}"
        );
    }
    // A refresh is not a login.
    assert_eq!(
        delta(&before, &after, "authd_logins_total{outcome=ok}"),
        0.0
    );
}

/// `http://IP:PORT` from the line authd logs for its metrics address.
async fn logged_metrics_address(app: &crate::helpers::Binary) -> String {
    app.wait_for_output("metrics on http://").await;
    let output = app.output();
    let rest = &output[output.find("metrics on http://").unwrap() + "metrics on ".len()..];
    rest.split("/metrics").next().unwrap().to_owned()
}

#[tokio::test]
async fn the_guides_prometheus_configuration_scrapes_authd_where_its_setting_puts_metrics() {
    use yaml_rust2::YamlLoader;

    use crate::helpers::{Binary, demo_token};
    use crate::proxy_servers::doc_block;

    // The setting, as the guide gives it: `AUTHD_METRICS_LISTEN=VALUE   # comment`.
    let setting = doc_block("docs/deploy.md", "metrics-listen");
    let value = setting
        .lines()
        .find_map(|l| l.trim().strip_prefix("AUTHD_METRICS_LISTEN="))
        .expect("an AUTHD_METRICS_LISTEN= line")
        .split('#')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    // The scrape configuration, read as Prometheus reads it (its defaults: http, /metrics).
    let yaml =
        YamlLoader::load_from_str(&doc_block("docs/deploy.md", "prometheus-scrape")).unwrap();
    let job = &yaml[0]["scrape_configs"][0];
    assert_eq!(job["job_name"].as_str(), Some("authd"));
    let scheme = job["scheme"].as_str().unwrap_or("http");
    let path = job["metrics_path"].as_str().unwrap_or("/metrics");
    let targets = job["static_configs"][0]["targets"]
        .as_vec()
        .expect("targets");
    assert_eq!(targets.len(), 1);
    let target: SocketAddr = targets[0].as_str().unwrap().parse().unwrap();
    // The target is where that setting puts /metrics: its IP, on the default port.
    let ip: std::net::IpAddr = value.parse().expect("the guide's setting is an IP alone");
    assert_eq!(target.ip(), ip);
    assert_eq!(target.port(), authd::config::DEFAULT_METRICS_PORT);

    // authd with the guide's setting, only the port replaced by a free one.
    let listen = SocketAddr::new(ip, 0).to_string();
    let app = Binary::start(&["--demo"], &[("AUTHD_METRICS_LISTEN", &listen)]).await;
    let token = demo_token(&app).await;
    assert_eq!(app.bearer_status(&app.url("/protected"), &token).await, 200);
    let bound: SocketAddr = logged_metrics_address(&app)
        .await
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    assert_eq!(bound.ip(), target.ip());
    let url = format!(
        "{scheme}://{}{path}",
        SocketAddr::new(target.ip(), bound.port())
    );
    let samples = scrape(&app.client, &url).await;
    assert_eq!(samples["authd_logins_total{outcome=ok}"], 1.0);
    assert_eq!(samples["authd_token_checks_total{outcome=ok}"], 1.0);
    // And it is no longer on the main address.
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_metrics_address_without_a_port_means_the_default_metrics_port() {
    use crate::helpers::run_to_exit;

    // The default port is held here (or by whoever holds it already), so the test needs it free
    // of nobody: authd, sent to that port by an IP alone, must find it taken and say so.
    let port = authd::config::DEFAULT_METRICS_PORT;
    let _held = std::net::TcpListener::bind(("127.0.0.1", port));
    let (code, _, stderr) = run_to_exit(
        &["--demo"],
        &[("AUTHD_METRICS_LISTEN", "127.0.0.1")],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    // `--help` says so too.
    let (_, help, _) = run_to_exit(&["--help"], &[], |_| {}).await;
    assert!(
        help.contains(&format!("IP alone for port {port}")),
        "{help}"
    );
    // Neither an address nor an IP: refused, with the example that works.
    let (code, _, stderr) = run_to_exit(
        &["--demo"],
        &[("AUTHD_METRICS_LISTEN", "localhost")],
        |_| {},
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("e.g. 127.0.0.1, which means 127.0.0.1:{port}")),
        "{stderr}"
    );
}
