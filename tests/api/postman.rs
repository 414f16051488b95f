//! The Postman collection (`postman/`), run by newman against the real binary in demo mode:
//! every request of the collection is sent and every `pm.test` assertion holds. Needs newman
//! (`AUTHD_TEST_NEWMAN`; `./scripts/test.sh` installs it under `target/npm`).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::{Binary, external_tool, run_bounded};

/// The requests of a collection (items without sub-items), counted through its folders.
fn count_requests(items: &serde_json::Value) -> u64 {
    items.as_array().map_or(0, |items| {
        items
            .iter()
            .map(|i| {
                if i.get("request").is_some() {
                    1
                } else {
                    count_requests(&i["item"])
                }
            })
            .sum()
    })
}

#[tokio::test]
#[ignore = "needs newman (AUTHD_TEST_NEWMAN)"]
async fn postman_collection_passes_under_newman_against_the_demo_binary() {
    let newman = external_tool("AUTHD_TEST_NEWMAN", "newman", "newman");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let collection = root.join("postman/authd.postman_collection.json");
    let environment = root.join("postman/authd.postman_environment.json");
    let expected_requests = count_requests(
        &serde_json::from_slice::<serde_json::Value>(&std::fs::read(&collection).unwrap()).unwrap()
            ["item"],
    );
    assert!(expected_requests >= 8, "{expected_requests}");

    let app = Binary::start(&["--demo"], &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("newman.json");
    let mut cmd = Command::new(&newman);
    cmd.current_dir(dir.path())
        .arg("run")
        .arg(&collection)
        .arg("--environment")
        .arg(&environment)
        .args(["--env-var", &format!("baseUrl={}", app.base)])
        .args(["--reporters", "cli,json", "--reporter-json-export"])
        .arg(&report)
        .args([
            "--color",
            "off",
            "--timeout-request",
            "10000",
            "--timeout",
            "120000",
        ]);
    let (ok, output) = run_bounded(cmd, Duration::from_secs(180)).await;
    assert!(ok, "newman failed:\n{output}");

    // newman's own summary, to be sure the run did what it should and did not pass by doing
    // nothing: every request sent, assertions made, no failure of any kind.
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let stats = &run["run"]["stats"];
    assert_eq!(stats["requests"]["total"], expected_requests, "{output}");
    assert!(
        stats["assertions"]["total"].as_u64().unwrap() >= 3 * expected_requests,
        "{output}"
    );
    for kind in ["requests", "assertions", "testScripts", "prerequestScripts"] {
        assert_eq!(stats[kind]["failed"], 0, "{kind} failed:\n{output}");
    }
    assert_eq!(run["run"]["failures"], serde_json::json!([]), "{output}");
}
