//! `dpclockctl soak`: everything at once, for minutes or hours, checked
//! continuously.
//!
//! The run is a sequence of *cycles*. Each cycle installs the driver (the
//! free and the checked build in turn), then runs, on handles of their own:
//!
//! * **stress threads**: `LOCK_PASSIVE`, `LOCK_DISPATCH` and `DPC_BURST` on
//!   both locks, with random sizes;
//! * **malformed-request threads**: cases generated from the protocol's
//!   tables ([`crate::fuzz`]), each checked against the status the
//!   document's order of checks gives, and after every batch a correct
//!   request and a `GET_STATS` that must succeed;
//! * **the periodic timer**, restarted at random periods, lock kinds and
//!   sizes at every checkpoint.
//!
//! Every couple of seconds a **checkpoint** parks every thread between two
//! requests, stops the timer, reads `GET_STATS` and `GET_HEALTH`, and
//! verifies both ledgers exactly: every acquisition the threads were
//! answered for, and every timer tick times its size, performed once and
//! recorded once, totals and checksums consistent, the unlocked ledger
//! untouched, no validator violation; and the driver's counters at what a
//! device with no other request in flight has. Those acquisitions are then
//! *verified*.
//!
//! The cycle ends with the **removal of the device under load**: the threads
//! keep sending while the device is uninstalled. Each must see its handle
//! fail with a documented removal status, confirmed by a failing `NOOP`;
//! none may hang past the request timeout; and the device must be gone
//! before the next install. (The driver prints its counters at the removal
//! and in `DriverUnload`; `cargo xtask soak` checks those lines.)
//!
//! Once a minute the run samples the handle and memory counts of the
//! harness and of the driver's host process, as the OS reports them, and
//! the driver's allocation counters; at the end it reports a leak if any of
//! them grew. Any failure stops the run.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

use dpclock_ioctl::{
    Health, IOCTL_DPCLOCK_DPC_BURST, IOCTL_DPCLOCK_GET_HEALTH, IOCTL_DPCLOCK_GET_STATS,
    IOCTL_DPCLOCK_LOCK_DISPATCH, IOCTL_DPCLOCK_LOCK_PASSIVE, IOCTL_DPCLOCK_NOOP,
    IOCTL_DPCLOCK_RESET, IOCTL_DPCLOCK_TIMER_START, IOCTL_DPCLOCK_TIMER_STOP, LockKind,
    LockRequest, LockResponse, PATH_COUNT, Path, Policy, STATS_CHECKED_BUILD, Stats, TimerRequest,
    update_mix,
};
use serde::Serialize;

use crate::{
    device::{Device, DeviceError, IoResult, status_name},
    fuzz::{self, Expect, Model, Rng},
};

/// Which driver build a cycle installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Build {
    /// The free build.
    Free,
    /// The checked build (kspin's validator).
    Checked,
}

/// A process's handle and memory counts, as the OS reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessSample {
    /// Which process (`harness` or `driver host`).
    pub name: String,
    /// Its process ID.
    pub pid: u32,
    /// `GetProcessHandleCount`.
    pub handles: u64,
    /// `PROCESS_MEMORY_COUNTERS::PagefileUsage` (private bytes).
    pub private_bytes: u64,
    /// `PROCESS_MEMORY_COUNTERS::WorkingSetSize`.
    pub working_set: u64,
    /// Open handles per object type (its name where known, else its
    /// index), where the OS lists them.
    pub handle_types: BTreeMap<String, u64>,
}

/// What the soak needs from the machine: opening, installing and removing
/// the device, and process counts.
pub trait Platform: Sync {
    /// An open handle.
    type Handle: Device + Send + Sync;
    /// Opens the device (a new handle).
    ///
    /// # Errors
    ///
    /// Why it could not be opened.
    fn open(&self) -> Result<Self::Handle, String>;
    /// Installs `build` and waits for its device to start.
    ///
    /// # Errors
    ///
    /// Why it failed.
    fn install(&self, build: Build) -> Result<(), String>;
    /// Removes the device and waits for it to go.
    ///
    /// # Errors
    ///
    /// Why it failed.
    fn uninstall(&self) -> Result<(), String>;
    /// Whether a dpclock device interface is present.
    fn present(&self) -> bool;
    /// The harness's and the driver host's counts (whatever can be read).
    fn processes(&self) -> Vec<ProcessSample>;
    /// Called when requests hang and their threads cannot be joined: must
    /// publish `report` and end the process.
    fn abandon(&self, report: Report) -> !;
}

/// The soak's shape.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// How long the whole run lasts.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// How long the device lives under load in each cycle.
    #[serde(serialize_with = "seconds")]
    pub cycle: Duration,
    /// Time between checkpoints.
    #[serde(serialize_with = "seconds")]
    pub checkpoint: Duration,
    /// Stress threads.
    pub stress_threads: usize,
    /// Malformed-request threads.
    pub fuzz_threads: usize,
    /// Malformed requests between two health checks of a fuzz thread.
    pub fuzz_batch: u64,
    /// The longest any request may take.
    #[serde(serialize_with = "seconds")]
    pub request_timeout: Duration,
    /// Time between process and allocation samples.
    #[serde(serialize_with = "seconds")]
    pub sample_every: Duration,
    /// Time between progress lines.
    #[serde(serialize_with = "seconds")]
    pub progress_every: Duration,
    /// Largest `iterations` of a stress request.
    pub max_iterations: u32,
    /// Largest `iterations` of a stress request on the in-stack queued lock.
    /// Under Wine its waiters are preemptible threads and the lock hands
    /// itself over strictly in turn, so long bursts of it stall behind
    /// descheduled waiters (docs/linux-flavor.md, the queued-lock convoy;
    /// with 1,000 per request the checked build stalled for 10 s at a time
    /// on 2 busy CPUs): its requests stay short there.
    pub max_queued_iterations: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Whether malformed requests may pass a null input buffer with a
    /// length (not under Wine 8.0, which does not refuse them reliably).
    pub null_inputs: bool,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(30 * 60),
            cycle: Duration::from_secs(13),
            checkpoint: Duration::from_millis(2500),
            stress_threads: 2,
            fuzz_threads: 2,
            fuzz_batch: 200,
            request_timeout: Duration::from_secs(30),
            sample_every: Duration::from_secs(60),
            progress_every: Duration::from_secs(5),
            max_iterations: 40_000,
            max_queued_iterations: 64,
            seed: 1,
            null_inputs: true,
        }
    }
}

/// A log-bucketed latency histogram: exact below 16 µs, then 16 buckets per
/// power of two (about 6 % wide).
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

const BUCKETS: usize = 16 + 60 * 16;

fn bucket_of(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // ≥ 4
    let sub = ((us >> (e - 4)) & 15) as usize;
    (16 + (e - 4) * 16 + sub).min(BUCKETS - 1)
}

/// The largest value that lands in `bucket`.
fn bucket_top(bucket: usize) -> u64 {
    if bucket < 16 {
        return bucket as u64;
    }
    let e = (bucket - 16) / 16 + 4;
    let sub = ((bucket - 16) % 16) as u64;
    ((16 + sub + 1) << (e - 4)) - 1
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The `q` quantile in µs (the top of its bucket, at most the maximum).
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((count as f64 * q).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return bucket_top(i).min(self.max.load(Relaxed));
            }
        }
        self.max.load(Relaxed)
    }

    fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            p50_us: self.quantile(0.5),
            p99_us: self.quantile(0.99),
            max_us: self.max.load(Relaxed),
        }
    }
}

/// p50, p99 and max of one IOCTL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Requests measured.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
}

/// The names latencies are kept under.
const LATENCY_NAMES: [&str; 12] = [
    "NOOP",
    "LOCK_PASSIVE",
    "LOCK_DISPATCH",
    "DPC_BURST",
    "TIMER_START",
    "TIMER_STOP",
    "GET_STATS",
    "RESET",
    "GET_HEALTH",
    "malformed",
    "install",
    "uninstall",
];

fn latency_name(code: u32) -> &'static str {
    match code {
        IOCTL_DPCLOCK_NOOP => "NOOP",
        IOCTL_DPCLOCK_LOCK_PASSIVE => "LOCK_PASSIVE",
        IOCTL_DPCLOCK_LOCK_DISPATCH => "LOCK_DISPATCH",
        IOCTL_DPCLOCK_DPC_BURST => "DPC_BURST",
        IOCTL_DPCLOCK_TIMER_START => "TIMER_START",
        IOCTL_DPCLOCK_TIMER_STOP => "TIMER_STOP",
        IOCTL_DPCLOCK_GET_STATS => "GET_STATS",
        IOCTL_DPCLOCK_RESET => "RESET",
        IOCTL_DPCLOCK_GET_HEALTH => "GET_HEALTH",
        _ => "malformed",
    }
}

/// The checksums a consistent ledger has, extended as counts grow.
#[derive(Clone, Debug, Default)]
pub struct ChecksumCache {
    /// Per path: the count reached and the sum of `update_mix` up to it.
    reached: [(u64, u64); PATH_COUNT],
}

impl ChecksumCache {
    /// The checksum of a consistent ledger with these counts (counts never
    /// shrink between calls, except after [`ChecksumCache::default`]).
    pub fn expected(&mut self, updates: &[u64; PATH_COUNT]) -> u64 {
        let mut sum = 0_u64;
        for (path, &count) in updates.iter().enumerate() {
            let (reached, partial) = &mut self.reached[path];
            if count < *reached {
                (*reached, *partial) = (0, 0);
            }
            while *reached < count {
                *reached += 1;
                *partial = partial.wrapping_add(update_mix(path as u32, *reached));
            }
            sum = sum.wrapping_add(*partial);
        }
        sum
    }
}

/// Checks the two locked ledgers against what was requested since the last
/// `RESET`, exactly: returns the acquisitions verified, or what is wrong.
///
/// # Errors
///
/// One line per broken rule.
pub fn verify(
    stats: &Stats,
    requested: &[[u64; PATH_COUNT]; 2],
    caches: &mut [ChecksumCache; 2],
) -> Result<u64, Vec<String>> {
    let mut findings = Vec::new();
    let mut verified = 0;
    for (k, kind) in [LockKind::Plain, LockKind::Queued].into_iter().enumerate() {
        let ledger = &stats.ledgers[kind.index()];
        for path in Path::ALL {
            let p = path as usize;
            let (want, performed, recorded) =
                (requested[k][p], ledger.performed[p], ledger.updates[p]);
            if performed != want {
                findings.push(format!(
                    "{} ledger, {}: {want} acquisitions requested, {performed} performed",
                    kind.name(),
                    path.name()
                ));
            }
            if recorded != performed {
                findings.push(format!(
                    "{} ledger, {}: {performed} performed, {recorded} recorded ({})",
                    kind.name(),
                    path.name(),
                    if recorded < performed {
                        "lost updates"
                    } else {
                        "duplicated updates"
                    }
                ));
            }
            verified += want;
        }
        if ledger.total != ledger.updates.iter().sum::<u64>() {
            findings.push(format!(
                "{} ledger: torn update (total {} ≠ Σ updates)",
                kind.name(),
                ledger.total
            ));
        }
        if ledger.checksum != caches[k].expected(&ledger.updates) {
            findings.push(format!(
                "{} ledger: checksum does not match its counts",
                kind.name()
            ));
        }
    }
    let unlocked = &stats.ledgers[LockKind::Unlocked.index()];
    if unlocked
        .updates
        .iter()
        .chain(&unlocked.performed)
        .any(|&n| n != 0)
    {
        findings.push("the unlocked ledger changed, though the control is off".into());
    }
    if stats.validator.violations() != 0 {
        findings.push(format!("validator violations: {:?}", stats.validator));
    }
    if findings.is_empty() {
        Ok(verified)
    } else {
        Err(findings)
    }
}

/// One failure, with what the run was doing.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// Seconds into the run.
    pub at_s: f64,
    /// The cycle.
    pub cycle: u64,
    /// What failed.
    pub what: String,
}

/// One point of the throughput timeline (per second).
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Seconds into the run.
    pub t_s: f64,
    /// Acquisitions answered in the last interval, per second.
    pub acquisitions_per_s: f64,
    /// IOCTLs answered in the last interval, per second (malformed included).
    pub ioctls_per_s: f64,
    /// Malformed requests answered in the last interval, per second.
    pub malformed_per_s: f64,
    /// The build installed, or `None` between cycles.
    pub build: Option<Build>,
}

/// An event of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Seconds into the run.
    pub t_s: f64,
    /// `installed free`, `installed checked`, `removed`.
    pub what: String,
}

/// One once-a-minute sample.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds into the run.
    pub t_s: f64,
    /// The processes.
    pub processes: Vec<ProcessSample>,
    /// `GET_HEALTH`, if a device was there.
    pub allocations_live: Option<u64>,
    /// `GET_HEALTH`'s allocated bytes, if a device was there.
    pub allocated_bytes_live: Option<u64>,
}

/// A counter that may have leaked.
#[derive(Clone, Debug, Serialize)]
pub struct LeakCheck {
    /// What was sampled.
    pub what: String,
    /// The first samples' median.
    pub first: u64,
    /// The last samples' median.
    pub last: u64,
    /// Growth above which it counts as a leak.
    pub allowed_growth: u64,
    /// Whether it grew past that.
    pub leaked: bool,
    /// Samples of it (fewer than three are shown, not judged, except for
    /// the driver's allocations).
    pub samples: usize,
}

/// Everything the soak measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The configuration.
    pub config: Option<Config>,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// True when nothing failed.
    pub passed: bool,
    /// Remove-and-reinstall cycles completed (removed under load and gone).
    pub cycles: u64,
    /// Cycles per build.
    pub cycles_by_build: BTreeMap<String, u64>,
    /// Checkpoints that verified the ledgers.
    pub checkpoints: u64,
    /// Acquisitions verified at checkpoints.
    pub acquisitions_verified: u64,
    /// Acquisitions verified, per build.
    pub acquisitions_verified_by_build: BTreeMap<String, u64>,
    /// Acquisitions answered after a cycle's last checkpoint (removed before
    /// they could be verified).
    pub acquisitions_unverified: u64,
    /// Lost, duplicated or torn updates found (always 0 in a passing run).
    pub ledger_errors: u64,
    /// Timer restarts (one per checkpoint).
    pub timer_restarts: u64,
    /// Timer ticks that ran, over all cycles.
    pub timer_ticks: u64,
    /// Malformed requests answered.
    pub malformed: u64,
    /// Malformed requests per expected status.
    pub malformed_by_status: BTreeMap<String, u64>,
    /// Health checks after a batch of malformed requests.
    pub fuzz_health_checks: u64,
    /// Statuses the threads' handles got when the device was removed.
    pub removal_statuses: BTreeMap<String, u64>,
    /// IOCTLs answered (all kinds).
    pub ioctls: u64,
    /// Latencies per IOCTL (and of installs).
    pub latency: BTreeMap<String, LatencySummary>,
    /// The hold-time histogram of the checked build's locks, summed over its
    /// cycles (`histogram[i]`: holds of 2^i to 2^(i+1) ns).
    pub hold_histogram: Vec<u64>,
    /// Longest hold seen by the checked build, ns.
    pub hold_max_ns: u64,
    /// The driver's own timings (`GET_STATS`'s `timings`), the largest seen
    /// at any checkpoint, either build: longest hold, DPC routine run and
    /// raised section in ns, and back-to-back timer ticks skipped (the
    /// largest count of one cycle).
    pub driver_timings: BTreeMap<String, u64>,
    /// Per-second throughput.
    pub timeline: Vec<Point>,
    /// Installs and removals.
    pub events: Vec<Event>,
    /// The once-a-minute samples.
    pub samples: Vec<Sample>,
    /// What the samples say about leaks.
    pub leaks: Vec<LeakCheck>,
    /// Everything that went wrong (empty in a passing run).
    pub failures: Vec<Failure>,
}

/// What every thread shares.
struct Shared {
    start: Instant,
    cycle: AtomicU64,
    /// Set on the first failure: everything winds down.
    failed: AtomicBool,
    failures: Mutex<Vec<Failure>>,
    latency: BTreeMap<&'static str, Histogram>,
    /// Acquisitions answered (for the timeline).
    acquisitions: AtomicU64,
    ioctls: AtomicU64,
    malformed: AtomicU64,
    malformed_by_status: Mutex<BTreeMap<String, u64>>,
    fuzz_health_checks: AtomicU64,
    removal_statuses: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failed.store(true, Relaxed);
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() < 50 {
            failures.push(Failure {
                at_s: self.start.elapsed().as_secs_f64(),
                cycle: self.cycle.load(Relaxed),
                what,
            });
        }
    }

    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// What the threads of one cycle share.
#[derive(Default)]
struct CycleState {
    /// Acquisitions answered per (plain, queued) × path, since the RESET.
    requested: [[AtomicU64; PATH_COUNT]; 2],
    /// Answered since the last checkpoint (lost to verification if the
    /// device goes first).
    since_checkpoint: AtomicU64,
    /// Ask the threads to park between two requests.
    pause: AtomicBool,
    parked: AtomicUsize,
    resume: (Mutex<u64>, Condvar),
    /// The device is being removed: a failing handle is expected.
    removing: AtomicBool,
    /// The threads should leave.
    stop: AtomicBool,
    finished: AtomicUsize,
    /// Per thread: when its request in flight began (ms since start, 0:
    /// none) and what it is.
    in_flight: Vec<(AtomicU64, Mutex<&'static str>)>,
}

impl CycleState {
    fn new(threads: usize) -> Self {
        Self {
            in_flight: (0..threads)
                .map(|_| (AtomicU64::new(0), Mutex::new("")))
                .collect(),
            ..Self::default()
        }
    }

    /// Parks the calling thread while a checkpoint runs.
    fn park_if_asked(&self) {
        if !self.pause.load(Relaxed) {
            return;
        }
        let (lock, wake) = &self.resume;
        let mut generation = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let parked_at = *generation;
        self.parked.fetch_add(1, Relaxed);
        while *generation == parked_at && !self.stop.load(Relaxed) {
            generation = wake
                .wait_timeout(generation, Duration::from_millis(50))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        self.parked.fetch_sub(1, Relaxed);
    }

    fn release(&self) {
        self.pause.store(false, Relaxed);
        let (lock, wake) = &self.resume;
        *lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        wake.notify_all();
    }
}

/// One request, timed, watched and counted.
fn send(
    shared: &Shared,
    cycle: &CycleState,
    me: usize,
    device: &dyn Device,
    code: u32,
    input: &[u8],
    output: &mut [u8],
) -> IoResult {
    let name = latency_name(code);
    *cycle.in_flight[me]
        .1
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    let began = Instant::now();
    cycle.in_flight[me]
        .0
        .store(shared.start.elapsed().as_millis().max(1) as u64, Relaxed);
    let result = device.ioctl(code, input, output);
    cycle.in_flight[me].0.store(0, Relaxed);
    shared.latency[name].record(began.elapsed());
    shared.ioctls.fetch_add(1, Relaxed);
    result
}

/// A failed request: the device's removal (expected while it is being
/// removed, and confirmed by a failing `NOOP`), or a failure.
fn classify(
    shared: &Shared,
    cycle: &CycleState,
    device: &dyn Device,
    what: &str,
    status: i32,
) -> bool {
    let removing = cycle.removing.load(Relaxed);
    let noop = device.ioctl(IOCTL_DPCLOCK_NOOP, &[], &mut []).status;
    if removing && noop < 0 {
        let mut statuses = shared
            .removal_statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *statuses.entry(status_name(status)).or_insert(0) += 1;
        true
    } else {
        shared.fail(format!(
            "{what} failed with {} (NOOP then: {}; device {})",
            status_name(status),
            status_name(noop),
            if removing {
                "being removed"
            } else {
                "not being removed"
            }
        ));
        true
    }
}

fn stress_thread(
    shared: &Shared,
    cycle: &CycleState,
    me: usize,
    device: &dyn Device,
    processors: u32,
    config: &Config,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let mut output = [0_u8; size_of::<LockResponse>()];
    while !cycle.stop.load(Relaxed) && !shared.failed.load(Relaxed) {
        cycle.park_if_asked();
        if cycle.stop.load(Relaxed) {
            break;
        }
        let (code, path) = match rng.below(3) {
            0 => (IOCTL_DPCLOCK_LOCK_PASSIVE, Path::Passive),
            1 => (IOCTL_DPCLOCK_LOCK_DISPATCH, Path::Dispatch),
            _ => (IOCTL_DPCLOCK_DPC_BURST, Path::BurstDpc),
        };
        let k = rng.below(2) as usize;
        let kind = [LockKind::Plain, LockKind::Queued][k];
        let most = if kind == LockKind::Queued {
            config.max_queued_iterations
        } else {
            config.max_iterations
        };
        let iterations = if rng.chance(20) {
            1 + rng.below(16) as u32
        } else {
            1 + rng.below(u64::from(most)) as u32
        };
        let work = [0, 0, 1, 2, 5, 10][rng.below(6) as usize];
        let input = LockRequest::encode(kind, iterations, work);
        let result = send(shared, cycle, me, device, code, &input, &mut output);
        if result.status < 0 {
            classify(shared, cycle, device, latency_name(code), result.status);
            break;
        }
        let response = LockResponse::decode(&output[..result.information.min(output.len())]);
        let runs = if path == Path::BurstDpc {
            processors
        } else {
            1
        };
        let acquisitions = u64::from(iterations) * u64::from(runs);
        match response {
            Ok(r) if r.acquisitions == acquisitions && r.lock_kind == kind as u32 => {}
            other => {
                shared.fail(format!(
                    "{} ({} × {iterations}) answered {other:?}",
                    latency_name(code),
                    kind.name()
                ));
                break;
            }
        }
        cycle.requested[k][path as usize].fetch_add(acquisitions, Relaxed);
        cycle.since_checkpoint.fetch_add(acquisitions, Relaxed);
        shared.acquisitions.fetch_add(acquisitions, Relaxed);
    }
    cycle.finished.fetch_add(1, Relaxed);
}

fn fuzz_thread(
    shared: &Shared,
    cycle: &CycleState,
    me: usize,
    device: &dyn Device,
    config: &Config,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let model = Model {
        unlocked_allowed: false,
        timer_running: false,
    };
    let policy = Policy::default();
    let mut buffers = fuzz::CaseBuffers::default();
    let mut in_batch = 0;
    'outer: while !cycle.stop.load(Relaxed) && !shared.failed.load(Relaxed) {
        cycle.park_if_asked();
        if cycle.stop.load(Relaxed) {
            break;
        }
        // Only requests that change nothing: the ledgers are being verified.
        let case = loop {
            let case = fuzz::case_with(&mut rng, config.null_inputs);
            if !case.acts(policy) {
                break case;
            }
        };
        let (expect, _) = model.expect(&case);
        *cycle.in_flight[me]
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = "malformed";
        let began = Instant::now();
        cycle.in_flight[me]
            .0
            .store(shared.start.elapsed().as_millis().max(1) as u64, Relaxed);
        let result = buffers.send(device, &case);
        cycle.in_flight[me].0.store(0, Relaxed);
        shared.latency["malformed"].record(began.elapsed());
        shared.ioctls.fetch_add(1, Relaxed);
        let matched = match expect {
            Expect::Status(status) => result.status == status,
            Expect::IoManagerError => result.status < 0,
        };
        if !matched {
            if cycle.removing.load(Relaxed) {
                classify(shared, cycle, device, "a malformed request", result.status);
            } else {
                let expected = match expect {
                    Expect::Status(status) => status_name(status),
                    Expect::IoManagerError => "an I/O manager error".into(),
                };
                shared.fail(format!(
                    "malformed request {:#010x} ({} input bytes, {} output bytes, {:?}/{:?}): expected {expected}, got {}",
                    case.code,
                    case.input.len(),
                    case.output_len,
                    case.input_buffer,
                    case.output_buffer,
                    status_name(result.status)
                ));
            }
            break;
        }
        shared.malformed.fetch_add(1, Relaxed);
        let key = match expect {
            Expect::Status(status) => status_name(status),
            Expect::IoManagerError => "I/O manager error (null buffer)".into(),
        };
        *shared
            .malformed_by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_insert(0) += 1;
        in_batch += 1;
        if in_batch >= config.fuzz_batch {
            in_batch = 0;
            // The device still serves correct requests.
            let mut output = [0_u8; size_of::<LockResponse>()];
            let input = LockRequest::encode(LockKind::Plain, 3, 1);
            let result = send(
                shared,
                cycle,
                me,
                device,
                IOCTL_DPCLOCK_LOCK_PASSIVE,
                &input,
                &mut output,
            );
            if result.status < 0 {
                classify(
                    shared,
                    cycle,
                    device,
                    "LOCK_PASSIVE after a batch of malformed requests",
                    result.status,
                );
                break 'outer;
            }
            if LockResponse::decode(&output).map(|r| r.acquisitions) != Ok(3) {
                shared.fail(format!(
                    "LOCK_PASSIVE after a batch of malformed requests answered {output:02x?}"
                ));
                break;
            }
            cycle.requested[0][Path::Passive as usize].fetch_add(3, Relaxed);
            cycle.since_checkpoint.fetch_add(3, Relaxed);
            shared.acquisitions.fetch_add(3, Relaxed);
            let mut stats = vec![0_u8; size_of::<Stats>()];
            let result = send(
                shared,
                cycle,
                me,
                device,
                IOCTL_DPCLOCK_GET_STATS,
                &[],
                &mut stats,
            );
            if result.status < 0 {
                classify(
                    shared,
                    cycle,
                    device,
                    "GET_STATS after a batch of malformed requests",
                    result.status,
                );
                break;
            }
            if Stats::decode(&stats).is_err() {
                shared.fail("GET_STATS after a batch of malformed requests did not decode".into());
                break;
            }
            shared.fuzz_health_checks.fetch_add(1, Relaxed);
        }
    }
    cycle.finished.fetch_add(1, Relaxed);
}

/// The controller's side of one request.
fn control(
    shared: &Shared,
    device: &dyn Device,
    code: u32,
    input: &[u8],
    output: &mut [u8],
) -> Result<usize, DeviceError> {
    let began = Instant::now();
    let result = device.ioctl(code, input, output);
    shared.latency[latency_name(code)].record(began.elapsed());
    shared.ioctls.fetch_add(1, Relaxed);
    if result.status < 0 {
        Err(DeviceError {
            operation: latency_name(code),
            status: result.status,
        })
    } else {
        Ok(result.information)
    }
}

fn get_stats(shared: &Shared, device: &dyn Device) -> Result<Stats, String> {
    let mut bytes = vec![0_u8; size_of::<Stats>()];
    let n = control(shared, device, IOCTL_DPCLOCK_GET_STATS, &[], &mut bytes)
        .map_err(|e| e.to_string())?;
    Stats::decode(&bytes[..n]).map_err(|e| format!("GET_STATS: {e:?}"))
}

fn get_health(shared: &Shared, device: &dyn Device) -> Result<Health, String> {
    let mut bytes = [0_u8; size_of::<Health>()];
    let n = control(shared, device, IOCTL_DPCLOCK_GET_HEALTH, &[], &mut bytes)
        .map_err(|e| e.to_string())?;
    Health::decode(&bytes[..n]).map_err(|e| format!("GET_HEALTH: {e:?}"))
}

/// The counters of a device with no request in flight but the one asking
/// (and its timer `armed` or not).
fn check_quiet_health(h: &Health, armed: bool) -> Result<(), String> {
    let want = (1, 1, u64::from(armed), 1, 0, 0);
    let got = (
        h.irps_in_flight,
        h.remove_lock_references,
        h.timers_armed,
        h.devices,
        h.allocations_live,
        h.allocated_bytes_live,
    );
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "GET_HEALTH on a quiet device: (irps_in_flight, remove_lock_references, timers_armed, devices, allocations_live, allocated_bytes_live) = {got:?}, expected {want:?}"
        ))
    }
}

/// The run's mutable side, kept by the controller.
struct Run<'a, P: Platform> {
    platform: &'a P,
    config: &'a Config,
    shared: &'a Shared,
    report: Report,
    rng: Rng,
    last_progress: Instant,
    last_point: (Instant, u64, u64, u64),
    last_sample: Option<Instant>,
    build: Option<Build>,
    hold: [u64; 32],
}

impl<P: Platform> Run<'_, P> {
    fn elapsed(&self) -> Duration {
        self.shared.start.elapsed()
    }

    fn over(&self) -> bool {
        self.elapsed() >= self.config.duration || self.shared.failed.load(Relaxed)
    }

    fn event(&mut self, what: String) {
        self.report.events.push(Event {
            t_s: self.shared.now_s(),
            what,
        });
    }

    /// Timeline points, progress lines, samples, and the request watchdog;
    /// called every 100 ms or so.
    fn tick(&mut self, cycle: Option<&CycleState>, device: Option<&dyn Device>) {
        let now = Instant::now();
        let (at, acquisitions, ioctls, malformed) = self.last_point;
        let dt = now.duration_since(at).as_secs_f64();
        if dt >= 1.0 {
            let (a, i, m) = (
                self.shared.acquisitions.load(Relaxed),
                self.shared.ioctls.load(Relaxed),
                self.shared.malformed.load(Relaxed),
            );
            self.report.timeline.push(Point {
                t_s: self.shared.now_s(),
                acquisitions_per_s: (a - acquisitions) as f64 / dt,
                ioctls_per_s: (i - ioctls) as f64 / dt,
                malformed_per_s: (m - malformed) as f64 / dt,
                build: self.build,
            });
            self.last_point = (now, a, i, m);
        }
        if now.duration_since(self.last_progress) >= self.config.progress_every {
            self.last_progress = now;
            let t = self.elapsed().as_secs_f64();
            println!(
                "[soak {t:>6.0} s / {:.0} s] cycle {} ({}), {} acquisitions verified ({:.2} M/s), {} malformed, {} checkpoints, {} failures",
                self.config.duration.as_secs_f64(),
                self.shared.cycle.load(Relaxed),
                self.build
                    .map_or("between installs", |b| if b == Build::Free {
                        "free"
                    } else {
                        "checked"
                    }),
                self.report.acquisitions_verified,
                self.report.acquisitions_verified as f64 / t.max(1e-9) / 1e6,
                self.shared.malformed.load(Relaxed),
                self.report.checkpoints,
                self.shared.failures.lock().map_or(0, |f| f.len()),
            );
        }
        if self
            .last_sample
            .is_none_or(|s| now.duration_since(s) >= self.config.sample_every)
            && let Some(device) = device
        {
            self.last_sample = Some(now);
            let health = get_health(self.shared, device).ok();
            self.report.samples.push(Sample {
                t_s: self.shared.now_s(),
                processes: self.platform.processes(),
                allocations_live: health.map(|h| h.allocations_live),
                allocated_bytes_live: health.map(|h| h.allocated_bytes_live),
            });
        }
        if let Some(cycle) = cycle {
            let now_ms = self.shared.start.elapsed().as_millis() as u64;
            for (thread, (since, what)) in cycle.in_flight.iter().enumerate() {
                let since = since.load(Relaxed);
                if since != 0
                    && !self.shared.failed.load(Relaxed)
                    && now_ms.saturating_sub(since) > self.config.request_timeout.as_millis() as u64
                {
                    let what = *what
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    self.shared.fail(format!(
                        "a {what} request on thread {thread} has not returned for {} s (timeout {} s)",
                        (now_ms - since) / 1000,
                        self.config.request_timeout.as_secs()
                    ));
                }
            }
        }
    }

    /// Waits `duration` (or until the run is over), ticking.
    fn wait(
        &mut self,
        duration: Duration,
        cycle: Option<&CycleState>,
        device: Option<&dyn Device>,
    ) {
        let until = Instant::now() + duration;
        while Instant::now() < until && !self.shared.failed.load(Relaxed) {
            self.tick(cycle, device);
            thread::sleep(
                Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }

    /// Starts the timer with random settings for the next segment; returns
    /// its ledger index and acquisitions per tick.
    fn start_timer(&mut self, device: &dyn Device) -> Result<(usize, u32), String> {
        let k = self.rng.below(2) as usize;
        let period = 1 + self.rng.below(20) as u32;
        // Short ticks on the queued lock, for the reason given at
        // `Config::max_queued_iterations`.
        let iterations = 1 + self.rng.below(if k == 1 { 16 } else { 48 }) as u32;
        let work = self.rng.below(4) as u32;
        let request = TimerRequest::encode(
            [LockKind::Plain, LockKind::Queued][k],
            period,
            iterations,
            work,
        );
        control(
            self.shared,
            device,
            IOCTL_DPCLOCK_TIMER_START,
            &request,
            &mut [],
        )
        .map_err(|e| e.to_string())?;
        self.report.timer_restarts += 1;
        Ok((k, iterations))
    }

    /// Parks every thread, stops the timer, verifies, restarts the timer
    /// with new settings, and lets the threads go.
    fn checkpoint(
        &mut self,
        cycle: &CycleState,
        device: &dyn Device,
        timer: &mut Timer,
        caches: &mut [ChecksumCache; 2],
        threads: usize,
    ) -> Result<(), String> {
        cycle.pause.store(true, Relaxed);
        let deadline = Instant::now() + self.config.request_timeout;
        while cycle.parked.load(Relaxed) + cycle.finished.load(Relaxed) < threads {
            if Instant::now() > deadline || self.shared.failed.load(Relaxed) {
                cycle.release();
                return Err(format!(
                    "the threads did not park within {} s",
                    self.config.request_timeout.as_secs()
                ));
            }
            self.tick(Some(cycle), Some(device));
            thread::sleep(Duration::from_millis(1));
        }
        let result = self.verify_parked(cycle, device, timer, caches);
        cycle.release();
        result
    }

    fn verify_parked(
        &mut self,
        cycle: &CycleState,
        device: &dyn Device,
        timer: &mut Timer,
        caches: &mut [ChecksumCache; 2],
    ) -> Result<(), String> {
        control(self.shared, device, IOCTL_DPCLOCK_TIMER_STOP, &[], &mut [])
            .map_err(|e| e.to_string())?;
        let stats = get_stats(self.shared, device)?;
        for (name, value) in crate::report::timings_map(&stats.timings) {
            let most = self
                .report
                .driver_timings
                .entry(name.to_owned())
                .or_default();
            *most = (*most).max(value);
        }
        // The segment that just ended: its ticks times its size.
        let ticks = stats.timer_ticks - timer.ticks_at_start;
        cycle.requested[timer.kind][Path::TimerDpc as usize]
            .fetch_add(ticks * u64::from(timer.iterations), Relaxed);
        self.report.timer_ticks += ticks;
        let requested: [[u64; PATH_COUNT]; 2] =
            core::array::from_fn(|k| core::array::from_fn(|p| cycle.requested[k][p].load(Relaxed)));
        let health = get_health(self.shared, device)?;
        check_quiet_health(&health, false)?;
        match verify(&stats, &requested, caches) {
            Ok(total) => {
                let build = if stats.flags & STATS_CHECKED_BUILD != 0 {
                    "checked"
                } else {
                    "free"
                };
                let new = total - timer.verified;
                timer.verified = total;
                self.report.acquisitions_verified += new;
                *self
                    .report
                    .acquisitions_verified_by_build
                    .entry(build.into())
                    .or_insert(0) += new;
                self.report.checkpoints += 1;
                cycle.since_checkpoint.store(0, Relaxed);
                if stats.flags & STATS_CHECKED_BUILD != 0 {
                    for kind in [LockKind::Plain, LockKind::Queued] {
                        let h = &stats.ledgers[kind.index()].hold;
                        for (sum, (&now, &before)) in self
                            .hold
                            .iter_mut()
                            .zip(h.histogram.iter().zip(&timer.hold_seen[kind.index()]))
                        {
                            *sum += now - before;
                        }
                        timer.hold_seen[kind.index()] = h.histogram;
                        self.report.hold_max_ns = self.report.hold_max_ns.max(h.max_ns);
                    }
                }
            }
            Err(findings) => {
                self.report.ledger_errors += findings.len() as u64;
                return Err(format!("checkpoint: {}", findings.join("; ")));
            }
        }
        // The next segment.
        let (kind, iterations) = self.start_timer(device)?;
        *timer = Timer {
            kind,
            iterations,
            ticks_at_start: stats.timer_ticks,
            ..*timer
        };
        Ok(())
    }

    /// One cycle: install, load with checkpoints, removal under load.
    fn cycle(&mut self, number: u64) -> Result<(), String> {
        let build = if number.is_multiple_of(2) {
            Build::Free
        } else {
            Build::Checked
        };
        self.shared.cycle.store(number, Relaxed);
        let began = Instant::now();
        self.platform
            .install(build)
            .map_err(|e| format!("installing the {build:?} build: {e}"))?;
        self.shared.latency["install"].record(began.elapsed());
        self.build = Some(build);
        self.event(format!(
            "installed {}",
            if build == Build::Free {
                "free"
            } else {
                "checked"
            }
        ));
        let control_handle = self.platform.open()?;
        let device: &dyn Device = &control_handle;
        control(self.shared, device, IOCTL_DPCLOCK_TIMER_STOP, &[], &mut [])
            .map_err(|e| e.to_string())?;
        control(self.shared, device, IOCTL_DPCLOCK_RESET, &[], &mut [])
            .map_err(|e| e.to_string())?;
        let stats = get_stats(self.shared, device)?;
        if (stats.flags & STATS_CHECKED_BUILD != 0) != (build == Build::Checked) {
            return Err(format!(
                "installed the {build:?} build, but the driver says flags {:#x}",
                stats.flags
            ));
        }
        check_quiet_health(&get_health(self.shared, device)?, false)
            .map_err(|e| format!("after the install: {e}"))?;
        let processors = stats.processors;
        let threads = self.config.stress_threads + self.config.fuzz_threads;
        let handles: Vec<P::Handle> = (0..threads)
            .map(|_| self.platform.open())
            .collect::<Result<_, _>>()?;
        let cycle = CycleState::new(threads);
        let mut timer = Timer::default();
        (timer.kind, timer.iterations) = self.start_timer(device)?;
        let mut caches = [ChecksumCache::default(), ChecksumCache::default()];
        let seed = self.rng.next_u64();
        let (shared, config) = (self.shared, self.config);
        let mut result = Ok(());
        thread::scope(|scope| {
            for (me, handle) in handles.iter().enumerate() {
                let cycle = &cycle;
                let seed = seed ^ (me as u64 + 1).wrapping_mul(0x9E37_79B9);
                if me < config.stress_threads {
                    scope.spawn(move || {
                        stress_thread(shared, cycle, me, handle, processors, config, seed)
                    });
                } else {
                    scope.spawn(move || fuzz_thread(shared, cycle, me, handle, config, seed));
                }
            }
            let load_until = Instant::now() + self.config.cycle;
            // Checkpoints while the device lives; the last one shortly before
            // the removal, so that little goes unverified.
            while Instant::now() + self.config.checkpoint < load_until && !self.over() {
                self.wait(self.config.checkpoint, Some(&cycle), Some(device));
                if let Err(e) = self.checkpoint(&cycle, device, &mut timer, &mut caches, threads) {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok()
                && !self.shared.failed.load(Relaxed)
                && self.elapsed() < self.config.duration + self.config.cycle
            {
                self.wait(Duration::from_millis(300), Some(&cycle), Some(device));
                // Remove the device under load.
                cycle.removing.store(true, Relaxed);
                let removed = Instant::now();
                if let Err(e) = self.platform.uninstall() {
                    result = Err(format!("uninstalling under load: {e}"));
                }
                self.event("removed".into());
                self.build = None;
                if result.is_ok() && self.platform.present() {
                    result = Err("the device is still present after the uninstall".into());
                }
                if result.is_ok() {
                    let noop = device.ioctl(IOCTL_DPCLOCK_NOOP, &[], &mut []).status;
                    if noop >= 0 {
                        result =
                            Err("a handle opened before the removal still reaches a device".into());
                    }
                }
                self.shared.latency["uninstall"].record(removed.elapsed());
            }
            cycle.stop.store(true, Relaxed);
            cycle.release();
            let deadline = Instant::now() + self.config.request_timeout;
            while cycle.finished.load(Relaxed) < threads {
                // (A request stuck here is reported by the watchdog in tick.)
                if Instant::now() > deadline {
                    self.tick(Some(&cycle), None);
                    let stuck: Vec<String> = cycle
                        .in_flight
                        .iter()
                        .enumerate()
                        .filter(|(_, (since, _))| since.load(Relaxed) != 0)
                        .map(|(t, (_, what))| {
                            format!("thread {t}: {}", what.lock().map_or("?", |w| *w))
                        })
                        .collect();
                    // The stuck threads cannot be joined: report and leave.
                    self.shared.fail(format!(
                        "requests still hanging {} s after the device went: {stuck:?}",
                        self.config.request_timeout.as_secs()
                    ));
                    let mut report = std::mem::take(&mut self.report);
                    report.elapsed_s = self.shared.now_s();
                    report.failures = self
                        .shared
                        .failures
                        .lock()
                        .map(|f| f.clone())
                        .unwrap_or_default();
                    self.platform.abandon(report);
                }
                self.tick(Some(&cycle), None);
                thread::sleep(Duration::from_millis(20));
            }
        });
        self.report.acquisitions_unverified += cycle.since_checkpoint.load(Relaxed);
        result?;
        if self.shared.failed.load(Relaxed) {
            return Err("a thread failed".into());
        }
        if self.build.is_none() {
            self.report.cycles += 1;
            *self
                .report
                .cycles_by_build
                .entry(
                    if build == Build::Free {
                        "free"
                    } else {
                        "checked"
                    }
                    .into(),
                )
                .or_insert(0) += 1;
        }
        Ok(())
    }
}

/// The timer segment in force.
#[derive(Clone, Copy, Debug, Default)]
struct Timer {
    /// Ledger index (0 plain, 1 queued).
    kind: usize,
    iterations: u32,
    ticks_at_start: u64,
    /// Acquisitions verified so far this cycle.
    verified: u64,
    /// The hold histograms already counted this cycle (plain, queued, unused).
    hold_seen: [[u64; 32]; 3],
}

/// Growth of a process's open handles that is not a leak (threads and
/// events come and go).
const HANDLE_SLACK: u64 = 16;
/// The same where only the OS's per-process count is known: Wine reports
/// the size of the handle table there, which grows in steps of 64.
const HANDLE_TABLE_SLACK: u64 = 128;
/// Growth of a process's private bytes that is not a leak.
const MEMORY_SLACK: u64 = 64 << 20;

/// Compares the first and the last third of each sampled series. A series
/// is one process (the driver's host is a new process every cycle, so its
/// series are short; a series of fewer than three samples is shown but not
/// judged), or one of the driver's allocation counters, which must not grow
/// at all.
fn leak_checks(samples: &[Sample]) -> Vec<LeakCheck> {
    let mut series: BTreeMap<String, (Vec<u64>, u64)> = BTreeMap::new();
    for s in samples {
        for p in &s.processes {
            let process = format!("{} (pid {})", p.name, p.pid);
            let slack = if p.handle_types.is_empty() {
                HANDLE_TABLE_SLACK
            } else {
                HANDLE_SLACK
            };
            series
                .entry(format!("{process} handles"))
                .or_insert((Vec::new(), slack))
                .0
                .push(p.handles);
            series
                .entry(format!("{process} private bytes"))
                .or_insert((Vec::new(), MEMORY_SLACK))
                .0
                .push(p.private_bytes);
        }
        if let Some(n) = s.allocations_live {
            series
                .entry("driver allocations".into())
                .or_insert((Vec::new(), 0))
                .0
                .push(n);
        }
        if let Some(n) = s.allocated_bytes_live {
            series
                .entry("driver allocated bytes".into())
                .or_insert((Vec::new(), 0))
                .0
                .push(n);
        }
    }
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    series
        .into_iter()
        .filter(|(_, (values, _))| !values.is_empty())
        .map(|(what, (values, allowed))| {
            let third = values.len().div_ceil(3);
            let first = median(&values[..third]);
            let last = median(&values[values.len() - third..]);
            let judged = values.len() >= 3 || allowed == 0;
            LeakCheck {
                leaked: judged && last > first + allowed,
                what,
                first,
                last,
                allowed_growth: allowed,
                samples: values.len(),
            }
        })
        .collect()
}

/// Runs the soak on `platform`. The device must not be installed; it is
/// removed at the end.
pub fn run<P: Platform>(platform: &P, config: &Config) -> Report {
    let shared = Shared {
        start: Instant::now(),
        cycle: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        latency: LATENCY_NAMES
            .iter()
            .map(|&n| (n, Histogram::default()))
            .collect(),
        acquisitions: AtomicU64::new(0),
        ioctls: AtomicU64::new(0),
        malformed: AtomicU64::new(0),
        malformed_by_status: Mutex::new(BTreeMap::new()),
        fuzz_health_checks: AtomicU64::new(0),
        removal_statuses: Mutex::new(BTreeMap::new()),
    };
    let mut run = Run {
        platform,
        config,
        shared: &shared,
        report: Report {
            config: Some(config.clone()),
            ..Report::default()
        },
        rng: Rng::new(config.seed),
        last_progress: Instant::now(),
        last_point: (Instant::now(), 0, 0, 0),
        last_sample: None,
        build: None,
        hold: [0; 32],
    };
    let mut number = 0;
    while !run.over() {
        if let Err(e) = run.cycle(number) {
            shared.fail(e);
            break;
        }
        number += 1;
    }
    if platform.present() {
        // A failure left the device installed.
        let _ = platform.uninstall();
    }
    // One last sample of the processes, with no device.
    run.report.samples.push(Sample {
        t_s: shared.now_s(),
        processes: platform.processes(),
        allocations_live: None,
        allocated_bytes_live: None,
    });
    let mut report = run.report;
    report.leaks = leak_checks(&report.samples);
    for leak in report.leaks.iter().filter(|l| l.leaked) {
        shared.fail(format!(
            "leak: {} grew from {} to {} (allowed {})",
            leak.what, leak.first, leak.last, leak.allowed_growth
        ));
    }
    report.hold_histogram = run.hold.to_vec();
    report.elapsed_s = shared.now_s();
    report.ioctls = shared.ioctls.load(Relaxed);
    report.malformed = shared.malformed.load(Relaxed);
    report.fuzz_health_checks = shared.fuzz_health_checks.load(Relaxed);
    report.latency = shared
        .latency
        .iter()
        .map(|(n, h)| ((*n).to_owned(), h.summary()))
        .filter(|(_, s)| s.count > 0)
        .collect();
    report.malformed_by_status = shared.malformed_by_status.into_inner().unwrap_or_default();
    report.removal_statuses = shared.removal_statuses.into_inner().unwrap_or_default();
    report.failures = shared.failures.into_inner().unwrap_or_default();
    report.passed = report.failures.is_empty() && report.cycles > 0 && report.checkpoints > 0;
    report
}

/// A one-screen summary.
#[must_use]
pub fn summary(report: &Report) -> String {
    let mut t = String::new();
    let minutes = report.elapsed_s / 60.0;
    let _ = writeln!(
        t,
        "dpclock soak: {:.1} min, {} cycles ({:?}), {} checkpoints",
        minutes, report.cycles, report.cycles_by_build, report.checkpoints
    );
    let _ = writeln!(
        t,
        "  acquisitions verified {} ({:.2} M/s; {:?}), unverified at removals {}",
        report.acquisitions_verified,
        report.acquisitions_verified as f64 / report.elapsed_s.max(1e-9) / 1e6,
        report.acquisitions_verified_by_build,
        report.acquisitions_unverified
    );
    let _ = writeln!(
        t,
        "  ledger errors {}, timer restarts {}, timer ticks {}",
        report.ledger_errors, report.timer_restarts, report.timer_ticks
    );
    let _ = writeln!(
        t,
        "  malformed requests {} ({:.0}/s), health checks after batches {}",
        report.malformed,
        report.malformed as f64 / report.elapsed_s.max(1e-9),
        report.fuzz_health_checks
    );
    let _ = writeln!(t, "  removal statuses seen {:?}", report.removal_statuses);
    if !report.driver_timings.is_empty() {
        let _ = writeln!(
            t,
            "  driver timings (largest at any checkpoint): {:?}; budgets: hold {} ns, DPC run and raised section {} ns",
            report.driver_timings,
            dpclock_ioctl::limits::HOLD_BUDGET_NS,
            dpclock_ioctl::limits::DPC_BUDGET_NS
        );
    }
    let _ = writeln!(
        t,
        "  {:<14} {:>10} {:>9} {:>9} {:>9}",
        "latency", "count", "p50 µs", "p99 µs", "max µs"
    );
    for (name, l) in &report.latency {
        let _ = writeln!(
            t,
            "  {name:<14} {:>10} {:>9} {:>9} {:>9}",
            l.count, l.p50_us, l.p99_us, l.max_us
        );
    }
    for leak in &report.leaks {
        let _ = writeln!(
            t,
            "  {:<34} {:>12} -> {:>12} {}",
            leak.what,
            leak.first,
            leak.last,
            if leak.leaked { "LEAK" } else { "ok" }
        );
    }
    for failure in &report.failures {
        let _ = writeln!(
            t,
            "  FAILURE at {:.1} s (cycle {}): {}",
            failure.at_s, failure.cycle, failure.what
        );
    }
    t
}

#[cfg(test)]
mod tests;
