//! The `dpclockctl` command line.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use dpclock_ioctl::LockKind;

/// Exit statuses, also listed in the README.
#[cfg_attr(not(windows), allow(dead_code))]
mod exit {
    /// Verification failed, or the fuzz found a wrong status.
    pub const NOT_VERIFIED: u8 = 1;
    /// Anything else that stopped the command (bad arguments exit with 2 too).
    pub const ERROR: u8 = 2;
    /// No dpclock device is present.
    pub const NO_DEVICE: u8 = 3;
    /// The device was removed, or stopped answering, during the run.
    pub const DEVICE_GONE: u8 = 4;
    /// Not elevated.
    pub const NOT_ELEVATED: u8 = 5;
}

#[derive(Parser)]
#[command(
    version,
    about = "Install, drive, verify and measure the dpclock spin-lock sample driver"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Lock {
    /// Executive spin lock (KeAcquireSpinLock…).
    Plain,
    /// In-stack queued spin lock (KeAcquireInStackQueuedSpinLock…).
    Queued,
}

#[derive(Subcommand)]
enum Command {
    /// Install the driver on a new Root\DpcLock device (like `devcon install dpclock.inf Root\DpcLock`).
    Install {
        /// The stamped INF; dpclock.sys must be beside it.
        #[arg(long, default_value = "dpclock.inf")]
        inf: PathBuf,
        /// Let the driver run its unlocked control (a test aid that loses updates).
        #[arg(long)]
        allow_unlocked: bool,
        /// Seconds to wait for the device to start.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Remove every Root\DpcLock device (like `devcon remove Root\DpcLock`).
    Uninstall {
        /// Seconds to wait for the device to go.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Drive every path at once, then verify the ledger and report.
    Stress(StressArgs),
    /// Print the driver's counters, ledgers and validator report.
    Stats {
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Zero the driver's counters and ledgers (stops the timer first).
    Reset,
    /// Exercise every IOCTL once and check each answer (leaves the device reset).
    Check,
    /// Check what docs/protocol.md says about handles, access, buffers, statuses and
    /// the timer's accounting, and every example of it, against the device.
    Conform {
        /// Also uninstall the device with a handle open and reinstall it from this INF,
        /// checking what the old handle gets.
        #[arg(long)]
        removal: Option<PathBuf>,
    },
    /// Measure IOCTL round trips (no-op against one-acquisition lock IOCTLs) and
    /// acquisitions per second in DPC bursts, plain against queued.
    Bench {
        /// Interleaved rounds of the IOCTL-rate loop.
        #[arg(long, default_value_t = 7)]
        rounds: u32,
        /// Milliseconds per IOCTL kind per round.
        #[arg(long, default_value_t = 500)]
        round_ms: u64,
        /// DPC bursts per lock kind.
        #[arg(long, default_value_t = 9)]
        bursts: u32,
        /// Write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run everything at once for a long time: stress on both locks and every path,
    /// malformed requests, the timer restarted at random, remove-and-reinstall cycles
    /// under load alternating the free and checked builds; verify continuously.
    /// The device must not be installed; it is removed at the end.
    Soak {
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 1800)]
        seconds: u64,
        /// Seconds the device lives under load in each cycle.
        #[arg(long, default_value_t = 13)]
        cycle_seconds: u64,
        /// The free build's INF.
        #[arg(long)]
        free_inf: PathBuf,
        /// The checked build's INF.
        #[arg(long)]
        checked_inf: PathBuf,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds between process and allocation samples.
        #[arg(long, default_value_t = 60)]
        sample_seconds: u64,
        /// Write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Send malformed requests and check each status, then the device's health.
    Fuzz {
        /// Cases to send.
        #[arg(long, default_value_t = 20_000, conflicts_with = "duration")]
        cases: u64,
        /// Send cases for this many seconds instead.
        #[arg(long)]
        duration: Option<u64>,
        /// Seed of the case generator (the same seed gives the same cases).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the findings as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct StressArgs {
    /// User threads issuing IOCTLs.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Run at least this many seconds (0: no minimum).
    #[arg(long, default_value_t = 3)]
    duration: u64,
    /// Run until at least this many acquisitions were requested (0: no minimum).
    #[arg(long, default_value_t = 1_000_000)]
    acquisitions: u64,
    /// Which lock protects the ledger.
    #[arg(long, value_enum, default_value_t = Lock::Plain)]
    lock: Lock,
    /// Use the driver's unlocked control instead of a lock: it must lose updates,
    /// and this run must then fail verification.
    #[arg(long)]
    unlocked: bool,
    /// Weights of the LOCK_PASSIVE, LOCK_DISPATCH and DPC_BURST IOCTLs, as P,D,B.
    #[arg(long, value_parser = triple, default_value = "1,1,1")]
    mix: [u32; 3],
    /// Acquisitions per LOCK_PASSIVE, LOCK_DISPATCH and (per processor) DPC_BURST request, as P,D,B.
    #[arg(long, value_parser = triple, default_value = "1000,1000,1000")]
    iterations: [u32; 3],
    /// Work units done while holding the lock, per acquisition.
    #[arg(long, default_value_t = 10)]
    work: u32,
    /// Period of the timer DPC in milliseconds.
    #[arg(long, default_value_t = 1)]
    timer_period: u32,
    /// Acquisitions per timer DPC (the tick must fit its budget: docs/protocol.md, "Budgets").
    #[arg(long, default_value_t = 40)]
    timer_iterations: u32,
    /// Do not run the timer DPC.
    #[arg(long)]
    no_timer: bool,
    /// Give up if no IOCTL completes for this many seconds.
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    no_progress_bar: bool,
}

/// `P,D,B`: three comma-separated numbers.
fn triple(text: &str) -> Result<[u32; 3], String> {
    let numbers: Vec<u32> = text
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .map_err(|e| format!("`{n}` is not a number: {e}"))
        })
        .collect::<Result<_, _>>()?;
    numbers
        .try_into()
        .map_err(|numbers: Vec<u32>| format!("expected three numbers P,D,B, got {}", numbers.len()))
}

#[cfg_attr(not(windows), allow(dead_code))]
impl StressArgs {
    fn config(&self) -> dpclockctl::stress::Config {
        dpclockctl::stress::Config {
            threads: self.threads.max(1),
            duration: Duration::from_secs(self.duration),
            acquisitions: self.acquisitions,
            lock_kind: match (self.unlocked, self.lock) {
                (true, _) => LockKind::Unlocked,
                (false, Lock::Plain) => LockKind::Plain,
                (false, Lock::Queued) => LockKind::Queued,
            },
            mix: self.mix,
            iterations: self.iterations,
            work: self.work,
            timer: (!self.no_timer).then_some((self.timer_period, self.timer_iterations)),
            stall_timeout: Duration::from_secs(self.stall_timeout.max(1)),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Stress(args) = &cli.command
        && args.mix.iter().all(|&w| w == 0)
    {
        eprintln!("dpclockctl: --mix must give at least one IOCTL a non-zero weight");
        return ExitCode::from(exit::ERROR);
    }
    ExitCode::from(run(cli.command))
}

#[cfg(not(windows))]
fn run(_: Command) -> u8 {
    eprintln!(
        "dpclockctl talks to the dpclock driver through Win32 and runs on Windows only. \
         On Linux, `cargo xtask stress` runs it under Wine against the Linux build of the driver."
    );
    exit::ERROR
}

#[cfg(windows)]
fn run(command: Command) -> u8 {
    windows_main::run(command)
}

#[cfg(windows)]
mod windows_main {
    use std::{
        io::IsTerminal,
        time::{Duration, Instant},
    };

    use dpclock_ioctl::{
        LockKind, STATS_CHECKED_BUILD, STATS_IRQL_MODELLED, STATS_UNLOCKED_ALLOWED,
    };
    use dpclockctl::{
        device::{self, Device},
        fuzz,
        report::{Environment, Report},
        stress::{self, Ending},
        win::{
            device::{OpenError, WinDevice},
            env,
            install::{self, Installed, Uninstalled},
        },
    };
    use indicatif::{ProgressBar, ProgressStyle};

    use super::{Command, exit};

    pub fn run(command: Command) -> u8 {
        match command {
            Command::Install {
                inf,
                allow_unlocked,
                timeout,
            } => match install::install(&inf, allow_unlocked, Duration::from_secs(timeout)) {
                Ok(Installed::Now(instance)) => {
                    println!("dpclock installed and started on {instance}");
                    0
                }
                Ok(Installed::Already(instances)) => {
                    println!(
                        "dpclock is already installed ({}); nothing to do. Run `dpclockctl uninstall` first to reinstall.",
                        instances.join(", ")
                    );
                    0
                }
                Err(error) => install_error(&error),
            },
            Command::Uninstall { timeout } => {
                match install::uninstall(Duration::from_secs(timeout)) {
                    Ok(Uninstalled::Removed(instances)) => {
                        println!("dpclock removed ({})", instances.join(", "));
                        0
                    }
                    Ok(Uninstalled::NotInstalled) => {
                        println!("dpclock is not installed; nothing to do");
                        0
                    }
                    Err(error) => install_error(&error),
                }
            }
            Command::Stress(args) => with_device(|device| stress(device, &args)),
            Command::Stats { json } => with_device(|device| stats(device, json)),
            Command::Reset => with_device(|device| {
                match device::timer_stop(device).and_then(|()| device::reset(device)) {
                    Ok(()) => {
                        println!("dpclock counters reset");
                        0
                    }
                    Err(error) => device_error(error),
                }
            }),
            Command::Bench {
                rounds,
                round_ms,
                bursts,
                json,
            } => with_device(|device| bench(device, rounds, round_ms, bursts, json)),
            Command::Check => with_device(check),
            Command::Conform { removal } => with_device(|device| {
                let checks = dpclockctl::win::conform::run(device, removal.as_deref());
                report_checks(&checks, "CONFORM")
            }),
            Command::Fuzz {
                cases,
                duration,
                seed,
                json,
            } => with_device(|device| fuzz(device, cases, duration, seed, json)),
            Command::Soak {
                seconds,
                cycle_seconds,
                free_inf,
                checked_inf,
                seed,
                sample_seconds,
                json,
            } => soak(
                seconds,
                cycle_seconds,
                (free_inf, checked_inf),
                seed,
                sample_seconds,
                json,
            ),
        }
    }

    fn soak(
        seconds: u64,
        cycle_seconds: u64,
        (free_inf, checked_inf): (std::path::PathBuf, std::path::PathBuf),
        seed: u64,
        sample_seconds: u64,
        json: Option<std::path::PathBuf>,
    ) -> u8 {
        use dpclockctl::{soak, win::soak::WinPlatform};
        if !env::is_elevated() {
            eprintln!("dpclockctl: the soak installs the driver: run it elevated");
            return exit::NOT_ELEVATED;
        }
        let config = soak::Config {
            null_inputs: env::wine_version().is_none(),
            duration: Duration::from_secs(seconds),
            cycle: Duration::from_secs(cycle_seconds.max(3)),
            sample_every: Duration::from_secs(sample_seconds.max(1)),
            seed,
            ..soak::Config::default()
        };
        let platform = WinPlatform {
            free_inf,
            checked_inf,
            json: json.clone(),
        };
        println!(
            "dpclock soak: {seconds} s, a cycle every {} s (free and checked builds in turn), seed {seed}",
            config.cycle.as_secs()
        );
        let report = soak::run(&platform, &config);
        print!("{}", soak::summary(&report));
        if let Some(path) = json
            && let Err(error) = dpclockctl::win::soak::write_json(&path, &report)
        {
            eprintln!("dpclockctl: cannot write {}: {error}", path.display());
            return exit::ERROR;
        }
        if report.passed {
            println!("SOAK PASSED");
            0
        } else {
            println!("SOAK FAILED");
            exit::NOT_VERIFIED
        }
    }

    fn install_error(error: &install::Error) -> u8 {
        eprintln!("dpclockctl: {error}");
        if matches!(error, install::Error::NotElevated) {
            exit::NOT_ELEVATED
        } else {
            exit::ERROR
        }
    }

    fn with_device(body: impl FnOnce(&WinDevice) -> u8) -> u8 {
        match WinDevice::open() {
            Ok(device) => body(&device),
            Err(error) => {
                eprintln!("dpclockctl: {error}");
                if matches!(error, OpenError::NotFound) {
                    exit::NO_DEVICE
                } else {
                    exit::ERROR
                }
            }
        }
    }

    fn device_error(error: device::DeviceError) -> u8 {
        if error.is_removal() {
            eprintln!("dpclockctl: the device went away: {error}");
            exit::DEVICE_GONE
        } else {
            eprintln!("dpclockctl: {error}");
            exit::ERROR
        }
    }

    /// Progress on a terminal: a bar; otherwise a line a second.
    struct Progress {
        bar: Option<ProgressBar>,
        last_line: std::sync::Mutex<Instant>,
        target: Duration,
    }

    impl stress::Progress for Progress {
        fn update(&self, elapsed: Duration, acquisitions: u64) {
            if let Some(bar) = &self.bar {
                bar.set_position(elapsed.as_millis().min(self.target.as_millis()) as u64);
                bar.set_message(format!("{acquisitions} acquisitions requested"));
            } else {
                let mut last = self
                    .last_line
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.elapsed() >= Duration::from_secs(1) {
                    *last = Instant::now();
                    println!(
                        "  {:>5.1} s  {acquisitions} acquisitions requested",
                        elapsed.as_secs_f64()
                    );
                }
            }
        }

        fn finish(&self) {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
        }

        fn stalled(&self, silence: Duration) -> ! {
            self.finish();
            eprintln!(
                "dpclockctl: no IOCTL completed for {:.0} s: the device stopped answering (was it removed?). \
                 Giving up without verification.",
                silence.as_secs_f64()
            );
            std::process::exit(i32::from(exit::DEVICE_GONE));
        }
    }

    fn environment(stats: Option<&dpclock_ioctl::Stats>) -> Environment {
        Environment {
            cpus: stats.map_or(0, |s| s.processors),
            os: env::os_description(),
            under_wine: env::wine_version().is_some(),
            irql_modelled: stats.is_some_and(|s| s.flags & STATS_IRQL_MODELLED != 0),
            checked_build: stats.is_some_and(|s| s.flags & STATS_CHECKED_BUILD != 0),
            harness_version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn stress(device: &WinDevice, args: &super::StressArgs) -> u8 {
        let config = args.config();
        let show_bar = std::io::stdout().is_terminal() && !args.no_progress_bar;
        let target = config.duration.max(Duration::from_millis(1));
        let bar = show_bar.then(|| {
            let bar = ProgressBar::new(target.as_millis() as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        println!(
            "dpclock stress: {} lock, {} threads, mix {:?}, at least {} s and {} acquisitions",
            config.lock_kind.name(),
            config.threads,
            config.mix,
            config.duration.as_secs(),
            config.acquisitions
        );
        let progress = Progress {
            bar,
            last_line: std::sync::Mutex::new(Instant::now()),
            target,
        };
        let run = match stress::run(device, &config, &progress) {
            Ok(run) => run,
            Err(stress::Error::Device(error)) => return device_error(error),
            Err(error) => {
                eprintln!("dpclockctl: {error}");
                return exit::ERROR;
            }
        };
        let report = Report::new(&run, environment(run.stats.as_ref()));
        print!("{}", report.to_table());
        if let Some(path) = &args.json
            && let Err(error) = report
                .to_json()
                .map_err(std::io::Error::other)
                .and_then(|json| std::fs::write(path, json))
        {
            eprintln!("dpclockctl: cannot write {}: {error}", path.display());
            return exit::ERROR;
        }
        match run.ending {
            Ending::DeviceRemoved(error) => {
                eprintln!(
                    "dpclockctl: the device was removed during the stress ({error}); the run was stopped without verification."
                );
                exit::DEVICE_GONE
            }
            Ending::Failed(error) => {
                eprintln!("dpclockctl: the stress stopped: {error}");
                exit::ERROR
            }
            Ending::Completed if report.verified => 0,
            Ending::Completed => {
                if config.lock_kind == LockKind::Unlocked {
                    println!(
                        "(The unlocked control lost updates, as it must: the harness detects the race.)"
                    );
                }
                exit::NOT_VERIFIED
            }
        }
    }

    fn bench(
        device: &WinDevice,
        rounds: u32,
        round_ms: u64,
        bursts: u32,
        json: Option<std::path::PathBuf>,
    ) -> u8 {
        use dpclockctl::bench::{self, Holds, Parameters};
        let parameters = Parameters {
            rounds,
            round_ms,
            bursts,
            ..Parameters::default()
        };
        let results = match bench::run(device, parameters) {
            Ok(results) => results,
            Err(error) => return device_error(error),
        };
        println!(
            "dpclock bench on {} processors ({})",
            results.processors,
            env::os_description()
        );
        println!(
            "  NOOP            {:>10.0} IOCTLs/s (no buffers)",
            results.noop_per_s.median
        );
        println!(
            "  NOOP            {:>10.0} IOCTLs/s (16 bytes in, 32 back, like a lock IOCTL)",
            results.noop_lock_traffic_per_s.median
        );
        println!(
            "  LOCK_PASSIVE    {:>10.0} IOCTLs/s (1 acquisition)",
            results.lock_passive_per_s.median
        );
        println!(
            "  LOCK_DISPATCH   {:>10.0} IOCTLs/s (1 acquisition)",
            results.lock_dispatch_per_s.median
        );
        println!(
            "  lock/no-op      {:>10.3} (same traffic; {:.3} against the bare NOOP)",
            results.lock_noop_ratio, results.lock_bare_noop_ratio
        );
        println!(
            "  bursts, plain   {:>10.0} acquisitions/s",
            results.burst_plain_acquisitions_per_s.median
        );
        println!(
            "  bursts, queued  {:>10.0} acquisitions/s",
            results.burst_queued_acquisitions_per_s.median
        );
        println!("  queued/plain    {:>10.3}", results.queued_vs_plain_ratio);
        let checked = results.stats.flags & STATS_CHECKED_BUILD != 0;
        let mut value = match serde_json::to_value(&results) {
            Ok(value) => value,
            Err(error) => {
                eprintln!("dpclockctl: {error}");
                return exit::ERROR;
            }
        };
        value["environment"] = serde_json::json!({
            "os": env::os_description(),
            "under_wine": env::wine_version().is_some(),
            "checked_build": checked,
            "irql_modelled": results.stats.flags & STATS_IRQL_MODELLED != 0,
        });
        if checked {
            value["hold_time"] = serde_json::json!({
                "plain": Holds::of(&results.stats, LockKind::Plain),
                "queued": Holds::of(&results.stats, LockKind::Queued),
            });
        }
        if let Some(path) = json
            && let Err(error) = std::fs::write(&path, value.to_string())
        {
            eprintln!("dpclockctl: cannot write {}: {error}", path.display());
            return exit::ERROR;
        }
        0
    }

    fn check(device: &WinDevice) -> u8 {
        let checks = dpclockctl::check::run(device);
        report_checks(&checks, "CHECK")
    }

    fn report_checks(checks: &[dpclockctl::check::Check], what: &str) -> u8 {
        let mut failed = 0;
        for check in checks {
            match &check.result {
                Ok(detail) => println!("  ok    {}: {detail}", check.name),
                Err(why) => {
                    failed += 1;
                    println!("  FAIL  {}: {why}", check.name);
                }
            }
        }
        if failed == 0 {
            println!("{what} PASSED: {} checks", checks.len());
            0
        } else {
            println!("{what} FAILED: {failed} of {} checks", checks.len());
            exit::NOT_VERIFIED
        }
    }

    fn stats(device: &WinDevice, json: bool) -> u8 {
        let stats = match device::stats(device) {
            Ok(stats) => stats,
            Err(error) => return device_error(error),
        };
        if json {
            println!("{stats:#?}");
            return 0;
        }
        println!(
            "dpclock on {} processors ({})",
            stats.processors,
            env::os_description()
        );
        println!(
            "  IRQL {}, {} build, unlocked control {}, timer {}",
            if stats.flags & STATS_IRQL_MODELLED != 0 {
                "modelled"
            } else {
                "not modelled"
            },
            if stats.flags & STATS_CHECKED_BUILD != 0 {
                "checked"
            } else {
                "free"
            },
            if stats.flags & STATS_UNLOCKED_ALLOWED != 0 {
                "enabled"
            } else {
                "disabled"
            },
            if stats.timer_period_ms > 0 {
                format!("every {} ms", stats.timer_period_ms)
            } else {
                "stopped".to_owned()
            },
        );
        println!(
            "  timer DPCs {}, burst DPCs {}",
            stats.timer_ticks, stats.burst_dpc_runs
        );
        println!("  {}", dpclockctl::report::timings_line(&stats.timings));
        for kind in LockKind::ALL {
            let l = &stats.ledgers[kind.index()];
            println!(
                "  {:<8} updates {:?} total {} performed {:?} contended {} hold max {} ns",
                kind.name(),
                l.updates,
                l.total,
                l.performed,
                l.contended,
                l.hold.max_ns
            );
        }
        if stats.flags & STATS_CHECKED_BUILD != 0 {
            println!("  validator: {:?}", stats.validator);
        }
        0
    }

    fn fuzz(
        device: &WinDevice,
        cases: u64,
        duration: Option<u64>,
        seed: u64,
        json: Option<std::path::PathBuf>,
    ) -> u8 {
        let unlocked_allowed = match device::stats(device) {
            Ok(stats) => stats.flags & STATS_UNLOCKED_ALLOWED != 0,
            Err(error) => return device_error(error),
        };
        let budget = duration.map_or(fuzz::Budget::Cases(cases), |s| {
            fuzz::Budget::Time(Duration::from_secs(s))
        });
        let started = Instant::now();
        let outcome = fuzz::run(
            device as &dyn Device,
            seed,
            budget,
            unlocked_allowed,
            env::wine_version().is_none(),
        );
        println!(
            "dpclock fuzz: {} cases in {:.1} s (seed {seed})",
            outcome.cases,
            started.elapsed().as_secs_f64()
        );
        for (expected, count) in &outcome.expected {
            println!("  {count:>8}  expected {expected}");
        }
        if !outcome.io_manager_statuses.is_empty() {
            let statuses: Vec<_> = outcome
                .io_manager_statuses
                .iter()
                .map(String::as_str)
                .collect();
            println!(
                "  null buffers were refused by the I/O manager with {}",
                statuses.join(", ")
            );
        }
        for m in &outcome.mismatches {
            println!(
                "  MISMATCH case {}: code {} input {} output {}: expected {}, got {}",
                m.index, m.code, m.input, m.output, m.expected, m.got
            );
        }
        match &outcome.unhealthy {
            None => println!(
                "  the device still serves correct requests, and its locked ledgers are consistent"
            ),
            Some(why) => println!("  UNHEALTHY after the fuzz: {why}"),
        }
        if let Some(path) = json {
            let written = serde_json::to_string_pretty(&outcome)
                .map_err(std::io::Error::other)
                .and_then(|j| std::fs::write(&path, j));
            if let Err(error) = written {
                eprintln!("dpclockctl: cannot write {}: {error}", path.display());
                return exit::ERROR;
            }
        }
        if outcome.passed() {
            println!("FUZZ PASSED");
            0
        } else {
            println!("FUZZ FAILED");
            exit::NOT_VERIFIED
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn stress(args: &[&str]) -> Result<dpclockctl::stress::Config, clap::Error> {
        let cli = Cli::try_parse_from([&["dpclockctl", "stress"], args].concat())?;
        match cli.command {
            Command::Stress(args) => Ok(args.config()),
            _ => unreachable!("parsed a stress command"),
        }
    }

    #[test]
    fn stress_defaults_are_a_few_seconds_and_a_million_acquisitions() {
        let config = stress(&[]).expect("defaults parse");
        assert_eq!(config.duration, Duration::from_secs(3));
        assert_eq!(config.acquisitions, 1_000_000);
        assert_eq!(
            (config.mix, config.iterations, config.lock_kind),
            ([1, 1, 1], [1000, 1000, 1000], LockKind::Plain)
        );
        assert_eq!(config.timer, Some((1, 40)));
    }

    #[test]
    fn stress_flags_parse() {
        let config = stress(&[
            "--mix",
            "0,0,1",
            "--iterations",
            "10,20,30",
            "--lock",
            "queued",
            "--no-timer",
        ])
        .unwrap();
        assert_eq!(
            (
                config.mix,
                config.iterations,
                config.lock_kind,
                config.timer
            ),
            ([0, 0, 1], [10, 20, 30], LockKind::Queued, None)
        );
        assert_eq!(
            stress(&["--unlocked"]).unwrap().lock_kind,
            LockKind::Unlocked
        );
    }

    #[test]
    fn bad_triples_are_refused_with_a_reason() {
        let error = stress(&["--mix", "1,2"]).unwrap_err().to_string();
        assert!(error.contains("expected three numbers"), "{error}");
        let error = stress(&["--iterations", "1,x,3"]).unwrap_err().to_string();
        assert!(error.contains("`x` is not a number"), "{error}");
    }
}
