//! `dpclockctl check`: every IOCTL once, with what its answer must be. The
//! quickest way to see that an installed driver works, path by path.

use std::{
    thread,
    time::{Duration, Instant},
};

use dpclock_ioctl::{
    IOCTL_DPCLOCK_DPC_BURST, IOCTL_DPCLOCK_GET_STATS, IOCTL_DPCLOCK_LOCK_DISPATCH,
    IOCTL_DPCLOCK_LOCK_PASSIVE, LockKind, LockRequest, LockResponse, PROTOCOL_VERSION,
    STATS_UNLOCKED_ALLOWED, STATUS_BUFFER_TOO_SMALL, STATUS_DEVICE_BUSY,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
    expected_checksum,
};

use crate::device::{self, Device, status_name};

/// One check and its result.
#[derive(Clone, Debug)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// `Ok(detail)` or `Err(what went wrong)`.
    pub result: Result<String, String>,
}

fn record(checks: &mut Vec<Check>, name: impl Into<String>, result: Result<String, String>) {
    checks.push(Check {
        name: name.into(),
        result,
    });
}

fn expect_status(
    device: &dyn Device,
    code: u32,
    input: &[u8],
    output_len: usize,
    want: i32,
) -> Result<String, String> {
    let mut output = vec![0_u8; output_len];
    let got = device.ioctl(code, input, &mut output).status;
    if got == want {
        Ok(status_name(got))
    } else {
        Err(format!(
            "expected {}, got {}",
            status_name(want),
            status_name(got)
        ))
    }
}

/// Runs every check; the device is left reset, with the timer stopped.
#[must_use]
pub fn run(device: &dyn Device) -> Vec<Check> {
    let mut checks = Vec::new();
    let fail = |e: device::DeviceError| e.to_string();

    let stats = device::timer_stop(device)
        .and_then(|()| device::reset(device))
        .and_then(|()| device::stats(device));
    let stats = match stats {
        Ok(stats) => stats,
        Err(error) => {
            record(
                &mut checks,
                "GET_STATS after TIMER_STOP and RESET",
                Err(error.to_string()),
            );
            return checks;
        }
    };
    let processors = stats.processors;
    let unlocked_allowed = stats.flags & STATS_UNLOCKED_ALLOWED != 0;
    record(
        &mut checks,
        "GET_STATS",
        if stats.version == PROTOCOL_VERSION && processors > 0 {
            Ok(format!(
                "protocol {}, {processors} processors, flags {:#x}",
                stats.version, stats.flags
            ))
        } else {
            Err(format!("unexpected stats {stats:?}"))
        },
    );
    record(
        &mut checks,
        "NOOP",
        device::noop(device).map(|()| "ok".to_owned()).map_err(fail),
    );
    let mut output = [0xFF; size_of::<LockResponse>()];
    record(
        &mut checks,
        "NOOP with a lock IOCTL's buffers",
        device::noop_with_lock_traffic(device, &mut output)
            .map_err(fail)
            .and_then(|written| {
                if written == output.len() && output.iter().all(|&b| b == 0) {
                    Ok(format!("{written} zero bytes"))
                } else {
                    Err(format!(
                        "expected 32 zero bytes, got {written}: {output:02x?}"
                    ))
                }
            }),
    );

    for kind in [LockKind::Plain, LockKind::Queued] {
        for (name, code, expected) in [
            ("LOCK_PASSIVE", IOCTL_DPCLOCK_LOCK_PASSIVE, 10),
            ("LOCK_DISPATCH", IOCTL_DPCLOCK_LOCK_DISPATCH, 10),
            (
                "DPC_BURST",
                IOCTL_DPCLOCK_DPC_BURST,
                10 * u64::from(processors),
            ),
        ] {
            let result = device::lock(device, name, code, kind, 10, 5)
                .map_err(fail)
                .and_then(|r| {
                    let runs_ok = code != IOCTL_DPCLOCK_DPC_BURST || r.dpc_runs == processors;
                    if r.acquisitions == expected && runs_ok && r.lock_kind == kind as u32 {
                        Ok(format!(
                            "{} acquisitions, {} DPC runs",
                            r.acquisitions, r.dpc_runs
                        ))
                    } else {
                        Err(format!(
                            "expected {expected} acquisitions on {processors} processors, got {r:?}"
                        ))
                    }
                });
            record(&mut checks, format!("{name} ({})", kind.name()), result);
        }
    }

    record(
        &mut checks,
        "TIMER_START, its DPC runs, TIMER_STOP",
        timer(device),
    );
    record(
        &mut checks,
        "RESET while the timer runs is refused",
        (|| {
            device::timer_start(device, LockKind::Plain, 50, 1, 0).map_err(fail)?;
            let refused = device::reset(device);
            device::timer_stop(device).map_err(fail)?;
            match refused {
                Err(e) if e.status == STATUS_DEVICE_BUSY => Ok(status_name(e.status)),
                other => Err(format!("expected STATUS_DEVICE_BUSY, got {other:?}")),
            }
        })(),
    );

    let unlocked = device::lock(
        device,
        "LOCK_PASSIVE",
        IOCTL_DPCLOCK_LOCK_PASSIVE,
        LockKind::Unlocked,
        10,
        0,
    );
    record(
        &mut checks,
        format!(
            "the unlocked control is {}",
            if unlocked_allowed {
                "allowed"
            } else {
                "refused"
            }
        ),
        match (unlocked_allowed, unlocked) {
            (true, Ok(r)) if r.acquisitions == 10 => Ok("ran".to_owned()),
            (false, Err(e)) if e.status == STATUS_NOT_SUPPORTED => Ok(status_name(e.status)),
            (_, other) => Err(format!("unexpected answer {other:?}")),
        },
    );

    let good = LockRequest::encode(LockKind::Plain, 1, 0);
    let mut wrong_version = good;
    wrong_version[..4].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
    for (name, code, input, output_len, want) in [
        (
            "short input",
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            &good[..8],
            32,
            STATUS_BUFFER_TOO_SMALL,
        ),
        (
            "short output",
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            &good[..],
            8,
            STATUS_BUFFER_TOO_SMALL,
        ),
        (
            "wrong version",
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            &wrong_version[..],
            32,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "unknown code",
            IOCTL_DPCLOCK_GET_STATS + 0x100,
            &[][..],
            0,
            STATUS_INVALID_DEVICE_REQUEST,
        ),
        (
            "GET_STATS into a small buffer",
            IOCTL_DPCLOCK_GET_STATS,
            &[][..],
            100,
            STATUS_BUFFER_TOO_SMALL,
        ),
    ] {
        record(
            &mut checks,
            format!("malformed: {name}"),
            expect_status(device, code, input, output_len, want),
        );
    }

    record(
        &mut checks,
        "the ledgers account for every acquisition above",
        ledgers(device, processors, unlocked_allowed),
    );
    let _ = device::reset(device);
    checks
}

fn timer(device: &dyn Device) -> Result<String, String> {
    let fail = |e: device::DeviceError| e.to_string();
    let before = device::stats(device).map_err(fail)?.timer_ticks;
    device::timer_start(device, LockKind::Queued, 1, 2, 1).map_err(fail)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ticks = before;
    while ticks < before + 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        ticks = device::stats(device).map_err(fail)?.timer_ticks;
    }
    device::timer_stop(device).map_err(fail)?;
    if ticks < before + 5 {
        return Err(format!(
            "the timer DPC ran {} times in 10 s",
            ticks - before
        ));
    }
    let stopped = device::stats(device).map_err(fail)?.timer_ticks;
    thread::sleep(Duration::from_millis(100));
    let later = device::stats(device).map_err(fail)?.timer_ticks;
    if later == stopped {
        Ok(format!("{} ticks, none after TIMER_STOP", stopped - before))
    } else {
        Err(format!(
            "the timer DPC still ran after TIMER_STOP ({stopped} then {later})"
        ))
    }
}

fn ledgers(device: &dyn Device, processors: u32, unlocked_allowed: bool) -> Result<String, String> {
    let stats = device::stats(device).map_err(|e| e.to_string())?;
    let burst = 10 * u64::from(processors);
    for kind in [LockKind::Plain, LockKind::Queued] {
        let l = &stats.ledgers[kind.index()];
        // Timer ticks are counted by the driver; the consistency check below
        // covers them.
        let wanted = [10, 10, burst, l.performed[3]];
        let consistent = l.updates == l.performed
            && l.total == l.updates.iter().sum::<u64>()
            && l.checksum == expected_checksum(&l.updates);
        if l.performed != wanted || !consistent {
            return Err(format!(
                "{} ledger: expected performed {wanted:?}, got {l:?}",
                kind.name()
            ));
        }
    }
    let unlocked = &stats.ledgers[LockKind::Unlocked.index()];
    if unlocked.performed[0] != u64::from(unlocked_allowed) * 10 {
        return Err(format!("unlocked ledger: {unlocked:?}"));
    }
    Ok("every count matches, totals and checksums consistent".to_owned())
}
