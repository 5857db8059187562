//! The shared ledger, the locks that protect it, and the one loop that every
//! path (IOCTL at `PASSIVE_LEVEL`, IOCTL raised to `DISPATCH_LEVEL`, burst
//! DPCs, timer DPC) runs to update it.
//!
//! There is one ledger per [`LockKind`]: behind an executive spin lock, behind
//! an in-stack queued spin lock, and with no lock at all (the control that
//! shows the harness can see lost updates). A lock protects exactly one
//! ledger, so plain and queued acquisitions never mix on one `KSPIN_LOCK`.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dpclock_ioctl::{LedgerStats, LockKind, PATH_COUNT, Path, update_mix};
use kspin::{
    LockClass, Platform,
    kernel::{DispatchLevel, QueuedSpinLock, SpinLock},
};

/// The performance counter in ns (`KeQueryPerformanceCounter`, any IRQL).
pub fn now_ns() -> u64 {
    kspin::kernel::Kernel::now_ns()
}

/// Lock class of the plain ledger's lock (names it in validator reports).
pub static PLAIN_LEDGER_CLASS: LockClass = LockClass::new("dpclock.ledger.plain");
/// Lock class of the queued ledger's lock.
pub static QUEUED_LEDGER_CLASS: LockClass = LockClass::new("dpclock.ledger.queued");

/// What every path updates: an update count per path, their total, and a
/// checksum over every update's count. The fields only stay consistent if
/// no two updates run at once, and nothing makes an update atomic except
/// holding the lock: they are plain integers, changed through `&mut self`,
/// which the lock hands out to one holder at a time.
pub struct Ledger {
    updates: [u64; PATH_COUNT],
    total: u64,
    checksum: u64,
    /// Where the simulated work leaves its result, so it is not optimized away.
    scratch: u64,
}

/// One ledger's state at one moment.
pub struct Snapshot {
    pub updates: [u64; PATH_COUNT],
    pub total: u64,
    pub checksum: u64,
}

/// The arithmetic of one update from `path`, given the path's count and the
/// scratch value before it: the new count, the new scratch value (after
/// `work` units of computation) and the checksum term. Shared by the locked
/// ledger and the racy control, so that both do exactly the same updates.
fn step(path: Path, count: u64, scratch: u64, work: u32) -> (u64, u64, u64) {
    let count = count + 1;
    let mut x = scratch;
    for _ in 0..work {
        x = x.wrapping_mul(0x5851_F42D_4C95_7F2D).wrapping_add(count);
    }
    (count, x, update_mix(path as u32, count))
}

impl Ledger {
    const fn new() -> Self {
        Self {
            updates: [0; PATH_COUNT],
            total: 0,
            checksum: 0,
            scratch: 0,
        }
    }

    /// One update from `path`, doing `work` units of computation between
    /// reading the path's count and writing it back.
    fn update(&mut self, path: Path, work: u32) {
        let index = path as usize;
        let (count, scratch, mix) = step(path, self.updates[index], self.scratch, work);
        self.scratch = scratch;
        self.updates[index] = count;
        self.total += 1;
        self.checksum = self.checksum.wrapping_add(mix);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            updates: self.updates,
            total: self.total,
            checksum: self.checksum,
        }
    }

    fn clear(&mut self) {
        *self = Self::new();
    }
}

/// The control: the same updates as a [`Ledger`], with no lock, so that the
/// harness can show it losing them. Its fields are atomics only so that the
/// race is a lost update and not undefined behaviour: each update still
/// reads and writes them in separate steps, with the work in between, which
/// is exactly the window the lock closes.
struct RacyLedger {
    updates: [AtomicU64; PATH_COUNT],
    total: AtomicU64,
    checksum: AtomicU64,
    scratch: AtomicU64,
}

impl RacyLedger {
    const fn new() -> Self {
        Self {
            updates: [const { AtomicU64::new(0) }; PATH_COUNT],
            total: AtomicU64::new(0),
            checksum: AtomicU64::new(0),
            scratch: AtomicU64::new(0),
        }
    }

    fn update(&self, path: Path, work: u32) {
        let index = path as usize;
        let (count, scratch, mix) = step(
            path,
            self.updates[index].load(Relaxed),
            self.scratch.load(Relaxed),
            work,
        );
        self.scratch.store(scratch, Relaxed);
        self.updates[index].store(count, Relaxed);
        self.total.store(self.total.load(Relaxed) + 1, Relaxed);
        self.checksum
            .store(self.checksum.load(Relaxed).wrapping_add(mix), Relaxed);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            updates: core::array::from_fn(|i| self.updates[i].load(Relaxed)),
            total: self.total.load(Relaxed),
            checksum: self.checksum.load(Relaxed),
        }
    }

    fn clear(&self) {
        for field in self
            .updates
            .iter()
            .chain([&self.total, &self.checksum, &self.scratch])
        {
            field.store(0, Relaxed);
        }
    }
}

/// What the driver did, counted with interlocked operations outside the lock:
/// the numbers the ledger's own fields must agree with.
struct Counters {
    performed: [AtomicU64; PATH_COUNT],
    contended: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Self {
            performed: [const { AtomicU64::new(0) }; PATH_COUNT],
            contended: AtomicU64::new(0),
        }
    }
}

/// The result of one [`Ledgers::run`].
#[derive(Clone, Copy, Default)]
pub struct Outcome {
    /// Acquisitions made (for the unlocked control: updates made).
    pub acquisitions: u64,
    /// Acquisitions that found the lock already held.
    pub contended: u64,
}

/// The three ledgers and their counters.
pub struct Ledgers {
    plain: SpinLock<Ledger>,
    queued: QueuedSpinLock<Ledger>,
    /// The control: the same updates with no lock. A test aid, refused
    /// unless enabled (see `AllowUnlockedControl` in docs/protocol.md).
    unlocked: RacyLedger,
    counters: [Counters; 3],
    /// The longest hold of either lock since the last reset, in ns.
    max_hold_ns: AtomicU64,
}

impl Ledgers {
    pub const fn new() -> Self {
        Self {
            plain: SpinLock::new(Ledger::new(), &PLAIN_LEDGER_CLASS),
            queued: QueuedSpinLock::new(Ledger::new(), &QUEUED_LEDGER_CLASS),
            unlocked: RacyLedger::new(),
            counters: [const { Counters::new() }; 3],
            max_hold_ns: AtomicU64::new(0),
        }
    }

    /// Makes `iterations` updates of `kind`'s ledger from `path`, each under
    /// its own acquisition of the ledger's lock. Callers keep `iterations`
    /// within one chunk (`limits::chunk_iterations`) where they run at
    /// `DISPATCH_LEVEL`, so that the run fits the DPC budget.
    ///
    /// `at` is the proof of `DISPATCH_LEVEL` when the caller runs there (a DPC
    /// routine, or the IOCTL path inside `at_dispatch_level`): the loop then
    /// uses the `AtDpcLevel` acquire. Without it (an IOCTL at
    /// `PASSIVE_LEVEL`) each acquisition raises and restores the IRQL.
    pub fn run(
        &self,
        kind: LockKind,
        path: Path,
        iterations: u32,
        work: u32,
        at: Option<&DispatchLevel>,
    ) -> Outcome {
        let mut contended = 0_u64;
        // The longest hold of this run, kept in a local: the shared maximum
        // is updated once, after the last release.
        let mut longest = 0_u64;
        // A racy look at the lock word just before each acquisition counts
        // the acquisitions that will have to wait.
        let mut busy = |locked: Option<bool>| contended += u64::from(locked == Some(true));
        // The hold is timed from just after the acquire returns to just
        // before the release: two reads of the performance counter, the only
        // thing added under the lock.
        let timed_update = |ledger: &mut Ledger| {
            let start = now_ns();
            ledger.update(path, work);
            now_ns().saturating_sub(start)
        };
        match (kind, at) {
            (LockKind::Plain, None) => {
                for _ in 0..iterations {
                    busy(self.plain.is_locked());
                    // KeAcquireSpinLock … KeReleaseSpinLock, restoring the IRQL.
                    longest = longest.max(self.plain.with(timed_update));
                }
            }
            (LockKind::Plain, Some(at)) => {
                for _ in 0..iterations {
                    busy(self.plain.is_locked());
                    let mut ledger = self.plain.lock_at_dpc_level(at); // KeAcquireSpinLockAtDpcLevel
                    let held = timed_update(&mut ledger);
                    drop(ledger); // KeReleaseSpinLockFromDpcLevel
                    longest = longest.max(held);
                }
            }
            (LockKind::Queued, None) => {
                for _ in 0..iterations {
                    busy(self.queued.is_locked());
                    // KeAcquireInStackQueuedSpinLock … KeReleaseInStackQueuedSpinLock.
                    longest = longest.max(self.queued.with(timed_update));
                }
            }
            (LockKind::Queued, Some(at)) => {
                for _ in 0..iterations {
                    busy(self.queued.is_locked());
                    // The same at DISPATCH_LEVEL: the AtDpcLevel/FromDpcLevel pair.
                    longest = longest.max(self.queued.with_at_dpc_level(at, timed_update));
                }
            }
            (LockKind::Unlocked, _) => {
                // No lock, so no hold to time.
                for _ in 0..iterations {
                    self.unlocked.update(path, work);
                }
            }
        }
        self.max_hold_ns.fetch_max(longest, Relaxed);
        let counters = &self.counters[kind.index()];
        counters.performed[path as usize].fetch_add(u64::from(iterations), Relaxed);
        counters.contended.fetch_add(contended, Relaxed);
        Outcome {
            acquisitions: u64::from(iterations),
            contended,
        }
    }

    /// The longest hold since the last reset, in ns.
    pub fn max_hold_ns(&self) -> u64 {
        self.max_hold_ns.load(Relaxed)
    }

    /// Each ledger, read under its lock, with its counters.
    pub fn stats(&self) -> [LedgerStats; 3] {
        LockKind::ALL.map(|kind| {
            // Copy under the lock; build the report after releasing it. An
            // inspection, so that reading the hold-time statistics does not
            // add to them.
            let snapshot = match kind {
                LockKind::Plain => self.plain.inspect(|ledger| ledger.snapshot()),
                LockKind::Queued => self.queued.inspect(|ledger| ledger.snapshot()),
                LockKind::Unlocked => self.unlocked.snapshot(),
            };
            let counters = &self.counters[kind.index()];
            LedgerStats {
                updates: snapshot.updates,
                total: snapshot.total,
                checksum: snapshot.checksum,
                performed: core::array::from_fn(|i| counters.performed[i].load(Relaxed)),
                contended: counters.contended.load(Relaxed),
                hold: hold_stats(kind),
            }
        })
    }

    /// Zeroes the ledgers (each under its lock) and the counters.
    pub fn reset(&self) {
        self.plain.with(Ledger::clear);
        self.queued.with(Ledger::clear);
        self.unlocked.clear();
        self.max_hold_ns.store(0, Relaxed);
        for counters in &self.counters {
            for counter in counters.performed.iter().chain([&counters.contended]) {
                counter.store(0, Relaxed);
            }
        }
        #[cfg(feature = "checked")]
        {
            PLAIN_LEDGER_CLASS.reset_hold_stats();
            QUEUED_LEDGER_CLASS.reset_hold_stats();
            kspin::checked::reset_violations();
        }
    }
}

/// The validator's hold-time statistics for `kind`'s lock (checked builds).
#[cfg(feature = "checked")]
fn hold_stats(kind: LockKind) -> dpclock_ioctl::HoldStats {
    let class = match kind {
        LockKind::Plain => &PLAIN_LEDGER_CLASS,
        LockKind::Queued => &QUEUED_LEDGER_CLASS,
        LockKind::Unlocked => return dpclock_ioctl::HoldStats::default(),
    };
    let s = class.hold_stats();
    dpclock_ioctl::HoldStats {
        count: s.count,
        total_ns: s.total_ns,
        max_ns: s.max_ns,
        over_guidance: s.over_guidance,
        histogram: s.histogram,
    }
}

#[cfg(not(feature = "checked"))]
fn hold_stats(_: LockKind) -> dpclock_ioctl::HoldStats {
    dpclock_ioctl::HoldStats::default()
}

/// Makes updates from every path in an interleaved order and checks the
/// ledger against the verification rule of docs/protocol.md (used by the
/// driver's host unit tests; the lock plays no part in the rule itself).
#[cfg(test)]
pub fn check_update_rule_against_protocol() {
    let mut ledger = Ledger::new();
    let racy = RacyLedger::new();
    let mut counts = [0_u64; PATH_COUNT];
    for step in 0..1000_u32 {
        let path = Path::ALL[(step as usize * 7) % PATH_COUNT];
        ledger.update(path, step % 5);
        racy.update(path, step % 5);
        counts[path as usize] += 1;
    }
    for snapshot in [ledger.snapshot(), racy.snapshot()] {
        assert_eq!(snapshot.updates, counts);
        assert_eq!(snapshot.total, counts.iter().sum::<u64>());
        assert_eq!(snapshot.checksum, dpclock_ioctl::expected_checksum(&counts));
    }
    ledger.clear();
    racy.clear();
    assert_eq!((ledger.snapshot().total, racy.snapshot().total), (0, 0));
}
