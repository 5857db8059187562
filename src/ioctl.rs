//! `IRP_MJ_CREATE`/`CLOSE`/`CLEANUP` and `IRP_MJ_DEVICE_CONTROL`: every
//! request is validated by the protocol crate before the driver acts on it,
//! and every IRP is completed outside any spin lock.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use dpclock_ioctl::{
    LockResponse, LockWork, METHOD_BUFFERED, PROTOCOL_VERSION, Path, Policy, Request,
    STATS_CHECKED_BUILD, STATS_IRQL_MODELLED, STATS_TIMER_RUNNING, STATS_UNLOCKED_ALLOWED,
    STATUS_DEVICE_BUSY, Stats, ValidatorStats,
};
use kspin::{
    IrqlModel, Platform,
    kernel::{
        DispatchLevel, Kernel,
        dpc::{CallDpcBarrier, GenericCallRoutine, generic_call_dpc},
    },
};
use wdk_sys::{DEVICE_OBJECT, IRP, NTSTATUS, STATUS_SUCCESS};

use crate::{
    device::{DeviceExtension, extension},
    health::{self, IrpInFlight},
    ledger::Ledgers,
    wdm,
};

/// `IRP_MJ_CREATE`, `IRP_MJ_CLOSE` and `IRP_MJ_CLEANUP`: nothing per handle.
pub unsafe extern "C" fn dispatch_create_close(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let _counted = IrpInFlight::enter();
    // SAFETY: one of our devices.
    let ext = unsafe { extension(device) };
    let status = match ext.remove_lock.acquire(irp) {
        Ok(_hold) => STATUS_SUCCESS,
        Err(status) => status,
    };
    // SAFETY: ours to complete.
    unsafe { wdm::complete(irp, status, 0) }
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
            handle(ext, request, output)
        }
    };
    // SAFETY: ours to complete; then the remove lock is released.
    let status = unsafe { wdm::complete(irp, status, information) };
    drop(hold);
    status
}

/// Acts on a validated request, writing any response into `output`.
/// Returns the status and the number of bytes written.
fn handle(ext: &DeviceExtension, request: Request, output: &mut [u8]) -> (NTSTATUS, usize) {
    let reply = |response: LockResponse, output: &mut [u8]| match response.encode(output) {
        Ok(written) => (STATUS_SUCCESS, written),
        Err(error) => (error.ntstatus(), 0),
    };
    match request {
        Request::Noop => (STATUS_SUCCESS, dpclock_ioctl::noop_reply(output)),
        Request::LockPassive(work) => {
            // PASSIVE_LEVEL: each acquisition raises to DISPATCH_LEVEL and back.
            let outcome = ext.ledgers.run(
                work.lock_kind,
                Path::Passive,
                work.iterations,
                work.work,
                None,
            );
            reply(
                response(work, outcome.acquisitions, outcome.contended, 0),
                output,
            )
        }
        Request::LockDispatch(work) => {
            // Raise once, then take the lock at DISPATCH_LEVEL each time.
            let outcome = kspin::kernel::at_dispatch_level(|at| {
                ext.ledgers.run(
                    work.lock_kind,
                    Path::Dispatch,
                    work.iterations,
                    work.work,
                    Some(at),
                )
            });
            reply(
                response(work, outcome.acquisitions, outcome.contended, 0),
                output,
            )
        }
        Request::DpcBurst(work) => {
            let burst = Burst {
                ledgers: &ext.ledgers,
                work,
                runs: AtomicU32::new(0),
                contended: AtomicU64::new(0),
            };
            generic_call_dpc(&burst);
            let runs = burst.runs.load(Relaxed);
            ext.burst_runs.fetch_add(u64::from(runs), Relaxed);
            let acquisitions = u64::from(work.iterations) * u64::from(runs);
            reply(
                response(work, acquisitions, burst.contended.load(Relaxed), runs),
                output,
            )
        }
        Request::TimerStart(settings) => {
            ext.start_timer(settings);
            (STATUS_SUCCESS, 0)
        }
        Request::TimerStop => {
            ext.stop_timer();
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
            (STATUS_SUCCESS, 0)
        }
    }
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

/// The burst: `KeGenericCallDpc` runs it on every processor at once.
struct Burst<'a> {
    ledgers: &'a Ledgers,
    work: LockWork,
    runs: AtomicU32,
    contended: AtomicU64,
}

impl GenericCallRoutine for Burst<'_> {
    fn run(&self, at: &DispatchLevel, barrier: &CallDpcBarrier) {
        let outcome = self.ledgers.run(
            self.work.lock_kind,
            Path::BurstDpc,
            self.work.iterations,
            self.work.work,
            Some(at),
        );
        self.contended.fetch_add(outcome.contended, Relaxed);
        self.runs.fetch_add(1, Relaxed);
        // Every processor finishes its acquisitions before any signals done.
        barrier.synchronize();
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
