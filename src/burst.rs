//! `DPC_BURST`: one KDPC per processor, queued together, round after round.
//!
//! Only documented DDIs: each KDPC is initialized once (`KeInitializeDpc`),
//! bound to its processor (`KeGetProcessorNumberFromIndex`,
//! `KeSetTargetProcessorDpcEx`) and given high importance
//! (`KeSetImportanceDpc`), so that it runs at once on its processor even
//! when queued from another. A round queues every one (`KeInsertQueueDpc`)
//! and waits at `PASSIVE_LEVEL` on a `KEVENT` that the last DPC routine to
//! finish sets; every processor leaves `DISPATCH_LEVEL` between rounds.
//! Each DPC routine makes at most one chunk of acquisitions, so one run
//! stays within the DPC budget (docs/protocol.md, "Budgets").
//!
//! One round runs at a time (a `KMUTEX`): the DPCs and their settings are
//! the device's, shared by every request.

use core::{
    cell::UnsafeCell,
    ffi::c_void,
    ptr,
    sync::atomic::{
        AtomicU32, AtomicU64,
        Ordering::{AcqRel, Acquire, Relaxed, Release},
    },
};

use dpclock_ioctl::{LockKind, LockWork, Path};
use kspin::kernel::{DispatchLevel, dpc::DeferredRoutine};
use wdk_sys::{
    _EVENT_TYPE::SynchronizationEvent,
    _KDPC_IMPORTANCE::HighImportance,
    _KWAIT_REASON::Executive,
    _MODE::KernelMode,
    IO_NO_INCREMENT, KDPC, KEVENT, NTSTATUS, PROCESSOR_NUMBER,
    ntddk::{
        KeGetProcessorNumberFromIndex, KeInitializeDpc, KeInitializeEvent, KeInsertQueueDpc,
        KeSetEvent, KeSetImportanceDpc, KeSetTargetProcessorDpcEx, KeWaitForSingleObject,
    },
};

use crate::{
    ledger::{Ledgers, Outcome, now_ns},
    wdm::KernelMutex,
};

/// The burst's KDPCs, its completion event, and the round in flight.
pub struct Burst {
    /// One KDPC per processor, `width` of them, in the device extension's
    /// storage just past `DeviceExtension` (sized for the processor count
    /// at AddDevice; see `device::extension_size`). Kept out of the struct
    /// so that no frame ever builds them on the stack: an unoptimized build
    /// would need `__chkstk` for a frame that large, which x64's
    /// ntoskrnl.exe does not export (check-windows found it).
    dpcs: *mut KDPC,
    /// KDPCs initialized and bound to a processor: the burst's width.
    width: u32,
    /// Set by the last DPC routine of a round (auto-reset).
    done: UnsafeCell<KEVENT>,
    /// One round at a time.
    control: KernelMutex,
    // The round in flight: written before the DPCs are queued (the queueing
    // orders them before the routines' reads), read by the routines.
    kind: AtomicU32,
    iterations: AtomicU32,
    work: AtomicU32,
    /// DPC routines of the round still to finish.
    remaining: AtomicU32,
    runs: AtomicU32,
    contended: AtomicU64,
    /// The round's longest DPC routine run, ns.
    longest: AtomicU64,
}

/// What one round did.
pub struct Round {
    /// Acquisitions made and found contended, over every processor.
    pub outcome: Outcome,
    /// DPC routines that ran (the burst's width).
    pub runs: u32,
    /// The longest of them, ns.
    pub longest_ns: u64,
}

impl Burst {
    /// Storage for [`Burst::initialize`].
    pub const fn uninitialized() -> Self {
        Self {
            dpcs: ptr::null_mut(),
            width: 0,
            // SAFETY: as above, for KeInitializeEvent.
            done: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            control: KernelMutex::uninitialized(),
            kind: AtomicU32::new(0),
            iterations: AtomicU32::new(0),
            work: AtomicU32::new(0),
            remaining: AtomicU32::new(0),
            runs: AtomicU32::new(0),
            contended: AtomicU64::new(0),
            longest: AtomicU64::new(0),
        }
    }

    /// Initializes one KDPC per processor in `dpcs`, each calling
    /// `R::run(context)` through kspin's DPC trampoline, bound to its
    /// processor. `PASSIVE_LEVEL`.
    ///
    /// # Safety
    ///
    /// `this`, and the `processors` KDPCs of storage at `dpcs`, stay put
    /// and `context` stays valid until no burst DPC can run any more
    /// (REMOVE_DEVICE: the remove lock drained, then `KeFlushQueuedDpcs`).
    pub unsafe fn initialize<R: DeferredRoutine>(
        this: *mut Self,
        dpcs: *mut KDPC,
        context: *const R,
        processors: u32,
    ) -> Result<(), NTSTATUS> {
        for index in 0..processors {
            // SAFETY: valid, fixed storage (caller); a plain out-parameter.
            unsafe {
                let dpc = dpcs.add(index as usize);
                KeInitializeDpc(
                    dpc,
                    Some(kspin::kernel::dpc::deferred_routine::<KDPC, R>),
                    context.cast_mut().cast::<c_void>(),
                );
                let mut number: PROCESSOR_NUMBER = core::mem::zeroed();
                let status = KeGetProcessorNumberFromIndex(index, &raw mut number);
                if status < 0 {
                    return Err(status);
                }
                let status = KeSetTargetProcessorDpcEx(dpc, &raw mut number);
                if status < 0 {
                    return Err(status);
                }
                KeSetImportanceDpc(dpc, HighImportance);
            }
        }
        // SAFETY: valid, fixed storage (caller).
        unsafe {
            (*this).dpcs = dpcs;
            (*this).width = processors;
            KeInitializeEvent((*this).done.get(), SynchronizationEvent, 0);
            KernelMutex::initialize(&raw mut (*this).control);
        }
        Ok(())
    }

    /// One round: every processor's DPC makes `iterations` acquisitions of
    /// `work`'s lock (at most one chunk), and this returns when all of them
    /// have finished. `PASSIVE_LEVEL`.
    pub fn round(&self, work: LockWork, iterations: u32) -> Round {
        let _control = self.control.lock();
        self.kind.store(work.lock_kind as u32, Relaxed);
        self.iterations.store(iterations, Relaxed);
        self.work.store(work.work, Relaxed);
        self.runs.store(0, Relaxed);
        self.contended.store(0, Relaxed);
        self.longest.store(0, Relaxed);
        // Published with the settings above: each routine's first read of
        // `remaining` (Acquire) sees this store, or a later decrement of it.
        self.remaining.store(self.width, Release);
        for index in 0..self.width as usize {
            // SAFETY: one of the `width` KDPCs `initialize` set up, at a
            // fixed address. It is not queued: the previous round ended only
            // when every routine had run. (FALSE, "already queued", cannot
            // happen, and would only mean it runs once.)
            let _ =
                unsafe { KeInsertQueueDpc(self.dpcs.add(index), ptr::null_mut(), ptr::null_mut()) };
        }
        // SAFETY: an initialized event; a non-alertable kernel-mode wait
        // with no timeout, at PASSIVE_LEVEL, returns once it is set.
        let _ = unsafe {
            KeWaitForSingleObject(
                self.done.get().cast(),
                Executive,
                KernelMode as i8,
                0,
                ptr::null_mut(),
            )
        };
        let runs = self.runs.load(Relaxed);
        Round {
            outcome: Outcome {
                acquisitions: u64::from(iterations) * u64::from(runs),
                contended: self.contended.load(Relaxed),
            },
            runs,
            longest_ns: self.longest.load(Relaxed),
        }
    }

    /// One processor's share of the round in flight, from its DPC.
    pub fn run(&self, ledgers: &Ledgers, at: &DispatchLevel) {
        let start = now_ns();
        // Pairs with the Release store in `round`: the settings are this
        // round's.
        let _ = self.remaining.load(Acquire);
        let kind = LockKind::from_u32(self.kind.load(Relaxed)).unwrap_or(LockKind::Plain);
        let outcome = ledgers.run(
            kind,
            Path::BurstDpc,
            self.iterations.load(Relaxed),
            self.work.load(Relaxed),
            Some(at),
        );
        self.contended.fetch_add(outcome.contended, Relaxed);
        self.runs.fetch_add(1, Relaxed);
        self.longest
            .fetch_max(now_ns().saturating_sub(start), Relaxed);
        // AcqRel: each routine publishes its counts with its decrement, and
        // the last one sees them all before it wakes the IOCTL (the event
        // orders them before the IOCTL's reads).
        if self.remaining.fetch_sub(1, AcqRel) == 1 {
            // The last routine of the round wakes the waiting IOCTL. After
            // this call the routine touches nothing of the burst's: the next
            // round may begin at once.
            // SAFETY: an initialized event, at DISPATCH_LEVEL with Wait FALSE.
            let _ = unsafe { KeSetEvent(self.done.get(), IO_NO_INCREMENT as i32, 0) };
        }
    }
}

// SAFETY: the KDPCs (behind `dpcs`) and the event are kernel objects that
// synchronize themselves; the round's settings and results are atomics;
// `dpcs` and `width` are written only in AddDevice, before the device is
// shared.
unsafe impl Sync for Burst {}
