//! A real Caddy in front of authd with the README's `forward_auth` configuration, read out of the
//! README (`<!-- tested: caddy-groups -->`): two `handle` blocks with different `allowed_groups`,
//! `Remote-User` / `Remote-Groups` copied to an upstream (a second Caddy site) that echoes them.
//! Needs Caddy (Debian's `caddy`): ignored unless asked for, and fails without it.

use crate::forward_auth::{Site, spawn_people};
use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};

#[tokio::test]
#[ignore = "needs Caddy"]
async fn caddy_from_the_readme_lets_each_group_into_its_location_and_passes_who_it_is() {
    let app = spawn_people().await;
    let (front, upstream) = (free_port(), free_port());
    let site = substitute(
        &doc_block("README.md", "caddy-groups"),
        &[
            (
                "apps.example.com {",
                &format!("http://127.0.0.1:{front} {{"),
            ),
            ("127.0.0.1:5000", &app.addr.to_string()),
            ("127.0.0.1:8080", &format!("127.0.0.1:{upstream}")),
        ],
    );
    let caddyfile = format!(
        "{site}\n\nhttp://127.0.0.1:{upstream} {{\n\trespond \"app: user=[{{header.Remote-User}}] groups=[{{header.Remote-Groups}}]\n\" 200\n}}\n"
    );
    let caddy = Proxy::caddy(tempfile::tempdir().unwrap(), &caddyfile, &[front, upstream]).await;
    Site {
        app: &app,
        base: format!("http://127.0.0.1:{front}"),
        log: &|| caddy.log(),
    }
    .check_groups_and_headers()
    .await;
}
