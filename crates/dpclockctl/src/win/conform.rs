//! `dpclockctl conform`: what docs/protocol.md says about handles, access
//! checks, output buffers, statuses, the timer's accounting and how the
//! counters of a quiet device add up, checked
//! against the live device, together with every example of the document.
//! With `--removal`, also what a handle opened before the device was
//! removed gets afterwards (this uninstalls and reinstalls the driver).

use std::{path::Path, thread, time::Duration};

use dpclock_ioctl::{
    HoldStats, IOCTL_DPCLOCK_DPC_BURST, IOCTL_DPCLOCK_GET_HEALTH, IOCTL_DPCLOCK_GET_STATS,
    IOCTL_DPCLOCK_LOCK_DISPATCH, IOCTL_DPCLOCK_LOCK_PASSIVE, IOCTL_DPCLOCK_NOOP,
    IOCTL_DPCLOCK_RESET, IOCTL_DPCLOCK_TIMER_START, IOCTL_DPCLOCK_TIMER_STOP, LockKind,
    LockRequest, Path as LedgerPath, STATS_CHECKED_BUILD, Stats, TimerRequest, spec,
};
use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE, RtlNtStatusToDosError};

use super::{
    device::{OpenError, WinDevice},
    install,
};
use crate::{
    check::Check,
    device::{self, Device, IoResult, status_name},
    protocol_doc,
};

const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32.cast_signed();

fn record(checks: &mut Vec<Check>, name: impl Into<String>, result: Result<String, String>) {
    checks.push(Check {
        name: name.into(),
        result,
    });
}

fn open(access: u32, share: u32) -> Result<WinDevice, String> {
    WinDevice::open_with(access, share).map_err(|e| e.to_string())
}

/// A request that passes every check of `ioctl` (small, and harmless to
/// run), with an output buffer of the response's size.
fn valid_request(ioctl: &spec::Ioctl) -> (Vec<u8>, usize) {
    let input = match ioctl.name {
        "LOCK_PASSIVE" | "LOCK_DISPATCH" | "DPC_BURST" => {
            LockRequest::encode(LockKind::Plain, 1, 0).to_vec()
        }
        "TIMER_START" => TimerRequest::encode(LockKind::Plain, 1000, 1, 0).to_vec(),
        _ => Vec::new(),
    };
    let output = match ioctl.output {
        spec::Output::Response { size, .. } | spec::Output::ZerosUpTo(size) => size,
        spec::Output::Nothing => 0,
    };
    (input, output)
}

/// Several handles at once, whatever the share mode, on one device state.
fn several_handles() -> Result<String, String> {
    let a = open(GENERIC_READ | GENERIC_WRITE, 0)?;
    let b = open(GENERIC_READ | GENERIC_WRITE, 0)
        .map_err(|e| format!("a second handle with share mode 0 failed: {e}"))?;
    let c = open(GENERIC_READ, 0).map_err(|e| format!("a third handle failed: {e}"))?;
    let fail = |e: device::DeviceError| e.to_string();
    device::timer_stop(&a).map_err(fail)?;
    device::reset(&b).map_err(fail)?;
    device::lock(
        &a,
        "LOCK_PASSIVE",
        IOCTL_DPCLOCK_LOCK_PASSIVE,
        LockKind::Plain,
        7,
        0,
    )
    .map_err(fail)?;
    let performed = device::stats(&c).map_err(fail)?.ledgers[0].performed[0];
    device::reset(&a).map_err(fail)?;
    if performed == 7 {
        Ok(
            "3 handles open at once (share mode 0); a request on one shows in GET_STATS on another"
                .into(),
        )
    } else {
        Err(format!(
            "7 acquisitions on handle A, but handle C's GET_STATS shows {performed}"
        ))
    }
}

/// A name below the device (its namespace, e.g. `<interface path>\\anything`)
/// is refused: dpclock has no namespace, and fails such a CREATE with
/// `STATUS_INVALID_PARAMETER`, which `CreateFile` reports as Win32 error 87
/// (docs/protocol.md, "Handles"). Wine 8.0 never sends the CREATE: its
/// object manager finds no object of that name and fails the open itself
/// with Win32 error 2 (docs/linux-flavor.md, "Names below the device"), so
/// under Wine that is what is checked.
fn namespace_open() -> Result<String, String> {
    const ERROR_FILE_NOT_FOUND: u32 = 2;
    const ERROR_INVALID_PARAMETER: u32 = 87;
    let (expected, why) = if super::env::wine_version().is_some() {
        (
            ERROR_FILE_NOT_FOUND,
            "Wine 8.0's object manager refuses the name before the driver sees it",
        )
    } else {
        (
            ERROR_INVALID_PARAMETER,
            "the driver fails a CREATE with a file name",
        )
    };
    let path = super::device::interface_paths()
        .into_iter()
        .next()
        .ok_or("no dpclock interface present")?;
    let below = format!("{path}\\anything");
    match WinDevice::open_path(below.clone(), GENERIC_READ | GENERIC_WRITE, 0) {
        Ok(_) => Err(format!("opening {below} succeeded")),
        Err(OpenError::Open(error)) if error.code == expected => Ok(format!(
            "opening a name below the interface fails with Win32 error {expected} ({why})"
        )),
        Err(error) => Err(format!(
            "opening {below} failed with {error}, where Win32 error {expected} is documented ({why})"
        )),
    }
}

/// The I/O manager's access check: an IOCTL whose code asks for read or
/// write access fails with STATUS_ACCESS_DENIED on a handle without it.
fn access_checks(checks: &mut Vec<Check>) {
    for (what, access, granted) in [
        ("read-only handle (GENERIC_READ)", GENERIC_READ, 1),
        ("write-only handle (GENERIC_WRITE)", GENERIC_WRITE, 2),
        ("handle without access (0)", 0, 0),
    ] {
        let result = open(access, 0).and_then(|device| {
            let mut seen = Vec::new();
            for ioctl in &spec::IOCTLS {
                let allowed = ioctl.access & granted == ioctl.access;
                // Only requests that change nothing are actually run.
                let harmless = matches!(ioctl.name, "NOOP" | "GET_STATS" | "GET_HEALTH");
                if allowed && !harmless {
                    continue;
                }
                let (input, output_len) = valid_request(ioctl);
                let mut output = vec![0_u8; output_len];
                let got = device.ioctl(ioctl.code, &input, &mut output).status;
                let want = if allowed { 0 } else { STATUS_ACCESS_DENIED };
                if got != want {
                    return Err(format!(
                        "{}: expected {}, got {}",
                        ioctl.name,
                        status_name(want),
                        status_name(got)
                    ));
                }
                seen.push(format!(
                    "{} {}",
                    ioctl.name,
                    if allowed { "ok" } else { "denied" }
                ));
            }
            Ok(seen.join(", "))
        });
        record(checks, format!("access: {what}"), result);
    }
}

/// Output buffers: only `Information` bytes come back; the rest of the
/// caller's buffer is left as it was, also for IOCTLs that return nothing.
fn output_buffers(device: &WinDevice, checks: &mut Vec<Check>) {
    let timer = TimerRequest::encode(LockKind::Plain, 1000, 1, 0);
    let lock = LockRequest::encode(LockKind::Plain, 1, 0);
    for (name, code, input, len, want) in [
        ("TIMER_START", IOCTL_DPCLOCK_TIMER_START, &timer[..], 64, 0),
        ("TIMER_STOP", IOCTL_DPCLOCK_TIMER_STOP, &[][..], 64, 0),
        ("RESET", IOCTL_DPCLOCK_RESET, &[][..], 64, 0),
        ("NOOP", IOCTL_DPCLOCK_NOOP, &[][..], 100, 32),
        (
            "LOCK_PASSIVE",
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            &lock[..],
            100,
            32,
        ),
        (
            "GET_STATS",
            IOCTL_DPCLOCK_GET_STATS,
            &[][..],
            2000,
            size_of::<Stats>(),
        ),
        ("GET_HEALTH", IOCTL_DPCLOCK_GET_HEALTH, &[][..], 100, 72),
    ] {
        let mut output = vec![0xAA_u8; len];
        let got = device.ioctl(code, input, &mut output);
        let untouched = output[want..].iter().all(|&b| b == 0xAA);
        let result = if got.status == 0 && got.information == want && untouched {
            Ok(format!(
                "{len}-byte buffer: {want} bytes written, the rest untouched"
            ))
        } else {
            Err(format!(
                "{len}-byte buffer: {} with {} bytes, rest untouched: {untouched}",
                status_name(got.status),
                got.information
            ))
        };
        record(checks, format!("output buffer: {name}"), result);
    }
}

/// Null buffers with a length: the I/O manager refuses them before the
/// driver sees them. (Wine 8.0 refuses null output buffers but not null
/// input buffers; those are left out under Wine, as the document says.)
fn null_buffers(device: &WinDevice) -> Result<String, String> {
    let null_inputs = super::env::wine_version().is_none();
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for ioctl in &spec::IOCTLS {
        let (input, output_len) = valid_request(ioctl);
        let input_len = input.len().max(16) as u32;
        let mut output = vec![0_u8; output_len.max(16)];
        let null_input = if null_inputs {
            // SAFETY: a null input with a length (what is probed), and an
            // output buffer valid for its length.
            unsafe {
                device.ioctl_raw(
                    ioctl.code,
                    std::ptr::null(),
                    input_len,
                    output.as_mut_ptr(),
                    output.len() as u32,
                )
            }
        } else {
            IoResult {
                status: -1,
                information: 0,
            }
        };
        let padded = [input.clone(), vec![0; 16]].concat();
        // SAFETY: an input valid for its length, and a null output.
        let null_output = unsafe {
            device.ioctl_raw(
                ioctl.code,
                padded.as_ptr(),
                input_len,
                std::ptr::null_mut(),
                64,
            )
        };
        let probes = if null_inputs {
            vec![("input", null_input), ("output", null_output)]
        } else {
            vec![("output", null_output)]
        };
        for (which, result) in probes {
            seen.push(format!(
                "{} null {which}: {}",
                ioctl.name,
                status_name(result.status)
            ));
            if result.status >= 0 {
                wrong.push(format!(
                    "{} null {which}: {}",
                    ioctl.name,
                    status_name(result.status)
                ));
            }
        }
        let _ = device::timer_stop(device);
    }
    let _ = device::reset(device);
    if wrong.is_empty() {
        Ok(seen.join(", "))
    } else {
        Err(format!(
            "accepted: {}; all: {}",
            wrong.join(", "),
            seen.join(", ")
        ))
    }
}

/// The Win32 error each documented NTSTATUS becomes (`DeviceIoControl`).
fn win32_errors() -> Result<String, String> {
    let mut wrong = Vec::new();
    for (name, status, win32, _) in spec::STATUSES {
        // SAFETY: a pure translation function.
        let got = unsafe { RtlNtStatusToDosError(status.cast_signed()) };
        if got != win32 {
            wrong.push(format!("{name}: documented {win32}, got {got}"));
        }
    }
    if wrong.is_empty() {
        Ok(format!("{} statuses", spec::STATUSES.len()))
    } else {
        Err(wrong.join("; "))
    }
}

/// The document's procedure for checking the timer's acquisitions, with
/// two segments of different settings.
fn timer_accounting(device: &WinDevice) -> Result<String, String> {
    let fail = |e: device::DeviceError| e.to_string();
    device::timer_stop(device).map_err(fail)?;
    device::reset(device).map_err(fail)?;
    let mut expected = 0_u64;
    let mut ticks_before = 0;
    for (kind, period, iterations) in [(LockKind::Plain, 2, 3), (LockKind::Plain, 5, 7)] {
        device::timer_start(device, kind, period, iterations, 1).map_err(fail)?;
        thread::sleep(Duration::from_millis(300));
        device::timer_stop(device).map_err(fail)?;
        let ticks = device::stats(device).map_err(fail)?.timer_ticks;
        expected += (ticks - ticks_before) * u64::from(iterations);
        ticks_before = ticks;
    }
    let stats = device::stats(device).map_err(fail)?;
    let ledger = &stats.ledgers[LockKind::Plain.index()];
    let timer = LedgerPath::TimerDpc as usize;
    device::reset(device).map_err(fail)?;
    if ticks_before > 0 && ledger.performed[timer] == expected && ledger.updates[timer] == expected
    {
        Ok(format!(
            "{ticks_before} ticks in two segments: performed[3] = updates[3] = {expected}"
        ))
    } else {
        Err(format!(
            "{ticks_before} ticks: expected {expected}, performed {}, updates {}",
            ledger.performed[timer], ledger.updates[timer]
        ))
    }
}

/// What docs/protocol.md says the counters of a quiet device add up to:
/// each ledger's `contended` is the sum of its replies', a checked build's
/// `hold.count` is the sum of `performed` (a free build's hold statistics
/// are 0, and always the unlocked control's), `classes` is 2 in a checked
/// build and 0 in a free one, and `irps_total` counts each request once.
fn quiet_counters(device: &WinDevice) -> Result<String, String> {
    let fail = |e: device::DeviceError| e.to_string();
    device::timer_stop(device).map_err(fail)?;
    device::reset(device).map_err(fail)?;
    let mut replied = [0_u64; 2];
    for (index, kind) in [LockKind::Plain, LockKind::Queued].into_iter().enumerate() {
        for (name, code, iterations) in [
            ("LOCK_PASSIVE", IOCTL_DPCLOCK_LOCK_PASSIVE, 1000),
            ("LOCK_DISPATCH", IOCTL_DPCLOCK_LOCK_DISPATCH, 1000),
            ("DPC_BURST", IOCTL_DPCLOCK_DPC_BURST, 20_000),
        ] {
            replied[index] += device::lock(device, name, code, kind, iterations, 1)
                .map_err(fail)?
                .contended;
        }
    }
    let stats = device::stats(device).map_err(fail)?;
    let checked = stats.flags & STATS_CHECKED_BUILD != 0;
    let mut wrong = Vec::new();
    for (index, kind) in [LockKind::Plain, LockKind::Queued].into_iter().enumerate() {
        let ledger = &stats.ledgers[kind.index()];
        if ledger.contended != replied[index] {
            wrong.push(format!(
                "{kind:?}: contended {} but the replies' sum to {}",
                ledger.contended, replied[index]
            ));
        }
        let performed: u64 = ledger.performed.iter().sum();
        let bucketed: u64 = ledger.hold.histogram.iter().sum();
        if checked && (ledger.hold.count != performed || bucketed != performed) {
            wrong.push(format!(
                "{kind:?}: hold.count {} and histogram {bucketed} against {performed} performed",
                ledger.hold.count
            ));
        }
        if !checked && ledger.hold != HoldStats::default() {
            wrong.push(format!("{kind:?}: a free build reports hold statistics"));
        }
    }
    if stats.ledgers[LockKind::Unlocked.index()].hold != HoldStats::default() {
        wrong.push("the unlocked control reports hold statistics".into());
    }
    let classes = if checked { 2 } else { 0 };
    if stats.validator.classes != classes {
        wrong.push(format!(
            "classes {} where {classes} is documented",
            stats.validator.classes
        ));
    }
    // The driver times itself in every build: the requests above held a
    // lock, ran DPCs and raised the IRQL, so each maximum is set.
    let t = &stats.timings;
    if t.max_hold_ns == 0 || t.max_dpc_ns == 0 || t.max_raised_ns == 0 {
        wrong.push(format!("timings not measured: {t:?}"));
    }
    let before = device::health(device).map_err(fail)?.irps_total;
    for _ in 0..3 {
        device::noop(device).map_err(fail)?;
    }
    let after = device::health(device).map_err(fail)?.irps_total;
    if after.wrapping_sub(before) != 4 {
        wrong.push(format!(
            "irps_total grew by {} over 3 NOOPs and a GET_HEALTH",
            after.wrapping_sub(before)
        ));
    }
    device::reset(device).map_err(fail)?;
    let t = device::stats(device).map_err(fail)?.timings;
    if t != dpclock_ioctl::Timings::default() {
        wrong.push(format!("RESET left timings {t:?}"));
    }
    if wrong.is_empty() {
        Ok(format!(
            "contended {}/{}, hold.count = performed{}, classes {classes}, irps_total +4, timings measured and reset",
            replied[0],
            replied[1],
            if checked { "" } else { " (0 in free builds)" }
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// What an old handle gets once the device is removed, and after a
/// reinstall: never the new device.
fn removal(inf: &Path, checks: &mut Vec<Check>) {
    let old = match open(GENERIC_READ | GENERIC_WRITE, 0) {
        Ok(old) => old,
        Err(e) => return record(checks, "removal: open", Err(e)),
    };
    let statuses = |device: &WinDevice| {
        [
            IOCTL_DPCLOCK_NOOP,
            IOCTL_DPCLOCK_GET_STATS,
            IOCTL_DPCLOCK_LOCK_PASSIVE,
        ]
        .map(|code| {
            let input = LockRequest::encode(LockKind::Plain, 1, 0);
            let mut output = vec![0_u8; size_of::<Stats>()];
            device.ioctl(code, &input, &mut output).status
        })
    };
    let documented =
        |status: i32| protocol_doc::removal_statuses().contains(&status.cast_unsigned());
    if let Err(e) = install::uninstall(Duration::from_secs(30)) {
        return record(checks, "removal: uninstall", Err(e.to_string()));
    }
    let after = statuses(&old);
    record(
        checks,
        "removal: an old handle after the device is removed",
        describe_removal(&after, documented),
    );
    if let Err(e) = install::install(inf, false, Duration::from_secs(30)) {
        return record(checks, "removal: reinstall", Err(e.to_string()));
    }
    let reinstalled = statuses(&old);
    record(
        checks,
        "removal: the old handle after a reinstall (never the new device)",
        describe_removal(&reinstalled, documented),
    );
    record(
        checks,
        "removal: a new handle reaches the new device",
        open(GENERIC_READ | GENERIC_WRITE, 0).and_then(|new| {
            device::noop(&new)
                .map(|()| "NOOP succeeds".to_owned())
                .map_err(|e| e.to_string())
        }),
    );
    drop(old);
}

fn describe_removal(
    statuses: &[i32; 3],
    documented: impl Fn(i32) -> bool,
) -> Result<String, String> {
    let text = format!(
        "NOOP {}, GET_STATS {}, LOCK_PASSIVE {}",
        status_name(statuses[0]),
        status_name(statuses[1]),
        status_name(statuses[2])
    );
    if statuses.iter().all(|&s| s < 0 && documented(s)) {
        Ok(text)
    } else {
        Err(format!(
            "{text}: not all of them are documented removal statuses"
        ))
    }
}

/// Runs every check. The device is left reset with the timer stopped.
#[must_use]
pub fn run(device: &WinDevice, removal_inf: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    record(&mut checks, "several handles", several_handles());
    record(
        &mut checks,
        "no namespace below the device",
        namespace_open(),
    );
    access_checks(&mut checks);
    output_buffers(device, &mut checks);
    record(&mut checks, "null buffers", null_buffers(device));
    let _ = device::timer_stop(device);
    record(&mut checks, "Win32 errors of the statuses", win32_errors());
    record(
        &mut checks,
        "the timer's acquisitions",
        timer_accounting(device),
    );
    record(
        &mut checks,
        "the counters of a quiet device",
        quiet_counters(device),
    );
    for (example, result) in protocol_doc::run_examples(device) {
        record(&mut checks, format!("example {example}"), result);
    }
    let _ = device::timer_stop(device);
    let _ = device::reset(device);
    if let Some(inf) = removal_inf {
        removal(inf, &mut checks);
    }
    checks
}
