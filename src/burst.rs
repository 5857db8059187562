//! `DPC_BURST`: one KDPC per processor, queued together, round after round.
//!
//! Only documented DDIs: each KDPC is initialized once (`KeInitializeDpc`),
//! bound to its processor (`KeGetProcessorNumberFromIndex`,
//! `KeSetTargetProcessorDpcEx`) and given high importance
//! (`KeSetImportanceDpc`), so that it runs at once on its processor even
//! when queued from another. A round queues every one (`KeInsertQueueDpc`)
//! and waits at `PASSIVE_LEVEL` on a `KEVENT` that the last DPC routine to
//! finish sets; every processor leaves `DISPATCH_LEVEL` between rounds.
//!
//! A round puts a pool of acquisitions in place (one chunk per processor,
//! or what is left of the request), and its DPC routines take them from the
//! pool in small batches. Each routine stops when the pool is empty or when
//! its run has lasted `limits::DPC_BUDGET_NS` (measured: `Until::Budget`),
//! and gives back what it took but did not make; the IOCTL carries what the
//! round left over to the next round. So however the processors contend
//! for the lock, no routine runs on past its budget by more than one
//! acquisition, and the request still makes exactly `iterations ×
//! processors` acquisitions (docs/protocol.md, "Budgets").
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

use dpclock_ioctl::{LockKind, LockWork, Path, limits};
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
    ledger::{Ledgers, Outcome, Raised, Until, now_ns},
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
    work: AtomicU32,
    /// Acquisitions a routine takes from the pool at a time.
    batch: AtomicU32,
    /// Acquisitions of the round no routine has taken (or all gave back).
    pool: AtomicU32,
    /// DPC routines of the round still to finish.
    remaining: AtomicU32,
    runs: AtomicU32,
    made: AtomicU64,
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
            work: AtomicU32::new(0),
            batch: AtomicU32::new(1),
            pool: AtomicU32::new(0),
            remaining: AtomicU32::new(0),
            runs: AtomicU32::new(0),
            made: AtomicU64::new(0),
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

    /// The burst's width: its KDPCs, one per processor.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// One round: every processor's DPC runs, and together they make up to
    /// `acquisitions` acquisitions of `work`'s lock (fewer only when their
    /// time budgets ran out first; at least one). Returns when every
    /// routine has finished.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`: it waits for a mutex and for the round's event,
    /// which at `DISPATCH_LEVEL` would wait forever for the DPCs it queued
    /// on this processor (Verifier: bugcheck 0xC4).
    pub unsafe fn round(&self, work: LockWork, acquisitions: u32) -> Round {
        crate::wdm::debug_assert_passive_level();
        // SAFETY: PASSIVE_LEVEL (caller).
        let _control = unsafe { self.control.lock() };
        self.kind.store(work.lock_kind as u32, Relaxed);
        self.work.store(work.work, Relaxed);
        // Small enough that every processor gets a share of a round's pool
        // (one chunk each), large enough that the pool's cache line is not
        // fought over on every acquisition.
        self.batch
            .store((limits::chunk_iterations(work.work) / 4).max(1), Relaxed);
        self.pool.store(acquisitions, Relaxed);
        self.runs.store(0, Relaxed);
        self.made.store(0, Relaxed);
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
        // with no timeout, at PASSIVE_LEVEL (caller), returns once it is set.
        let _ = unsafe {
            KeWaitForSingleObject(
                self.done.get().cast(),
                Executive,
                KernelMode as i8,
                0,
                ptr::null_mut(),
            )
        };
        Round {
            outcome: Outcome {
                acquisitions: self.made.load(Relaxed),
                contended: self.contended.load(Relaxed),
                budget_spent: false,
            },
            runs: self.runs.load(Relaxed),
            longest_ns: self.longest.load(Relaxed),
        }
    }

    /// One processor's share of the round in flight, from its DPC.
    pub fn run(&self, ledgers: &Ledgers, at: &DispatchLevel) {
        let began_ns = now_ns();
        // Pairs with the Release store in `round`: the settings are this
        // round's.
        let _ = self.remaining.load(Acquire);
        let kind = LockKind::from_u32(self.kind.load(Relaxed)).unwrap_or(LockKind::Plain);
        let work = self.work.load(Relaxed);
        let outcome = take_share(&self.pool, self.batch.load(Relaxed), |claimed| {
            ledgers.run(
                kind,
                Path::BurstDpc,
                claimed,
                work,
                Some(Raised {
                    at,
                    until: Until::Budget { began_ns },
                }),
            )
        });
        self.made.fetch_add(outcome.acquisitions, Relaxed);
        self.contended.fetch_add(outcome.contended, Relaxed);
        self.runs.fetch_add(1, Relaxed);
        self.longest
            .fetch_max(now_ns().saturating_sub(began_ns), Relaxed);
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

/// Takes up to `batch` acquisitions from `pool`: how many it took, 0 once
/// the pool is empty.
fn claim(pool: &AtomicU32, batch: u32) -> u32 {
    pool.fetch_update(Relaxed, Relaxed, |left| {
        (left > 0).then(|| left - left.min(batch))
    })
    .map_or(0, |left| left.min(batch))
}

/// One routine's share of a pool: takes batches and makes them with `make`
/// (a budgeted [`Ledgers::run`]) until the pool is empty or `make` reports
/// its budget spent, giving back to the pool what it took but did not make.
/// Every acquisition the pool held is either made by one routine or still in
/// the pool when all are done.
fn take_share(pool: &AtomicU32, batch: u32, mut make: impl FnMut(u32) -> Outcome) -> Outcome {
    let mut total = Outcome::default();
    loop {
        let claimed = claim(pool, batch);
        if claimed == 0 {
            return total;
        }
        let outcome = make(claimed);
        let made = u32::try_from(outcome.acquisitions).map_or(claimed, |made| made.min(claimed));
        total.acquisitions += u64::from(made);
        total.contended += outcome.contended;
        if made < claimed {
            pool.fetch_add(claimed - made, Relaxed);
        }
        if outcome.budget_spent {
            total.budget_spent = true;
            return total;
        }
    }
}

// SAFETY: the KDPCs (behind `dpcs`) and the event are kernel objects that
// synchronize themselves; the round's settings and results are atomics;
// `dpcs` and `width` are written only in AddDevice, before the device is
// shared.
unsafe impl Sync for Burst {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    use super::{claim, take_share};
    use crate::ledger::Outcome;

    #[test]
    fn claims_take_a_batch_or_what_is_left() {
        let pool = AtomicU32::new(10);
        assert_eq!(
            [
                claim(&pool, 4),
                claim(&pool, 4),
                claim(&pool, 4),
                claim(&pool, 4)
            ],
            [4, 4, 2, 0]
        );
        assert_eq!(pool.load(Relaxed), 0);
    }

    /// Rounds of four "processors" taking shares of a pool, each cut off by
    /// its budget now and then after a part of its batch (as a contended
    /// DPC is): every round makes progress, and the rounds together make
    /// exactly the request's acquisitions, as `DPC_BURST` promises.
    #[test]
    fn budget_cut_offs_carry_over_and_the_total_is_exact() {
        const REQUESTED: u64 = 4 * 10_000;
        let mut left = REQUESTED;
        let mut made = 0_u64;
        let mut rounds = 0;
        while left > 0 {
            let pool = AtomicU32::new(u32::try_from(left.min(4 * 100)).unwrap());
            let round: u64 = std::thread::scope(|scope| {
                let shares: Vec<_> = (0..4_u32)
                    .map(|cpu| {
                        let pool = &pool;
                        scope.spawn(move || {
                            let mut calls = 0_u32;
                            take_share(pool, 25, |claimed| {
                                calls += 1;
                                // Every third batch of processor `cpu` runs
                                // out of budget after `cpu + 1` acquisitions.
                                let spent = (calls + cpu).is_multiple_of(3);
                                let acquisitions =
                                    if spent { claimed.min(cpu + 1) } else { claimed };
                                Outcome {
                                    acquisitions: u64::from(acquisitions),
                                    contended: 0,
                                    budget_spent: spent,
                                }
                            })
                            .acquisitions
                        })
                    })
                    .collect();
                shares.into_iter().map(|s| s.join().unwrap()).sum()
            });
            assert!(round > 0, "a round made no acquisition");
            assert_eq!(
                u64::from(pool.load(Relaxed)) + round,
                left.min(4 * 100),
                "the pool keeps what the round did not make"
            );
            made += round;
            left -= round;
            rounds += 1;
        }
        assert_eq!(made, REQUESTED);
        assert!(rounds > REQUESTED / 400, "some rounds were cut off");
    }
}
