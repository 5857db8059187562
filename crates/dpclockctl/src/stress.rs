//! The stress run: user threads issuing the PASSIVE and DISPATCH lock IOCTLs
//! and DPC bursts, the periodic timer DPC running underneath, until both a
//! duration and an acquisition count are reached; then the driver's stats
//! are read back and verified.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

use dpclock_ioctl::{
    IOCTL_DPCLOCK_DPC_BURST, IOCTL_DPCLOCK_LOCK_DISPATCH, IOCTL_DPCLOCK_LOCK_PASSIVE, LockKind,
    PATH_COUNT, Path, STATS_UNLOCKED_ALLOWED, Stats,
};

use crate::{
    device::{self, Device, DeviceError},
    verify::{Requested, Verification, verify},
};

/// The IOCTLs a stress thread issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `LOCK_PASSIVE`.
    Passive,
    /// `LOCK_DISPATCH`.
    Dispatch,
    /// `DPC_BURST`.
    Burst,
}

impl Op {
    /// All ops, in report order.
    pub const ALL: [Self; 3] = [Self::Passive, Self::Dispatch, Self::Burst];

    /// The ledger path the op updates.
    #[must_use]
    pub const fn path(self) -> Path {
        match self {
            Self::Passive => Path::Passive,
            Self::Dispatch => Path::Dispatch,
            Self::Burst => Path::BurstDpc,
        }
    }

    const fn code(self) -> u32 {
        match self {
            Self::Passive => IOCTL_DPCLOCK_LOCK_PASSIVE,
            Self::Dispatch => IOCTL_DPCLOCK_LOCK_DISPATCH,
            Self::Burst => IOCTL_DPCLOCK_DPC_BURST,
        }
    }

    /// The name used in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Passive => "passive",
            Self::Dispatch => "dispatch",
            Self::Burst => "burst",
        }
    }
}

/// How a stress run is shaped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// User threads issuing IOCTLs.
    pub threads: usize,
    /// Keep going at least this long.
    #[serde(rename = "duration_s", serialize_with = "serialize_seconds")]
    pub duration: Duration,
    /// Keep going until at least this many acquisitions were requested.
    pub acquisitions: u64,
    /// The lock every path uses.
    #[serde(serialize_with = "serialize_kind")]
    pub lock_kind: LockKind,
    /// Relative weights of `LOCK_PASSIVE`, `LOCK_DISPATCH` and `DPC_BURST`.
    pub mix: [u32; 3],
    /// Acquisitions per request: passive, dispatch, and per processor for bursts.
    pub iterations: [u32; 3],
    /// Work units while holding the lock, per acquisition.
    pub work: u32,
    /// The periodic timer: period in ms and acquisitions per tick (`None`: off).
    pub timer: Option<(u32, u32)>,
    /// Give up if no IOCTL completes for this long.
    #[serde(rename = "stall_timeout_s", serialize_with = "serialize_seconds")]
    pub stall_timeout: Duration,
}

fn serialize_seconds<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(duration.as_secs_f64())
}

fn serialize_kind<S: serde::Serializer>(kind: &LockKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threads: 2,
            duration: Duration::from_secs(3),
            acquisitions: 1_000_000,
            lock_kind: LockKind::Plain,
            mix: [1, 1, 1],
            iterations: [1000, 1000, 1000],
            work: 10,
            timer: Some((1, 100)),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Latencies of one op, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    /// The `q` quantile (0..=1), or 0 with no samples.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u32 {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Both targets were reached.
    Completed,
    /// The device went away mid-run (removed or uninstalled).
    DeviceRemoved(DeviceError),
    /// An IOCTL failed mid-run for another reason.
    Failed(DeviceError),
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Run {
    /// The configuration.
    pub config: Config,
    /// How it ended.
    pub ending: Ending,
    /// Wall time of the IOCTL phase.
    pub elapsed: Duration,
    /// IOCTLs issued per op.
    pub ioctls: [u64; 3],
    /// Latency samples per op.
    pub latencies: [Latencies; 3],
    /// What was requested.
    pub requested: Requested,
    /// Acquisitions the driver saw contended, per the IOCTL responses.
    pub contended: u64,
    /// The stats read after the run (not after a removal).
    pub stats: Option<Stats>,
    /// The verdict (not after a removal).
    pub verification: Option<Verification>,
}

/// Progress shown while the run goes: elapsed time and acquisitions requested.
pub trait Progress: Sync {
    /// Called about ten times a second.
    fn update(&self, elapsed: Duration, acquisitions: u64);
    /// Called once at the end.
    fn finish(&self);
    /// Called if no IOCTL has completed for `silence` (the stall timeout).
    /// The worker threads are blocked inside the driver and cannot be
    /// joined, so this must end the process (after reporting).
    fn stalled(&self, silence: Duration) -> !;
}

/// Why a run could not be made.
#[derive(Debug)]
pub enum Error {
    /// The driver refuses the unlocked control: it is not enabled.
    UnlockedNotEnabled,
    /// An IOCTL failed before or after the stress phase.
    Device(DeviceError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnlockedNotEnabled => write!(
                f,
                "the driver refuses the unlocked control: it is a test aid, off unless enabled. \
                 Reinstall with `dpclockctl install --allow-unlocked` (sets AllowUnlockedControl=1 under \
                 HKLM\\SYSTEM\\CurrentControlSet\\Services\\dpclock\\Parameters)"
            ),
            Self::Device(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<DeviceError> for Error {
    fn from(error: DeviceError) -> Self {
        Self::Device(error)
    }
}

/// Whether the driver still answers on this handle. A live dpclock device
/// completes `NOOP` whatever the input, so a failing `NOOP` means the handle
/// no longer reaches the driver. That happens when the device is removed
/// while the handle is open: depending on timing the I/O then fails with a
/// removal status, or reaches whatever is left of the device stack (the
/// bus driver's PDO), which fails every IOCTL it does not know with
/// `STATUS_INVALID_DEVICE_REQUEST`.
fn answers_noop(device: &dyn Device) -> bool {
    device::noop(device).is_ok()
}

/// Runs the stress against `device`.
///
/// # Errors
///
/// [`Error`] if the device cannot be prepared or read back; a removal during
/// the IOCTL phase is not an error but [`Ending::DeviceRemoved`].
pub fn run(device: &dyn Device, config: &Config, progress: &dyn Progress) -> Result<Run, Error> {
    // Start from a quiet, empty device.
    device::timer_stop(device)?;
    device::reset(device)?;
    let before = device::stats(device)?;
    if config.lock_kind == LockKind::Unlocked && before.flags & STATS_UNLOCKED_ALLOWED == 0 {
        return Err(Error::UnlockedNotEnabled);
    }
    let processors = before.processors;
    if let Some((period, iterations)) = config.timer {
        device::timer_start(device, config.lock_kind, period, iterations, config.work)?;
    }

    let shared = Shared::default();
    let start = Instant::now();
    watch(&shared, start, config, progress, |shared| {
        thread::scope(|scope| {
            for thread_index in 0..config.threads {
                scope
                    .spawn(move || worker(device, config, processors, thread_index, start, shared));
            }
        });
    });
    let elapsed = start.elapsed();
    progress.finish();

    let Shared {
        failure,
        ioctls,
        latencies,
        requested,
        bursts,
        short_bursts,
        contended,
        ..
    } = shared;
    let ending = match failure
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        None => Ending::Completed,
        Some(error) if error.is_removal() || !answers_noop(device) => Ending::DeviceRemoved(error),
        Some(error) => Ending::Failed(error),
    };
    let mut run = Run {
        config: config.clone(),
        ending,
        elapsed,
        ioctls: ioctls.map(AtomicU64::into_inner),
        latencies: latencies
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        requested: Requested {
            acquisitions: requested.map(AtomicU64::into_inner),
            bursts: bursts.into_inner(),
            short_bursts: short_bursts.into_inner(),
            timer_started: config.timer.is_some(),
        },
        contended: contended.into_inner(),
        stats: None,
        verification: None,
    };
    if run.ending == Ending::Completed {
        device::timer_stop(device)?;
        let stats = device::stats(device)?;
        run.verification = Some(verify(config.lock_kind, &run.requested, &stats));
        run.stats = Some(stats);
    }
    Ok(run)
}

/// Runs `work` (the worker threads) on a thread of its own while this thread
/// shows progress and watches for a stall, which [`Progress::stalled`] ends.
fn watch(
    shared: &Shared,
    start: Instant,
    config: &Config,
    progress: &dyn Progress,
    work: impl FnOnce(&Shared) + Send,
) {
    thread::scope(|scope| {
        let workers = scope.spawn(|| work(shared));
        let (mut last_total, mut last_change) = (0, Instant::now());
        while !workers.is_finished() {
            let total = shared.completed.load(Relaxed);
            progress.update(start.elapsed(), shared.requested_total.load(Relaxed));
            if total != last_total {
                (last_total, last_change) = (total, Instant::now());
            } else if last_change.elapsed() >= config.stall_timeout {
                progress.stalled(last_change.elapsed());
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// IOCTLs completed so far, for stall detection.
    completed: AtomicU64,
    failure: Mutex<Option<DeviceError>>,
    requested_total: AtomicU64,
    requested: [AtomicU64; PATH_COUNT],
    ioctls: [AtomicU64; 3],
    latencies: Mutex<[Latencies; 3]>,
    bursts: AtomicU64,
    short_bursts: AtomicU64,
    contended: AtomicU64,
}

/// The op sequence of one thread: a weighted round robin over the mix,
/// started at a different point on each thread.
fn schedule(mix: [u32; 3], thread_index: usize) -> impl Iterator<Item = Op> {
    let cycle: Vec<Op> = Op::ALL
        .iter()
        .zip(mix)
        .flat_map(|(&op, weight)| std::iter::repeat_n(op, weight as usize))
        .collect();
    let offset = if cycle.is_empty() {
        0
    } else {
        thread_index % cycle.len()
    };
    cycle.into_iter().cycle().skip(offset)
}

fn worker(
    device: &dyn Device,
    config: &Config,
    processors: u32,
    thread_index: usize,
    start: Instant,
    shared: &Shared,
) {
    let mut latencies: [Vec<u32>; 3] = Default::default();
    for op in schedule(config.mix, thread_index) {
        if shared.stop.load(Relaxed) {
            break;
        }
        let iterations = config.iterations[op as usize];
        let began = Instant::now();
        let result = device::lock(
            device,
            op.name(),
            op.code(),
            config.lock_kind,
            iterations,
            config.work,
        );
        let latency = began.elapsed();
        shared.completed.fetch_add(1, Relaxed);
        match result {
            Ok(response) => {
                let mut requested = u64::from(iterations);
                if op == Op::Burst {
                    // The harness asks for `iterations` on every processor.
                    requested *= u64::from(processors);
                    shared.bursts.fetch_add(1, Relaxed);
                    if response.dpc_runs != processors {
                        shared.short_bursts.fetch_add(1, Relaxed);
                    }
                }
                shared.requested[op.path() as usize].fetch_add(requested, Relaxed);
                shared.contended.fetch_add(response.contended, Relaxed);
                shared.ioctls[op as usize].fetch_add(1, Relaxed);
                latencies[op as usize].push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                let total = shared.requested_total.fetch_add(requested, Relaxed) + requested;
                if total >= config.acquisitions && start.elapsed() >= config.duration {
                    shared.stop.store(true, Relaxed);
                }
            }
            Err(error) => {
                // The first failure ends the run; the report says which.
                shared
                    .failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert(error);
                shared.stop.store(true, Relaxed);
                break;
            }
        }
    }
    let mut all = shared
        .latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (merged, mine) in all.iter_mut().zip(latencies) {
        merged.0.extend(mine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_follows_the_mix_and_staggers_threads() {
        let first: Vec<Op> = schedule([2, 1, 0], 0).take(6).collect();
        assert_eq!(
            first,
            [
                Op::Passive,
                Op::Passive,
                Op::Dispatch,
                Op::Passive,
                Op::Passive,
                Op::Dispatch
            ]
        );
        let second: Vec<Op> = schedule([2, 1, 0], 1).take(3).collect();
        assert_eq!(second, [Op::Passive, Op::Dispatch, Op::Passive]);
        assert_eq!(schedule([0, 0, 0], 0).next(), None);
    }

    /// A device whose lock IOCTLs start failing with
    /// `STATUS_INVALID_DEVICE_REQUEST` after a few calls; `NOOP` keeps
    /// working only if `driver_still_there`.
    struct FailingDevice {
        driver_still_there: bool,
        lock_calls: AtomicU64,
    }

    impl Device for FailingDevice {
        fn ioctl(&self, code: u32, _input: &[u8], output: &mut [u8]) -> device::IoResult {
            const INVALID_DEVICE_REQUEST: i32 = 0xC000_0010_u32 as i32;
            let ok = |information| device::IoResult {
                status: 0,
                information,
            };
            let failed = device::IoResult {
                status: INVALID_DEVICE_REQUEST,
                information: 0,
            };
            match code {
                dpclock_ioctl::IOCTL_DPCLOCK_NOOP if self.driver_still_there => ok(0),
                dpclock_ioctl::IOCTL_DPCLOCK_NOOP => failed,
                dpclock_ioctl::IOCTL_DPCLOCK_GET_STATS => {
                    let stats = Stats {
                        processors: 2,
                        ..Stats::default()
                    };
                    ok(stats.encode(output).unwrap_or(0))
                }
                dpclock_ioctl::IOCTL_DPCLOCK_TIMER_STOP | dpclock_ioctl::IOCTL_DPCLOCK_RESET => {
                    ok(0)
                }
                _ if self.lock_calls.fetch_add(1, Relaxed) < 3 => {
                    let written = dpclock_ioctl::LockResponse {
                        lock_kind: LockKind::Plain as u32,
                        acquisitions: 1000,
                        ..Default::default()
                    }
                    .encode(output)
                    .unwrap_or(0);
                    ok(written)
                }
                _ => failed,
            }
        }

        unsafe fn ioctl_raw(
            &self,
            _code: u32,
            _input: *const u8,
            _input_len: u32,
            _output: *mut u8,
            _output_len: u32,
        ) -> device::IoResult {
            unreachable!("the stress sends ordinary buffers")
        }
    }

    struct Quiet;

    impl Progress for Quiet {
        fn update(&self, _: Duration, _: u64) {}
        fn finish(&self) {}
        fn stalled(&self, silence: Duration) -> ! {
            panic!("stalled for {silence:?}")
        }
    }

    fn ending_with(driver_still_there: bool) -> Ending {
        let device = FailingDevice {
            driver_still_there,
            lock_calls: AtomicU64::new(0),
        };
        let config = Config {
            timer: None,
            duration: Duration::from_secs(10),
            ..Config::default()
        };
        run(&device, &config, &Quiet).expect("run").ending
    }

    #[test]
    fn a_handle_that_no_longer_reaches_the_driver_is_a_removal_not_a_failure() {
        assert!(matches!(ending_with(false), Ending::DeviceRemoved(_)));
        assert!(matches!(ending_with(true), Ending::Failed(_)));
    }

    #[test]
    fn quantiles() {
        let l = Latencies((1..=100).collect());
        assert_eq!(
            (l.quantile(0.5), l.quantile(0.99), l.quantile(1.0)),
            (51, 99, 100)
        );
        assert_eq!(Latencies::default().quantile(0.5), 0);
    }
}
