//! Negative controls of the rig's Verifier checks: a C driver
//! (`rig/misuse/misuse.c`) that misuses spin locks on purpose, one misuse
//! per IOCTL. On the rig each must fail-stop the driver host with
//! Verifier's bugcheck code, fast; on stock Wine (`DPCLOCK_WINE_RIG=stock`)
//! nothing is checked, and these tests say so and check nothing.
//! Run them one at a time (`--test-threads=1`), like every Wine test.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use xtask::{rig::Rig, wine::Session};

const STEP: Duration = Duration::from_secs(60);

fn misuse(case: u32, expected: &str) {
    let rig = xtask::rig::selected().unwrap_or_else(|e| panic!("the rig: {e}"));
    if matches!(rig, Rig::Stock) {
        eprintln!("stock Wine: IRQL not modelled, no Verifier checks to control");
        return;
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
