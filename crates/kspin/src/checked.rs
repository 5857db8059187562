//! The validator (feature `checked`), in the spirit of Linux's lockdep and
//! Windows' Driver Verifier.
//!
//! * **Owner tracking.** Each lock records who holds it: a token of the
//!   outermost scope that took it, never reused. Acquiring a lock the scope
//!   already holds, or one whose guard was leaked, would spin forever; the
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
//! All state is fixed-size (atomics, and one small spin lock for the order
//! graph), so the checks run at `DISPATCH_LEVEL` without allocating or
//! logging. When a table is full the acquisition goes partly unchecked and
//! is counted in [`Violations::untracked`], never silently. The bookkeeping
//! of a release is done before the raw release, so a release that fails (a
//! host-backend bugcheck panic) leaves it consistent. Violations are counted, never printed: a driver reports
//! them once it holds no lock.
//!
//! # How the reports are kept deterministic
//!
//! * **The order graph** is changed only under a small spin lock (lockdep's
//!   graph lock), taken with the processor at `DISPATCH_LEVEL` and only
//!   when an edge is new: looking for a cycle and adding the edge are one
//!   step. Of two processors adding A→B and B→A at the same moment, one
//!   adds its edge first and the other finds it, whatever the interleaving;
//!   a known edge is read without the lock.
//! * **Held locks are tracked per context**: a context is what can be inside
//!   a raised or DPC scope at one time, a processor in the kernel (nothing
//!   migrates at `DISPATCH_LEVEL`, and one thread per processor can be in a
//!   scope) and a thread on the host. A thread claims a context when its
//!   outermost scope begins and gives it back, emptied, when that scope
//!   ends. The contexts' [`MAX_CONTEXTS`] exceeds the 64 processors of the
//!   largest machine the driver targets, and each holds [`MAX_HELD`] locks,
//!   where the driver's paths hold one at a time. (A context is found by the
//!   thread's identity, hashed, not by the processor number: that needs no
//!   further import, and it stays right where IRQL is not modelled, in
//!   Wine, whose threads do migrate. Beyond [`MAX_CONTEXTS`] threads inside
//!   scopes at once, a thread's scopes go untracked, counted, and are kept
//!   in its own record: see below.) A context counts
//!   its scopes itself, so the outermost scope is known even when the
//!   context's table is full; the locks the full table could not record are
//!   counted, and reported as leaks if still held when the outermost scope
//!   ends. Nothing one context does changes another's checks.
//! * **A scope that finds every context taken** is kept in its thread's
//!   [`ThreadRecord`], outside the tables ([`Platform::with_thread_record`]):
//!   its inner scopes deepen the record instead of claiming a context (one
//!   that did would be taken for the outermost and judge a live guard
//!   leaked). Its locks are owned by the record's token, whose index bits
//!   are all ones; the outermost scope reports those still held as leaked
//!   and puts the token in a ring of the last 64: an
//!   acquire of a lock a token there owns is fail-stopped. On a platform
//!   without records no context is claimed while such a scope is open.
//! * **Owners are tokens that are never reused**: the outermost scope's
//!   serial number with its context's index, not the thread's address (a
//!   `KTHREAD` is reused by threads created later). A lock still owned by a
//!   scope that has ended was leaked, and acquiring it would spin forever:
//!   that is fail-stopped like a recursive acquire, whichever thread tries.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub use crate::platform::ThreadRecord;
use crate::{
    backend::Mode,
    class::{ClassState, LockClass},
    level::{Irql, IrqlModel},
    platform::Platform,
};

/// Microsoft's guidance: no routine should hold a spin lock for longer than
/// 25 microseconds.
pub const HOLD_GUIDANCE_NS: u64 = 25_000;
/// Buckets of [`HoldStats::histogram`]: bucket `i` counts holds of
/// `2^i..2^(i+1)` nanoseconds (bucket 0 also counts 0 ns, the last one
/// everything longer).
pub const HISTOGRAM_BUCKETS: usize = crate::class::HISTOGRAM_BUCKETS;
/// Nodes of the order graph: one per class and subclass in use.
pub const MAX_NODES: usize = 256;
/// Subclasses a class can have (`0..MAX_SUBCLASSES`).
pub const MAX_SUBCLASSES: usize = crate::class::MAX_SUBCLASSES;
/// Locks one context (a processor in the kernel, a thread on the host) can
/// hold at once with each of them recorded.
pub const MAX_HELD: usize = 16;
/// Contexts inside a scope at once (at most one per processor in the
/// kernel).
pub const MAX_CONTEXTS: usize = 128;

const NODE_WORDS: usize = MAX_NODES / 64;
const NO_SLOT: usize = usize::MAX;
/// Low bits of an owner token: the context's index.
const CONTEXT_BITS: u32 = 8;
/// The index bits of the token of a scope that found every context taken
/// (kept in its thread's [`ThreadRecord`]).
const ON_THREAD_INDEX: u64 = (1 << CONTEXT_BITS) - 1;
const _: () = assert!(MAX_CONTEXTS < ON_THREAD_INDEX as usize);
/// [`Ticket::context`] of an entry kept in the thread's record.
const ON_THREAD: usize = MAX_CONTEXTS;
/// [`Ticket::context`] of a scope that got neither a context nor a record.
const NOWHERE: usize = MAX_CONTEXTS + 1;
/// Tokens of the last scopes that ended in their thread's record still
/// holding locks: an acquire of a lock one of them owns is stopped.
const LEAKED_ON_THREAD: usize = 64;

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
    /// Acquisitions that would have spun forever, each fail-stopped: of a
    /// lock the same scope already held, or of a lock whose guard was leaked
    /// (still held by a scope that has ended).
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
    /// Acquisitions or scopes not fully checked because a table was full.
    pub untracked: u64,
}

/// What the validator has seen, for copying out to user mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// 1 if every IRQL assertion since the last [`reset_violations`] ran, on
    /// every thread; 0 if any was skipped because the platform could not
    /// read the IRQL there ([`IrqlModel::NotModelled`]).
    pub irql_checks: u32,
    /// Nodes (class and subclass) the order graph knows.
    pub classes: u32,
    /// The counters.
    pub violations: Violations,
}

fn record_hold(class: &ClassState, hold_ns: u64) {
    class.count.fetch_add(1, Ordering::Relaxed);
    class.total_ns.fetch_add(hold_ns, Ordering::Relaxed);
    class.max_ns.fetch_max(hold_ns, Ordering::Relaxed);
    if hold_ns > HOLD_GUIDANCE_NS {
        class.over_guidance.fetch_add(1, Ordering::Relaxed);
    }
    let bucket = (u64::BITS - 1).saturating_sub(hold_ns.max(1).leading_zeros()) as usize;
    class.histogram[bucket.min(HISTOGRAM_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
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

/// The token of the scope holding a lock, 0 if none (or if the acquisition
/// could not be tracked).
pub(crate) struct Owner(AtomicU64);

impl Owner {
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(0))
    }
}

/// What the validator remembers about one acquisition or scope until its
/// end.
pub(crate) struct Ticket {
    /// The context; `ON_THREAD` for the thread's record, `NOWHERE` for a
    /// scope that got neither; `NO_SLOT` for an acquisition in neither.
    context: usize,
    /// The context's token when the entry was made (0: no context).
    token: u64,
    /// The held-lock slot in the context, or `NO_SLOT` (a scope, or a lock
    /// the full table could not record).
    slot: usize,
    /// A number no other entry has.
    seq: u64,
    start_ns: u64,
    /// Whether the hold time goes into the class's statistics.
    measured: bool,
}

impl Ticket {
    const fn untracked() -> Self {
        Self {
            context: NO_SLOT,
            token: 0,
            slot: NO_SLOT,
            seq: 0,
            start_ns: 0,
            measured: false,
        }
    }

    const fn on_thread(token: u64) -> Self {
        Self {
            context: ON_THREAD,
            token,
            ..Self::untracked()
        }
    }
}

/// A lock held in a context. Claimed by its `seq` (0: free).
struct Held {
    seq: AtomicU64,
    class: AtomicPtr<LockClass>,
    subclass: AtomicU32,
    /// Order-graph node + 1 (0: none).
    node: AtomicU32,
}

/// What one processor (kernel) or thread (host) holds while inside a scope.
/// Only the thread that claimed it touches it, except that a release by
/// another thread (unsafe code sending a guard) frees its slot.
struct Context {
    /// The claiming thread (`Platform::current_thread`), 0 if free.
    thread: AtomicUsize,
    /// Set once any thread has looked here for a free context, so that a
    /// search can stop at the first context never looked at.
    seen: AtomicBool,
    /// The outermost open scope's token (serial and index), 0 if free.
    token: AtomicU64,
    /// Open scopes, recorded or not.
    depth: AtomicU32,
    /// Held locks the full `held` could not record.
    unrecorded: AtomicU32,
    held: [Held; MAX_HELD],
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_HELD: Held = Held {
    seq: AtomicU64::new(0),
    class: AtomicPtr::new(core::ptr::null_mut()),
    subclass: AtomicU32::new(0),
    node: AtomicU32::new(0),
};
#[allow(clippy::declare_interior_mutable_const)]
const FREE_CONTEXT: Context = Context {
    thread: AtomicUsize::new(0),
    seen: AtomicBool::new(false),
    token: AtomicU64::new(0),
    depth: AtomicU32::new(0),
    unrecorded: AtomicU32::new(0),
    held: [FREE_HELD; MAX_HELD],
};
#[allow(clippy::declare_interior_mutable_const)]
const NO_EDGES: [AtomicU64; NODE_WORDS] = [const { AtomicU64::new(0) }; NODE_WORDS];

static CONTEXTS: [Context; MAX_CONTEXTS] = [FREE_CONTEXT; MAX_CONTEXTS];
/// Serial numbers of scopes and entries; never reused (2^56 of them).
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
/// lockdep's graph lock: held while a new edge is checked and added, and a
/// node assigned.
static GRAPH_LOCK: AtomicBool = AtomicBool::new(false);
static NEXT_NODE: AtomicU32 = AtomicU32::new(0);
/// `EDGES[a]` has bit `b` set once node `b` was acquired while `a` was held.
static EDGES: [[AtomicU64; NODE_WORDS]; MAX_NODES] = [NO_EDGES; MAX_NODES];
static LAST_HELD_AT_SCOPE_END: AtomicPtr<LockClass> = AtomicPtr::new(core::ptr::null_mut());
/// Set when any thread skipped an IRQL check since the last reset.
static IRQL_UNCHECKED: AtomicBool = AtomicBool::new(false);

static RECURSIVE_ACQUIRES: AtomicU64 = AtomicU64::new(0);
static FOREIGN_RELEASES: AtomicU64 = AtomicU64::new(0);
static ORDER_INVERSIONS: AtomicU64 = AtomicU64::new(0);
static SAME_CLASS_NESTING: AtomicU64 = AtomicU64::new(0);
static IRQL_AT_ACQUIRE: AtomicU64 = AtomicU64::new(0);
static IRQL_AT_RELEASE: AtomicU64 = AtomicU64::new(0);
static HELD_AT_SCOPE_END: AtomicU64 = AtomicU64::new(0);
static UNTRACKED: AtomicU64 = AtomicU64::new(0);
/// See [`LEAKED_ON_THREAD`]; a ring, overwriting the oldest.
static LEAKED_TOKENS: [AtomicU64; LEAKED_ON_THREAD] =
    [const { AtomicU64::new(0) }; LEAKED_ON_THREAD];
static NEXT_LEAKED: AtomicUsize = AtomicUsize::new(0);
/// Open scopes that got neither a context nor a record (a platform without
/// records): while any is open no context is claimed, since the claimant
/// might be one of its inner scopes.
static OPEN_NOWHERE: AtomicU32 = AtomicU32::new(0);

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The report for platform `P`.
#[must_use]
pub fn report<P: Platform>() -> Report {
    let all_checked =
        !IRQL_UNCHECKED.load(Ordering::Relaxed) && P::irql_model() == IrqlModel::Modelled;
    Report {
        irql_checks: u32::from(all_checked),
        classes: NEXT_NODE.load(Ordering::Relaxed),
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

/// Zeroes the violation counters and forgets that IRQL checks were skipped
/// (the order graph keeps what it learned).
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
    IRQL_UNCHECKED.store(false, Ordering::Relaxed);
    LAST_HELD_AT_SCOPE_END.store(core::ptr::null_mut(), Ordering::Relaxed);
}

/// The class of the last lock found still held when its scope ended (a
/// lock the full table could not record is counted but not named).
#[must_use]
pub fn last_held_at_scope_end() -> Option<&'static LockClass> {
    let class = LAST_HELD_AT_SCOPE_END.load(Ordering::Acquire);
    // SAFETY: only ever set from a `&'static LockClass` (see `record_held`).
    unsafe { class.cast_const().as_ref() }
}

/// Whether the IRQL checks can run here; remembers, for every thread's
/// report, when they cannot.
fn irql_modelled<P: Platform>() -> bool {
    let modelled = P::irql_model() == IrqlModel::Modelled;
    if !modelled {
        IRQL_UNCHECKED.store(true, Ordering::Relaxed);
    }
    modelled
}

// The contexts.

/// Where `thread`'s search for a context starts.
fn home(thread: usize) -> usize {
    let mixed = (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    mixed as usize % MAX_CONTEXTS
}

/// The index of the context `thread` holds, if it is inside a scope.
fn find(thread: usize) -> Option<usize> {
    let start = home(thread);
    for i in 0..MAX_CONTEXTS {
        let index = (start + i) % MAX_CONTEXTS;
        let context = &CONTEXTS[index];
        if context.thread.load(Ordering::Relaxed) == thread {
            return Some(index);
        }
        // `thread` marked every context it passed on its way to its own:
        // one it never looked at lies beyond it.
        if !context.seen.load(Ordering::Relaxed) {
            return None;
        }
    }
    None
}

/// The current context of the calling thread, if it is inside a scope.
/// Below `DISPATCH_LEVEL` no scope is open, and the search is skipped.
fn current<P: Platform>(thread: usize) -> Option<usize> {
    if P::irql_model() == IrqlModel::Modelled && P::current_irql() < Irql::DISPATCH {
        return None;
    }
    find(thread)
}

/// Claims a free context for `thread`, whose outermost scope begins.
fn claim_context(thread: usize) -> Option<usize> {
    let start = home(thread);
    for i in 0..MAX_CONTEXTS {
        let index = (start + i) % MAX_CONTEXTS;
        let context = &CONTEXTS[index];
        context.seen.store(true, Ordering::Relaxed);
        if context
            .thread
            .compare_exchange(0, thread, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
            context
                .token
                .store(serial << CONTEXT_BITS | index as u64, Ordering::Release);
            context.depth.store(0, Ordering::Relaxed);
            return Some(index);
        }
    }
    None
}

/// Opens a scope (`at_dispatch_level`, a DPC routine, the raising
/// `Lock::with`) on the current thread.
pub(crate) fn enter_scope<P: Platform>() -> Ticket {
    // Inside a scope that found every context taken, an inner scope must
    // not claim one: it would be taken for the outermost.
    let inner = P::with_thread_record(|record| {
        let depth = record.depth.get();
        (depth != 0).then(|| {
            record.depth.set(depth + 1);
            record.token.get()
        })
    });
    if let Some(Some(token)) = inner {
        count(&UNTRACKED);
        return Ticket::on_thread(token);
    }
    let thread = P::current_thread();
    let claimed = find(thread).or_else(|| {
        if OPEN_NOWHERE.load(Ordering::Acquire) == 0 {
            claim_context(thread)
        } else {
            None
        }
    });
    let Some(index) = claimed else {
        count(&UNTRACKED);
        let token = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed) << CONTEXT_BITS | ON_THREAD_INDEX;
        let recorded = P::with_thread_record(|record| {
            record.depth.set(1);
            record.token.set(token);
            record.held.set(0);
        });
        if recorded.is_some() {
            return Ticket::on_thread(token);
        }
        OPEN_NOWHERE.fetch_add(1, Ordering::AcqRel);
        return Ticket {
            context: NOWHERE,
            ..Ticket::untracked()
        };
    };
    let context = &CONTEXTS[index];
    context.depth.fetch_add(1, Ordering::Relaxed);
    Ticket {
        context: index,
        token: context.token.load(Ordering::Relaxed),
        slot: NO_SLOT,
        seq: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        start_ns: 0,
        measured: false,
    }
}

/// Closes a scope opened by [`enter_scope`] on the same thread. A scope
/// must end at `DISPATCH_LEVEL`, as it began: anything else means unsafe
/// code lowered the IRQL inside it, and is counted with the releases.
pub(crate) fn exit_scope<P: Platform>(ticket: &Ticket) {
    if irql_modelled::<P>() && P::current_irql() != Irql::DISPATCH {
        count(&IRQL_AT_RELEASE);
    }
    end_scope::<P>(ticket);
}

/// Ends the scope `ticket`. The outermost one reports every lock its
/// context (or its thread's record) still holds as leaked, and frees it.
fn end_scope<P: Platform>(ticket: &Ticket) {
    if ticket.context == ON_THREAD {
        P::with_thread_record(|record| end_on_thread(record, ticket.token));
        return;
    }
    if ticket.context == NOWHERE {
        OPEN_NOWHERE.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let Some(context) = CONTEXTS.get(ticket.context) else {
        return;
    };
    if context.token.load(Ordering::Relaxed) != ticket.token
        || context.depth.fetch_sub(1, Ordering::Relaxed) != 1
    {
        // An inner scope: a lock taken inside it may legitimately outlive
        // it on an outer scope's proof; the outermost scope judges.
        return;
    }
    for held in &context.held {
        if held.seq.load(Ordering::Relaxed) != 0 {
            count(&HELD_AT_SCOPE_END);
            LAST_HELD_AT_SCOPE_END.store(held.class.load(Ordering::Relaxed), Ordering::Release);
            held.seq.store(0, Ordering::Relaxed);
        }
    }
    let unrecorded = context.unrecorded.swap(0, Ordering::Relaxed);
    HELD_AT_SCOPE_END.fetch_add(u64::from(unrecorded), Ordering::Relaxed);
    // The leaked locks keep this token as their owner: once it is no
    // context's, they are known to be leaked (see `before_acquire`).
    context.token.store(0, Ordering::Release);
    context.thread.store(0, Ordering::Release);
}

/// Ends a scope kept in the thread's record; the outermost one reports the
/// locks still held in them as leaked, and remembers their token as dead.
fn end_on_thread(record: &ThreadRecord, token: u64) {
    let depth = record.depth.get();
    if depth == 0 || record.token.get() != token {
        return;
    }
    record.depth.set(depth - 1);
    if depth != 1 {
        return;
    }
    let held = record.held.replace(0);
    if held != 0 {
        HELD_AT_SCOPE_END.fetch_add(u64::from(held), Ordering::Relaxed);
        let at = NEXT_LEAKED.fetch_add(1, Ordering::Relaxed) % LEAKED_ON_THREAD;
        LEAKED_TOKENS[at].store(token, Ordering::Release);
    }
    record.token.set(0);
}

/// Whether `token` is that of the current thread's open scopes kept in its
/// record.
fn mine_on_thread<P: Platform>(token: u64) -> bool {
    P::with_thread_record(|record| record.depth.get() != 0 && record.token.get() == token)
        .unwrap_or(false)
}

// The order graph.

/// Runs `f` holding the graph lock, at `DISPATCH_LEVEL` so that no DPC can
/// interrupt the holder on its processor and spin on it.
fn with_graph_lock<P: Platform, R>(f: impl FnOnce() -> R) -> R {
    let below = P::irql_model() == IrqlModel::NotModelled || P::current_irql() < Irql::DISPATCH;
    // SAFETY: raising to DISPATCH_LEVEL from below it, lowered back below on
    // this processor with no lock taken in between.
    let previous = below.then(|| unsafe { P::raise_irql(Irql::DISPATCH) });
    while GRAPH_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let result = f();
    GRAPH_LOCK.store(false, Ordering::Release);
    if let Some(previous) = previous {
        // SAFETY: what the raise above returned.
        unsafe { P::lower_irql(previous) };
    }
    result
}

/// The order-graph node of `class`/`subclass`, assigning one on first use;
/// `None` when the graph is full or the subclass out of range.
fn node_of<P: Platform>(class: &LockClass, subclass: u8) -> Option<usize> {
    let cell = class.checked.nodes.get(usize::from(subclass))?;
    let id = cell.load(Ordering::Acquire);
    if id != 0 {
        return Some(id as usize - 1);
    }
    with_graph_lock::<P, _>(|| {
        let id = cell.load(Ordering::Relaxed);
        if id != 0 {
            return Some(id as usize - 1);
        }
        let fresh = NEXT_NODE.load(Ordering::Relaxed);
        if fresh as usize >= MAX_NODES {
            return None;
        }
        NEXT_NODE.store(fresh + 1, Ordering::Relaxed);
        cell.store(fresh + 1, Ordering::Release);
        Some(fresh as usize)
    })
}

fn has_edge(from: usize, to: usize, order: Ordering) -> bool {
    EDGES[from][to / 64].load(order) & (1 << (to % 64)) != 0
}

/// Whether the order graph has a path `from` → … → `to` (graph lock held).
fn reaches(from: usize, to: usize) -> bool {
    let mut visited = [0_u64; NODE_WORDS];
    let mut frontier = [0_u64; NODE_WORDS];
    frontier[from / 64] = 1 << (from % 64);
    loop {
        if frontier[to / 64] & (1 << (to % 64)) != 0 {
            return true;
        }
        let mut next = [0_u64; NODE_WORDS];
        for (word, bits) in frontier.iter().enumerate() {
            visited[word] |= bits;
            let mut rest = *bits;
            while rest != 0 {
                let node = word * 64 + rest.trailing_zeros() as usize;
                rest &= rest - 1;
                for (n, edges) in next.iter_mut().zip(&EDGES[node]) {
                    *n |= edges.load(Ordering::Relaxed);
                }
            }
        }
        let mut any = false;
        for (n, v) in next.iter_mut().zip(&visited) {
            *n &= !v;
            any |= *n != 0;
        }
        if !any {
            return false;
        }
        frontier = next;
    }
}

/// Records the edge `outer` → `new`, counting an inversion if it closes a
/// cycle. The search and the addition are one step under the graph lock.
fn add_edge<P: Platform>(outer: usize, new: usize) {
    if has_edge(outer, new, Ordering::Acquire) {
        return;
    }
    with_graph_lock::<P, _>(|| {
        if has_edge(outer, new, Ordering::Relaxed) {
            return;
        }
        if reaches(new, outer) {
            count(&ORDER_INVERSIONS);
        }
        EDGES[outer][new / 64].fetch_or(1 << (new % 64), Ordering::Release);
    });
}

// Acquisitions and releases.

/// Checks made before the raw acquire; passes on the acquiring thread.
pub(crate) fn before_acquire<P: Platform>(
    lock: usize,
    owner: &Owner,
    class: &LockClass,
    subclass: u8,
    mode: Mode,
) -> usize {
    let me = P::current_thread();
    if irql_modelled::<P>() {
        let irql = P::current_irql();
        let ok = match mode {
            Mode::Raising => irql <= Irql::DISPATCH,
            Mode::AtDpcLevel => irql == Irql::DISPATCH,
        };
        if !ok {
            count(&IRQL_AT_ACQUIRE);
        }
    }
    let context = current::<P>(me).map(|index| &CONTEXTS[index]);
    let holder = owner.0.load(Ordering::Acquire);
    if holder != 0 {
        let index = holder & ((1 << CONTEXT_BITS) - 1);
        let mine = if index == ON_THREAD_INDEX {
            mine_on_thread::<P>(holder)
        } else {
            context.is_some_and(|c| c.token.load(Ordering::Relaxed) == holder)
        };
        // The holder's scope has ended if its context no longer has its
        // token (or, kept in a thread's record, if it ended holding locks);
        // the owner is cleared before that scope ends, so reading the same
        // owner again after seeing the end means it never was.
        let scope_ended = || {
            let ended = if index == ON_THREAD_INDEX {
                LEAKED_TOKENS
                    .iter()
                    .any(|token| token.load(Ordering::Acquire) == holder)
            } else {
                CONTEXTS
                    .get(index as usize)
                    .is_some_and(|c| c.token.load(Ordering::Acquire) != holder)
            };
            ended && owner.0.load(Ordering::Acquire) == holder
        };
        if mine {
            count(&RECURSIVE_ACQUIRES);
            P::fail_stop(
                "recursive acquire: the current scope already holds this spin lock",
                lock,
            );
        } else if scope_ended() {
            count(&RECURSIVE_ACQUIRES);
            P::fail_stop(
                "acquire of a leaked lock: a guard of it was leaked in a scope that has ended, so it stays held and this acquire would spin forever",
                lock,
            );
        }
    }
    let Some(context) = context else {
        return me;
    };
    let new = node_of::<P>(class, subclass);
    if new.is_none() {
        count(&UNTRACKED);
    }
    let class_ptr = core::ptr::from_ref(class).cast_mut();
    for held in &context.held {
        if held.seq.load(Ordering::Relaxed) == 0 {
            continue;
        }
        if held.class.load(Ordering::Relaxed) == class_ptr
            && held.subclass.load(Ordering::Relaxed) == u32::from(subclass)
        {
            count(&SAME_CLASS_NESTING);
        } else if let (Some(new), Some(outer)) = (new, node_index(held)) {
            // Another class, or the same class as another subclass: an
            // edge held → new.
            add_edge::<P>(outer, new);
        }
    }
    me
}

fn node_index(held: &Held) -> Option<usize> {
    match held.node.load(Ordering::Relaxed) {
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
    let mut ticket = if mode == Mode::Raising {
        // `Lock::with` is a scope as well as a lock.
        enter_scope::<P>()
    } else {
        match find(me) {
            Some(index) => Ticket {
                context: index,
                token: CONTEXTS[index].token.load(Ordering::Relaxed),
                slot: NO_SLOT,
                seq: 0,
                start_ns: 0,
                measured: false,
            },
            None => {
                // Only a scope whose context could not be claimed gets here:
                // its thread's record, if the platform keeps one.
                count(&UNTRACKED);
                P::with_thread_record(|record| {
                    (record.depth.get() != 0).then(|| Ticket::on_thread(record.token.get()))
                })
                .flatten()
                .unwrap_or(Ticket::untracked())
            }
        }
    };
    if let Some(context) = CONTEXTS.get(ticket.context) {
        owner.0.store(ticket.token, Ordering::Release);
        record_held::<P>(context, &mut ticket, class, subclass);
    } else if ticket.context == ON_THREAD {
        owner.0.store(ticket.token, Ordering::Release);
        P::with_thread_record(|record| record.held.set(record.held.get() + 1));
    }
    ticket.measured = measured;
    ticket.start_ns = P::now_ns();
    ticket
}

/// Records a held lock in its context's table, or counts it there when the
/// table is full.
fn record_held<P: Platform>(
    context: &Context,
    ticket: &mut Ticket,
    class: &'static LockClass,
    subclass: u8,
) {
    let seq = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    let slot = context.held.iter().position(|held| {
        held.seq
            .compare_exchange(0, seq, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    let Some(index) = slot else {
        count(&UNTRACKED);
        context.unrecorded.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let held = &context.held[index];
    let node = node_of::<P>(class, subclass);
    held.class
        .store(core::ptr::from_ref(class).cast_mut(), Ordering::Relaxed);
    held.subclass.store(u32::from(subclass), Ordering::Relaxed);
    held.node
        .store(node.map_or(0, |n| n as u32 + 1), Ordering::Relaxed);
    ticket.slot = index;
    ticket.seq = seq;
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
    if ticket.context == ON_THREAD {
        if mine_on_thread::<P>(ticket.token) {
            P::with_thread_record(|record| record.held.set(record.held.get().saturating_sub(1)));
        } else {
            count(&FOREIGN_RELEASES);
        }
    } else if ticket.token != 0 {
        // (`find`, not `current`: unsafe code may have lowered the IRQL.)
        let mine = find(me).map(|index| CONTEXTS[index].token.load(Ordering::Relaxed));
        if mine != Some(ticket.token) {
            count(&FOREIGN_RELEASES);
        }
    }
    if irql_modelled::<P>() && P::current_irql() != Irql::DISPATCH {
        count(&IRQL_AT_RELEASE);
    }
    owner.0.store(0, Ordering::Release);
    if let Some(context) = CONTEXTS.get(ticket.context) {
        match context.held.get(ticket.slot) {
            Some(held) => {
                // Only while the slot still holds this entry: the outermost
                // scope may have judged it leaked and freed it.
                let _ =
                    held.seq
                        .compare_exchange(ticket.seq, 0, Ordering::Release, Ordering::Relaxed);
            }
            None if context.token.load(Ordering::Relaxed) == ticket.token => {
                let _ =
                    context
                        .unrecorded
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
            None => {}
        }
    }
    if mode == Mode::Raising {
        end_scope::<P>(ticket);
    }
    if ticket.measured {
        record_hold(&class.checked, end_ns.saturating_sub(ticket.start_ns));
    }
}
