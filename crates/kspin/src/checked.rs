//! The validator (feature `checked`), in the spirit of Linux's lockdep and
//! Windows' Driver Verifier.
//!
//! * **Owner tracking.** Each lock records the thread holding it (the
//!   `KTHREAD` in the kernel, which is distinct for every thread including
//!   each processor's idle thread; a number never reused on the host).
//!   Acquiring a lock the thread already holds would spin forever; the
//!   validator counts it and fail-stops instead (a bugcheck with code `KSPN`
//!   in the kernel, a panic on the host). A release by another thread is
//!   counted.
//! * **IRQL assertions.** The raising acquire must run at or below
//!   `DISPATCH_LEVEL`, the `AtDpcLevel` acquire and every release at
//!   `DISPATCH_LEVEL`. Where the platform cannot read the IRQL (Wine), these
//!   checks are skipped and [`Report::irql_checks`] says so.
//! * **Lock order.** Locks belong to classes ([`LockClass`]), and an
//!   acquisition may name a subclass ([`crate::Lock::nested`]). Acquiring one
//!   class/subclass while holding another records an edge in an order graph;
//!   an acquisition that closes a cycle (A→B somewhere, B→A here) is counted
//!   as an inversion, before any deadlock happens. Holding two locks of the
//!   same class and subclass is counted too (lockdep's "possible recursive
//!   locking"): two processors nesting them in opposite orders deadlock.
//! * **Scopes and leaks.** The raised scopes ([`crate::at_dispatch_level`],
//!   [`crate::Lock::with`]) and DPC routines are tracked with the locks. When
//!   a thread's outermost scope ends (its IRQL is about to drop below
//!   `DISPATCH_LEVEL`, or its DPC routine returns) with a lock taken inside
//!   it still held, a guard was leaked: that is counted in
//!   [`Violations::held_at_scope_end`] and named by [`last_held_at_scope_end`].
//! * **Hold times.** Each class keeps the count, total and maximum hold time,
//!   a log2 histogram, and the count of holds over the 25 µs that Microsoft's
//!   guidance allows, as a plain `#[repr(C)]` [`HoldStats`] a driver can copy
//!   out to user mode.
//!
//! All state is fixed-size and lock-free (atomics only), so the checks run at
//! `DISPATCH_LEVEL` without allocating or logging. When a table is full the
//! acquisition goes unchecked and is counted in [`Violations::untracked`],
//! never silently. The bookkeeping of a release is done before the raw
//! release, so a release that fails (a host-backend bugcheck panic) leaves
//! it consistent. Violations are counted, never printed: a driver reports
//! them once it holds no lock.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::{
    class::LockClass,
    irql::{Irql, IrqlModel},
    lock::Mode,
    platform::Platform,
};

/// Microsoft's guidance: no routine should hold a spin lock for longer than
/// 25 microseconds.
pub const HOLD_GUIDANCE_NS: u64 = 25_000;
/// Buckets of [`HoldStats::histogram`]: bucket `i` counts holds of
/// `2^i..2^(i+1)` nanoseconds (bucket 0 also counts 0 ns, the last one
/// everything longer).
pub const HISTOGRAM_BUCKETS: usize = 32;
/// Nodes of the order graph: one per class and subclass in use.
pub const MAX_NODES: usize = 64;
/// Subclasses a class can have (`0..MAX_SUBCLASSES`).
pub const MAX_SUBCLASSES: usize = 8;
/// Held locks and open scopes tracked at once, system-wide.
pub const MAX_HELD: usize = 128;
/// Scopes the full table could not record, remembered per thread.
const MAX_UNRECORDED: usize = 32;

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
    /// Acquisitions that closed a cycle in the order graph.
    pub order_inversions: u64,
    /// Acquisitions of a class and subclass the thread already held another
    /// lock of.
    pub same_class_nesting: u64,
    /// Acquisitions at the wrong IRQL.
    pub irql_at_acquire: u64,
    /// Releases, and ends of raised or DPC scopes, at the wrong IRQL.
    pub irql_at_release: u64,
    /// Locks still held when the outermost scope that took them ended: a
    /// leaked guard, whose lock now stays held.
    pub held_at_scope_end: u64,
    /// Acquisitions or scopes not checked because a table was full.
    pub untracked: u64,
}

/// What the validator has seen, for copying out to user mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// 1 if IRQL assertions ran, 0 if the platform cannot read the IRQL
    /// ([`IrqlModel::NotModelled`]) and they were skipped.
    pub irql_checks: u32,
    /// Nodes (class and subclass) the order graph knows.
    pub classes: u32,
    /// The counters.
    pub violations: Violations,
}

/// The validator's state and statistics for one lock class.
pub(crate) struct ClassState {
    /// Order-graph node + 1 of each subclass; 0 until first acquired.
    nodes: [AtomicU32; MAX_SUBCLASSES],
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    over_guidance: AtomicU64,
    histogram: [AtomicU64; HISTOGRAM_BUCKETS],
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO_U64: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_U32: AtomicU32 = AtomicU32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_USIZE: AtomicUsize = AtomicUsize::new(0);

impl ClassState {
    pub(crate) const fn new() -> Self {
        Self {
            nodes: [ZERO_U32; MAX_SUBCLASSES],
            count: ZERO_U64,
            total_ns: ZERO_U64,
            max_ns: ZERO_U64,
            over_guidance: ZERO_U64,
            histogram: [ZERO_U64; HISTOGRAM_BUCKETS],
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

/// What the validator remembers about one acquisition or scope until its
/// end.
pub(crate) struct Ticket {
    /// The thread that made the entry.
    owner: usize,
    /// Whether the entry opens a scope.
    scope: bool,
    /// The table slot, or `NO_SLOT` if the table was full.
    slot: usize,
    /// For a scope the table could not record: its entry in
    /// `UNRECORDED`, or `NO_SLOT` if that was full too.
    unrecorded: usize,
    /// Position in the global order of entries (younger entries are larger).
    seq: u64,
    start_ns: u64,
    /// Whether the hold time goes into the class's statistics.
    measured: bool,
}

const NO_SLOT: usize = usize::MAX;

/// One tracked entry: a held lock, or an open scope. Only the owning thread
/// writes the fields after claiming `owner`, and only it reads them.
struct Slot {
    /// The thread, 0 if free.
    owner: AtomicUsize,
    seq: AtomicU64,
    /// The lock's class (null for a scope without a lock).
    class: AtomicPtr<LockClass>,
    subclass: AtomicU32,
    /// Order-graph node + 1 (0: none).
    node: AtomicU32,
    /// Whether the entry opens a scope (a DPC routine, `at_dispatch_level`,
    /// or the raising `Lock::with`).
    scope: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot {
    owner: AtomicUsize::new(0),
    seq: ZERO_U64,
    class: AtomicPtr::new(core::ptr::null_mut()),
    subclass: ZERO_U32,
    node: ZERO_U32,
    scope: AtomicBool::new(false),
};

static SLOTS: [Slot; MAX_HELD] = [FREE_SLOT; MAX_HELD];
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);
/// The threads of scopes open right now that the full table could not
/// record, one entry per scope. A thread with one cannot tell which of its
/// scopes is the outermost, so it judges no leak (a guard taken on an
/// unrecorded outer scope's proof would look leaked when an inner scope
/// ends); every other thread still does.
static UNRECORDED: [AtomicUsize; MAX_UNRECORDED] = [ZERO_USIZE; MAX_UNRECORDED];
/// Unrecorded scopes that found `UNRECORDED` full as well: while there is
/// one, no thread judges leaks, since any could be its owner.
static UNRECORDED_OVERFLOW: AtomicUsize = AtomicUsize::new(0);
static NEXT_NODE: AtomicU32 = AtomicU32::new(0);
/// `EDGES[a]` has bit `b` set once node `b` was acquired while `a` was held.
static EDGES: [AtomicU64; MAX_NODES] = [ZERO_U64; MAX_NODES];
static LAST_HELD_AT_SCOPE_END: AtomicPtr<LockClass> = AtomicPtr::new(core::ptr::null_mut());

static RECURSIVE_ACQUIRES: AtomicU64 = AtomicU64::new(0);
static FOREIGN_RELEASES: AtomicU64 = AtomicU64::new(0);
static ORDER_INVERSIONS: AtomicU64 = AtomicU64::new(0);
static SAME_CLASS_NESTING: AtomicU64 = AtomicU64::new(0);
static IRQL_AT_ACQUIRE: AtomicU64 = AtomicU64::new(0);
static IRQL_AT_RELEASE: AtomicU64 = AtomicU64::new(0);
static HELD_AT_SCOPE_END: AtomicU64 = AtomicU64::new(0);
static UNTRACKED: AtomicU64 = AtomicU64::new(0);

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The report for platform `P`, whose IRQL model decides `irql_checks`.
#[must_use]
pub fn report<P: Platform>() -> Report {
    Report {
        irql_checks: u32::from(P::irql_model() == IrqlModel::Modelled),
        classes: NEXT_NODE.load(Ordering::Relaxed).min(MAX_NODES as u32),
        violations: Violations {
            recursive_acquires: RECURSIVE_ACQUIRES.load(Ordering::Relaxed),
            foreign_releases: FOREIGN_RELEASES.load(Ordering::Relaxed),
            order_inversions: ORDER_INVERSIONS.load(Ordering::Relaxed),
            same_class_nesting: SAME_CLASS_NESTING.load(Ordering::Relaxed),
            irql_at_acquire: IRQL_AT_ACQUIRE.load(Ordering::Relaxed),
            irql_at_release: IRQL_AT_RELEASE.load(Ordering::Relaxed),
            held_at_scope_end: HELD_AT_SCOPE_END.load(Ordering::Relaxed),
            untracked: UNTRACKED.load(Ordering::Relaxed),
        },
    }
}

/// Zeroes the violation counters (the order graph keeps what it learned).
pub fn reset_violations() {
    for counter in [
        &RECURSIVE_ACQUIRES,
        &FOREIGN_RELEASES,
        &ORDER_INVERSIONS,
        &SAME_CLASS_NESTING,
        &IRQL_AT_ACQUIRE,
        &IRQL_AT_RELEASE,
        &HELD_AT_SCOPE_END,
        &UNTRACKED,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    LAST_HELD_AT_SCOPE_END.store(core::ptr::null_mut(), Ordering::Relaxed);
}

/// The class of the last lock found still held when its scope ended.
#[must_use]
pub fn last_held_at_scope_end() -> Option<&'static LockClass> {
    let class = LAST_HELD_AT_SCOPE_END.load(Ordering::Acquire);
    // SAFETY: only ever set from a `&'static LockClass` (see `claim`).
    unsafe { class.cast_const().as_ref() }
}

/// The order-graph node of `class`/`subclass`, assigning one on first use;
/// `None` when the graph is full or the subclass out of range.
fn node_of(class: &LockClass, subclass: u8) -> Option<usize> {
    let cell = class.checked.nodes.get(usize::from(subclass))?;
    let id = cell.load(Ordering::Acquire);
    if id != 0 {
        return Some(id as usize - 1);
    }
    let fresh = NEXT_NODE.fetch_add(1, Ordering::Relaxed);
    if fresh as usize >= MAX_NODES {
        NEXT_NODE.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    match cell.compare_exchange(0, fresh + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh as usize),
        Err(theirs) => {
            // Another processor assigned it first: give `fresh` back unless
            // a later node was handed out meanwhile.
            let _ =
                NEXT_NODE.compare_exchange(fresh + 1, fresh, Ordering::Relaxed, Ordering::Relaxed);
            Some(theirs as usize - 1)
        }
    }
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

/// Claims a slot for a new entry of `me`.
fn claim(me: usize, class: Option<&'static LockClass>, subclass: u8, scope: bool) -> Ticket {
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    let slot = SLOTS.iter().position(|slot| {
        slot.owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    let Some(index) = slot else {
        count(&UNTRACKED);
        let mut unrecorded = NO_SLOT;
        if scope {
            match UNRECORDED.iter().position(|entry| {
                entry
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            }) {
                Some(entry) => unrecorded = entry,
                None => {
                    UNRECORDED_OVERFLOW.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        return Ticket {
            owner: me,
            scope,
            slot: NO_SLOT,
            unrecorded,
            seq,
            start_ns: 0,
            measured: false,
        };
    };
    let slot = &SLOTS[index];
    let node = class.and_then(|class| node_of(class, subclass));
    slot.seq.store(seq, Ordering::Relaxed);
    slot.class.store(
        class.map_or(core::ptr::null_mut(), |c| core::ptr::from_ref(c).cast_mut()),
        Ordering::Relaxed,
    );
    slot.subclass.store(u32::from(subclass), Ordering::Relaxed);
    slot.node
        .store(node.map_or(0, |n| n as u32 + 1), Ordering::Relaxed);
    slot.scope.store(scope, Ordering::Relaxed);
    Ticket {
        owner: me,
        scope,
        slot: index,
        unrecorded: NO_SLOT,
        seq,
        start_ns: 0,
        measured: true,
    }
}

fn free(ticket: &Ticket) {
    let Some(slot) = SLOTS.get(ticket.slot) else {
        if ticket.scope {
            match UNRECORDED.get(ticket.unrecorded) {
                Some(entry) => entry.store(0, Ordering::Release),
                None => {
                    UNRECORDED_OVERFLOW.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        return;
    };
    // Only while the slot still holds this entry: an outermost scope may
    // have freed it already (a leak), and another entry reuse it since.
    // Another thread's entry has another owner (the compare-exchange); a
    // later entry of the same thread, another sequence number.
    if slot.seq.load(Ordering::Relaxed) == ticket.seq {
        let _ = slot
            .owner
            .compare_exchange(ticket.owner, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// The entries of `me`, with their slots.
fn entries_of(me: usize) -> impl Iterator<Item = &'static Slot> {
    SLOTS
        .iter()
        .filter(move |slot| slot.owner.load(Ordering::Relaxed) == me)
}

/// Ends the scope `ticket` of `me`: if it is the thread's outermost open
/// scope, every lock taken after it and still held was leaked.
fn end_scope(me: usize, ticket: &Ticket) {
    let outermost = !entries_of(me).any(|slot| {
        slot.scope.load(Ordering::Relaxed) && slot.seq.load(Ordering::Relaxed) < ticket.seq
    });
    let unsure = UNRECORDED_OVERFLOW.load(Ordering::Acquire) != 0
        || UNRECORDED
            .iter()
            .any(|entry| entry.load(Ordering::Acquire) == me);
    if !outermost || unsure {
        // An inner scope: a lock taken inside it may legitimately outlive
        // it on the outer scope's proof; the outer scope judges. (And while
        // one of this thread's scopes went unrecorded, this one may be inner
        // without knowing.)
        return;
    }
    for slot in entries_of(me) {
        if slot.seq.load(Ordering::Relaxed) > ticket.seq && !slot.scope.load(Ordering::Relaxed) {
            count(&HELD_AT_SCOPE_END);
            LAST_HELD_AT_SCOPE_END.store(slot.class.load(Ordering::Relaxed), Ordering::Release);
            // The lock stays held; the thread no longer is in any sense that
            // matters to order checking.
            slot.owner.store(0, Ordering::Release);
        }
    }
}

/// Opens a scope (`at_dispatch_level`, a DPC routine) on the current thread.
pub(crate) fn enter_scope<P: Platform>() -> Ticket {
    claim(P::current_thread(), None, 0, true)
}

/// Closes a scope opened by [`enter_scope`] on the same thread. A scope
/// must end at `DISPATCH_LEVEL`, as it began: anything else means unsafe
/// code lowered the IRQL inside it, and is counted with the releases.
pub(crate) fn exit_scope<P: Platform>(ticket: &Ticket) {
    if P::irql_model() == IrqlModel::Modelled && P::current_irql() != Irql::DISPATCH {
        count(&IRQL_AT_RELEASE);
    }
    end_scope(P::current_thread(), ticket);
    free(ticket);
}

/// Checks made before the raw acquire; returns the acquiring thread.
pub(crate) fn before_acquire<P: Platform>(
    lock: usize,
    owner: &Owner,
    class: &LockClass,
    subclass: u8,
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
            "recursive acquire: the current thread already holds this spin lock, or a guard of it was leaked on this thread (in the kernel: by this thread or by a DPC that interrupted it)",
            lock,
        );
    }
    let new = node_of(class, subclass);
    if new.is_none() {
        count(&UNTRACKED);
    }
    let class_ptr = core::ptr::from_ref(class).cast_mut();
    for held in entries_of(me) {
        if held.class.load(Ordering::Relaxed) != class_ptr {
            // Another class: an edge held → new.
            let (Some(new), Some(outer)) = (new, node_index(held)) else {
                continue;
            };
            if EDGES[outer].load(Ordering::Relaxed) & (1 << new) == 0 && reaches(new, outer) {
                count(&ORDER_INVERSIONS);
            }
            EDGES[outer].fetch_or(1 << new, Ordering::AcqRel);
        } else if held.subclass.load(Ordering::Relaxed) == u32::from(subclass) {
            count(&SAME_CLASS_NESTING);
        } else if let (Some(new), Some(outer)) = (new, node_index(held)) {
            // The same class as another subclass: ordered like two classes.
            if EDGES[outer].load(Ordering::Relaxed) & (1 << new) == 0 && reaches(new, outer) {
                count(&ORDER_INVERSIONS);
            }
            EDGES[outer].fetch_or(1 << new, Ordering::AcqRel);
        }
    }
    me
}

fn node_index(slot: &Slot) -> Option<usize> {
    match slot.node.load(Ordering::Relaxed) {
        0 => None,
        node => Some(node as usize - 1),
    }
}

/// Bookkeeping once the lock is held. `measured`: whether the hold time
/// goes into the class's statistics.
pub(crate) fn after_acquire<P: Platform>(
    owner: &Owner,
    class: &'static LockClass,
    subclass: u8,
    mode: Mode,
    me: usize,
    measured: bool,
) -> Ticket {
    owner.0.store(me, Ordering::Relaxed);
    let mut ticket = claim(me, Some(class), subclass, mode == Mode::Raising);
    ticket.measured = measured;
    ticket.start_ns = P::now_ns();
    ticket
}

/// All the bookkeeping of a release, done before the raw release.
pub(crate) fn before_release<P: Platform>(
    owner: &Owner,
    class: &LockClass,
    ticket: &Ticket,
    mode: Mode,
) {
    let end_ns = P::now_ns();
    let me = P::current_thread();
    if owner.0.load(Ordering::Relaxed) != me {
        count(&FOREIGN_RELEASES);
    }
    if P::irql_model() == IrqlModel::Modelled && P::current_irql() != Irql::DISPATCH {
        count(&IRQL_AT_RELEASE);
    }
    if mode == Mode::Raising {
        // `Lock::with` is a scope as well as a lock.
        end_scope(me, ticket);
    }
    owner.0.store(0, Ordering::Relaxed);
    free(ticket);
    if ticket.measured {
        class.checked.record(end_ns.saturating_sub(ticket.start_ns));
    }
}
