//! Issue #10, points 12 and 13, against the real binary: the open-file limit is raised at start,
//! and an outsider cannot make the log as large as they like (paths cut, access lines a second
//! bounded and the rest counted, warnings never lost in the flood). The connection cap under
//! `ulimit -n 256` is in `tests/resilience`, which runs its tests one at a time.

use std::sync::Arc;
use std::time::Instant;

use crate::helpers::{Binary, PASSWORD, USER};

/// The soft and hard `Max open files` of a running process, from `/proc/<pid>/limits`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one_at_start() {
    let (_, hard) = open_file_limits(std::process::id());
    // Started with a soft limit below the hard one, wherever the hard one is.
    let low = (hard / 2).min(256);
    assert!(
        low >= 32,
        "the hard open-file limit here is {hard}: too low to test raising"
    );
    let app = Binary::start_after_shell(&format!("ulimit -Sn {low}"), &["--demo"], &[]).await;
    let pid = app.child.id().unwrap();
    let (soft, app_hard) = open_file_limits(pid);
    assert_eq!(app_hard, hard, "the hard limit is inherited as it was");
    assert_eq!(
        soft, hard,
        "the soft limit ({low} when started) was not raised"
    );
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// Logs in as the demo user and spends the refresh token twice: the second is a reuse, which
/// authd logs as a warning.
async fn reuse_a_refresh_token(app: &Binary) {
    let res = app.login(USER, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    for expected in [200, 401] {
        let res = app
            .client
            .post(app.url("/refresh"))
            .json(&serde_json::json!({ "refresh_token": refresh }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_long_unknown_paths_leaves_a_small_log_with_a_summary_and_every_warning() {
    let mut app = Binary::start(&["--demo"], &[]).await;
    let long_path = format!("/{}", "a".repeat(60 * 1024));
    let url = Arc::new(app.url(&long_path));
    let started = Instant::now();
    let mut tasks = Vec::new();
    // 500 requests from 10 clients at once; a warning is caused halfway through.
    for _ in 0..10 {
        let (client, url) = (app.client.clone(), Arc::clone(&url));
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let res = client.get(url.as_str()).send().await.unwrap();
                assert_eq!(res.status(), 404);
            }
        }));
    }
    reuse_a_refresh_token(&app).await;
    for t in tasks {
        t.await.unwrap();
    }
    let flood = started.elapsed();
    app.wait_for_output("access lines suppressed in the last second")
        .await;
    app.terminate().await;
    let logs = app.output();

    // Unbounded, this was 500 lines of 60 KB (30 MB). Bounded: at most the access lines allowed
    // a second (100 by default, each with its path cut to 256 bytes) for each second the flood
    // lasted, plus the summaries and the start-up lines.
    let seconds = flood.as_secs() + 2;
    let bound = usize::try_from(seconds).unwrap() * 100 * 512 + 32 * 1024;
    assert!(
        logs.len() < bound.min(200 * 1024),
        "{} bytes of log for a {flood:?} flood (bound {bound}):\n{}",
        logs.len(),
        &logs[..logs.len().min(4096)]
    );
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1024, "a log line of {longest} bytes");
    let flood_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("path=/aaaa") && l.contains("status=404"))
        .collect();
    assert!(!flood_lines.is_empty(), "no access line at all:\n{logs}");
    let cut_marker = format!("…[+{} bytes]", long_path.len() - 256);
    assert!(
        flood_lines.iter().all(|l| l.contains(&cut_marker)),
        "a path not cut to 256 bytes with {cut_marker:?}: {}",
        flood_lines[0]
    );
    // Every request is either logged or counted.
    let suppressed: u64 = logs
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once(" access lines suppressed in the last second")?;
            before.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    let logged = u64::try_from(flood_lines.len()).unwrap();
    assert!(
        logged + suppressed >= 500,
        "{logged} flood lines logged and {suppressed} counted, of 500 requests"
    );
    assert!(
        logs.contains("refresh token reused"),
        "the warning was lost in the flood:\n{}",
        &logs[..logs.len().min(4096)]
    );
}

#[tokio::test]
async fn max_connections_caps_open_connections_closing_the_idle_ones_first() {
    use tokio::io::AsyncReadExt as _;
    let app = Binary::start(&["--demo"], &[("AUTHD_MAX_CONNECTIONS", "4")]).await;
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(tokio::net::TcpStream::connect(app.addr()).await.unwrap());
    }
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        app.client.get(app.url("/healthz")).send(),
    )
    .await
    .expect("/healthz unanswered within 3 s with 10 idle connections and a cap of 4")
    .unwrap();
    assert_eq!(res.status(), 200);
    let mut open = 0;
    for mut s in idle {
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_millis(100), s.read(&mut b));
        if read.await.is_err() {
            open += 1;
        }
    }
    // The cap holds /healthz's connection too.
    assert!(
        open < 4,
        "{open} idle connections still open with a cap of 4"
    );
}

#[tokio::test]
async fn a_max_connections_of_zero_is_refused_at_start() {
    let (code, _, stderr) =
        crate::helpers::run_to_exit(&["--demo"], &[("AUTHD_MAX_CONNECTIONS", "0")], |_| {}).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("AUTHD_MAX_CONNECTIONS"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
