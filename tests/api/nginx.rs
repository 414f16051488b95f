//! A real nginx in front of authd: `auth_request` to `/verify`, a static upstream (a second nginx
//! server block that echoes the user header it received). nginx runs as a child process on
//! loopback ports with a config generated here, in the README's shape. Needs nginx with the
//! auth_request module (Debian's `nginx`; `scripts/test.sh` installs it): the test is ignored unless
//! asked for (`--include-ignored`, as scripts/test.sh and CI do), and fails without nginx.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use tokio::process::{Child, Command};

use crate::helpers::{SECRET, mint, now, spawn_app};

/// The nginx binary with the auth_request module; the test fails without one.
fn nginx() -> PathBuf {
    for candidate in ["nginx", "/usr/sbin/nginx"] {
        let Ok(out) = std::process::Command::new(candidate).arg("-V").output() else {
            continue;
        };
        // `nginx -V` prints its build options on stderr.
        if out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("http_auth_request_module")
        {
            return PathBuf::from(candidate);
        }
    }
    panic!("this test needs nginx with the auth_request module (Debian's `nginx`)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The README's nginx configuration, with the test's ports and every path in `dir`.
fn config(dir: &Path, front: u16, upstream: u16, authd: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

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
}}
"#
    )
}

struct Nginx {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(bin: &Path, authd_port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let (front, upstream) = (free_port(), free_port());
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), front, upstream, authd_port)).unwrap();
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", front))
                    .await
                    .is_ok()
            {
                return Nginx {
                    child,
                    base: format!("http://127.0.0.1:{front}"),
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nginx exited with {status}: {}", error_log(dir.path()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "nginx did not listen within 10 s: {}",
            error_log(dir.path())
        );
    }
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_auth_request_lets_valid_tokens_through_with_the_user_and_stops_the_rest() {
    let bin = nginx();
    let app = spawn_app().await;
    let mut nginx = Nginx::start(&bin, app.addr.port()).await;
    let client = crate::helpers::client();
    let page = |path: &str| format!("{}{path}", nginx.base);

    // No token: nginx answers 401 itself; the upstream is never reached.
    let res = client.get(page("/app/")).send().await.unwrap();
    assert_eq!(res.status(), 401, "{}", error_log(nginx.dir.path()));
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
        assert_eq!(res.status(), 200, "{}", error_log(nginx.dir.path()));
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

    nginx.child.kill().await.unwrap();
}
