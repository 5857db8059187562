//! `IRP_MJ_CREATE`/`CLOSE`/`CLEANUP` and `IRP_MJ_DEVICE_CONTROL`: every
//! request is validated by the protocol crate before the driver acts on it,
//! and every IRP is completed outside any spin lock.

use core::sync::atomic::Ordering::Relaxed;

use dpclock_ioctl::{
    LockResponse, LockWork, METHOD_BUFFERED, PROTOCOL_VERSION, Path, Policy, Request,
    STATS_CHECKED_BUILD, STATS_IRQL_MODELLED, STATS_TIMER_RUNNING, STATS_UNLOCKED_ALLOWED,
    STATUS_CANCELLED, STATUS_DELETE_PENDING, STATUS_DEVICE_BUSY, Stats, Timings, ValidatorStats,
    limits,
};
use kspin::{IrqlModel, Platform, kernel::Kernel};
use wdk_sys::{
    DEVICE_OBJECT, IRP, IRP_MJ_CREATE, NTSTATUS, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};

use crate::{
    device::{DeviceExtension, extension},
    health::{self, IrpInFlight},
    ledger::{Outcome, Raised, Until, now_ns},
    wdm,
};

/// `IRP_MJ_CREATE`, `IRP_MJ_CLOSE` and `IRP_MJ_CLEANUP`: nothing per handle.
///
/// A CREATE fails with `STATUS_DELETE_PENDING` once removal has begun, and
/// with `STATUS_INVALID_PARAMETER` when it names something below the device
/// (a non-empty `FileObject->FileName`, as in `<interface path>\anything`):
/// dpclock has no namespace, and Microsoft's "Controlling Device Namespace
/// Access" has a driver without one fail such opens (the status is the one
/// "A Single DispatchCreateClose Routine" gives). FILE_DEVICE_SECURE_OPEN
/// already applies the device's DACL to them; this refuses them outright.
/// CLEANUP and CLOSE of the handles already open always succeed.
pub unsafe extern "C" fn dispatch_create_close(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let _counted = IrpInFlight::enter();
    // SAFETY: one of our devices.
    let ext = unsafe { extension(device) };
    // SAFETY: our IRP's current location.
    let location = unsafe { &*wdm::current_stack_location(irp) };
    let hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        // SAFETY: ours to complete.
        Err(status) => return unsafe { wdm::complete(irp, status, 0) },
    };
    let create = u32::from(location.MajorFunction) == IRP_MJ_CREATE;
    // SAFETY: a CREATE's file object, which the I/O manager made for it (or
    // null: then there is no name).
    let named =
        create && unsafe { location.FileObject.as_ref() }.is_some_and(|f| f.FileName.Length > 0);
    let status = if !create {
        STATUS_SUCCESS
    } else if ext.is_removing() {
        STATUS_DELETE_PENDING
    } else if named {
        STATUS_INVALID_PARAMETER
    } else {
        STATUS_SUCCESS
    };
    // SAFETY: ours to complete; then the remove lock is released, as in
    // every dispatch routine: complete, then release.
    let status = unsafe { wdm::complete(irp, status, 0) };
    drop(hold);
    status
}

/// `IRP_MJ_DEVICE_CONTROL`. `PASSIVE_LEVEL`.
pub unsafe extern "C" fn dispatch_device_control(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let _counted = IrpInFlight::enter();
    // SAFETY: one of our devices.
    let ext = unsafe { extension(device) };
    let hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        // SAFETY: ours to complete.
        Err(status) => return unsafe { wdm::complete(irp, status, 0) },
    };
    // After SURPRISE_REMOVAL the device takes no new request, TIMER_START
    // included: the same status the remove lock gives once REMOVE_DEVICE
    // has begun.
    if ext.is_removing() {
        // SAFETY: ours to complete; then the remove lock is released.
        let status = unsafe { wdm::complete(irp, STATUS_DELETE_PENDING, 0) };
        drop(hold);
        return status;
    }
    // SAFETY: our IRP and its current stack location.
    let (code, input_len, output_len, buffer) = unsafe {
        let parameters = (*wdm::current_stack_location(irp))
            .Parameters
            .DeviceIoControl;
        (
            parameters.IoControlCode,
            parameters.InputBufferLength as usize,
            parameters.OutputBufferLength as usize,
            (*irp).AssociatedIrp.SystemBuffer.cast::<u8>(),
        )
    };
    // METHOD_BUFFERED: the I/O manager copied the input into one system
    // buffer of max(input, output) bytes, which also receives the output.
    // Other methods never reach past `parse` (no dpclock code uses them),
    // so their buffers are never touched.
    let buffered = code & 3 == METHOD_BUFFERED && !buffer.is_null();
    let input: &[u8] = if buffered && input_len > 0 {
        // SAFETY: the system buffer holds at least `input_len` bytes.
        unsafe { core::slice::from_raw_parts(buffer, input_len) }
    } else {
        &[]
    };
    // The code, then the input (length, then each field in offset order),
    // then the output size: the first failure decides the status.
    let policy = Policy {
        unlocked_control: crate::unlocked_control_allowed(),
    };
    let (status, information) = match dpclock_ioctl::parse(code, input, output_len, policy) {
        Err(error) => (error.ntstatus(), 0),
        Ok(request) => {
            let output: &mut [u8] = if buffered && output_len > 0 {
                // SAFETY: the system buffer holds at least `output_len` bytes,
                // and the input slice is no longer used.
                unsafe { core::slice::from_raw_parts_mut(buffer, output_len) }
            } else {
                &mut []
            };
            // SAFETY: PASSIVE_LEVEL (IRP_MJ_DEVICE_CONTROL is sent there to
            // a driver at the top of its stack, as dpclock's FDO is), no
            // spin lock held; our IRP, not yet completed.
            unsafe { handle(ext, irp, request, output) }
        }
    };
    // SAFETY: ours to complete; then the remove lock is released.
    let status = unsafe { wdm::complete(irp, status, information) };
    drop(hold);
    status
}

/// Acts on a validated request, writing any response into `output`.
/// Returns the status and the number of bytes written.
///
/// # Safety
///
/// `PASSIVE_LEVEL`, outside any raised scope: the timer requests and
/// `DPC_BURST` wait (for a mutex, for DPCs), which above it would never
/// end. `irp` is the caller's, not yet completed.
unsafe fn handle(
    ext: &DeviceExtension,
    irp: *mut IRP,
    request: Request,
    output: &mut [u8],
) -> (NTSTATUS, usize) {
    let reply = |response: LockResponse, output: &mut [u8]| match response.encode(output) {
        Ok(written) => (STATUS_SUCCESS, written),
        Err(error) => (error.ntstatus(), 0),
    };
    match request {
        Request::Noop => (STATUS_SUCCESS, dpclock_ioctl::noop_reply(output)),
        Request::LockPassive(work) => {
            // PASSIVE_LEVEL: each acquisition raises to DISPATCH_LEVEL and back.
            let most = limits::chunk_iterations(work.work);
            let outcome = in_chunks(ext, irp, work.iterations.into(), most, |iterations| {
                ext.ledgers
                    .run(work.lock_kind, Path::Passive, iterations, work.work, None)
            });
            match outcome {
                Ok(outcome) => reply(
                    response(work, outcome.acquisitions, outcome.contended, 0),
                    output,
                ),
                Err(status) => (status, 0),
            }
        }
        Request::LockDispatch(work) => {
            // Raise once per chunk, then take the lock at DISPATCH_LEVEL each
            // time; the IRQL drops back to PASSIVE_LEVEL between chunks. A
            // chunk also ends once the raised section has lasted the DPC
            // budget (contention), and the next one makes the rest.
            let most = limits::chunk_iterations(work.work);
            let outcome = in_chunks(ext, irp, work.iterations.into(), most, |iterations| {
                let start = now_ns();
                let outcome = kspin::kernel::at_dispatch_level(|at| {
                    ext.ledgers.run(
                        work.lock_kind,
                        Path::Dispatch,
                        iterations,
                        work.work,
                        Some(Raised {
                            at,
                            until: Until::Budget { began_ns: start },
                        }),
                    )
                });
                ext.max_raised_ns
                    .fetch_max(now_ns().saturating_sub(start), Relaxed);
                outcome
            });
            match outcome {
                Ok(outcome) => reply(
                    response(work, outcome.acquisitions, outcome.contended, 0),
                    output,
                ),
                Err(status) => (status, 0),
            }
        }
        Request::DpcBurst(work) => {
            // In rounds: one DPC per processor each, sharing a pool of one
            // chunk per processor (the DPCs stop at their time budget and
            // the rest carries over to the next round); this thread waits at
            // PASSIVE_LEVEL between rounds, and every processor leaves
            // DISPATCH_LEVEL. In all, `iterations` per processor.
            let width = ext.burst.width();
            let total = u64::from(work.iterations) * u64::from(width);
            let most = limits::chunk_iterations(work.work).saturating_mul(width);
            let mut runs = 0_u32;
            let outcome = in_chunks(ext, irp, total, most, |acquisitions| {
                // SAFETY: PASSIVE_LEVEL (caller), between chunks: no raised
                // scope is open here.
                let round = unsafe { ext.burst.round(work, acquisitions) };
                ext.burst_runs.fetch_add(u64::from(round.runs), Relaxed);
                ext.max_dpc_ns.fetch_max(round.longest_ns, Relaxed);
                runs = runs.max(round.runs);
                round.outcome
            });
            match outcome {
                Ok(outcome) => reply(
                    response(work, outcome.acquisitions, outcome.contended, runs),
                    output,
                ),
                Err(status) => (status, 0),
            }
        }
        Request::TimerStart(settings) => {
            // SAFETY: PASSIVE_LEVEL, outside any raised scope (caller).
            match unsafe { ext.start_timer(settings) } {
                Ok(()) => (STATUS_SUCCESS, 0),
                Err(status) => (status, 0),
            }
        }
        Request::TimerStop => {
            // SAFETY: as for TIMER_START.
            unsafe { ext.stop_timer() };
            (STATUS_SUCCESS, 0)
        }
        Request::GetStats => match stats(ext).encode(output) {
            Ok(written) => (STATUS_SUCCESS, written),
            Err(error) => (error.ntstatus(), 0),
        },
        Request::GetHealth => match health::snapshot().encode(output) {
            Ok(written) => (STATUS_SUCCESS, written),
            Err(error) => (error.ntstatus(), 0),
        },
        Request::Reset => {
            if ext.timer.is_running() {
                return (STATUS_DEVICE_BUSY, 0);
            }
            ext.ledgers.reset();
            ext.timer.reset_ticks();
            ext.burst_runs.store(0, Relaxed);
            ext.max_dpc_ns.store(0, Relaxed);
            ext.max_raised_ns.store(0, Relaxed);
            (STATUS_SUCCESS, 0)
        }
    }
}

/// Makes `total` acquisitions in chunks of at most `most` (the most that
/// the arithmetic says fit one DPC run or one raised section), adding up
/// their outcomes. A chunk may make fewer than it was given (a run at
/// `DISPATCH_LEVEL` that ran out of time, see `ledger::Until::Budget`; at
/// least one), and the next chunk makes the rest, so the request makes
/// exactly `total`. Between chunks it stops if the request was cancelled
/// (`STATUS_CANCELLED`) or the device is being removed
/// (`STATUS_DELETE_PENDING`): what the chunks before did stays in the ledger
/// and its counters. `PASSIVE_LEVEL`.
fn in_chunks(
    ext: &DeviceExtension,
    irp: *mut IRP,
    total: u64,
    most: u32,
    mut chunk: impl FnMut(u32) -> Outcome,
) -> Result<Outcome, NTSTATUS> {
    let mut left = total;
    let mut sum = Outcome::default();
    while left > 0 {
        let asked = u32::try_from(left).unwrap_or(u32::MAX).min(most.max(1));
        let outcome = chunk(asked);
        // Never more than asked, so `left` cannot wrap; at least one (the
        // runs promise it), so the loop ends.
        let made = outcome.acquisitions.min(u64::from(asked));
        debug_assert!(made > 0, "a chunk made no acquisition");
        sum.acquisitions += made;
        sum.contended += outcome.contended;
        left -= made;
        if left == 0 {
            break;
        }
        // SAFETY: our IRP, not yet completed. `Cancel` is a BOOLEAN that
        // IoCancelIrp sets from another thread; a volatile read sees it.
        // With no cancel routine set, polling it is how a driver that never
        // queues the IRP honours a cancellation.
        if unsafe { (&raw const (*irp).Cancel).read_volatile() } != 0 {
            return Err(STATUS_CANCELLED);
        }
        if ext.is_removing() {
            return Err(STATUS_DELETE_PENDING);
        }
    }
    Ok(sum)
}

fn response(work: LockWork, acquisitions: u64, contended: u64, dpc_runs: u32) -> LockResponse {
    LockResponse {
        version: PROTOCOL_VERSION,
        lock_kind: work.lock_kind as u32,
        acquisitions,
        contended,
        dpc_runs,
        reserved: 0,
    }
}

fn stats(ext: &DeviceExtension) -> Stats {
    let mut flags = 0;
    if Kernel::irql_model() == IrqlModel::Modelled {
        flags |= STATS_IRQL_MODELLED;
    }
    if cfg!(feature = "checked") {
        flags |= STATS_CHECKED_BUILD;
    }
    if crate::unlocked_control_allowed() {
        flags |= STATS_UNLOCKED_ALLOWED;
    }
    if ext.timer.is_running() {
        flags |= STATS_TIMER_RUNNING;
    }
    Stats {
        version: PROTOCOL_VERSION,
        flags,
        processors: ext.processors,
        timer_period_ms: ext.timer.period_ms(),
        timer_ticks: ext.timer.ticks(),
        timer_skipped: ext.timer.skipped(),
        burst_dpc_runs: ext.burst_runs.load(Relaxed),
        ledgers: ext.ledgers.stats(),
        validator: validator(),
        timings: Timings {
            max_hold_ns: ext.ledgers.max_hold_ns(),
            max_dpc_ns: ext.max_dpc_ns.load(Relaxed),
            max_raised_ns: ext.max_raised_ns.load(Relaxed),
            timer_back_to_back: ext.timer.back_to_back(),
        },
    }
}

#[cfg(feature = "checked")]
fn validator() -> ValidatorStats {
    let report = kspin::checked::report::<Kernel>();
    let v = report.violations;
    ValidatorStats {
        irql_checks: report.irql_checks,
        classes: report.classes,
        recursive_acquires: v.recursive_acquires,
        foreign_releases: v.foreign_releases,
        order_inversions: v.order_inversions,
        same_class_nesting: v.same_class_nesting,
        irql_at_acquire: v.irql_at_acquire,
        irql_at_release: v.irql_at_release,
        held_at_scope_end: v.held_at_scope_end,
        untracked: v.untracked,
    }
}

#[cfg(not(feature = "checked"))]
fn validator() -> ValidatorStats {
    ValidatorStats::default()
}
