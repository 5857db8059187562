//! End-to-end tests of dpclock.sys in Wine 8.0, driven by dpclockctl.exe.
//!
//! Each test runs in a Wine session of its own (a fresh prefix), installs
//! the driver through its INF the way `devcon install` does, and ends the
//! session (killing every Wine process) whatever happens. Every command has
//! a timeout; a failure prints the command's output and the driver's log.
//! Run them one at a time (`--test-threads=1`): they share the machine's
//! two processors with the driver's DPCs.

use std::{fs, path::PathBuf, thread, time::Duration};

use serde_json::Value;
use xtask::{COMMAND_TIMEOUT, cross::Package, process::Output, wine::Session};

struct Rig {
    session: Session,
    package: Package,
}

impl Rig {
    fn new(name: &str, checked: bool) -> Self {
        let packages =
            xtask::packages().unwrap_or_else(|e| panic!("building the packages failed: {e}"));
        let package = packages[usize::from(checked)].clone();
        let session = Session::start(name).unwrap_or_else(|e| panic!("starting Wine failed: {e}"));
        Self { session, package }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_with_timeout(args, COMMAND_TIMEOUT)
    }

    fn ctl_with_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let output = self
            .session
            .wine(&self.package.dir, "dpclockctl.exe", args, timeout)
            .unwrap_or_else(|e| panic!("running dpclockctl {args:?}: {e}"));
        assert!(
            !output.timed_out(),
            "{}",
            self.explain(&format!("dpclockctl {args:?} timed out"), &output)
        );
        output
    }

    fn ctl_ok(&self, args: &[&str]) -> Output {
        let output = self.ctl(args);
        assert!(
            output.success(),
            "{}",
            self.explain(&format!("dpclockctl {args:?} failed"), &output)
        );
        output
    }

    fn explain(&self, what: &str, output: &Output) -> String {
        format!(
            "{what}\n{output}\n--- driver log ({}), last lines:\n{}",
            self.session.log_path().display(),
            self.session.log_tail(30)
        )
    }

    fn install(&self, allow_unlocked: bool) {
        let mut args = vec!["install", "--inf", "dpclock.inf", "--timeout", "30"];
        if allow_unlocked {
            args.push("--allow-unlocked");
        }
        let output = self.ctl_ok(&args);
        assert!(
            output.stdout.contains("installed and started"),
            "{}",
            self.explain("install", &output)
        );
        if let Err(e) = self.session.check_rig() {
            panic!("{e}\n{}", self.session.log_tail(30));
        }
    }

    /// A file in the prefix, and its path for the harness.
    fn report_path(&self, name: &str) -> (PathBuf, String) {
        (
            self.session.prefix().join("drive_c").join(name),
            format!("C:\\{name}"),
        )
    }

    fn read_json(&self, path: &PathBuf) -> Value {
        let text = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
        serde_json::from_str(&text).expect("valid JSON")
    }

    /// Whether this session runs the rig's ntoskrnl.exe (IRQL modelled).
    fn modelled(&self) -> bool {
        matches!(self.session.rig(), xtask::rig::Rig::Modelled { .. })
    }

    fn service_state(&self) -> String {
        let output = self
            .session
            .wine(
                &self.package.dir,
                "sc",
                ["query", "dpclock"],
                COMMAND_TIMEOUT,
            )
            .expect("sc query");
        output
            .stdout
            .lines()
            .find(|l| l.contains("STATE"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("ABSENT")
            .to_owned()
    }

    fn driver_lines_containing(&self, text: &str) -> usize {
        self.session
            .driver_lines()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    fn assert_no_crash(&self) {
        if let Some(line) = self.session.driver_crash() {
            panic!(
                "the driver host crashed: {line}\n{}",
                self.session.log_tail(40)
            );
        }
    }
}

#[test]
fn the_driver_installs_starts_stops_and_starts_again() {
    let rig = Rig::new("lifecycle", false);
    rig.install(false);
    assert_eq!(rig.service_state(), "RUNNING");
    assert_eq!(
        rig.driver_lines_containing("DriverEntry"),
        1,
        "{}",
        rig.session.log_tail(20)
    );
    assert_eq!(rig.driver_lines_containing("AddDevice"), 1);
    assert_eq!(
        rig.driver_lines_containing("started; interface enabled: 0x00000000"),
        1
    );
    // The rig models IRQL per thread; stock Wine does not, and the driver
    // must notice either way.
    let expected = if rig.modelled() {
        "IRQL modelled"
    } else {
        "IRQL not modelled"
    };
    assert_eq!(
        rig.driver_lines_containing(expected),
        1,
        "the driver must find IRQL {}",
        if rig.modelled() {
            "modelled on the rig"
        } else {
            "not modelled on stock Wine"
        }
    );

    rig.ctl_ok(&["uninstall"]);
    assert_eq!(rig.service_state(), "STOPPED");
    assert_eq!(
        rig.driver_lines_containing("device removed"),
        1,
        "{}",
        rig.session.log_tail(20)
    );
    assert_eq!(rig.driver_lines_containing("DriverUnload"), 1);

    rig.install(false);
    assert_eq!(rig.service_state(), "RUNNING");
    assert_eq!(rig.driver_lines_containing("DriverEntry"), 2);
    rig.ctl_ok(&["check"]);
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn every_ioctl_round_trips_and_both_dpc_sources_run() {
    let rig = Rig::new("check", false);
    rig.install(true);
    let output = rig.ctl_ok(&["check"]);
    for line in [
        "ok    GET_STATS",
        "ok    NOOP",
        "ok    NOOP with a lock IOCTL's buffers: 32 zero bytes",
        "ok    LOCK_PASSIVE (plain)",
        "ok    LOCK_DISPATCH (queued)",
        "ok    DPC_BURST (plain): 20 acquisitions, 2 DPC runs",
        "ok    TIMER_START, its DPC runs, TIMER_STOP",
        "ok    RESET while the timer runs is refused",
        "ok    the unlocked control is allowed",
        "ok    malformed: wrong version",
        "ok    the ledgers account for every acquisition above",
        "CHECK PASSED",
    ] {
        assert!(
            output.stdout.contains(line),
            "missing `{line}`\n{}",
            rig.explain("check", &output)
        );
    }
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn malformed_requests_get_their_documented_status_and_the_device_stays_healthy() {
    let rig = Rig::new("fuzz", false);
    rig.install(false);
    let (path, wine_path) = rig.report_path("fuzz.json");
    let output = rig.ctl_ok(&[
        "fuzz", "--cases", "3000", "--seed", "20261121", "--json", &wine_path,
    ]);
    let report = rig.read_json(&path);
    assert_eq!(report["cases"], 3000);
    assert_eq!(
        report["mismatches"].as_array().map(Vec::len),
        Some(0),
        "{}",
        output.stdout
    );
    assert!(report["unhealthy"].is_null(), "{}", output.stdout);
    // The generator really reached every documented status.
    let expected = report["expected"].as_object().expect("expected counts");
    for status in [
        "STATUS_SUCCESS",
        "STATUS_BUFFER_TOO_SMALL",
        "STATUS_INVALID_PARAMETER",
        "STATUS_INVALID_DEVICE_REQUEST",
        "STATUS_NOT_SUPPORTED",
    ] {
        assert!(
            expected.keys().any(|k| k.starts_with(status)),
            "no case expected {status}: {expected:?}"
        );
    }
    rig.ctl_ok(&["check"]);
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

fn stress(rig: &Rig, extra: &[&str]) -> (Output, Value) {
    let (path, wine_path) = rig.report_path("stress.json");
    let _ = fs::remove_file(&path);
    let mut args = vec![
        "stress",
        "--duration",
        "2",
        "--acquisitions",
        "200000",
        "--json",
        wine_path.as_str(),
    ];
    args.extend(extra);
    let output = rig.ctl(&args);
    assert!(
        path.is_file(),
        "{}",
        rig.explain("the stress wrote no report", &output)
    );
    let report = rig.read_json(&path);
    (output, report)
}

#[test]
fn a_short_stress_verifies_with_the_plain_and_the_queued_lock() {
    let rig = Rig::new("stress", false);
    rig.install(false);
    for lock in ["plain", "queued"] {
        let (output, report) = stress(&rig, &["--lock", lock]);
        assert_eq!(
            output.code(),
            Some(0),
            "{}",
            rig.explain(&format!("{lock} stress"), &output)
        );
        assert_eq!(report["verified"], true);
        assert_eq!(report["lost_updates"], 0);
        assert_eq!(report["lock_kind"], lock);
        assert!(report["acquisitions_total"].as_u64() >= Some(200_000));
        for path in ["passive", "dispatch", "burst_dpc", "timer_dpc"] {
            let performed = report["paths"][path]["performed"].as_u64().unwrap_or(0);
            assert!(performed > 0, "{path} never ran: {}", output.stdout);
        }
        assert_eq!(report["environment"]["under_wine"], true);
    }
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn the_unlocked_control_loses_updates_under_dpc_bursts_and_the_locks_lose_none() {
    let rig = Rig::new("unlocked", false);
    rig.install(true);
    let bursts = ["--mix", "0,0,1", "--no-timer"];
    let (locked, report) = stress(&rig, &bursts);
    assert!(
        report["environment"]["cpus"].as_u64() >= Some(2),
        "bursts race only on 2 or more processors"
    );
    assert_eq!(
        locked.code(),
        Some(0),
        "{}",
        rig.explain("locked bursts", &locked)
    );
    assert_eq!(report["lost_updates"], 0);

    let mut unlocked_args = bursts.to_vec();
    unlocked_args.push("--unlocked");
    let (unlocked, report) = stress(&rig, &unlocked_args);
    assert_eq!(
        unlocked.code(),
        Some(1),
        "{}",
        rig.explain("the unlocked run must fail verification", &unlocked)
    );
    assert_eq!(report["verified"], false);
    assert!(
        report["lost_updates"].as_i64() > Some(0),
        "{}",
        unlocked.stdout
    );
    assert!(
        unlocked.stdout.contains("lost updates"),
        "{}",
        unlocked.stdout
    );
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn the_checked_build_reports_hold_times_and_irql_checks() {
    let rig = Rig::new("checked", true);
    rig.install(false);
    assert_eq!(rig.driver_lines_containing("checked build"), 1);
    let (output, report) = stress(&rig, &["--lock", "queued"]);
    assert_eq!(
        output.code(),
        Some(0),
        "{}",
        rig.explain("checked stress", &output)
    );
    assert_eq!(report["environment"]["checked_build"], true);
    // Enabled exactly when the rig models IRQL (stock Wine does not).
    let irql_checks = if rig.modelled() {
        "enabled"
    } else {
        "unavailable"
    };
    assert_eq!(report["validator"]["irql_checks"], irql_checks);
    for counter in [
        "recursive_acquires",
        "foreign_releases",
        "order_inversions",
        "same_class_nesting",
        "irql_at_acquire",
        "irql_at_release",
        "held_at_scope_end",
        "untracked",
    ] {
        assert_eq!(
            report["validator"][counter], 0,
            "{counter}: {}",
            output.stdout
        );
    }
    let holds = report["hold_time"]["count"].as_u64().unwrap_or(0);
    // Every acquisition the run made was timed, and GET_STATS's own reads
    // of the ledgers were not (docs/protocol.md, GET_STATS).
    assert_eq!(
        Some(holds),
        report["acquisitions_total"].as_u64(),
        "{}",
        output.stdout
    );
    assert!(report["hold_time"]["max_ns"].as_u64() > Some(0));
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn install_and_uninstall_are_idempotent_and_explain_themselves() {
    let rig = Rig::new("idempotent", false);
    rig.install(false);
    let again = rig.ctl_ok(&["install", "--inf", "dpclock.inf"]);
    assert!(
        again.stdout.contains("already installed"),
        "{}",
        again.stdout
    );
    rig.ctl_ok(&["uninstall"]);
    let again = rig.ctl_ok(&["uninstall"]);
    assert!(again.stdout.contains("not installed"), "{}", again.stdout);

    let no_device = rig.ctl(&["stats"]);
    assert_eq!(no_device.code(), Some(3), "{no_device}");
    assert!(
        no_device.stderr.contains("no dpclock device found"),
        "{no_device}"
    );

    let missing = rig.ctl(&["install", "--inf", "C:\\nowhere\\dpclock.inf"]);
    assert_eq!(missing.code(), Some(2), "{missing}");
    assert!(missing.stderr.contains("INF not found"), "{missing}");

    // The same INF without its driver beside it.
    let lonely = rig.session.prefix().join("drive_c").join("lonely");
    fs::create_dir_all(&lonely).expect("folder");
    fs::copy(&rig.package.inf, lonely.join("dpclock.inf")).expect("copy");
    let no_sys = rig.ctl(&["install", "--inf", "C:\\lonely\\dpclock.inf"]);
    assert_eq!(no_sys.code(), Some(2), "{no_sys}");
    assert!(no_sys.stderr.contains("dpclock.sys not found"), "{no_sys}");

    rig.install(false);
    rig.ctl_ok(&["check"]);
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn a_driver_that_cannot_start_is_reported_with_its_service_state() {
    let rig = Rig::new("broken", false);
    let broken = rig.session.prefix().join("drive_c").join("broken");
    fs::create_dir_all(&broken).expect("folder");
    fs::copy(&rig.package.inf, broken.join("dpclock.inf")).expect("copy");
    fs::write(broken.join("dpclock.sys"), b"MZ this is not a driver").expect("write");
    let output = rig.ctl_with_timeout(
        &[
            "install",
            "--inf",
            "C:\\broken\\dpclock.inf",
            "--timeout",
            "10",
        ],
        COMMAND_TIMEOUT,
    );
    assert_eq!(output.code(), Some(2), "{output}");
    assert!(
        output.stderr.contains("did not start; service dpclock is"),
        "{output}"
    );
}

#[test]
fn removing_the_device_during_a_stress_is_reported_cleanly_and_a_reinstall_works() {
    let rig = Rig::new("remove", false);
    rig.install(false);
    let stress_output = thread::scope(|scope| {
        let stress = scope.spawn(|| {
            rig.ctl_with_timeout(
                &[
                    "stress",
                    "--duration",
                    "60",
                    "--acquisitions",
                    "0",
                    "--stall-timeout",
                    "20",
                ],
                Duration::from_secs(150),
            )
        });
        // Let the IOCTL paths, bursts and the timer DPC get going, then pull
        // the device out from under them.
        thread::sleep(Duration::from_secs(4));
        let removed = rig.ctl(&["uninstall"]);
        assert!(
            removed.success(),
            "{}",
            rig.explain("uninstall during the stress", &removed)
        );
        stress.join().expect("stress thread")
    });
    assert_eq!(
        stress_output.code(),
        Some(4),
        "{}",
        rig.explain(
            "the harness must report the removal (exit 4), not hang or verify",
            &stress_output
        )
    );
    assert!(
        stress_output.stderr.contains("removed")
            || stress_output.stderr.contains("stopped answering"),
        "{stress_output}"
    );
    assert_eq!(
        rig.driver_lines_containing("device removed"),
        1,
        "{}",
        rig.session.log_tail(20)
    );

    rig.install(false);
    rig.ctl_ok(&["check"]);
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}

#[test]
fn the_driver_does_what_the_protocol_document_says() {
    let rig = Rig::new("conform", false);
    rig.install(false);
    let output = rig.ctl(&["conform", "--removal", "dpclock.inf"]);
    assert!(
        output.success() && output.stdout.contains("CONFORM PASSED"),
        "{}",
        rig.explain("conform (unlocked control off, with removal)", &output)
    );
    for line in [
        "ok    several handles",
        "ok    access: read-only handle",
        "ok    access: handle without access",
        "ok    output buffer: TIMER_STOP",
        "ok    the timer's acquisitions",
        "ok    the counters of a quiet device",
        "ok    example 5 (LOCK_PASSIVE)",
        "ok    example 21 (GET_HEALTH)",
        "ok    removal: an old handle after the device is removed",
        "ok    removal: the old handle after a reinstall",
        "ok    removal: a new handle reaches the new device",
    ] {
        assert!(
            output.stdout.contains(line),
            "missing `{line}`\n{}",
            output.stdout
        );
    }
    rig.ctl_ok(&["uninstall"]);
    rig.install(true);
    let output = rig.ctl_ok(&["conform"]);
    assert!(
        output.stdout.contains("ok    example 7 (LOCK_DISPATCH)"),
        "{}",
        output.stdout
    );
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
    drop(rig);

    // The checked build: hold statistics and the validator's classes.
    let rig = Rig::new("conform-checked", true);
    rig.install(false);
    let output = rig.ctl_ok(&["conform"]);
    assert!(
        output
            .stdout
            .contains("ok    the counters of a quiet device"),
        "{}",
        output.stdout
    );
    rig.ctl_ok(&["uninstall"]);
    rig.assert_no_crash();
}
