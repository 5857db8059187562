//! The validator (feature `checked`), in the spirit of Linux's lockdep and
//! Windows' Driver Verifier.
//!
//! * **Owner tracking.** Each lock records the thread holding it. Acquiring a
//!   lock the thread already holds would spin forever; the validator counts
//!   it and fail-stops instead (a bugcheck with code `KSPN` in the kernel, a
//!   panic on the host). A release by another thread is counted.
//! * **IRQL assertions.** The raising acquire must run at or below
//!   `DISPATCH_LEVEL`, the `AtDpcLevel` acquire and every release at
//!   `DISPATCH_LEVEL`; and a raising release must not drop the IRQL below
//!   `DISPATCH_LEVEL` while the thread still holds other spin locks (raising
//!   guards released out of order). Where the platform cannot read the IRQL
//!   (Wine), these checks are skipped and [`Report::irql_checks`] says so.
//! * **Lock order.** Locks belong to classes ([`LockClass`]); acquiring a
//!   class while holding another records an edge in a class graph, and an
//!   acquisition that closes a cycle (A→B somewhere, B→A here) is counted as
//!   an inversion, before any deadlock happens.
//! * **Hold times.** Each class keeps the count, total and maximum hold time,
//!   a log2 histogram, and the count of holds over the 25 µs that Microsoft's
//!   guidance allows, as a plain `#[repr(C)]` [`HoldStats`] a driver can copy
//!   out to user mode.
//!
//! All state is fixed-size and lock-free (atomics only), so the checks run at
//! `DISPATCH_LEVEL` without allocating or logging. Violations are counted,
//! never printed: a driver reports them once it holds no lock.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::{
    class::LockClass,
    irql::{Irql, IrqlModel},
    platform::Platform,
};

/// Microsoft's guidance: no routine should hold a spin lock for longer than
/// 25 microseconds.
pub const HOLD_GUIDANCE_NS: u64 = 25_000;
/// Buckets of [`HoldStats::histogram`]: bucket `i` counts holds of
/// `2^i..2^(i+1)` nanoseconds (bucket 0 also counts 0 ns, the last one
/// everything longer).
pub const HISTOGRAM_BUCKETS: usize = 32;
/// Classes the order graph can track; later classes are not order-checked.
pub const MAX_CLASSES: usize = 64;
/// Locks that can be held at once, system-wide, for order checking.
pub const MAX_HELD: usize = 64;

/// Hold-time statistics of one lock class.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldStats {
    /// Acquisitions released so far.
    pub count: u64,
    /// Sum of hold times, in nanoseconds.
    pub total_ns: u64,
    /// Longest hold, in nanoseconds.
    pub max_ns: u64,
    /// Holds longer than [`HOLD_GUIDANCE_NS`].
    pub over_guidance: u64,
    /// Log2 histogram of hold times (see [`HISTOGRAM_BUCKETS`]).
    pub histogram: [u64; HISTOGRAM_BUCKETS],
}

/// Violation counters, system-wide.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    /// Acquisitions of a lock the thread already held (each fail-stopped).
    pub recursive_acquires: u64,
    /// Releases by a thread other than the one that acquired.
    pub foreign_releases: u64,
    /// Acquisitions that closed a cycle in the class order graph.
    pub order_inversions: u64,
    /// Acquisitions at the wrong IRQL.
    pub irql_at_acquire: u64,
    /// Releases at the wrong IRQL.
    pub irql_at_release: u64,
    /// Raising releases that dropped below `DISPATCH_LEVEL` while the thread
    /// still held other spin locks.
    pub release_order: u64,
}

/// What the validator has seen, for copying out to user mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// 1 if IRQL assertions ran, 0 if the platform cannot read the IRQL
    /// ([`IrqlModel::NotModelled`]) and they were skipped.
    pub irql_checks: u32,
    /// Lock classes the order graph knows.
    pub classes: u32,
    /// The counters.
    pub violations: Violations,
}

/// The validator's state and statistics for one lock class.
pub(crate) struct ClassState {
    /// 1-based index in the order graph; 0 until first acquired.
    id: AtomicU32,
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    over_guidance: AtomicU64,
    histogram: [AtomicU64; HISTOGRAM_BUCKETS],
}

impl ClassState {
    pub(crate) const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        Self {
            id: AtomicU32::new(0),
            count: ZERO,
            total_ns: ZERO,
            max_ns: ZERO,
            over_guidance: ZERO,
            histogram: [ZERO; HISTOGRAM_BUCKETS],
        }
    }

    fn record(&self, hold_ns: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(hold_ns, Ordering::Relaxed);
        self.max_ns.fetch_max(hold_ns, Ordering::Relaxed);
        if hold_ns > HOLD_GUIDANCE_NS {
            self.over_guidance.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = (u64::BITS - 1).saturating_sub(hold_ns.max(1).leading_zeros()) as usize;
        self.histogram[bucket.min(HISTOGRAM_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }
}

impl LockClass {
    /// The class's hold-time statistics so far.
    #[must_use]
    pub fn hold_stats(&self) -> HoldStats {
        let c = &self.checked;
        HoldStats {
            count: c.count.load(Ordering::Relaxed),
            total_ns: c.total_ns.load(Ordering::Relaxed),
            max_ns: c.max_ns.load(Ordering::Relaxed),
            over_guidance: c.over_guidance.load(Ordering::Relaxed),
            histogram: core::array::from_fn(|i| c.histogram[i].load(Ordering::Relaxed)),
        }
    }

    /// Zeroes the class's hold-time statistics.
    pub fn reset_hold_stats(&self) {
        let c = &self.checked;
        for counter in [&c.count, &c.total_ns, &c.max_ns, &c.over_guidance]
            .into_iter()
            .chain(&c.histogram)
        {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// The thread holding a lock, 0 if none.
pub(crate) struct Owner(AtomicUsize);

impl Owner {
    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }
}

/// How a lock is being acquired or released.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Raising,
    AtDpcLevel,
}

/// What the validator remembers about one acquisition until its release.
pub(crate) struct Ticket {
    held_slot: Option<usize>,
    start_ns: u64,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO_U64: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_USIZE: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_U32: AtomicU32 = AtomicU32::new(0);

static NEXT_CLASS_ID: AtomicU32 = AtomicU32::new(1);
/// `EDGES[a]` has bit `b` set once class `b` was acquired while `a` was held.
static EDGES: [AtomicU64; MAX_CLASSES] = [ZERO_U64; MAX_CLASSES];
/// Locks held right now: owner thread (0 = free slot) and class index + 1.
static HELD_OWNER: [AtomicUsize; MAX_HELD] = [ZERO_USIZE; MAX_HELD];
static HELD_CLASS: [AtomicU32; MAX_HELD] = [ZERO_U32; MAX_HELD];

static RECURSIVE_ACQUIRES: AtomicU64 = AtomicU64::new(0);
static FOREIGN_RELEASES: AtomicU64 = AtomicU64::new(0);
static ORDER_INVERSIONS: AtomicU64 = AtomicU64::new(0);
static IRQL_AT_ACQUIRE: AtomicU64 = AtomicU64::new(0);
static IRQL_AT_RELEASE: AtomicU64 = AtomicU64::new(0);
static RELEASE_ORDER: AtomicU64 = AtomicU64::new(0);

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The report for platform `P`, whose IRQL model decides `irql_checks`.
#[must_use]
pub fn report<P: Platform>() -> Report {
    Report {
        irql_checks: u32::from(P::irql_model() == IrqlModel::Modelled),
        classes: (NEXT_CLASS_ID.load(Ordering::Relaxed) - 1).min(MAX_CLASSES as u32),
        violations: Violations {
            recursive_acquires: RECURSIVE_ACQUIRES.load(Ordering::Relaxed),
            foreign_releases: FOREIGN_RELEASES.load(Ordering::Relaxed),
            order_inversions: ORDER_INVERSIONS.load(Ordering::Relaxed),
            irql_at_acquire: IRQL_AT_ACQUIRE.load(Ordering::Relaxed),
            irql_at_release: IRQL_AT_RELEASE.load(Ordering::Relaxed),
            release_order: RELEASE_ORDER.load(Ordering::Relaxed),
        },
    }
}

/// Zeroes the violation counters (the order graph keeps what it learned).
pub fn reset_violations() {
    for counter in [
        &RECURSIVE_ACQUIRES,
        &FOREIGN_RELEASES,
        &ORDER_INVERSIONS,
        &IRQL_AT_ACQUIRE,
        &IRQL_AT_RELEASE,
        &RELEASE_ORDER,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
}

/// The class's index in the order graph, assigning one on first use.
fn class_index(class: &LockClass) -> Option<usize> {
    let id = class.checked.id.load(Ordering::Acquire);
    if id != 0 {
        return Some(id as usize - 1);
    }
    let fresh = NEXT_CLASS_ID.fetch_add(1, Ordering::Relaxed);
    if fresh as usize > MAX_CLASSES {
        NEXT_CLASS_ID.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    match class
        .checked
        .id
        .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => Some(fresh as usize - 1),
        // Another processor assigned it first; `fresh` stays unused.
        Err(theirs) => Some(theirs as usize - 1),
    }
}

/// Classes whose locks `me` holds, as a bit set.
fn held_classes(me: usize) -> u64 {
    let mut set = 0;
    for (owner, class) in HELD_OWNER.iter().zip(&HELD_CLASS) {
        if owner.load(Ordering::Acquire) == me {
            let class = class.load(Ordering::Acquire);
            if class != 0 {
                set |= 1 << (class - 1);
            }
        }
    }
    set
}

fn held_count(me: usize) -> usize {
    HELD_OWNER
        .iter()
        .filter(|owner| owner.load(Ordering::Acquire) == me)
        .count()
}

/// Whether the order graph has a path `from` → … → `to`.
fn reaches(from: usize, to: usize) -> bool {
    let (mut visited, mut frontier) = (0_u64, 1_u64 << from);
    while frontier != 0 {
        if frontier & (1 << to) != 0 {
            return true;
        }
        visited |= frontier;
        let mut next = 0;
        let mut rest = frontier;
        while rest != 0 {
            let node = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            next |= EDGES[node].load(Ordering::Acquire);
        }
        frontier = next & !visited;
    }
    false
}

/// Checks made before the raw acquire; returns the acquiring thread.
pub(crate) fn before_acquire<P: Platform>(
    lock: usize,
    owner: &Owner,
    class: &LockClass,
    mode: Mode,
) -> usize {
    let me = P::current_thread();
    if P::irql_model() == IrqlModel::Modelled {
        let irql = P::current_irql();
        let ok = match mode {
            Mode::Raising => irql <= Irql::DISPATCH,
            Mode::AtDpcLevel => irql == Irql::DISPATCH,
        };
        if !ok {
            count(&IRQL_AT_ACQUIRE);
        }
    }
    if owner.0.load(Ordering::Relaxed) == me {
        count(&RECURSIVE_ACQUIRES);
        P::fail_stop(
            "recursive acquire: the current thread already holds this spin lock",
            lock,
        );
    }
    if let Some(new) = class_index(class) {
        let mut held = held_classes(me) & !(1 << new);
        while held != 0 {
            let outer = held.trailing_zeros() as usize;
            held &= held - 1;
            if EDGES[outer].load(Ordering::Relaxed) & (1 << new) == 0 && reaches(new, outer) {
                count(&ORDER_INVERSIONS);
            }
            EDGES[outer].fetch_or(1 << new, Ordering::AcqRel);
        }
    }
    me
}

/// Bookkeeping once the lock is held.
pub(crate) fn after_acquire<P: Platform>(owner: &Owner, class: &LockClass, me: usize) -> Ticket {
    owner.0.store(me, Ordering::Relaxed);
    let class_id = class.checked.id.load(Ordering::Acquire);
    let held_slot = HELD_OWNER.iter().position(|slot| {
        slot.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(slot) = held_slot {
        HELD_CLASS[slot].store(class_id, Ordering::Release);
    }
    Ticket {
        held_slot,
        start_ns: P::now_ns(),
    }
}

/// Checks made before the raw release; returns the release timestamp.
/// `restores` is the IRQL a raising release goes back to.
pub(crate) fn before_release<P: Platform>(
    owner: &Owner,
    mode: Mode,
    restores: Option<Irql>,
) -> u64 {
    let end = P::now_ns();
    let me = P::current_thread();
    if owner.0.load(Ordering::Relaxed) != me {
        count(&FOREIGN_RELEASES);
    }
    if P::irql_model() == IrqlModel::Modelled && P::current_irql() != Irql::DISPATCH {
        count(&IRQL_AT_RELEASE);
    }
    if mode == Mode::Raising
        && restores.is_some_and(|irql| irql < Irql::DISPATCH)
        && held_count(me) > 1
    {
        count(&RELEASE_ORDER);
    }
    owner.0.store(0, Ordering::Relaxed);
    end
}

/// Bookkeeping once the lock is free: hold time and the held-lock table.
pub(crate) fn after_release(class: &LockClass, ticket: &Ticket, end_ns: u64) {
    if let Some(slot) = ticket.held_slot {
        HELD_CLASS[slot].store(0, Ordering::Release);
        HELD_OWNER[slot].store(0, Ordering::Release);
    }
    class.checked.record(end_ns.saturating_sub(ticket.start_ns));
}
