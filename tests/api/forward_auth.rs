//! What the README's proxy configurations must do, whichever proxy runs them: the checks shared
//! by the nginx, Caddy and Traefik tests, against an authd whose users are in different groups.

use crate::helpers::{PASSWORD, TestApp, password_hash, signing_alg, spawn_app_with};

/// authd with alice in admins and ops, bob in ops, carol in no group.
pub async fn spawn_people() -> TestApp {
    spawn_app_with(|config, dir| {
        let users = dir.join("people");
        let lines: String = ["alice", "bob", "carol"]
            .iter()
            .map(|u| format!("{u}:{}\n", password_hash()))
            .collect();
        std::fs::write(&users, lines).unwrap();
        config.users = authd::config::UsersSource::File(users);
        let groups = dir.join("groups");
        std::fs::write(&groups, "admins: alice\nops: alice bob\n").unwrap();
        config.groups = Some(groups);
    })
    .await
}

/// A proxy in front of authd, serving `/admin/` to admins, `/ops/` to ops and the rest to any
/// signed-in user, with an upstream that answers `app: user=[Remote-User] groups=[Remote-Groups]`.
pub struct Site<'a> {
    pub app: &'a TestApp,
    pub base: String,
    /// The proxy's log, for failure messages.
    pub log: &'a dyn Fn() -> String,
}

impl Site<'_> {
    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.app.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn token(&self, user: &str) -> String {
        let res = self.app.login(user, PASSWORD).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        // Signed as the deployment under test is (`AUTHD_TEST_SIGNING_ALG`).
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, signing_alg().jwt());
        token
    }

    async fn page(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> String {
        let res = self.get(path, token, headers).await;
        assert_eq!(res.status(), 200, "{path}: {}", (self.log)());
        res.text().await.unwrap()
    }

    async fn refused(&self, path: &str, token: Option<&str>, status: u16) {
        let res = self.get(path, token, &[]).await;
        assert_eq!(res.status(), status, "{path}: {}", (self.log)());
        assert!(!res.text().await.unwrap().contains("app:"), "{path}");
    }

    /// Each group into its own location only, the user and groups reaching the application, and a
    /// client's own `Remote-User` / `Remote-Groups` overwritten.
    pub async fn check_groups_and_headers(&self) {
        let (alice, bob, carol) = (
            self.token("alice").await,
            self.token("bob").await,
            self.token("carol").await,
        );
        // No token: 401, the application never reached.
        self.refused("/admin/", None, 401).await;
        // bob (ops) gets into /ops/ but not /admin/; carol (no group) into neither.
        assert_eq!(
            self.page("/ops/", Some(&bob), &[]).await,
            "app: user=[bob] groups=[ops]\n"
        );
        self.refused("/admin/", Some(&bob), 403).await;
        self.refused("/admin/", Some(&carol), 403).await;
        self.refused("/ops/", Some(&carol), 403).await;
        // alice (admins, ops) gets into both, also with the tutorial's ?token=.
        assert_eq!(
            self.page("/admin/", Some(&alice), &[]).await,
            "app: user=[alice] groups=[admins,ops]\n"
        );
        assert_eq!(
            self.page(&format!("/ops/?token={alice}"), None, &[]).await,
            "app: user=[alice] groups=[admins,ops]\n"
        );
        // A client's own headers do not reach the application (overwritten by authd's), nor
        // open a location.
        let forged = [("remote-user", "root"), ("remote-groups", "admins")];
        assert_eq!(
            self.page("/ops/", Some(&bob), &forged).await,
            "app: user=[bob] groups=[ops]\n"
        );
        let res = self.get("/admin/", Some(&bob), &forged).await;
        assert_eq!(res.status(), 403, "{}", (self.log)());
        // The rest of the site takes any signed-in user. carol is in no group, so authd sends no
        // `Remote-Groups`: the client's own copy must not reach the application either.
        self.refused("/", None, 401).await;
        assert_eq!(
            self.page("/", Some(&carol), &forged).await,
            "app: user=[carol] groups=[]\n"
        );
        assert_eq!(
            self.page("/", Some(&alice), &[]).await,
            "app: user=[alice] groups=[admins,ops]\n"
        );
    }
}

/// The protected application for proxies that cannot answer by themselves (Traefik): echoes
/// every `Remote-User` / `Remote-Groups` value it was given, comma-joined, so that a second copy
/// smuggled past the proxy shows.
pub async fn spawn_echo() -> std::net::SocketAddr {
    use axum::http::HeaderMap;
    async fn echo(headers: HeaderMap) -> String {
        let all = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "app: user=[{}] groups=[{}]\n",
            all("remote-user"),
            all("remote-groups")
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
