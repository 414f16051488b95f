//! The issue's flow in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver, the `fantoccini` crate), in front of authd through a real nginx, Caddy and Traefik
//! running the README's configurations (`<!-- tested: nginx-browser -->`, `caddy-browser`,
//! `traefik-browser`), with an upstream that shows `Remote-User`; through nginx and Traefik, a
//! renewed cookie reaches the browser too. Open the app → the sign-in page → a wrong password shows
//! the error → the right one → back on the original URL with the user's name → a reload stays
//! signed in → sign out → the app asks to sign in again. `auth.example.test` and
//! `app.example.test` are mapped to loopback inside Chromium. Needs chromium and
//! chromium-driver (Debian), and nginx, Caddy or Traefik: ignored unless asked for.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

use crate::helpers::{PASSWORD, TestApp, USER, password_hash, spawn_app_with};
use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};

/// authd as the README runs it for browsers, with its pages at `http://auth.example.test:PORT`.
async fn spawn_for_browsers(front: u16) -> TestApp {
    spawn_app_with(|config, dir| {
        let users = dir.join("people");
        std::fs::write(&users, format!("{USER}:{}\n", password_hash())).unwrap();
        config.users = authd::config::UsersSource::File(users);
        config.browser = authd::browser::BrowserSettings {
            cookie_domain: Some("example.test".into()),
            cookie_secure: false,
            signin_url: Some(
                url::Url::parse(&format!("http://auth.example.test:{front}/signin")).unwrap(),
            ),
            app_name: Some("Example apps".into()),
            ..Default::default()
        };
    })
    .await
}

/// chromedriver on a loopback port and a headless Chromium session through it; both end when
/// this is dropped (the session is closed by `close`, the driver killed on drop).
struct Chromium {
    client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn start() -> Chromium {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("this test needs chromedriver (Debian's chromium-driver)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=480,720",
                    "--host-resolver-rules=MAP *.example.test 127.0.0.1",
                    "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Chromium {
            client,
            _driver: driver,
            _profile: profile,
        }
    }
}

/// Waits (bounded, 10 s) until the page's URL starts with `prefix`; its URL and source otherwise.
async fn wait_for_url(c: &Client, prefix: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = c.current_url().await.unwrap().to_string();
        if last.starts_with(prefix) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "still at {last}, not {prefix}: {}",
        c.source().await.unwrap_or_default()
    );
}

/// The page's first `css` element, waited for (10 s at most): a click does not wait for the page
/// it leads to, so the element may not be there yet when the next step looks.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within 10 s: {e}"))
}

/// Waits (10 s at most) until the page's first `css` element reads `expected`: after a click the
/// element found may still be the old page's, gone stale by the time its text is read.
async fn wait_for_text(c: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(element) = c.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text == expected {
                return;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} reads {last:?}, not {expected:?}");
}

/// Types into the sign-in form and sends it.
async fn sign_in(c: &Client, user: &str, password: &str) {
    find(c, "#username").await.send_keys(user).await.unwrap();
    find(c, "#password")
        .await
        .send_keys(password)
        .await
        .unwrap();
    find(c, "button[type=submit]").await.click().await.unwrap();
}

/// The issue's flow, the proxy on `front`; `screenshot` saves the sign-in page to
/// docs/signin.png.
async fn flow(front: u16, log: &dyn Fn() -> String, screenshot: bool) {
    let chromium = Chromium::start().await;
    let c = &chromium.client;
    let app_url = format!("http://app.example.test:{front}/page?x=1");
    let signin = format!("http://auth.example.test:{front}/signin");

    // Open the app: on the sign-in page, with the app's URL in rd.
    c.goto(&app_url).await.unwrap();
    let at = wait_for_url(c, &signin).await;
    assert!(at.contains("rd=http%3A%2F%2Fapp.example.test"), "{at}");
    let source = c.source().await.unwrap();
    assert!(source.contains("Sign in"), "{source}\n{}", log());
    if screenshot {
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/signin.png"),
            png,
        )
        .unwrap();
    }

    // A wrong password: the error, still on the sign-in page.
    sign_in(c, USER, "not-the-password").await;
    let error = find(c, "p.error").await;
    assert_eq!(error.text().await.unwrap(), "Wrong username or password");

    // The right one: back on the original URL, the user's name shown by the app.
    sign_in(c, USER, PASSWORD).await;
    let at = wait_for_url(c, &app_url).await;
    assert_eq!(at, app_url);
    let who = find(c, "#who").await.text().await.unwrap();
    assert_eq!(who, format!("app: user=[{USER}]"), "{}", log());

    // A reload stays signed in.
    c.refresh().await.unwrap();
    let who = find(c, "#who").await.text().await.unwrap();
    assert_eq!(who, format!("app: user=[{USER}]"));

    // Sign out.
    c.goto(&format!("http://auth.example.test:{front}/signout"))
        .await
        .unwrap();
    find(c, "button[type=submit]").await.click().await.unwrap();
    wait_for_text(c, "h1", "Signed out").await;

    // The app asks to sign in again.
    c.goto(&app_url).await.unwrap();
    wait_for_url(c, &signin).await;
    find(c, "#password").await;
    chromium.client.clone().close().await.unwrap();
}

/// A cookie past half its idle life, sent through the proxy on `front`: the application is
/// reached and the browser is handed the renewed cookie, as the README says for this proxy.
async fn renewal_reaches_the_browser(front: u16) {
    let keys = authd::TokenKeys::new(
        crate::helpers::SECRET.as_bytes(),
        authd::TokenSettings::default(),
    )
    .unwrap();
    let t = crate::helpers::now();
    let old = keys
        .issue_session(
            USER,
            &[],
            "0123456789abcdef0123456789abcdef",
            t - 3000,
            t - 3000,
            authd::tokens::CookieLifetimes::default(),
        )
        .unwrap();
    crate::helpers::client();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            "app.example.test",
            std::net::SocketAddr::from(([127, 0, 0, 1], front)),
        )
        .build()
        .unwrap();
    let res = client
        .get(format!("http://app.example.test:{front}/page"))
        .header("cookie", format!("authd_session={}", old.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let renewed = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("authd_session=") && c.contains("Max-Age=3600"));
    assert!(renewed, "{:?}", res.headers());
    assert!(res.text().await.unwrap().contains("app: user=[user]"));
}

/// The upstream application's page: who the proxy says the user is.
const APP_PAGE: &str =
    "<!doctype html><title>app</title><p id=\\\"who\\\">app: user=[$http_remote_user]</p>";

#[tokio::test]
#[ignore = "needs chromium, chromium-driver and nginx"]
async fn a_person_signs_in_and_out_through_nginx_in_chromium() {
    let (front, upstream) = (free_port(), free_port());
    let app = spawn_for_browsers(front).await;
    let block = substitute(
        &doc_block("README.md", "nginx-browser"),
        &[
            ("server 127.0.0.1:5000;", &format!("server {};", app.addr)),
            ("listen 80;", &format!("listen 127.0.0.1:{front};")),
            (
                "server_name auth.example.com;",
                "server_name auth.example.test;",
            ),
            (
                "server_name app.example.com;",
                "server_name app.example.test;",
            ),
            (
                "proxy_pass http://127.0.0.1:8080;",
                &format!("proxy_pass http://127.0.0.1:{upstream};"),
            ),
        ],
    );
    let http = format!(
        "{block}\nserver {{\n    listen 127.0.0.1:{upstream};\n    default_type text/html;\n    \
         location / {{ return 200 \"{APP_PAGE}\"; }}\n}}\n"
    );
    let nginx = Proxy::nginx(tempfile::tempdir().unwrap(), &http, &[front, upstream]).await;
    flow(front, &|| nginx.log(), true).await;
    renewal_reaches_the_browser(front).await;
}

#[tokio::test]
#[ignore = "needs chromium, chromium-driver and Caddy"]
async fn a_person_signs_in_and_out_through_caddy_in_chromium() {
    let (front, upstream) = (free_port(), free_port());
    let app = spawn_for_browsers(front).await;
    let site = substitute(
        &doc_block("README.md", "caddy-browser"),
        &[
            (
                "auth.example.com {",
                &format!("http://auth.example.test:{front} {{"),
            ),
            (
                "app.example.com {",
                &format!("http://app.example.test:{front} {{"),
            ),
            ("127.0.0.1:5000", &app.addr.to_string()),
            ("127.0.0.1:8080", &format!("127.0.0.1:{upstream}")),
        ],
    );
    let caddyfile = format!(
        "{site}\n\nhttp://:{upstream} {{\n\theader Content-Type text/html\n\trespond \
         \"<!doctype html><title>app</title><p id=\\\"who\\\">app: user=[{{header.Remote-User}}]</p>\" 200\n}}\n"
    );
    let caddy = Proxy::caddy(tempfile::tempdir().unwrap(), &caddyfile, &[front, upstream]).await;
    flow(front, &|| caddy.log(), false).await;
}

/// The upstream application for Traefik: a page naming `Remote-User`, on a loopback port.
async fn echo_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let user = headers
            .get("remote-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        axum::response::Html(format!(
            "<!doctype html><title>app</title><p id=\"who\">app: user=[{}]</p>",
            authd::browser::escape_html(user)
        ))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
#[ignore = "needs chromium, chromium-driver and Traefik"]
async fn a_person_signs_in_and_out_through_traefik_in_chromium() {
    let front = free_port();
    let upstream = echo_app().await;
    let app = spawn_for_browsers(front).await;
    let dynamic = substitute(
        &doc_block("README.md", "traefik-browser"),
        &[
            ("127.0.0.1:5000", &app.addr.to_string()),
            ("127.0.0.1:8080", &format!("127.0.0.1:{upstream}")),
            ("auth.example.com", "auth.example.test"),
            ("app.example.com", "app.example.test"),
            ("__Secure-authd_session", "authd_session"),
        ],
    );
    let traefik = Proxy::traefik(
        tempfile::tempdir().unwrap(),
        &dynamic,
        front,
        &format!("app.example.test:{front}"),
    )
    .await;
    flow(front, &|| traefik.log(), false).await;
    renewal_reaches_the_browser(front).await;
}
