//! A real nginx in front of authd with the README's forward-auth configuration, read out of the
//! README (`<!-- tested: nginx-groups -->`): an `upstream` with `keepalive`, two locations with
//! different `allowed_groups`, the user and groups passed on in `Remote-User` / `Remote-Groups`
//! to an upstream (a second nginx server block) that echoes them. nginx runs as a child process
//! on loopback ports. Needs nginx with the auth_request module (Debian's `nginx`;
//! `scripts/test.sh` installs it): ignored unless asked for, and fails without nginx.

use crate::forward_auth::{Site, spawn_people};
use crate::helpers::{mint_deployed, mint_with_other_key, now};
use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_from_the_readme_lets_each_group_into_its_location_and_passes_who_it_is() {
    let app = spawn_people().await;
    let (front, upstream) = (free_port(), free_port());
    let block = substitute(
        &doc_block("README.md", "nginx-groups"),
        &[
            ("server 127.0.0.1:5000;", &format!("server {};", app.addr)),
            ("listen 80;", &format!("listen 127.0.0.1:{front};")),
            (
                "proxy_pass http://127.0.0.1:8080;",
                &format!("proxy_pass http://127.0.0.1:{upstream};"),
            ),
        ],
    );
    // The protected application: echoes the user headers it was given.
    let http = format!(
        "{block}\nserver {{\n    listen 127.0.0.1:{upstream};\n    default_type text/plain;\n    \
         location / {{ return 200 \"app: user=[$http_remote_user] groups=[$http_remote_groups]\\n\"; }}\n}}\n"
    );
    let nginx = Proxy::nginx(tempfile::tempdir().unwrap(), &http, &[front, upstream]).await;
    let site = Site {
        app: &app,
        base: format!("http://127.0.0.1:{front}"),
        log: &|| nginx.log(),
    };
    site.check_groups_and_headers().await;

    // Expired and forged tokens: 401 at nginx, the application never reached.
    let expired = mint_deployed(
        &serde_json::json!({"sub": "alice", "groups": ["admins"], "exp": now() - 3600}),
    );
    let forged = mint_with_other_key(
        &serde_json::json!({"sub": "alice", "groups": ["admins"], "exp": now() + 600}),
    );
    for token in [&expired, &forged] {
        let res = site.get("/admin/", Some(token), &[]).await;
        assert_eq!(res.status(), 401);
        assert!(!res.text().await.unwrap().contains("app:"));
    }
}
