//! A real nginx in front of authd: `auth_request` to `/verify`, a static upstream (a second nginx
//! server block that echoes the user header it received). nginx runs as a child process on
//! loopback ports with a config generated here, in the README's shape. Needs nginx with the
//! auth_request module (Debian's `nginx`; `scripts/test.sh` installs it): the test is ignored unless
//! asked for (`--include-ignored`, as scripts/test.sh and CI do), and fails without nginx.

use jsonwebtoken::Algorithm;

use crate::helpers::{SECRET, mint, now, spawn_app};
use crate::proxy_servers::{Proxy, free_port};

/// The README's nginx configuration (inside `http { }`), with the test's ports.
fn config(front: u16, upstream: u16, authd: u16) -> String {
    format!(
        r#"
    server {{
        listen 127.0.0.1:{front};

        # --- as in the README ---
        location = /_authd {{
            internal;
            proxy_pass http://127.0.0.1:{authd}/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
        location / {{
            auth_request /_authd;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            proxy_set_header X-Auth-User $auth_user;
            add_header X-Auth-User $auth_user;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        # ---
    }}

    # The protected application: echoes the user header it was given.
    server {{
        listen 127.0.0.1:{upstream};
        default_type text/plain;
        location / {{
            return 200 "upstream page for [$http_x_auth_user]\n";
        }}
    }}
"#
    )
}

struct Nginx {
    proxy: Proxy,
    base: String,
}

impl Nginx {
    async fn start(authd_port: u16) -> Nginx {
        let (front, upstream) = (free_port(), free_port());
        let proxy = Proxy::nginx(
            tempfile::tempdir().unwrap(),
            &config(front, upstream, authd_port),
            &[front, upstream],
        )
        .await;
        Nginx {
            proxy,
            base: format!("http://127.0.0.1:{front}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_auth_request_lets_valid_tokens_through_with_the_user_and_stops_the_rest() {
    let app = spawn_app().await;
    let mut nginx = Nginx::start(app.addr.port()).await;
    let client = crate::helpers::client();
    let page = |path: &str| format!("{}{path}", nginx.base);

    // No token: nginx answers 401 itself; the upstream is never reached.
    let res = client.get(page("/app/")).send().await.unwrap();
    assert_eq!(res.status(), 401, "{}", nginx.proxy.log());
    assert!(!res.text().await.unwrap().contains("upstream page"));

    // A valid token, as a Bearer header and as the tutorial's ?token=: the upstream's page,
    // which names the user nginx passed on, and the header on the answer too.
    let token = app.token().await;
    let requests = [
        client.get(page("/app/")).bearer_auth(&token),
        client.get(page("/app/")).query(&[("token", &token)]),
        client
            .post(page("/app/form"))
            .bearer_auth(&token)
            .body("a=1"),
        // A client that sends its own user header does not get to choose the name.
        client
            .get(page("/app/"))
            .bearer_auth(&token)
            .header("x-auth-user", "admin"),
    ];
    for req in requests {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{}", nginx.proxy.log());
        assert_eq!(res.headers()["x-auth-user"], "user");
        assert_eq!(res.text().await.unwrap(), "upstream page for [user]\n");
    }

    // An expired token, a forged one, and a spoofed user header alone: 401 at nginx.
    let expired = mint(
        Algorithm::HS256,
        SECRET,
        &serde_json::json!({"user": "user", "exp": now() - 3600}),
    );
    let forged = mint(
        Algorithm::HS256,
        "not-the-secret-not-the-secret-not-the-secret",
        &serde_json::json!({"user": "admin", "exp": now() + 600}),
    );
    for token in [&expired, &forged] {
        let res = client
            .get(page("/app/"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let res = client
            .get(page("/app/"))
            .query(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = client
        .get(page("/app/"))
        .header("x-auth-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    nginx.proxy.child.kill().await.unwrap();
}
