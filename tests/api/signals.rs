//! Signals to the real binary: SIGHUP means "reload what can be reloaded" and never ends the
//! process, with or without TLS (the certificate reload itself is in `tls.rs`).

use std::time::Duration;

use crate::helpers::{Binary, demo_token};

#[tokio::test]
async fn sighup_without_tls_reloads_nothing_and_never_ends_the_process() {
    let mut app = Binary::start(&["--demo"], &[]).await;
    let token = demo_token(&app).await;
    for _ in 0..2 {
        app.signal("HUP");
    }
    app.wait_for_output("SIGHUP: nothing to reload").await;
    // Still running, still serving, the token still good.
    assert!(app.child.try_wait().unwrap().is_none(), "{}", app.output());
    let res = app
        .client
        .get(app.url("/protected"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // And SIGTERM still stops it cleanly.
    assert!(app.terminate().await.success());
}

#[tokio::test]
async fn the_pid_file_names_this_process_reloads_by_it_and_goes_with_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("authd.pid");
    let mut app = Binary::start_in(dir, &["--demo", "--pid-file", "authd.pid"], &[]).await;
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), app.child.id().unwrap().to_string());
    // The way the README reloads: by the file, not by name.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -HUP \"$(cat '{}')\"", pid_file.display()))
        .status()
        .unwrap();
    assert!(status.success());
    app.wait_for_output("SIGHUP: nothing to reload").await;
    assert!(app.child.try_wait().unwrap().is_none());
    assert!(app.terminate().await.success());
    assert!(!pid_file.exists(), "the pid file outlived the process");
}
