//! Limits on request fields (docs/protocol.md, "Limits"); a value outside
//! them is `STATUS_INVALID_PARAMETER`.

/// Most acquisitions one `LOCK_PASSIVE` request may ask for.
pub const MAX_PASSIVE_ITERATIONS: u32 = 1_000_000;
/// Most acquisitions one `LOCK_DISPATCH` request may ask for (all of
/// them run at `DISPATCH_LEVEL`).
pub const MAX_DISPATCH_ITERATIONS: u32 = 100_000;
/// Most acquisitions each processor's DPC makes in one `DPC_BURST`.
pub const MAX_BURST_ITERATIONS: u32 = 100_000;
/// Most acquisitions each timer DPC makes.
pub const MAX_TIMER_ITERATIONS: u32 = 10_000;
/// Most work units done while holding the lock, per acquisition.
pub const MAX_WORK: u32 = 10_000;
/// Shortest timer period, in milliseconds.
pub const MIN_TIMER_PERIOD_MS: u32 = 1;
/// Longest timer period, in milliseconds.
pub const MAX_TIMER_PERIOD_MS: u32 = 10_000;
