//! The shared ledger, the locks that protect it, and the one loop that every
//! path (IOCTL at `PASSIVE_LEVEL`, IOCTL raised to `DISPATCH_LEVEL`, burst
//! DPCs, timer DPC) runs to update it.
//!
//! There is one ledger per [`LockKind`]: behind an executive spin lock, behind
//! an in-stack queued spin lock, and with no lock at all (the control that
//! shows the harness can see lost updates). A lock protects exactly one
//! ledger, so plain and queued acquisitions never mix on one `KSPIN_LOCK`.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dpclock_ioctl::{LedgerStats, LockKind, PATH_COUNT, Path, limits, update_mix};
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
    /// Acquisitions made (for the unlocked control: updates made). At least
    /// one when any was asked for; fewer than asked only when the run's
    /// budget ran out.
    pub acquisitions: u64,
    /// Acquisitions that found the lock already held.
    pub contended: u64,
    /// The run ended because its budget was spent (see [`Until::Budget`]).
    pub budget_spent: bool,
}

/// How a run at `DISPATCH_LEVEL` ends.
#[derive(Clone, Copy)]
pub enum Until {
    /// Once every acquisition asked for is made: the timer tick, whose count
    /// is exact (docs/protocol.md, "The timer's acquisitions") and whose own
    /// work `TIMER_START` bounded (`limits::timer_tick_fits`).
    Count,
    /// Once every acquisition asked for is made, or once
    /// `limits::DPC_BUDGET_NS` has passed since `began_ns` (`now_ns`, when
    /// the caller's DPC routine or raised section began), whichever comes
    /// first. The clock is read once per acquisition, after the release.
    Budget { began_ns: u64 },
}

/// A caller at `DISPATCH_LEVEL`: its proof, and when its run ends.
#[derive(Clone, Copy)]
pub struct Raised<'a> {
    pub at: &'a DispatchLevel,
    pub until: Until,
}

/// One hold in this many is timed (the first of each run, then every 16th):
/// timing a hold takes two reads of the performance counter inside it, which
/// Microsoft asks drivers to read "as infrequently as possible".
pub const HOLD_SAMPLE: u32 = 16;

/// What [`acquisition_loop`] did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Progress {
    made: u32,
    /// The longest sampled hold, ns.
    longest_ns: u64,
    budget_spent: bool,
}

/// The loop of every run, apart from the lock: up to `iterations` calls of
/// `acquire`, which makes one acquisition and, when told to, times its hold
/// and returns it (else 0). The hold is timed on a sample: the first
/// acquisition, then one in [`HOLD_SAMPLE`]. With a `deadline`, `now` is
/// read once after each acquisition (after its release, so never inside the
/// lock), and the loop ends at the first reading at or past the deadline:
/// one acquisition is always made, so every caller progresses, and a run
/// lasts at most until its deadline plus one acquisition and one reading.
fn acquisition_loop(
    iterations: u32,
    deadline: Option<u64>,
    mut now: impl FnMut() -> u64,
    mut acquire: impl FnMut(bool) -> u64,
) -> Progress {
    let mut progress = Progress::default();
    while progress.made < iterations {
        let held = acquire(progress.made % HOLD_SAMPLE == 0);
        progress.longest_ns = progress.longest_ns.max(held);
        progress.made += 1;
        if let Some(deadline) = deadline
            && now() >= deadline
        {
            progress.budget_spent = true;
            break;
        }
    }
    progress
}

/// The three ledgers and their counters.
pub struct Ledgers {
    plain: SpinLock<Ledger>,
    queued: QueuedSpinLock<Ledger>,
    /// The control: the same updates with no lock. A test aid, refused
    /// unless enabled (see `AllowUnlockedControl` in docs/protocol.md).
    unlocked: RacyLedger,
    counters: [Counters; 3],
    /// The longest sampled hold of either lock since the last reset, in ns
    /// (one hold in [`HOLD_SAMPLE`] is timed).
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

    /// Makes up to `iterations` updates of `kind`'s ledger from `path`, each
    /// under its own acquisition of the ledger's lock, and returns how many
    /// it made.
    ///
    /// `raised` is given when the caller runs at `DISPATCH_LEVEL` (a DPC
    /// routine, or the IOCTL path inside `at_dispatch_level`): the loop then
    /// uses the `AtDpcLevel` acquire with its proof, and ends as its
    /// [`Until`] says; with [`Until::Budget`] it may make fewer than
    /// `iterations` (at least one). Without it (an IOCTL at
    /// `PASSIVE_LEVEL`) each acquisition raises and restores the IRQL, and
    /// every one asked for is made.
    pub fn run(
        &self,
        kind: LockKind,
        path: Path,
        iterations: u32,
        work: u32,
        raised: Option<Raised<'_>>,
    ) -> Outcome {
        let deadline = match raised {
            Some(Raised {
                until: Until::Budget { began_ns },
                ..
            }) => Some(began_ns.saturating_add(limits::DPC_BUDGET_NS)),
            _ => None,
        };
        let mut contended = 0_u64;
        // A racy look at the lock word just before each acquisition counts
        // the acquisitions that will have to wait.
        let mut busy = |locked: Option<bool>| contended += u64::from(locked == Some(true));
        // A sampled hold is timed from just after the acquire returns to
        // just before the release: two reads of the performance counter,
        // the only thing added under the lock, on one hold in HOLD_SAMPLE.
        let update = |ledger: &mut Ledger, timed: bool| {
            if timed {
                let start = now_ns();
                ledger.update(path, work);
                now_ns().saturating_sub(start)
            } else {
                ledger.update(path, work);
                0
            }
        };
        let progress = match (kind, raised.map(|r| r.at)) {
            (LockKind::Plain, None) => acquisition_loop(iterations, deadline, now_ns, |timed| {
                busy(self.plain.is_locked());
                // KeAcquireSpinLock … KeReleaseSpinLock, restoring the IRQL.
                self.plain.with(|ledger| update(ledger, timed))
            }),
            (LockKind::Plain, Some(at)) => {
                acquisition_loop(iterations, deadline, now_ns, |timed| {
                    busy(self.plain.is_locked());
                    let mut ledger = self.plain.lock_at_dpc_level(at); // KeAcquireSpinLockAtDpcLevel
                    let held = update(&mut ledger, timed);
                    drop(ledger); // KeReleaseSpinLockFromDpcLevel
                    held
                })
            }
            (LockKind::Queued, None) => acquisition_loop(iterations, deadline, now_ns, |timed| {
                busy(self.queued.is_locked());
                // KeAcquireInStackQueuedSpinLock … KeReleaseInStackQueuedSpinLock.
                self.queued.with(|ledger| update(ledger, timed))
            }),
            (LockKind::Queued, Some(at)) => {
                acquisition_loop(iterations, deadline, now_ns, |timed| {
                    busy(self.queued.is_locked());
                    // The same at DISPATCH_LEVEL: the AtDpcLevel/FromDpcLevel pair.
                    self.queued
                        .with_at_dpc_level(at, |ledger| update(ledger, timed))
                })
            }
            // No lock, so no hold to time; the same loop, so the same
            // cut-off at DISPATCH_LEVEL.
            (LockKind::Unlocked, _) => acquisition_loop(iterations, deadline, now_ns, |_| {
                self.unlocked.update(path, work);
                0
            }),
        };
        // The shared maximum is updated once, after the last release.
        self.max_hold_ns.fetch_max(progress.longest_ns, Relaxed);
        let counters = &self.counters[kind.index()];
        counters.performed[path as usize].fetch_add(u64::from(progress.made), Relaxed);
        counters.contended.fetch_add(contended, Relaxed);
        Outcome {
            acquisitions: u64::from(progress.made),
            contended,
            budget_spent: progress.budget_spent,
        }
    }

    /// The longest sampled hold since the last reset, in ns.
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

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use dpclock_ioctl::limits::DPC_BUDGET_NS;

    use super::{HOLD_SAMPLE, Progress, acquisition_loop};

    /// A fake clock that each acquisition moves on by `cost_ns`, counting
    /// its readings; runs the loop from time 0 with a deadline of one DPC
    /// budget (or none), and returns the loop's progress, the readings and
    /// which acquisitions were timed.
    fn run_with_clock(iterations: u32, cost_ns: u64, budget: bool) -> (Progress, u32, Vec<u32>) {
        let time = Cell::new(0_u64);
        let readings = Cell::new(0_u32);
        let mut made = 0_u32;
        let mut timed_at = Vec::new();
        let progress = acquisition_loop(
            iterations,
            budget.then_some(DPC_BUDGET_NS),
            || {
                readings.set(readings.get() + 1);
                time.get()
            },
            |timed| {
                time.set(time.get() + cost_ns);
                if timed {
                    timed_at.push(made);
                }
                made += 1;
                if timed { cost_ns } else { 0 }
            },
        );
        assert_eq!(made, progress.made, "the loop counts what it made");
        (progress, readings.get(), timed_at)
    }

    #[test]
    fn a_budgeted_run_ends_at_its_first_reading_past_the_budget() {
        // 30 µs per acquisition: 30, 60, 90 µs are within the budget, and
        // the reading after the fourth (120 µs) ends the run.
        let (progress, readings, _) = run_with_clock(1_000, 30_000, true);
        assert_eq!(
            progress,
            Progress {
                made: 4,
                longest_ns: 30_000,
                budget_spent: true
            }
        );
        assert_eq!(readings, 4, "one clock reading per acquisition");
        // Exactly at the budget counts as spent.
        let (progress, _, _) = run_with_clock(1_000, 25_000, true);
        assert_eq!((progress.made, progress.budget_spent), (4, true));
        // A run whose acquisitions all fit is not cut off.
        let (progress, readings, _) = run_with_clock(3, 30_000, true);
        assert_eq!(
            (progress.made, progress.budget_spent, readings),
            (3, false, 3)
        );
    }

    #[test]
    fn a_budgeted_run_always_makes_one_acquisition() {
        // One acquisition longer than the whole budget (a long wait for the
        // lock): it is made, and the run ends after it.
        let (progress, _, _) = run_with_clock(100, 5 * DPC_BUDGET_NS, true);
        assert_eq!((progress.made, progress.budget_spent), (1, true));
        let (progress, readings, _) = run_with_clock(0, 1, true);
        assert_eq!((progress.made, readings), (0, 0));
    }

    #[test]
    fn an_unbudgeted_run_makes_every_acquisition_and_reads_no_clock() {
        let (progress, readings, _) = run_with_clock(1_000, 30_000, false);
        assert_eq!((progress.made, progress.budget_spent), (1_000, false));
        assert_eq!(readings, 0);
    }

    #[test]
    fn holds_are_timed_on_a_sample_starting_with_the_first() {
        let (_, _, timed_at) = run_with_clock(50, 1, false);
        assert_eq!(timed_at, [0, HOLD_SAMPLE, 2 * HOLD_SAMPLE, 3 * HOLD_SAMPLE]);
        let (progress, _, timed_at) = run_with_clock(1, 7, false);
        assert_eq!((timed_at, progress.longest_ns), (vec![0], 7));
    }
}
