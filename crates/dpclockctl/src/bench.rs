//! `dpclockctl bench`: what a lock costs next to what an IOCTL costs, and
//! how plain and in-stack queued locks compare under DPC bursts.
//!
//! * **IOCTL rates.** The same single-threaded loop sends `NOOP` bare,
//!   `NOOP` with a lock IOCTL's buffers, `LOCK_PASSIVE` and `LOCK_DISPATCH`,
//!   the last two with one acquisition and no work. The lock's cost is
//!   measured against the `NOOP` that moves the same bytes, because the
//!   I/O path's cost depends on how much output it returns. Rounds
//!   interleave the four, so machine drift affects all of them alike. Each
//!   rate is the median over the rounds.
//! * **Burst rates.** `DPC_BURST` with many acquisitions per processor,
//!   timed around the IOCTL, for each lock kind. Each rate is the median
//!   over the repetitions.
//!
//! No assertion rides on these numbers; they are reported.

use std::time::{Duration, Instant};

use dpclock_ioctl::{
    IOCTL_DPCLOCK_DPC_BURST, IOCTL_DPCLOCK_LOCK_DISPATCH, IOCTL_DPCLOCK_LOCK_PASSIVE, LockKind,
    LockResponse, Stats,
};
use serde::Serialize;

use crate::device::{self, Device, DeviceError};

/// How hard to measure.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Parameters {
    /// Interleaved rounds of the IOCTL rate loop.
    pub rounds: u32,
    /// Milliseconds per IOCTL kind per round.
    pub round_ms: u64,
    /// Bursts per lock kind.
    pub bursts: u32,
    /// Acquisitions per processor per burst.
    pub burst_iterations: u32,
    /// Work units per acquisition in the bursts.
    pub burst_work: u32,
}

impl Default for Parameters {
    fn default() -> Self {
        Self {
            rounds: 7,
            round_ms: 500,
            bursts: 9,
            burst_iterations: 100_000,
            burst_work: 10,
        }
    }
}

/// IOCTLs per second of one kind: the median and every round.
#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    /// Median over the rounds.
    pub median: f64,
    /// Each round's rate.
    pub rounds: Vec<f64>,
}

impl Rate {
    fn new(mut rounds: Vec<f64>) -> Self {
        let mut sorted = rounds.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        rounds.shrink_to_fit();
        Self { median, rounds }
    }
}

/// What `bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// The parameters.
    pub parameters: Parameters,
    /// Processors the driver reports.
    pub processors: u32,
    /// `NOOP` IOCTLs per second, no buffers.
    pub noop_per_s: Rate,
    /// `NOOP` IOCTLs per second with a lock IOCTL's buffers (16 bytes in,
    /// 32 bytes back).
    pub noop_lock_traffic_per_s: Rate,
    /// `LOCK_PASSIVE` (one plain acquisition) IOCTLs per second.
    pub lock_passive_per_s: Rate,
    /// `LOCK_DISPATCH` (one plain acquisition at `DISPATCH_LEVEL`) IOCTLs per second.
    pub lock_dispatch_per_s: Rate,
    /// Lock-IOCTL throughput (the lower of the two paths) over the throughput
    /// of the `NOOP` that moves the same bytes: the lock's share of an IOCTL.
    pub lock_noop_ratio: f64,
    /// The same over the bare `NOOP`: the lock and the I/O of its 32-byte
    /// response together.
    pub lock_bare_noop_ratio: f64,
    /// Acquisitions per second in DPC bursts with the executive spin lock.
    pub burst_plain_acquisitions_per_s: Rate,
    /// The same with the in-stack queued spin lock.
    pub burst_queued_acquisitions_per_s: Rate,
    /// Queued over plain.
    pub queued_vs_plain_ratio: f64,
    /// Contended acquisitions over all, per kind, in the bursts.
    pub burst_contention: [f64; 2],
    /// The driver's stats after the bursts (hold times in checked builds).
    #[serde(skip)]
    pub stats: Stats,
}

fn rate_of(
    device: &dyn Device,
    budget: Duration,
    op: &dyn Fn(&dyn Device) -> Result<(), DeviceError>,
) -> Result<f64, DeviceError> {
    let start = Instant::now();
    let mut done = 0_u64;
    while start.elapsed() < budget {
        op(device)?;
        done += 1;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Runs the benchmark.
///
/// # Errors
///
/// The first IOCTL that fails.
pub fn run(device: &dyn Device, parameters: Parameters) -> Result<Results, DeviceError> {
    device::timer_stop(device)?;
    device::reset(device)?;
    let processors = device::stats(device)?.processors;
    let budget = Duration::from_millis(parameters.round_ms);
    let noop = |d: &dyn Device| device::noop(d);
    let noop_lock_traffic = |d: &dyn Device| {
        device::noop_with_lock_traffic(d, &mut [0; size_of::<LockResponse>()]).map(|_| ())
    };
    let passive = |d: &dyn Device| {
        device::lock(
            d,
            "LOCK_PASSIVE",
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            LockKind::Plain,
            1,
            0,
        )
        .map(|_| ())
    };
    let dispatch = |d: &dyn Device| {
        device::lock(
            d,
            "LOCK_DISPATCH",
            IOCTL_DPCLOCK_LOCK_DISPATCH,
            LockKind::Plain,
            1,
            0,
        )
        .map(|_| ())
    };
    let [
        mut noops,
        mut noops_lock_traffic,
        mut passives,
        mut dispatches,
    ] = std::array::from_fn(|_| Vec::new());
    for _ in 0..parameters.rounds {
        noops.push(rate_of(device, budget, &noop)?);
        noops_lock_traffic.push(rate_of(device, budget, &noop_lock_traffic)?);
        passives.push(rate_of(device, budget, &passive)?);
        dispatches.push(rate_of(device, budget, &dispatch)?);
    }
    let (noop_per_s, lock_passive_per_s, lock_dispatch_per_s) =
        (Rate::new(noops), Rate::new(passives), Rate::new(dispatches));
    let noop_lock_traffic_per_s = Rate::new(noops_lock_traffic);
    let slower_lock = lock_passive_per_s.median.min(lock_dispatch_per_s.median);
    let lock_noop_ratio = slower_lock / noop_lock_traffic_per_s.median.max(1e-9);
    let lock_bare_noop_ratio = slower_lock / noop_per_s.median.max(1e-9);

    let mut bursts = [Vec::new(), Vec::new()];
    let mut contention = [0.0; 2];
    for (index, kind) in [LockKind::Plain, LockKind::Queued].into_iter().enumerate() {
        let (mut acquired, mut contended) = (0_u64, 0_u64);
        for _ in 0..parameters.bursts {
            let start = Instant::now();
            let response = device::lock(
                device,
                "DPC_BURST",
                IOCTL_DPCLOCK_DPC_BURST,
                kind,
                parameters.burst_iterations,
                parameters.burst_work,
            )?;
            bursts[index].push(response.acquisitions as f64 / start.elapsed().as_secs_f64());
            acquired += response.acquisitions;
            contended += response.contended;
        }
        contention[index] = contended as f64 / acquired.max(1) as f64;
    }
    let [plain, queued] = bursts.map(Rate::new);
    let queued_vs_plain_ratio = queued.median / plain.median.max(1e-9);
    let stats = device::stats(device)?;
    Ok(Results {
        parameters,
        processors,
        noop_per_s,
        noop_lock_traffic_per_s,
        lock_passive_per_s,
        lock_dispatch_per_s,
        lock_noop_ratio,
        lock_bare_noop_ratio,
        burst_plain_acquisitions_per_s: plain,
        burst_queued_acquisitions_per_s: queued,
        queued_vs_plain_ratio,
        burst_contention: contention,
        stats,
    })
}

/// The hold-time statistics of one lock kind, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct Holds {
    /// Holds measured by the validator.
    pub count: u64,
    /// Mean hold, ns.
    pub mean_ns: u64,
    /// Longest hold, ns.
    pub max_ns: u64,
    /// Holds over 25 µs.
    pub over_25us: u64,
    /// Non-empty log2 buckets: (lower bound in ns, holds).
    pub histogram: Vec<(u64, u64)>,
}

impl Holds {
    /// From the driver's stats, for `kind`.
    #[must_use]
    pub fn of(stats: &Stats, kind: LockKind) -> Self {
        let h = &stats.ledgers[kind.index()].hold;
        Self {
            count: h.count,
            mean_ns: h.total_ns.checked_div(h.count).unwrap_or(0),
            max_ns: h.max_ns,
            over_25us: h.over_guidance,
            histogram: h
                .histogram
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (1_u64 << i, *n))
                .collect(),
        }
    }
}
