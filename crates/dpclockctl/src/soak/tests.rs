//! The soak against an in-memory driver that follows the protocol (through
//! the protocol crate's parser), with bugs that can be switched on: the
//! soak must pass the correct one and catch each bug.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use dpclock_ioctl::{
    Health, LedgerStats, Request, STATUS_DEVICE_BUSY, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    expected_checksum, noop_reply, parse,
};

use super::*;

const STATUS_FILE_DELETED: i32 = 0xC000_0123_u32.cast_signed();
const STATUS_ACCESS_VIOLATION: i32 = 0xC000_0005_u32.cast_signed();

#[derive(Default)]
struct State {
    generation: u64,
    present: bool,
    checked: bool,
    updates: [[u64; PATH_COUNT]; 3],
    performed: [[u64; PATH_COUNT]; 3],
    checksum: [u64; 3],
    timer: Option<(usize, u32)>,
    ticks: u64,
}

#[derive(Default)]
struct Bugs {
    /// Lose one update once this many have been made.
    lose_update_after: Option<u64>,
    /// Refuse the unlocked control only after the output size (the order
    /// the driver had before).
    old_order_of_checks: bool,
    /// Handles that each process sample adds.
    handle_leak: u64,
}

#[derive(Default)]
struct FakeDriver {
    state: Mutex<State>,
    bugs: Bugs,
    made: AtomicU64,
    samples: AtomicU64,
}

impl FakeDriver {
    fn update(&self, state: &mut State, kind: usize, path: usize, n: u64) {
        for _ in 0..n {
            state.performed[kind][path] += 1;
            let made = self.made.fetch_add(1, Relaxed);
            if self.bugs.lose_update_after == Some(made) {
                continue;
            }
            state.updates[kind][path] += 1;
            let k = state.updates[kind][path];
            state.checksum[kind] = state.checksum[kind].wrapping_add(update_mix(path as u32, k));
        }
    }

    /// A stopped timer ran three ticks.
    fn settle_timer(&self, state: &mut State) {
        if let Some((kind, iterations)) = state.timer.take() {
            state.ticks += 3;
            self.update(
                state,
                kind,
                Path::TimerDpc as usize,
                3 * u64::from(iterations),
            );
        }
    }

    fn handle(&self, generation: u64, code: u32, input: &[u8], output: &mut [u8]) -> IoResult {
        let mut state = self.state.lock().unwrap();
        let fail = |status| IoResult {
            status,
            information: 0,
        };
        if !state.present || state.generation != generation {
            return fail(STATUS_FILE_DELETED);
        }
        let policy = Policy {
            unlocked_control: self.bugs.old_order_of_checks,
        };
        let request = match parse(code, input, output.len(), policy) {
            Ok(request) => request,
            Err(error) => return fail(error.ntstatus()),
        };
        let ok = |information| IoResult {
            status: STATUS_SUCCESS,
            information,
        };
        match request {
            Request::Noop => ok(noop_reply(output)),
            Request::LockPassive(w) | Request::LockDispatch(w) | Request::DpcBurst(w) => {
                if w.lock_kind == LockKind::Unlocked {
                    return fail(STATUS_NOT_SUPPORTED);
                }
                let (path, runs) = match request {
                    Request::LockPassive(_) => (Path::Passive, 1),
                    Request::LockDispatch(_) => (Path::Dispatch, 1),
                    _ => (Path::BurstDpc, 2),
                };
                let n = u64::from(w.iterations) * runs;
                self.update(&mut state, w.lock_kind.index(), path as usize, n);
                let response = LockResponse {
                    version: dpclock_ioctl::PROTOCOL_VERSION,
                    lock_kind: w.lock_kind as u32,
                    acquisitions: n,
                    contended: 0,
                    dpc_runs: if runs == 2 { 2 } else { 0 },
                    reserved: 0,
                };
                ok(response.encode(output).unwrap())
            }
            Request::TimerStart(t) => {
                if t.tick.lock_kind == LockKind::Unlocked {
                    return fail(STATUS_NOT_SUPPORTED);
                }
                self.settle_timer(&mut state);
                state.timer = Some((t.tick.lock_kind.index(), t.tick.iterations));
                ok(0)
            }
            Request::TimerStop => {
                self.settle_timer(&mut state);
                ok(0)
            }
            Request::Reset if state.timer.is_some() => fail(STATUS_DEVICE_BUSY),
            Request::Reset => {
                let (generation, present, checked) =
                    (state.generation, state.present, state.checked);
                *state = State {
                    generation,
                    present,
                    checked,
                    ..State::default()
                };
                ok(0)
            }
            Request::GetStats => {
                let mut stats = Stats {
                    version: dpclock_ioctl::PROTOCOL_VERSION,
                    flags: if state.checked {
                        STATS_CHECKED_BUILD
                    } else {
                        0
                    },
                    processors: 2,
                    timer_ticks: state.ticks,
                    ..Stats::default()
                };
                for k in 0..3 {
                    stats.ledgers[k] = LedgerStats {
                        updates: state.updates[k],
                        total: state.updates[k].iter().sum(),
                        checksum: state.checksum[k],
                        performed: state.performed[k],
                        ..LedgerStats::default()
                    };
                }
                ok(stats.encode(output).unwrap())
            }
            Request::GetHealth => {
                let health = Health {
                    version: dpclock_ioctl::PROTOCOL_VERSION,
                    irps_in_flight: 1,
                    remove_lock_references: 1,
                    timers_armed: u64::from(state.timer.is_some()),
                    devices: 1,
                    ..Health::default()
                };
                ok(health.encode(output).unwrap())
            }
        }
    }
}

struct FakeHandle {
    driver: Arc<FakeDriver>,
    generation: u64,
}

impl Device for FakeHandle {
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> IoResult {
        self.driver.handle(self.generation, code, input, output)
    }

    unsafe fn ioctl_raw(
        &self,
        code: u32,
        input: *const u8,
        input_len: u32,
        output: *mut u8,
        output_len: u32,
    ) -> IoResult {
        if (input.is_null() && input_len > 0) || (output.is_null() && output_len > 0) {
            return IoResult {
                status: STATUS_ACCESS_VIOLATION,
                information: 0,
            };
        }
        // Copies keep the fake free of aliasing questions.
        let input = if input_len == 0 {
            Vec::new()
        } else {
            // SAFETY: a non-null pointer valid for its length (the caller's
            // contract).
            unsafe { std::slice::from_raw_parts(input, input_len as usize) }.to_vec()
        };
        let mut out = vec![0_u8; output_len as usize];
        let result = self.ioctl(code, &input, &mut out);
        if output_len > 0 {
            // SAFETY: as above.
            unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), output, out.len()) };
        }
        result
    }
}

struct FakePlatform(Arc<FakeDriver>);

impl Platform for FakePlatform {
    type Handle = FakeHandle;

    fn open(&self) -> Result<FakeHandle, String> {
        let state = self.0.state.lock().unwrap();
        if !state.present {
            return Err("no device".into());
        }
        Ok(FakeHandle {
            driver: self.0.clone(),
            generation: state.generation,
        })
    }

    fn install(&self, build: Build) -> Result<(), String> {
        let mut state = self.0.state.lock().unwrap();
        if state.present {
            return Err("already installed".into());
        }
        *state = State {
            generation: state.generation + 1,
            present: true,
            checked: build == Build::Checked,
            ..State::default()
        };
        Ok(())
    }

    fn uninstall(&self) -> Result<(), String> {
        let mut state = self.0.state.lock().unwrap();
        state.present = false;
        state.timer = None;
        state.generation += 1;
        Ok(())
    }

    fn present(&self) -> bool {
        self.0.state.lock().unwrap().present
    }

    fn processes(&self) -> Vec<ProcessSample> {
        let n = self.0.samples.fetch_add(1, Relaxed);
        vec![ProcessSample {
            name: "harness".into(),
            pid: 1,
            handles: 40 + n * self.0.bugs.handle_leak,
            private_bytes: 1 << 20,
            working_set: 1 << 20,
            handle_types: BTreeMap::new(),
        }]
    }

    fn abandon(&self, report: Report) -> ! {
        panic!("abandoned: {:?}", report.failures)
    }
}

fn quick() -> Config {
    Config {
        duration: Duration::from_millis(2500),
        cycle: Duration::from_millis(700),
        checkpoint: Duration::from_millis(150),
        fuzz_batch: 20,
        request_timeout: Duration::from_secs(10),
        sample_every: Duration::from_millis(300),
        progress_every: Duration::from_secs(60),
        max_iterations: 50,
        ..Config::default()
    }
}

fn soak(bugs: Bugs) -> Report {
    let platform = FakePlatform(Arc::new(FakeDriver {
        bugs,
        ..FakeDriver::default()
    }));
    run(&platform, &quick())
}

#[test]
fn a_correct_driver_passes_with_every_part_of_the_soak_exercised() {
    let report = soak(Bugs::default());
    assert!(report.passed, "{}", summary(&report));
    assert!(report.cycles >= 2, "{}", summary(&report));
    assert_eq!(report.cycles_by_build.len(), 2, "both builds in turn");
    assert!(report.checkpoints >= 4);
    assert!(report.acquisitions_verified > 1000);
    assert!(report.timer_ticks > 0 && report.timer_restarts >= report.checkpoints);
    assert!(report.malformed > 100);
    assert!(report.fuzz_health_checks > 0);
    assert!(
        report
            .malformed_by_status
            .keys()
            .any(|k| k.starts_with("STATUS_NOT_SUPPORTED")),
        "{:?}",
        report.malformed_by_status
    );
    assert!(
        report
            .removal_statuses
            .keys()
            .any(|k| k.starts_with("STATUS_FILE_DELETED")),
        "{:?}",
        report.removal_statuses
    );
    assert!(!report.timeline.is_empty());
    assert!(report.latency["LOCK_PASSIVE"].count > 0);
    assert!(report.samples.len() >= 3);
    assert!(report.leaks.iter().all(|l| !l.leaked));
    assert_eq!(report.ledger_errors, 0);
}

#[test]
fn a_lost_update_fails_the_soak() {
    let report = soak(Bugs {
        lose_update_after: Some(500),
        ..Bugs::default()
    });
    assert!(!report.passed);
    assert!(report.ledger_errors > 0);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.what.contains("lost updates")),
        "{:?}",
        report.failures
    );
}

#[test]
fn the_old_order_of_checks_fails_the_soak() {
    let report = soak(Bugs {
        old_order_of_checks: true,
        ..Bugs::default()
    });
    assert!(!report.passed);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.what.contains("malformed request")
                && f.what.contains("expected STATUS_NOT_SUPPORTED")),
        "{:?}",
        report.failures
    );
}

#[test]
fn a_growing_handle_count_is_reported_as_a_leak() {
    let report = soak(Bugs {
        handle_leak: 100,
        ..Bugs::default()
    });
    assert!(!report.passed);
    assert!(
        report
            .leaks
            .iter()
            .any(|l| l.leaked && l.what == "harness (pid 1) handles"),
        "{:?}",
        report.leaks
    );
}

#[test]
fn the_checksum_cache_extends_the_documented_checksum() {
    let mut cache = ChecksumCache::default();
    for updates in [[1, 0, 0, 0], [5, 3, 0, 1], [5, 9, 7, 2], [100, 9, 7, 50]] {
        assert_eq!(cache.expected(&updates), expected_checksum(&updates));
    }
    // After a reset the counts restart.
    assert_eq!(
        cache.expected(&[2, 0, 0, 0]),
        expected_checksum(&[2, 0, 0, 0])
    );
}

#[test]
fn histogram_quantiles_are_within_a_bucket() {
    let histogram = Histogram::default();
    for us in 1..=1000_u64 {
        histogram.record(Duration::from_micros(us));
    }
    assert_eq!(histogram.count(), 1000);
    let p50 = histogram.quantile(0.5);
    assert!((500..=540).contains(&p50), "{p50}");
    let p99 = histogram.quantile(0.99);
    assert!((990..=1000).contains(&p99), "{p99}");
    assert_eq!(histogram.quantile(1.0), 1000);
    for us in [0, 15, 16, 17, 31, 32, 1023, 1024, 123_456_789] {
        let b = bucket_of(us);
        assert!(bucket_top(b) >= us, "{us}");
        assert!(b == 0 || bucket_top(b - 1) < us, "{us}");
    }
}
