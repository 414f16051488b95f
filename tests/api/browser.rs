//! People with browsers, over HTTP: the sign-in and sign-out pages and their headers, CSRF, the
//! session cookie on `/verify` (and nowhere else), the redirect dance for each proxy, `rd`'s
//! open-redirect defence, the 403 page, and the throttle's words on the page.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::helpers::{PASSWORD, SECRET, TestApp, USER, mint, now, password_hash, spawn_app_with};

pub const SIGNIN_URL: &str = "http://auth.example.test/signin";
pub const ORIGIN: &str = "http://auth.example.test";

/// authd with browser sessions for `example.test` over plain HTTP (loopback development), the
/// user `user` and `carol`, `user` in the group `admins`.
pub async fn spawn_browser_app() -> TestApp {
    spawn_app_with(|config, dir| {
        let users = dir.join("people");
        std::fs::write(
            &users,
            format!("{USER}:{h}\ncarol:{h}\n", h = password_hash()),
        )
        .unwrap();
        config.users = authd::config::UsersSource::File(users);
        let groups = dir.join("groups");
        std::fs::write(&groups, format!("admins: {USER}\n")).unwrap();
        config.groups = Some(groups);
        config.browser = authd::browser::BrowserSettings {
            cookie_domain: Some("example.test".into()),
            cookie_secure: false,
            signin_url: Some(url::Url::parse(SIGNIN_URL).unwrap()),
            app_name: Some("Test <Apps>".into()),
            ..Default::default()
        };
    })
    .await
}

/// A client that follows no redirect and keeps no cookie: each test sends what it means to.
pub fn raw_client() -> reqwest::Client {
    crate::helpers::client();
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of the `Set-Cookie` for `name` in `headers`, with its attributes.
pub fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// The value of a `name=value; ...` cookie line.
pub fn cookie_value(line: &str) -> &str {
    line.split(';').next().unwrap().split_once('=').unwrap().1
}

/// The CSRF form field in a page.
fn form_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A browser's state: the CSRF cookie and form field of a sign-in page it opened.
struct Browser {
    client: reqwest::Client,
    base: String,
    csrf_cookie: String,
    csrf_field: String,
}

impl Browser {
    async fn open(app: &TestApp) -> Browser {
        let client = raw_client();
        let res = client.get(app.url("/signin")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let csrf_cookie = set_cookie(res.headers(), "authd_csrf")
            .expect("a CSRF cookie")
            .to_owned();
        let html = res.text().await.unwrap();
        Browser {
            client,
            base: app.base.clone(),
            csrf_cookie: cookie_value(&csrf_cookie).to_owned(),
            csrf_field: form_csrf(&html),
        }
    }

    async fn sign_in(&self, user: &str, password: &str, rd: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/signin", self.base))
            .header("cookie", format!("authd_csrf={}", self.csrf_cookie))
            .header("origin", ORIGIN)
            .header("sec-fetch-site", "same-origin")
            .form(&[
                ("username", user),
                ("password", password),
                ("rd", rd),
                ("csrf", &self.csrf_field),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Signs in and returns the session cookie's value.
    async fn session(&self, user: &str) -> String {
        let res = self.sign_in(user, PASSWORD, "").await;
        assert_eq!(res.status(), 303);
        cookie_value(set_cookie(res.headers(), "authd_session").unwrap()).to_owned()
    }
}

async fn verify_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = raw_client().get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

const PAGE_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn signin_page_is_plain_html_with_a_strict_csp_and_no_caching() {
    let app = spawn_browser_app().await;
    let res = raw_client().get(app.url("/signin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let csrf = set_cookie(&h, "authd_csrf").unwrap();
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("<label for=\"username\">"));
    assert!(html.contains("<label for=\"password\">"));
    assert!(html.contains("type=\"password\""));
    assert!(!html.contains("<script"));
    assert!(
        !html.contains("src=") && !html.contains("href=\"http"),
        "no external asset"
    );
    // The app's name, escaped.
    assert!(html.contains("to Test &lt;Apps&gt;"), "{html}");
    // `GET /login` stays the JSON 405 it was.
    let res = raw_client().get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn an_rd_with_markup_is_escaped_in_the_form() {
    let app = spawn_browser_app().await;
    let res = raw_client()
        .get(app.url("/signin?rd=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
}

#[tokio::test]
async fn signing_in_sets_the_cookie_that_verify_takes_and_signing_out_ends_it() {
    let app = spawn_browser_app().await;
    let b = Browser::open(&app).await;

    // Wrong password: the form again, with the error, and no cookie.
    let res = b.sign_in(USER, "wrong", "http://app.example.test/x").await;
    assert_eq!(res.status(), 401);
    assert!(set_cookie(res.headers(), "authd_session").is_none());
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let html = res.text().await.unwrap();
    assert!(html.contains("Wrong username or password"), "{html}");
    assert!(
        html.contains("value=\"http://app.example.test/x\""),
        "rd kept: {html}"
    );

    // Right password: 303 back to rd, the session cookie set as the issue says.
    let res = b
        .sign_in(USER, PASSWORD, "http://app.example.test/x?y=1")
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "http://app.example.test/x?y=1");
    let line = set_cookie(res.headers(), "authd_session")
        .unwrap()
        .to_owned();
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Domain=example.test",
        "Max-Age=3600",
    ] {
        assert!(line.contains(attr), "{attr} in {line}");
    }
    let cookie = cookie_value(&line).to_owned();

    // /verify takes it, naming the user and the groups.
    let res = verify_with(
        &app,
        "/verify",
        &[("cookie", &format!("authd_session={cookie}"))],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["remote-user"], USER);
    assert_eq!(res.headers()["remote-groups"], "admins");
    // A young cookie is not re-issued.
    assert!(res.headers().get(SET_COOKIE).is_none());

    // The cookie's token opens no API: not as a Bearer token on /protected or /verify, and the
    // cookie itself is no credential on /protected.
    let res = raw_client()
        .get(app.url("/protected"))
        .bearer_auth(&cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = raw_client()
        .get(app.url("/protected"))
        .header("cookie", format!("authd_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = verify_with(
        &app,
        "/verify",
        &[("authorization", &format!("Bearer {cookie}"))],
    )
    .await;
    assert_eq!(res.status(), 401);

    // The signed-in page says who.
    let res = raw_client()
        .get(app.url("/signin"))
        .header(
            "cookie",
            format!("authd_session={cookie}; authd_csrf={}", b.csrf_cookie),
        )
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(
        html.contains("signed in as <strong>user</strong>"),
        "{html}"
    );

    // Sign out: the cookie is cleared.
    let res = b
        .client
        .post(app.url("/signout"))
        .header(
            "cookie",
            format!("authd_session={cookie}; authd_csrf={}", b.csrf_cookie),
        )
        .header("origin", ORIGIN)
        .form(&[("csrf", &b.csrf_field)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cleared = set_cookie(res.headers(), "authd_session").unwrap();
    assert!(
        cleared.starts_with("authd_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // A copy of the cookie taken before (another tab, a stolen one) opens nothing any more:
    // sign-out ended the session, not just this browser's cookie.
    let copied = format!("authd_session={cookie}");
    let res = verify_with(&app, "/verify", &[("cookie", copied.as_str())]).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("remote-user").is_none());
}

#[tokio::test]
async fn cross_site_and_tokenless_form_posts_are_refused() {
    let app = spawn_browser_app().await;
    let b = Browser::open(&app).await;
    let post =
        |origin: Option<&'static str>, site: Option<&'static str>, csrf: String, cookie: String| {
            let mut req = b.client.post(app.url("/signin")).header("cookie", cookie);
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            if let Some(s) = site {
                req = req.header("sec-fetch-site", s);
            }
            req.form(&[("username", USER), ("password", PASSWORD), ("csrf", &csrf)])
                .send()
        };
    let good_cookie = format!("authd_csrf={}", b.csrf_cookie);
    for (origin, site) in [
        (Some("http://evil.example"), Some("cross-site")),
        (Some("http://evil.example"), None),
        (None, Some("cross-site")),
        (Some(ORIGIN), Some("same-site")),
        (
            Some("http://auth.example.test.evil.example"),
            Some("same-origin"),
        ),
    ] {
        let res = post(origin, site, b.csrf_field.clone(), good_cookie.clone())
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{origin:?} {site:?}");
        assert!(set_cookie(res.headers(), "authd_session").is_none());
    }
    // Same origin, but no CSRF field, a wrong one, or no cookie: refused too.
    for (csrf, cookie) in [
        (String::new(), good_cookie.clone()),
        ("x".repeat(43), good_cookie.clone()),
        (b.csrf_field.clone(), String::new()),
        (
            b.csrf_field.clone(),
            "authd_csrf=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
    ] {
        let res = post(Some(ORIGIN), Some("same-origin"), csrf, cookie)
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        assert!(res.text().await.unwrap().contains("expired"));
    }
    // Chromium's own posts under `Referrer-Policy: no-referrer`: `Origin: null` beside
    // `Sec-Fetch-Site: same-origin` (the CSRF field still checked).
    let res = post(
        Some("null"),
        Some("same-origin"),
        "x".repeat(43),
        good_cookie.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    let res = post(
        Some("null"),
        Some("same-origin"),
        b.csrf_field.clone(),
        good_cookie.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    // The same post with everything right works.
    let res = post(
        Some(ORIGIN),
        Some("same-origin"),
        b.csrf_field.clone(),
        good_cookie,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn verify_sends_browsers_to_sign_in_as_each_proxy_needs_and_api_clients_get_401() {
    let app = spawn_browser_app().await;
    let original = "http://app.example.test/page?q=1";
    let expected = format!(
        "{SIGNIN_URL}?rd={}",
        form_urlencoded::byte_serialize(original.as_bytes()).collect::<String>()
    );
    // Caddy / Traefik: X-Forwarded-*; 302 for GET.
    let forwarded = [
        ("accept", PAGE_ACCEPT),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "app.example.test"),
        ("x-forwarded-uri", "/page?q=1"),
        ("x-forwarded-method", "GET"),
    ];
    let res = verify_with(&app, "/verify", &forwarded).await;
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()[LOCATION], expected.as_str());
    // 303 for a POST.
    let mut post = forwarded;
    post[4] = ("x-forwarded-method", "POST");
    let res = verify_with(&app, "/verify", &post).await;
    assert_eq!(res.status(), 303);
    // nginx: X-Original-URL and redirect=401.
    let res = verify_with(
        &app,
        "/verify?redirect=401",
        &[("accept", PAGE_ACCEPT), ("x-original-url", original)],
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[LOCATION], expected.as_str());
    // A repeated or unknown redirect mode: a plain 401.
    for q in ["/verify?redirect=401&redirect=401", "/verify?redirect=302"] {
        let res = verify_with(&app, q, &[("accept", PAGE_ACCEPT)]).await;
        assert_eq!(res.status(), 401, "{q}");
        assert!(res.headers().get(LOCATION).is_none(), "{q}");
    }
    // API clients: no text/html, an XMLHttpRequest, or a token of their own.
    for headers in [
        vec![("accept", "application/json")],
        vec![
            ("accept", PAGE_ACCEPT),
            ("x-requested-with", "XMLHttpRequest"),
        ],
        vec![("accept", PAGE_ACCEPT), ("authorization", "Bearer nope")],
    ] {
        let res = verify_with(&app, "/verify", &headers).await;
        assert_eq!(res.status(), 401, "{headers:?}");
        assert!(res.headers().get(LOCATION).is_none(), "{headers:?}");
        assert!(res.headers().get("www-authenticate").is_some());
    }
}

#[tokio::test]
async fn without_a_signin_url_verify_never_redirects() {
    let app = crate::helpers::spawn_app().await;
    let res = verify_with(&app, "/verify", &[("accept", PAGE_ACCEPT)]).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get(LOCATION).is_none());
}

#[tokio::test]
async fn a_cookie_and_a_token_of_different_users_or_a_repeated_cookie_are_refused() {
    let app = spawn_browser_app().await;
    let b = Browser::open(&app).await;
    let user_cookie = b.session(USER).await;
    let carol_cookie = b.session("carol").await;
    let token = mint(
        jsonwebtoken::Algorithm::HS256,
        SECRET,
        &serde_json::json!({"sub": "carol", "exp": now() + 600}),
    );
    let res = verify_with(
        &app,
        "/verify",
        &[
            ("cookie", &format!("authd_session={user_cookie}")),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    // The same user both ways: let through.
    let res = verify_with(
        &app,
        "/verify",
        &[
            ("cookie", &format!("authd_session={carol_cookie}")),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    // Two cookies of authd's name, in one header or two, even the same one twice.
    for headers in [
        vec![(
            "cookie",
            format!("authd_session={user_cookie}; authd_session={user_cookie}"),
        )],
        vec![
            ("cookie", format!("authd_session={user_cookie}")),
            ("cookie", format!("authd_session={carol_cookie}")),
        ],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = verify_with(&app, "/verify", &h).await;
        assert_eq!(res.status(), 401);
    }
    // An access token put in the cookie is no session.
    let res = verify_with(
        &app,
        "/verify",
        &[("cookie", &format!("authd_session={token}"))],
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_signed_in_person_outside_allowed_groups_gets_a_403_page_not_a_loop() {
    let app = spawn_browser_app().await;
    let b = Browser::open(&app).await;
    let carol = b.session("carol").await;
    let res = verify_with(
        &app,
        "/verify?allowed_groups=admins",
        &[
            ("accept", PAGE_ACCEPT),
            ("cookie", &format!("authd_session={carol}")),
        ],
    )
    .await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get(LOCATION).is_none());
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("signed in as <strong>carol</strong>"),
        "{html}"
    );
    assert!(html.contains("http://auth.example.test/signout"), "{html}");
    // The admin gets in.
    let user = b.session(USER).await;
    let res = verify_with(
        &app,
        "/verify?allowed_groups=admins",
        &[
            ("accept", PAGE_ACCEPT),
            ("cookie", &format!("authd_session={user}")),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn signin_follows_rd_only_into_the_cookie_domain() {
    let app = spawn_browser_app().await;
    let b = Browser::open(&app).await;
    for (rd, to) in [
        ("http://app.example.test/ok", "http://app.example.test/ok"),
        (
            "http://deep.app.example.test:8080/",
            "http://deep.app.example.test:8080/",
        ),
        ("//evil.example", SIGNIN_URL),
        ("https://example.test.evil.example/", SIGNIN_URL),
        ("javascript:alert(1)", SIGNIN_URL),
        ("http:\\\\evil.example", SIGNIN_URL),
        ("/\\evil.example", SIGNIN_URL),
        ("http://app.example.test@evil.example/", SIGNIN_URL),
        ("http://evil.example%2Fapp.example.test/", SIGNIN_URL),
        ("http://evil.example/?http://app.example.test/", SIGNIN_URL),
        ("\thttp://evil.example", SIGNIN_URL),
    ] {
        let res = b.sign_in(USER, PASSWORD, rd).await;
        assert_eq!(res.status(), 303, "{rd}");
        assert_eq!(res.headers()[LOCATION], to, "{rd:?}");
    }
}

#[tokio::test]
async fn the_throttle_speaks_on_the_page_and_counts_sign_ins_with_logins() {
    let app = spawn_browser_app().await;
    let b = Browser::open(&app).await;
    let mut last = None;
    for _ in 0..8 {
        let res = b.sign_in("carol", "wrong", "").await;
        let status = res.status();
        last = Some((status, res.text().await.unwrap()));
        if status == 429 {
            break;
        }
    }
    let (status, html) = last.unwrap();
    assert_eq!(status, 429);
    assert!(html.contains("Too many attempts — try again in"), "{html}");
    // The same throttle as /login: carol's Basic login is refused too.
    let res = app.login("carol", PASSWORD).await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn a_cookie_past_half_its_idle_life_is_renewed_by_verify_but_not_past_its_lifetime() {
    let app = spawn_browser_app().await;
    let keys = authd::TokenKeys::new(SECRET.as_bytes(), authd::TokenSettings::default()).unwrap();
    let lifetimes = authd::tokens::CookieLifetimes::default();
    let t = now();
    // Signed in 50 minutes ago, last renewed then: 10 minutes of its hour left.
    let old = keys
        .issue_session(
            USER,
            &[],
            "0123456789abcdef0123456789abcdef",
            t - 3000,
            t - 3000,
            lifetimes,
        )
        .unwrap();
    let res = verify_with(
        &app,
        "/verify",
        &[("cookie", &format!("authd_session={}", old.token))],
    )
    .await;
    assert_eq!(res.status(), 200);
    let line = set_cookie(res.headers(), "authd_session")
        .expect("renewed")
        .to_owned();
    assert!(line.contains("Max-Age=3600"), "{line}");
    let renewed = keys
        .verify_session(cookie_value(&line), now(), lifetimes)
        .unwrap();
    assert_eq!(renewed.auth_time, Some(t - 3000));
    assert_eq!(
        renewed.groups,
        vec!["admins".to_owned()],
        "groups as they are now"
    );
    // Signed in 11.9 hours ago: renewed only up to the 12-hour mark.
    let start = t - 12 * 3600 + 360;
    let late = keys
        .issue_session(
            USER,
            &[],
            "0123456789abcdef0123456789abcdef",
            start,
            t - 60,
            lifetimes,
        )
        .unwrap();
    let res = verify_with(
        &app,
        "/verify",
        &[("cookie", &format!("authd_session={}", late.token))],
    )
    .await;
    assert_eq!(res.status(), 200);
    if let Some(line) = set_cookie(res.headers(), "authd_session") {
        let c = keys
            .verify_session(cookie_value(line), now(), lifetimes)
            .unwrap();
        assert!(
            c.exp <= start + 12 * 3600,
            "{} > {}",
            c.exp,
            start + 12 * 3600
        );
    }
    // Past the lifetime: refused.
    let dead = keys
        .issue_session(
            USER,
            &[],
            "0123456789abcdef0123456789abcdef",
            t - 13 * 3600,
            t - 60,
            lifetimes,
        )
        .unwrap();
    let res = verify_with(
        &app,
        "/verify",
        &[("cookie", &format!("authd_session={}", dead.token))],
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn unusable_browser_settings_are_refused_at_start_with_one_line() {
    let secret = "pV7r2Qm9XkZ4sL1tB8nW3yH6cJ0fD5gA-uE2iO7aR4eT9wY1qU6oP3sD8fG0hJ5k";
    for (envs, needle) in [
        (
            vec![
                ("AUTHD_COOKIE_SECURE", "false"),
                ("AUTHD_LISTEN", "0.0.0.0:0"),
            ],
            "AUTHD_COOKIE_SECURE=false is for plain-HTTP development on a loopback address only",
        ),
        (
            vec![("AUTHD_COOKIE_SECURE", "maybe")],
            "AUTHD_COOKIE_SECURE `maybe`",
        ),
        (
            vec![("AUTHD_COOKIE_DOMAIN", ".example.com")],
            "AUTHD_COOKIE_DOMAIN",
        ),
        (
            vec![("AUTHD_COOKIE_DOMAIN", "https://example.com")],
            "AUTHD_COOKIE_DOMAIN",
        ),
        (
            vec![("AUTHD_COOKIE_DOMAIN", "localhost")],
            "AUTHD_COOKIE_DOMAIN",
        ),
        (
            vec![("AUTHD_COOKIE_DOMAIN", "10.0.0.1")],
            "AUTHD_COOKIE_DOMAIN",
        ),
        (vec![("AUTHD_COOKIE_IDLE", "10s")], "AUTHD_COOKIE_IDLE"),
        (
            vec![("AUTHD_COOKIE_LIFETIME", "31d")],
            "AUTHD_COOKIE_LIFETIME",
        ),
        (
            vec![("AUTHD_COOKIE_IDLE", "2h"), ("AUTHD_COOKIE_LIFETIME", "1h")],
            "AUTHD_COOKIE_LIFETIME is shorter than AUTHD_COOKIE_IDLE",
        ),
        (
            vec![("AUTHD_SIGNIN_URL", "http://auth.example.com/signin")],
            "AUTHD_SIGNIN_URL",
        ),
        (vec![("AUTHD_SIGNIN_URL", "/signin")], "AUTHD_SIGNIN_URL"),
        (
            vec![
                ("AUTHD_SIGNIN_URL", "https://auth.other.example/signin"),
                ("AUTHD_COOKIE_DOMAIN", "example.com"),
            ],
            "outside AUTHD_COOKIE_DOMAIN",
        ),
        (
            vec![("AUTHD_DEFAULT_REDIRECT", "javascript:alert(1)")],
            "AUTHD_DEFAULT_REDIRECT",
        ),
        (vec![("AUTHD_APP_NAME", &"x".repeat(65))], "AUTHD_APP_NAME"),
    ] {
        let base = [
            ("AUTHD_SECRET_KEY", secret),
            ("AUTHD_USERS", "users"),
            ("AUTHD_LISTEN", "127.0.0.1:0"),
            ("AUTHD_DATABASE_URL", "sqlite::memory:"),
        ];
        let all = [&base[..], &envs[..]].concat();
        let (code, stdout, stderr) = crate::helpers::run_to_exit(&[], &all, |dir| {
            std::fs::write(dir.join("users"), format!("user:{}\n", password_hash())).unwrap();
        })
        .await;
        assert_eq!(code, Some(1), "{envs:?}: {stdout} {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{envs:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{envs:?}: {needle:?} not in {stderr}"
        );
    }
}

#[tokio::test]
async fn plain_http_cookies_on_loopback_start_with_a_loud_warning() {
    let mut app =
        crate::helpers::Binary::start(&["--demo"], &[("AUTHD_COOKIE_SECURE", "false")]).await;
    app.wait_for_output("AUTHD_COOKIE_SECURE=false").await;
    assert!(
        app.output().contains("DEVELOPMENT ONLY"),
        "{}",
        app.output()
    );
    app.terminate().await;
}
