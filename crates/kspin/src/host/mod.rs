//! The host backend: real atomics and a per-thread simulated IRQL, so that
//! every rule of the kernel backend can be exercised by ordinary tests (and
//! model checked with loom) on any OS.
//!
//! Where Windows would bugcheck, the host backend panics with the bugcheck
//! Driver Verifier would raise, for example
//! `DRIVER_VERIFIER_DETECTED_VIOLATION (C4/0x40): KeAcquireSpinLockAtDpcLevel
//! called below DISPATCH_LEVEL`. Safe code cannot reach those panics; the
//! tests reach them through the `unsafe` escape hatches to show why they are
//! `unsafe`.
//!
//! A "thread" here plays a processor: raising its simulated IRQL is what
//! stops it being preempted by DPCs on real hardware.

mod executive;
mod queued;
mod videoport;

use core::cell::Cell;

pub use executive::Executive;
pub use queued::{InStackQueued, McsNode};
pub use videoport::{VideoPort, VideoPortState, VpStatus};

use crate::{
    level::{Irql, IrqlModel},
    platform::Platform,
};

/// The host platform: a simulated IRQL per thread.
#[derive(Debug)]
pub enum Host {}

/// An executive spin lock (`KSPIN_LOCK`) on the host.
pub type SpinLock<T> = crate::Lock<T, Executive>;
/// An in-stack queued spin lock on the host.
pub type QueuedSpinLock<T> = crate::Lock<T, InStackQueued>;
/// A video miniport spin lock on the host.
pub type VideoPortSpinLock<T> = crate::Lock<T, VideoPort>;
/// The host's proof of `DISPATCH_LEVEL`.
pub type DispatchLevel = crate::DispatchLevel<Host>;

#[cfg(not(loom))]
std::thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(0) };
    static MODELLED: Cell<bool> = const { Cell::new(true) };
    static THREAD_ID: Cell<usize> = const { Cell::new(0) };
    /// The simulated identity this thread took, given back when it ends.
    static SIMULATED: SimulatedIdentity = const { SimulatedIdentity(Cell::new(0)) };
}
#[cfg(all(not(loom), feature = "checked"))]
std::thread_local! {
    static RECORD: crate::checked::ThreadRecord = const { crate::checked::ThreadRecord::new() };
}
#[cfg(loom)]
loom::thread_local! {
    static IRQL: Cell<u8> = Cell::new(0);
    static MODELLED: Cell<bool> = Cell::new(true);
    static THREAD_ID: Cell<usize> = Cell::new(0);
}

/// Thread numbers, handed out once each: a thread that starts after another
/// ended never inherits its identity (as it would inherit a reused
/// thread-local address), so the validator's owner records cannot go stale.
/// (A plain atomic even under loom: the numbering is not part of the model.)
static NEXT_THREAD_ID: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);

/// Makes the current thread behave like Wine: every IRQL read returns
/// `PASSIVE_LEVEL` and [`Host::irql_model`] reports
/// [`IrqlModel::NotModelled`], so IRQL checks are skipped and reported as
/// unavailable. (Per thread, so that tests stay independent.)
pub fn simulate_unmodelled_irql(unmodelled: bool) {
    MODELLED.with(|m| m.set(!unmodelled));
}

/// The first identity [`simulate_thread_identity`] accepts: thread numbers
/// are handed out below it, so a simulated identity is never a thread's own.
#[cfg(not(loom))]
pub const FIRST_SIMULATED_IDENTITY: usize = usize::MAX / 2 + 1;

/// The simulated identities live threads hold.
#[cfg(not(loom))]
static SIMULATED_IN_USE: std::sync::Mutex<std::vec::Vec<usize>> =
    std::sync::Mutex::new(std::vec::Vec::new());

/// A thread's simulated identity (0: none), given back when the thread ends.
#[cfg(not(loom))]
struct SimulatedIdentity(Cell<usize>);

#[cfg(not(loom))]
impl Drop for SimulatedIdentity {
    fn drop(&mut self) {
        give_back(self.0.get());
    }
}

#[cfg(not(loom))]
fn in_use() -> std::sync::MutexGuard<'static, std::vec::Vec<usize>> {
    SIMULATED_IN_USE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(not(loom))]
fn give_back(identity: usize) {
    if identity != 0 {
        in_use().retain(|&live| live != identity);
    }
}

/// Makes [`Host::current_thread`] return `identity` on this thread from now
/// on, as a kernel thread created after another exited may get the dead
/// thread's `KTHREAD` address: for testing that the validator never lets a
/// later thread inherit an earlier one's records. (0 gives a fresh number
/// of its own.)
///
/// # Panics
///
/// If `identity` is below [`FIRST_SIMULATED_IDENTITY`] (a thread's own
/// number), or another live thread holds it: two live threads with one
/// identity would be one thread to the validator, and a thread waiting for
/// a lock the other holds would be stopped as a recursive acquire. The
/// identity is free again once the thread that held it ends or changes it.
#[cfg(not(loom))]
pub fn simulate_thread_identity(identity: usize) {
    assert!(
        identity == 0 || identity >= FIRST_SIMULATED_IDENTITY,
        "simulate_thread_identity({identity:#x}): below FIRST_SIMULATED_IDENTITY, a thread's own number"
    );
    SIMULATED.with(|mine| {
        if identity == mine.0.get() {
            return;
        }
        if identity != 0 {
            let mut live = in_use();
            assert!(
                !live.contains(&identity),
                "simulate_thread_identity({identity:#x}): a live thread holds this identity"
            );
            live.push(identity);
        }
        give_back(mine.0.replace(identity));
        THREAD_ID.with(|id| id.set(identity));
    });
}

fn irql() -> Irql {
    if MODELLED.with(Cell::get) {
        Irql(IRQL.with(Cell::get))
    } else {
        Irql::PASSIVE
    }
}

fn set_irql(new: Irql) {
    IRQL.with(|i| i.set(new.0));
}

/// Panics the way Driver Verifier would bugcheck, if the simulated IRQL is
/// not `expected` (only where IRQL is modelled).
#[track_caller]
fn verify_irql(ok: impl FnOnce(Irql) -> bool, bugcheck: &str) {
    if MODELLED.with(Cell::get) {
        let now = Irql(IRQL.with(Cell::get));
        assert!(
            ok(now),
            "DRIVER_VERIFIER_DETECTED_VIOLATION ({bugcheck}) at IRQL {}",
            now.0
        );
    }
}

// SAFETY: the simulated IRQL is per thread and only changed by raise/lower,
// so a thread's reads report what its raises and lowers set; a thread plays
// the part of a processor.
unsafe impl Platform for Host {
    fn current_irql() -> Irql {
        irql()
    }

    unsafe fn raise_irql(new: Irql) -> Irql {
        verify_irql(|now| now <= new, "C4/0x30: KeRaiseIrql to a lower IRQL");
        let old = Irql(IRQL.with(Cell::get));
        set_irql(new);
        old
    }

    unsafe fn lower_irql(new: Irql) {
        verify_irql(|now| now >= new, "C4/0x31: KeLowerIrql to a higher IRQL");
        set_irql(new);
    }

    fn irql_model() -> IrqlModel {
        if MODELLED.with(Cell::get) {
            IrqlModel::Modelled
        } else {
            IrqlModel::NotModelled
        }
    }

    fn current_thread() -> usize {
        THREAD_ID.with(|id| {
            if id.get() == 0 {
                id.set(NEXT_THREAD_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
            }
            id.get()
        })
    }

    fn now_ns() -> u64 {
        use std::{sync::OnceLock, time::Instant};
        static BASE: OnceLock<Instant> = OnceLock::new();
        let base = BASE.get_or_init(Instant::now);
        u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn fail_stop(violation: &'static str, lock: usize) -> ! {
        panic!("kspin checked: {violation} (lock {lock:#x})")
    }

    #[cfg(all(not(loom), feature = "checked"))]
    fn with_thread_record<R>(f: impl FnOnce(&crate::checked::ThreadRecord) -> R) -> Option<R> {
        // (None once the thread's locals are gone, as it ends.)
        RECORD.try_with(f).ok()
    }
}

/// [`crate::at_dispatch_level`] on the host platform, without naming it.
#[inline]
pub fn at_dispatch_level<R>(f: impl FnOnce(&DispatchLevel) -> R) -> R {
    crate::at_dispatch_level::<Host, R>(f)
}

/// Runs `f` as the kernel runs a DPC routine: at `DISPATCH_LEVEL`, with the
/// proof, then back at the IRQL of the caller (also when `f` unwinds). Like
/// Driver Verifier, it insists the routine returns at the IRQL it was called
/// at.
pub fn run_as_dpc<R>(f: impl FnOnce(&DispatchLevel) -> R) -> R {
    /// Puts the simulated IRQL back when the "DPC" ends, however it ends.
    struct Restore(Irql);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_irql(self.0);
        }
    }
    verify_irql(
        |now| now <= Irql::DISPATCH,
        "0xA: DPC queued above DISPATCH_LEVEL",
    );
    let _restore = Restore(Irql(IRQL.with(Cell::get)));
    set_irql(Irql::DISPATCH);
    // SAFETY: this thread's simulated IRQL is DISPATCH_LEVEL for the call:
    // safe code cannot lower it inside (every raise in kspin restores what it
    // found), which the check below confirms.
    let result = unsafe { crate::assume_dispatch_level::<Host, R>(f) };
    verify_irql(
        |now| now == Irql::DISPATCH,
        "0xC8: DPC routine returned at another IRQL",
    );
    result
}

/// Acquire side of the test-and-set lock shared by the executive and video
/// port host backends.
fn spin_acquire(word: &crate::sync::AtomicBool) {
    use crate::sync::Ordering;
    while word
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        while word.load(Ordering::Relaxed) {
            crate::sync::spin_loop();
        }
    }
}

fn spin_release(word: &crate::sync::AtomicBool) {
    word.store(false, crate::sync::Ordering::Release);
}
