//! The periodic timer whose DPC takes a ledger lock.
//!
//! A periodic `KTIMER` (`KeSetTimerEx` with a period) queues its DPC every
//! period; the DPC is never re-armed from inside itself (which deadlocks
//! under Wine, and is needless on Windows). Changing the rate cancels the
//! timer and waits for a running DPC before arming it again, so a tick never
//! sees half of the old settings and half of the new.
//!
//! The timer queues its DPC every period whether or not the previous run has
//! finished: on Windows the next run may start on another processor, and
//! Wine runs every expiry on a thread of its own, so slow ticks pile up
//! there without bound (and with an in-stack queued lock, which hands the
//! lock to waiters strictly in turn, a pile of preemptible waiters stops all
//! progress). One tick runs at a time: a tick that finds the previous one
//! still running returns at once and is counted as skipped. That also keeps
//! the timer's share of DISPATCH_LEVEL time bounded.
//!
//! A tick is one DPC run within its budget (`TIMER_START` refuses settings
//! whose tick would not fit, `limits::timer_tick_fits`), so it ends long
//! before the next is due (the shortest period is 1 ms, a tick at most
//! 50 µs of its own work). A timer that fell behind, because its processor
//! stayed at `DISPATCH_LEVEL` or above for a period, would otherwise run
//! its queued ticks back to back without the processor dropping below
//! `DISPATCH_LEVEL` between them: a tick that starts less than half a
//! period after the previous tick ended, on any processor, returns at once
//! and is counted in `timer_back_to_back`.

use core::{
    cell::UnsafeCell,
    ffi::c_void,
    sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64,
        Ordering::{Acquire, Relaxed, Release},
    },
};

use dpclock_ioctl::{LockKind, Path, TimerWork};
use kspin::kernel::{DispatchLevel, dpc::DeferredRoutine};
use wdk_sys::{
    _TIMER_TYPE::NotificationTimer,
    KDPC, KTIMER, LARGE_INTEGER, NTSTATUS, STATUS_DELETE_PENDING,
    ntddk::{KeCancelTimer, KeFlushQueuedDpcs, KeInitializeDpc, KeInitializeTimerEx, KeSetTimerEx},
};

use crate::{
    ledger::{Ledgers, Raised, Until, now_ns},
    wdm::KernelMutex,
};

/// The timer, its DPC, and what each tick does.
pub struct PeriodicTimer {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    /// The timer's one mutex: serializes start, re-rate and stop, and the
    /// driver-wide count of armed timers (`GET_HEALTH`) with them, so that
    /// the count follows the timer (they wait, so not a spin lock).
    control: KernelMutex,
    /// Set by [`PeriodicTimer::close`] (removal has begun), under `control`:
    /// from then on `start` refuses, so that a `TIMER_START` that passed
    /// the dispatch routine's removal check just before SURPRISE_REMOVAL
    /// cannot arm the timer again after removal stopped it.
    closed: AtomicBool,
    running: AtomicBool,
    period_ms: AtomicU32,
    kind: AtomicU32,
    iterations: AtomicU32,
    work: AtomicU32,
    /// A tick is running (see the module documentation).
    in_tick: AtomicBool,
    ticks: AtomicU64,
    skipped: AtomicU64,
    /// When the last tick that ran ended (`now_ns`), 0 before the first.
    last_end_ns: AtomicU64,
    /// Ticks skipped for coming less than half a period after the last end.
    back_to_back: AtomicU64,
}

impl PeriodicTimer {
    /// Storage for [`PeriodicTimer::initialize`].
    pub const fn uninitialized() -> Self {
        Self {
            // SAFETY: KTIMER and KDPC are plain data, valid when zeroed until
            // KeInitializeTimerEx / KeInitializeDpc fill them in.
            timer: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            // SAFETY: as above.
            dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            control: KernelMutex::uninitialized(),
            closed: AtomicBool::new(false),
            running: AtomicBool::new(false),
            period_ms: AtomicU32::new(0),
            kind: AtomicU32::new(LockKind::Plain as u32),
            iterations: AtomicU32::new(0),
            work: AtomicU32::new(0),
            in_tick: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            last_end_ns: AtomicU64::new(0),
            back_to_back: AtomicU64::new(0),
        }
    }

    /// Initializes the kernel objects in place. The DPC will call
    /// `R::run(context)` through kspin's trampoline, which hands it the proof
    /// of `DISPATCH_LEVEL`.
    ///
    /// # Safety
    ///
    /// `this` stays put, and `context` stays valid, until the timer has been
    /// stopped for the last time.
    pub unsafe fn initialize<R: DeferredRoutine>(this: *mut Self, context: *const R) {
        // SAFETY: valid, fixed storage (caller).
        unsafe {
            KeInitializeTimerEx((*this).timer.get(), NotificationTimer);
            KeInitializeDpc(
                (*this).dpc.get(),
                Some(kspin::kernel::dpc::deferred_routine::<KDPC, R>),
                context.cast_mut().cast::<c_void>(),
            );
            KernelMutex::initialize(&raw mut (*this).control);
        }
    }

    /// One tick, from the timer's DPC; skipped if the previous one still
    /// runs, or if it comes back to back with it (see the module
    /// documentation).
    pub fn tick(&self, ledgers: &Ledgers, at: &DispatchLevel) {
        if self.in_tick.swap(true, Acquire) {
            self.skipped.fetch_add(1, Relaxed);
            return;
        }
        let last_end = self.last_end_ns.load(Relaxed);
        let half_period_ns = u64::from(self.period_ms.load(Relaxed)) * 500_000;
        if last_end != 0 && now_ns().saturating_sub(last_end) < half_period_ns {
            self.back_to_back.fetch_add(1, Relaxed);
            self.in_tick.store(false, Release);
            return;
        }
        self.ticks.fetch_add(1, Relaxed);
        let kind = LockKind::from_u32(self.kind.load(Relaxed)).unwrap_or(LockKind::Plain);
        // TIMER_START admitted only settings whose tick fits its budget
        // (`limits::timer_tick_fits`), so this is one bounded DPC run, and
        // it makes every acquisition: the timer's count stays exact.
        ledgers.run(
            kind,
            Path::TimerDpc,
            self.iterations.load(Relaxed),
            self.work.load(Relaxed),
            Some(Raised {
                at,
                until: Until::Count,
            }),
        );
        self.last_end_ns.store(now_ns(), Relaxed);
        self.in_tick.store(false, Release);
    }

    /// Starts the timer, or changes its rate and load; refuses with
    /// `STATUS_DELETE_PENDING` once the timer is closed.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`: it waits for the timer's mutex and, on a re-rate,
    /// for the running DPC (`KeFlushQueuedDpcs`, `PASSIVE_LEVEL` only); at
    /// `DISPATCH_LEVEL`, or in the timer's own DPC, that wait never ends.
    pub unsafe fn start(&self, settings: TimerWork) -> Result<(), NTSTATUS> {
        // SAFETY: PASSIVE_LEVEL (caller).
        let _control = unsafe { self.control.lock() };
        if self.closed.load(Relaxed) {
            return Err(STATUS_DELETE_PENDING);
        }
        if self.running.load(Relaxed) {
            // SAFETY: PASSIVE_LEVEL (caller).
            unsafe { self.cancel_and_wait() };
        }
        self.kind.store(settings.tick.lock_kind as u32, Relaxed);
        self.iterations.store(settings.tick.iterations, Relaxed);
        self.work.store(settings.tick.work, Relaxed);
        self.period_ms.store(settings.period_ms, Relaxed);
        self.last_end_ns.store(0, Relaxed);
        // First expiry one period from now (relative times are negative, in
        // 100 ns units), then every period.
        let due = LARGE_INTEGER {
            QuadPart: -i64::from(settings.period_ms) * 10_000,
        };
        // SAFETY: initialized timer and DPC, at PASSIVE_LEVEL; the period is
        // at most MAX_TIMER_PERIOD_MS, so it fits a LONG.
        unsafe {
            KeSetTimerEx(
                self.timer.get(),
                due,
                settings.period_ms as i32,
                self.dpc.get(),
            )
        };
        if !self.running.swap(true, Relaxed) {
            crate::health::timer_armed();
        }
        Ok(())
    }

    /// Stops the timer and waits until its DPC no longer runs. Returns
    /// whether it was running.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`, as for [`PeriodicTimer::start`].
    pub unsafe fn stop(&self) -> bool {
        // SAFETY: PASSIVE_LEVEL (caller).
        let _control = unsafe { self.control.lock() };
        // SAFETY: PASSIVE_LEVEL (caller), holding `control`.
        unsafe { self.stop_locked() }
    }

    /// Stops the timer for good: removal has begun. Every later `start`
    /// fails with `STATUS_DELETE_PENDING`.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`, as for [`PeriodicTimer::start`].
    pub unsafe fn close(&self) {
        // SAFETY: PASSIVE_LEVEL (caller).
        let _control = unsafe { self.control.lock() };
        // Under `control`: a `start` either ran before (and is stopped
        // below) or runs after, and sees this.
        self.closed.store(true, Relaxed);
        // SAFETY: PASSIVE_LEVEL (caller), holding `control`.
        unsafe { self.stop_locked() };
    }

    /// # Safety
    ///
    /// `PASSIVE_LEVEL`, holding `control`.
    unsafe fn stop_locked(&self) -> bool {
        let was_running = self.running.swap(false, Relaxed);
        if was_running {
            // SAFETY: PASSIVE_LEVEL (caller).
            unsafe { self.cancel_and_wait() };
            self.period_ms.store(0, Relaxed);
            crate::health::timer_disarmed();
        }
        was_running
    }

    /// `KeCancelTimer` dequeues the timer; `KeFlushQueuedDpcs` then waits for
    /// a DPC it had already queued or started (on Windows, cancelling does
    /// not wait for it).
    ///
    /// The KeFlushQueuedDpcs page warns that it "can take a long time to
    /// return", so drivers should keep it off critical paths. Here it runs
    /// on `TIMER_START` (a re-rate), `TIMER_STOP` and removal: requests of a
    /// test driver, whose callers wait for them anyway.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL` (`KeFlushQueuedDpcs`).
    unsafe fn cancel_and_wait(&self) {
        crate::wdm::debug_assert_passive_level();
        // SAFETY: an initialized timer, at PASSIVE_LEVEL (caller).
        unsafe {
            KeCancelTimer(self.timer.get());
            KeFlushQueuedDpcs();
        }
    }

    /// Whether the timer is armed.
    pub fn is_running(&self) -> bool {
        self.running.load(Relaxed)
    }

    /// The period while armed, else 0.
    pub fn period_ms(&self) -> u32 {
        self.period_ms.load(Relaxed)
    }

    /// Ticks that ran.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Relaxed)
    }

    /// Ticks skipped because the previous one still ran.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Relaxed)
    }

    /// Ticks skipped for coming back to back with the previous one.
    pub fn back_to_back(&self) -> u64 {
        self.back_to_back.load(Relaxed)
    }

    /// Zeroes the tick counts.
    pub fn reset_ticks(&self) {
        self.ticks.store(0, Relaxed);
        self.skipped.store(0, Relaxed);
        self.back_to_back.store(0, Relaxed);
    }
}
