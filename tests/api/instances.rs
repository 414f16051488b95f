//! What only several processes, a crash or an outage show: two instances on one PostgreSQL
//! sharing sessions and counters; the real binary killed with SIGKILL and restarted on its SQLite
//! file; the `authd sessions` commands; PostgreSQL going away and coming back.

use std::net::SocketAddr;
use std::time::Duration;

use authd::throttle::ThrottleSettings;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    Binary, PASSWORD, SECRET, TestDb, USER, assert_message, run_to_exit, spawn_app_on,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn two_instances_on_one_postgres_share_sessions_and_failed_login_counts() {
    let db = TestDb::postgres("two_instances_on_one_postgres").await;
    let throttle = ThrottleSettings {
        user_max: 4,
        address_max: 100,
        ..ThrottleSettings::default()
    };
    let a = spawn_app_on(&db, |c, _| c.throttle = throttle.clone()).await;
    let b = spawn_app_on(&db, |c, _| c.throttle = throttle.clone()).await;

    // Refresh on one, replay the spent token on the other: the family is revoked everywhere.
    let first = a.tokens().await;
    let res = a.refresh(&first.refresh_token).await;
    assert_eq!(res.status(), 200);
    let newest: serde_json::Value = res.json().await.unwrap();
    let newest = newest["refresh_token"].as_str().unwrap();
    assert_message(
        b.refresh(&first.refresh_token).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    assert_eq!(a.refresh(newest).await.status(), 401);
    assert_eq!(b.refresh(newest).await.status(), 401);

    // A session started on one instance refreshes on the other.
    let other = b.tokens().await;
    assert_eq!(a.refresh(&other.refresh_token).await.status(), 200);

    // Failed logins on both add up to one ban.
    for app in [&a, &b, &a, &b] {
        assert_eq!(app.login(USER, "wrong").await.status(), 401);
    }
    assert_message(a.login(USER, PASSWORD).await, 429, "Too many attempts").await;
    assert_message(b.login(USER, PASSWORD).await, 429, "Too many attempts").await;
}

async fn refresh(app: &Binary, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/refresh"))
        .json(&serde_json::json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

async fn login(app: &Binary) -> String {
    let res = app.login(USER, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

async fn new_refresh_token(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sessions_survive_kill_9_and_revocations_too() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db/authd.db", data.path().display());
    let envs = [
        ("AUTHD_SECRET_KEY", SECRET),
        ("AUTHD_DATABASE_URL", url.as_str()),
    ];
    let mut first = Binary::start(&["--demo"], &envs).await;
    let kept = login(&first).await;
    let rotated = new_refresh_token(refresh(&first, &kept).await).await;
    let revoked = login(&first).await;
    let res = first
        .client
        .post(first.url("/logout"))
        .json(&serde_json::json!({ "refresh_token": revoked }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    first.child.start_kill().unwrap(); // SIGKILL: no shutdown, no flush.
    first.child.wait().await.unwrap();
    assert!(data.path().join("db/authd.db").exists());

    let second = Binary::start(&["--demo"], &envs).await;
    let after = new_refresh_token(refresh(&second, &rotated).await).await;
    assert_message(
        refresh(&second, &revoked).await,
        401,
        "Refresh token is invalid!",
    )
    .await;

    // The command line sees the live session, shows no token, and ends it.
    let (code, out, err) = run_to_exit(&["sessions", "list"], &envs, |_| {}).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("\t{USER}\t")), "{out}");
    assert!(out.contains("1 live session"), "{out}");
    assert!(!out.contains(&after) && !out.contains(&rotated), "{out}");
    let (code, out, err) =
        run_to_exit(&["sessions", "revoke", "--user", USER], &envs, |_| {}).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked 1 session"), "{out}");
    assert_message(
        refresh(&second, &after).await,
        401,
        "Refresh token is invalid!",
    )
    .await;
    let (_, out, _) = run_to_exit(&["sessions", "list", "--user", USER], &envs, |_| {}).await;
    assert!(out.contains("0 live sessions"), "{out}");
}

/// A TCP relay to PostgreSQL that can be cut (every connection dropped, the port closed) and
/// restored on the same port.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut relay = Relay {
            addr,
            upstream,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Drops the listener and every relayed connection (the JoinSet aborts them).
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn postgres_outage_gives_503_keeps_protected_and_revocations_working_and_recovers() {
    let db = TestDb::postgres("postgres_outage").await;
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .expect("AUTHD_TEST_DATABASE_URL with an IP host, e.g. 127.0.0.1");
    let mut relay = Relay::start(upstream).await;
    url.set_port(Some(relay.addr.port())).unwrap();
    let relayed = url.to_string();
    let app = spawn_app_on(&db, move |c, _| {
        c.database_url = relayed.into();
        c.store.op_timeout = Duration::from_secs(2);
    })
    .await;
    let tokens = app.tokens().await;
    let ended = app.tokens().await;
    assert_eq!(app.logout(&ended.refresh_token).await.status(), 204);

    relay.cut().await;
    assert_message(
        app.refresh(&tokens.refresh_token).await,
        503,
        "Service unavailable",
    )
    .await;
    assert_message(app.login(USER, PASSWORD).await, 503, "Service unavailable").await;
    assert_eq!(app.logout(&tokens.refresh_token).await.status(), 503);
    assert_message(
        app.protected_with_query(&tokens.token).await,
        200,
        "This is a protected route.",
    )
    .await;
    // The revocations held in memory keep working without the database.
    assert_message(
        app.protected_with_query(&ended.token).await,
        403,
        "Token is invalid!",
    )
    .await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "degraded", "store": "unavailable"})
    );

    relay.restore().await;
    // The pool reconnects by itself; allow it a few health checks (bounded).
    let mut healthy = false;
    for _ in 0..20 {
        let body: serde_json::Value = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["store"] == "ok" {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healthy, "the store did not come back");
    // The refresh token was not spent by the failed attempts.
    assert_eq!(app.refresh(&tokens.refresh_token).await.status(), 200);
    assert_eq!(app.login(USER, PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (AUTHD_TEST_DATABASE_URL)"]
async fn an_instance_cut_off_from_postgres_learns_the_revocations_made_meanwhile_once_back() {
    let db = TestDb::postgres("revocations_after_an_outage").await;
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .expect("AUTHD_TEST_DATABASE_URL with an IP host, e.g. 127.0.0.1");
    let mut relay = Relay::start(upstream).await;
    url.set_port(Some(relay.addr.port())).unwrap();
    let relayed = url.to_string();
    let cut_off = spawn_app_on(&db, move |c, _| {
        c.database_url = relayed.into();
        c.store.op_timeout = Duration::from_secs(2);
    })
    .await;
    let other = spawn_app_on(&db, |_, _| {}).await;
    let tokens = other.tokens().await;
    assert_eq!(
        cut_off.protected_with_query(&tokens.token).await.status(),
        200
    );

    relay.cut().await;
    assert_eq!(other.logout(&tokens.refresh_token).await.status(), 204);
    assert_eq!(
        other.protected_with_query(&tokens.token).await.status(),
        403
    );
    // What the README says: unknown to the instance that cannot read the table...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        cut_off.protected_with_query(&tokens.token).await.status(),
        200
    );

    // ... until it can again: its next read goes back to before the outage (bounded wait: the
    // pool reconnects on its next use).
    relay.restore().await;
    let back = std::time::Instant::now();
    loop {
        if cut_off.protected_with_query(&tokens.token).await.status() == 403 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the revocation made during the outage is still unknown 10 s after it ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
