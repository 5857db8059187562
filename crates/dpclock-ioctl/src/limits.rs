//! Limits on request fields and the budgets they come from (docs/protocol.md,
//! "Limits" and "Budgets"). A field outside its range, or a `TIMER_START`
//! whose tick would not fit its budget, is `STATUS_INVALID_PARAMETER`.
//!
//! The budgets are Microsoft's guidance for code at `DISPATCH_LEVEL`: a
//! spin-lock hold under 25 µs, a DPC routine under 100 µs. The cost of a
//! request's own work is known before it runs, from `work` alone, so every
//! bound below is arithmetic on constants, checked at compile time; the
//! driver splits a long request into chunks of [`chunk_iterations`]
//! acquisitions, each one DPC run or one raised section. What the
//! arithmetic cannot know, the time spent waiting for a lock other
//! processors hold, the driver measures: a DPC run or raised section of
//! `DPC_BURST` or `LOCK_DISPATCH` reads the clock after each acquisition
//! and ends once [`DPC_BUDGET_NS`] has passed (docs/protocol.md, "The
//! cut-off").

/// Longest spin-lock hold allowed, in nanoseconds (Microsoft: under 25 µs).
pub const HOLD_BUDGET_NS: u64 = 25_000;
/// Longest DPC routine run, and longest section raised to `DISPATCH_LEVEL`,
/// in nanoseconds (Microsoft: under 100 µs): the size of a chunk, and the
/// measured time after which a burst DPC or a `LOCK_DISPATCH` section ends.
pub const DPC_BUDGET_NS: u64 = 100_000;
/// The part of [`DPC_BUDGET_NS`] a timer tick's own acquisitions may use;
/// the rest is left for waiting behind other holders of the lock.
pub const TIMER_TICK_BUDGET_NS: u64 = 50_000;

/// One work unit (a dependent 64-bit multiply-add), measured: the best of
/// five runs of the driver's loop on the development host (AMD EPYC, 2
/// vCPUs), 1.257–1.270 ns per unit; see docs/protocol.md, "Budgets".
pub const WORK_UNIT_MEASURED_PS: u64 = 1_270;
/// How much slower than the measuring host a slow test VM is assumed to be:
/// a lower clock (×2), a shared core (×2), nested virtualization and power
/// states (×2).
pub const SLOWDOWN: u64 = 8;
/// One work unit on the slow VM, in picoseconds.
pub const WORK_UNIT_PS: u64 = WORK_UNIT_MEASURED_PS * SLOWDOWN;
/// What one acquisition costs besides its work, on the slow VM: the acquire
/// and release, the ledger update and its share of the
/// `KeQueryPerformanceCounter` reads, 1.125 on average at `DISPATCH_LEVEL`
/// (one after each release, for the cut-off, and two inside one hold in 16,
/// to time it), 0.125 otherwise (assumed, generously: four times what one
/// acquisition of a DPC burst costs under Wine on the measuring host,
/// 0.24 µs: 8.30 M acquisitions/s on 2 CPUs, docs/bench.md; a platform
/// timer's read on a VM may take about a microsecond by itself, which this
/// does not cover, and the cut-off does).
pub const ACQUISITION_OVERHEAD_NS: u64 = 1_000;

/// What one acquisition with `work` units costs on the slow VM, in
/// picoseconds: the longest it holds the lock.
#[must_use]
pub const fn acquisition_cost_ps(work: u32) -> u64 {
    ACQUISITION_OVERHEAD_NS * 1_000 + work as u64 * WORK_UNIT_PS
}

/// Acquisitions that fit one DPC run or one raised section at this `work`
/// (at least 1): the driver's chunk.
#[must_use]
pub const fn chunk_iterations(work: u32) -> u32 {
    let fit = DPC_BUDGET_NS * 1_000 / acquisition_cost_ps(work);
    if fit == 0 {
        1
    } else if fit > u32::MAX as u64 {
        u32::MAX
    } else {
        fit as u32
    }
}

/// Whether a timer tick of `iterations` acquisitions with `work` units each
/// fits [`TIMER_TICK_BUDGET_NS`].
#[must_use]
pub const fn timer_tick_fits(iterations: u32, work: u32) -> bool {
    iterations as u64 * acquisition_cost_ps(work) <= TIMER_TICK_BUDGET_NS * 1_000
}

/// Most work units done while holding the lock, per acquisition: one hold
/// stays within [`HOLD_BUDGET_NS`].
pub const MAX_WORK: u32 = 2_000;
/// Most acquisitions one `LOCK_PASSIVE` request may ask for (in chunks;
/// cancellation and removal are checked between them).
pub const MAX_PASSIVE_ITERATIONS: u32 = 1_000_000;
/// Most acquisitions one `LOCK_DISPATCH` request may ask for (in chunks,
/// each one raised section; the IRQL drops between them).
pub const MAX_DISPATCH_ITERATIONS: u32 = 100_000;
/// Most acquisitions each processor makes in one `DPC_BURST` (in rounds of
/// one DPC per processor each).
pub const MAX_BURST_ITERATIONS: u32 = 100_000;
/// Most acquisitions each timer DPC makes: those of the cheapest tick
/// (`work = 0`) that fits [`TIMER_TICK_BUDGET_NS`]. A tick with more work
/// must have fewer ([`timer_tick_fits`]).
pub const MAX_TIMER_ITERATIONS: u32 =
    (TIMER_TICK_BUDGET_NS * 1_000 / acquisition_cost_ps(0)) as u32;
/// Shortest timer period, in milliseconds: longer than any tick.
pub const MIN_TIMER_PERIOD_MS: u32 = 1;
/// Longest timer period, in milliseconds.
pub const MAX_TIMER_PERIOD_MS: u32 = 10_000;

// The budgets hold by construction.
const _: () = {
    // One hold: 1 µs + 2,000 × 10.16 ns = 21.32 µs ≤ 25 µs.
    assert!(acquisition_cost_ps(MAX_WORK) <= HOLD_BUDGET_NS * 1_000);
    // One chunk (a DPC run, a raised section) at any work stays in budget.
    assert!(
        chunk_iterations(MAX_WORK) as u64 * acquisition_cost_ps(MAX_WORK) <= DPC_BUDGET_NS * 1_000
    );
    assert!(chunk_iterations(0) as u64 * acquisition_cost_ps(0) <= DPC_BUDGET_NS * 1_000);
    // The cheapest tick at its most acquisitions fits; one more does not.
    assert!(timer_tick_fits(MAX_TIMER_ITERATIONS, 0));
    assert!(!timer_tick_fits(MAX_TIMER_ITERATIONS + 1, 0));
    // A tick is over long before the next one is due.
    assert!(TIMER_TICK_BUDGET_NS < MIN_TIMER_PERIOD_MS as u64 * 1_000_000);
    assert!(TIMER_TICK_BUDGET_NS <= DPC_BUDGET_NS);
};
