//! What `contrib/` ships for a deployment: the systemd unit passes `systemd-analyze verify` with no
//! warning at all (an unknown or misspelt key is only a warning there, so the test reads the
//! output, not just the exit code) and scores as hardened in `systemd-analyze security`. Needs
//! `systemd-analyze` (Debian's `systemd`; it does not have to run as PID 1 for these checks).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::{binary_path, external_tool, run_bounded};

/// The highest exposure `systemd-analyze security` may give the unit, in its tenths (1.5 of 10).
const MAX_EXPOSURE_TENTHS: u32 = 15;

/// The shipped unit, with its `ExecStart` pointed at the binary under test: `verify` checks that
/// the command exists, and the unit names where `cargo install --root /usr/local` puts it.
fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/authd.service"),
    )
    .unwrap();
    let exec = "ExecStart=/usr/local/bin/authd\n";
    assert_eq!(
        shipped.matches(exec).count(),
        1,
        "one ExecStart, as documented"
    );
    let unit = dir.join("authd.service");
    let here = format!("ExecStart={}\n", binary_path().display());
    std::fs::write(&unit, shipped.replace(exec, &here)).unwrap();
    unit
}

#[tokio::test]
#[ignore = "needs systemd-analyze (Debian's systemd)"]
async fn systemd_unit_verifies_without_a_single_warning() {
    let analyze = external_tool(
        "AUTHD_TEST_SYSTEMD_ANALYZE",
        "systemd-analyze",
        "systemd-analyze",
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let mut cmd = Command::new(&analyze);
    cmd.arg("verify").arg(&unit);
    let (ok, output) = run_bounded(cmd, Duration::from_secs(60)).await;
    assert!(ok, "systemd-analyze verify failed:\n{output}");
    assert_eq!(output.trim(), "", "systemd-analyze verify warned");

    // The check does catch a misspelt key: the same unit with one is not silent.
    let broken = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("ProtectSystem=strict", "ProtectSystm=strict");
    std::fs::write(&unit, broken).unwrap();
    let mut cmd = Command::new(&analyze);
    cmd.arg("verify").arg(&unit);
    let (_, output) = run_bounded(cmd, Duration::from_secs(60)).await;
    assert!(output.contains("ProtectSystm"), "{output}");
}

#[tokio::test]
#[ignore = "needs systemd-analyze (Debian's systemd)"]
async fn systemd_unit_is_hardened_by_systemd_analyze_security() {
    let analyze = external_tool(
        "AUTHD_TEST_SYSTEMD_ANALYZE",
        "systemd-analyze",
        "systemd-analyze",
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let mut cmd = Command::new(&analyze);
    cmd.args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--threshold={MAX_EXPOSURE_TENTHS}"))
        .arg(&unit);
    let (ok, output) = run_bounded(cmd, Duration::from_secs(60)).await;
    let score = output
        .lines()
        .find_map(|l| l.split("Overall exposure level for authd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{output}"));
    assert!(
        ok && score * 10.0 <= f64::from(MAX_EXPOSURE_TENTHS),
        "exposure {score} (at most {MAX_EXPOSURE_TENTHS} tenths):\n{output}"
    );
}
