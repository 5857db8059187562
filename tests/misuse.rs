//! Negative controls of the rig's Verifier checks: a C driver
//! (`rig/misuse/misuse.c`) that misuses spin locks on purpose, one misuse
//! per IOCTL. On the rig each must fail-stop the driver host with
//! Verifier's bugcheck code, fast. On stock Wine (`DPCLOCK_WINE_RIG=stock`)
//! nothing is checked, and these tests fail: that is their own negative
//! control.
//! Run them one at a time (`--test-threads=1`), like every Wine test.

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use xtask::{rig::Rig, wine::Session};

const STEP: Duration = Duration::from_secs(60);

/// A session with misuse.sys started: the session, the client, their folder.
fn start() -> (Session, PathBuf, PathBuf) {
    let rig = xtask::rig::selected().unwrap_or_else(|e| panic!("the rig: {e}"));
    if matches!(rig, Rig::Stock) {
        eprintln!("stock Wine: IRQL not modelled and nothing checked; this must fail");
    }
    let (driver, client) =
        xtask::rig::build_misuse().unwrap_or_else(|e| panic!("building misuse.sys: {e}"));
    let dir = driver.parent().unwrap_or(Path::new("."));
    let session = Session::start("misuse").unwrap_or_else(|e| panic!("starting Wine: {e}"));
    let explain = |what: &str| {
        format!(
            "{what}\n--- driver log ({}):\n{}",
            session.log_path().display(),
            session.log_tail(30)
        )
    };
    let bin_path = format!("Z:{}", driver.display()).replace('/', "\\");
    let created = session
        .wine(
            dir,
            "sc",
            ["create", "misuse", "type=", "kernel", "binPath=", &bin_path],
            STEP,
        )
        .expect("sc create");
    assert!(
        created.success(),
        "{}",
        explain(&format!("sc create failed:\n{created}"))
    );
    // The service manager may answer "database locked" for a few seconds
    // after the prefix comes up: retry within a deadline.
    let deadline = Instant::now() + STEP;
    loop {
        let started = session
            .wine(dir, "net", ["start", "misuse"], STEP)
            .expect("net start");
        if started.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            explain(&format!("net start failed:\n{started}"))
        );
        thread::sleep(Duration::from_secs(1));
    }
    session
        .check_rig()
        .unwrap_or_else(|e| panic!("{}", explain(&e.0)));
    (session, client, dir.to_path_buf())
}

fn explain(session: &Session, what: &str) -> String {
    format!(
        "{what}\n--- driver log ({}):\n{}",
        session.log_path().display(),
        session.log_tail(30)
    )
}

fn misuse(case: u32, expected: &str) {
    let (session, client, dir) = start();
    let dir = dir.as_path();
    let explain = |what: &str| explain(&session, what);
    let started = Instant::now();
    let sent = session
        .wine(dir, &client, [case.to_string()], Duration::from_secs(20))
        .expect("misuse_client");
    // The driver host is gone once the bugcheck line is in the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        if let Some(line) = session.driver_crash() {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            explain(&format!(
                "no bugcheck after misuse {case}; the client said:\n{sent}"
            ))
        );
        thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "misuse {case}: {line} (after {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        line.contains(expected),
        "{}",
        explain(&format!("expected `{expected}`, got: {line}"))
    );
}

#[test]
fn an_at_dpc_level_acquire_at_passive_level_bugchecks_0xc4_0x40() {
    misuse(0, "bugcheck 0xC4 (0x40, 0x0,");
}

#[test]
fn a_raising_acquire_released_from_dpc_level_in_an_ioctl_bugchecks_0xc9_0x5() {
    misuse(1, "bugcheck 0xC9 (0x5,");
}

#[test]
fn completing_an_irp_while_holding_a_spin_lock_bugchecks_spin_lock_safe() {
    misuse(2, "IoCompleteRequest with a spin lock held (SpinLockSafe)");
}

#[test]
fn an_at_dpc_level_release_at_passive_level_bugchecks_0xc4_0x41() {
    misuse(4, "bugcheck 0xC4 (0x41, 0x0,");
}

#[test]
fn a_raise_to_a_lower_irql_bugchecks_0xc4_0x30() {
    misuse(5, "bugcheck 0xC4 (0x30, 0x2, 0x0,");
}

#[test]
fn a_lower_to_a_higher_irql_bugchecks_0xc4_0x31() {
    misuse(6, "bugcheck 0xC4 (0x31, 0x0, 0x2,");
}

#[test]
fn a_raising_release_below_dispatch_level_bugchecks_0xc4_0x32() {
    misuse(7, "bugcheck 0xC4 (0x32, 0x0,");
}

#[test]
fn a_raising_acquire_above_dispatch_level_bugchecks_0xc4_0x42() {
    misuse(8, "bugcheck 0xC4 (0x42, 0xf,");
}

#[test]
fn a_dpc_routine_returning_at_another_irql_bugchecks_0xc4_0x2001d() {
    misuse(9, "bugcheck 0xC4 (0x2001d, 0xf, 0x2,");
}

#[test]
fn queued_dpcs_run_once_each_at_dispatch_level_on_their_processor() {
    let (session, client, dir) = start();
    let sent = session
        .wine(&dir, &client, ["3"], Duration::from_secs(30))
        .expect("misuse_client");
    assert!(
        sent.success(),
        "{}",
        explain(&session, &format!("the probe failed:\n{sent}"))
    );
    if let Some(line) = session.driver_crash() {
        panic!(
            "{}",
            explain(&session, &format!("the driver host crashed: {line}"))
        );
    }
    let count = |name: &str| -> i64 {
        sent.stdout
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the probe's output:\n{sent}"))
    };
    eprintln!(
        "queued DPC probe: {}",
        sent.stdout.lines().last().unwrap_or_default()
    );
    assert!(count("processors") >= 1);
    assert_eq!(count("runs"), count("processors"), "{sent}");
    assert_eq!(count("not_at_dispatch"), 0, "{sent}");
    assert_eq!(count("wrong_processor"), 0, "{sent}");
    assert_eq!(
        count("second_insert"),
        0,
        "KeInsertQueueDpc of a queued DPC must return FALSE"
    );
    assert_eq!(
        count("removed"),
        1,
        "KeRemoveQueueDpc of a queued DPC must return TRUE"
    );
    assert_eq!(
        count("removed_again"),
        0,
        "KeRemoveQueueDpc of an unqueued DPC must return FALSE"
    );
    assert_eq!(count("blocked_ran"), 0, "a removed DPC must not run");
}
