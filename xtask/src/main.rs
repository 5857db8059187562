//! `cargo xtask`: see the crate documentation of the `xtask` library.

use std::{
    env, fs,
    path::Path,
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use xtask::{
    COMMAND_TIMEOUT, cross, deps, fail, kspin_checks,
    process::{Background, Result, display, run},
    wine::Session,
};

const USAGE: &str = "\
usage: cargo xtask <command>

  deps                  install the Debian packages the Linux flow needs
  build [--debug]       cross-build dpclock.sys (free, checked) and dpclockctl.exe
  stress [--checked] [FLAGS]
                        install the driver under Wine, run `dpclockctl stress FLAGS`,
                        uninstall; the exit status is the harness's
  rig                   build (once per machine) the rig's ntoskrnl.exe for Wine, or find it
                        in /var/cache/dpclock/wine-rig; DPCLOCK_WINE_RIG=stock selects stock Wine
  check-windows         check the Windows flavor against the real windows-drivers-rs
                        crates (x86_64 and aarch64): clippy, layouts, link
  test                  run every test (what CI runs)
  miri                  kspin's host suites under Miri (installs Miri with rustup if missing)
  zero-cost             check that every kspin acquisition compiles to exactly the raw calls
  bench                 run the benchmarks; writes target/bench/report.{md,json}
  soak [--minutes N | --seconds N] [--seed N] [--sample-seconds N]
                        everything at once under Wine for N minutes (default 30): stress,
                        malformed requests, remove-and-reinstall cycles, leak samples;
                        writes target/soak/{report.txt,soak.json,soak.svg}
  fuzz [--seconds N]    coverage-guided fuzzing of dpclock-ioctl (cargo-fuzz, nightly)
";

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "deps" => deps::ensure().map(|()| 0),
        "build" => build(&rest).map(|()| 0),
        "stress" => stress(rest),
        "check-windows" => check_windows().map(|()| 0),
        "rig" => xtask::rig::selected().map(|rig| {
            println!("{rig:?}");
            0
        }),
        "test" => test(),
        "miri" => kspin_checks::miri().map(|()| 0),
        "zero-cost" => kspin_checks::zero_cost().map(|()| 0),
        "bench" => bench(),
        "soak" => soak(&rest),
        "fuzz" => flag(&rest, "--seconds")
            .and_then(|s| xtask::fuzz::run_for(s.unwrap_or(60)))
            .map(|_| 0),
        "" | "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(fail!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_windows() -> Result<()> {
    let started = Instant::now();
    let times = xtask::check_windows::run()?;
    print_check_windows_times(&times);
    eprintln!("  total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn print_check_windows_times(times: &xtask::check_windows::StepTimes) {
    eprintln!("\n== check-windows steps");
    for (name, time) in times {
        eprintln!("  ok  {:>6.1} s  {name}", time.as_secs_f64());
    }
}

fn build(args: &[String]) -> Result<()> {
    let profile = if args.iter().any(|a| a == "--debug") {
        cross::Profile::Debug
    } else {
        cross::Profile::Release
    };
    for package in cross::build(profile)? {
        println!(
            "{}:\n  {}\n  {}\n  {}",
            display(&package.dir),
            display(&package.sys),
            display(&package.inf),
            display(&package.harness)
        );
    }
    Ok(())
}

fn stress(mut args: Vec<String>) -> Result<i32> {
    let checked = args
        .iter()
        .position(|a| a == "--checked")
        .map(|i| args.remove(i))
        .is_some();
    // `--json PATH` is a Linux path; the harness runs under Wine.
    if let Some(path) = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get_mut(i + 1))
    {
        *path = xtask::soak::wine_path(Path::new(path.as_str()));
    }
    let seconds = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // Generous, but finite: the run's own length plus its stall timeout and
    // a margin; the harness itself gives up on a silent device sooner.
    let timeout =
        Duration::from_secs(seconds("--duration", 3) + seconds("--stall-timeout", 30) + 240);

    let [free, checked_package] = cross::build(cross::Profile::Release)?;
    let package = if checked { checked_package } else { free };
    let session = Session::start("stress")?;
    let mut install = vec!["install", "--inf", "dpclock.inf"];
    if args.iter().any(|a| a == "--unlocked") {
        install.push("--allow-unlocked");
    }
    let installed = session.wine(&package.dir, "dpclockctl.exe", &install, COMMAND_TIMEOUT)?;
    print!("{}", installed.stdout);
    if !installed.success() {
        return Err(fail!(
            "installing the driver failed:\n{installed}\n--- driver log ({})\n{}",
            display(session.log_path()),
            session.log_tail(40)
        ));
    }
    session.check_rig()?;
    let mut harness = vec!["stress".to_owned()];
    harness.extend(args);
    let code = session.wine_inherit(&package.dir, "dpclockctl.exe", &harness, timeout)?;
    let uninstalled = session.wine(
        &package.dir,
        "dpclockctl.exe",
        ["uninstall"],
        COMMAND_TIMEOUT,
    )?;
    print!("{}", uninstalled.stdout);
    if let Some(crash) = session.driver_crash() {
        eprintln!(
            "xtask: the driver host reported: {crash}\n  log: {}",
            display(session.log_path())
        );
    }
    println!(
        "driver log: {} (DbgPrint lines: {})",
        display(session.log_path()),
        session.driver_lines().len()
    );
    match code {
        Some(code) => Ok(code),
        None => Err(fail!(
            "dpclockctl stress did not finish within {} s and was killed; driver log:\n{}",
            timeout.as_secs(),
            session.log_tail(40)
        )),
    }
}

/// This xtask binary, to run one of its commands in a child process.
fn xtask_itself() -> Result<Command> {
    let exe = env::current_exe().map_err(|e| fail!("cannot find xtask's own binary: {e}"))?;
    let mut command = Command::new(exe);
    command.current_dir(cross::workspace());
    Ok(command)
}

/// rustup's cargo (the one running xtask), for host builds.
fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(cross::workspace());
    command
}

struct Steps {
    done: Vec<(String, Duration)>,
}

impl Steps {
    fn step(&mut self, name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
        eprintln!("\n== {name}");
        let start = Instant::now();
        body().map_err(|e| fail!("step `{name}` failed: {e}"))?;
        self.done.push((name.to_owned(), start.elapsed()));
        Ok(())
    }
}

fn test() -> Result<i32> {
    let mut steps = Steps { done: Vec::new() };
    let started = Instant::now();
    let result = all_tests(&mut steps);
    eprintln!("\n== summary");
    for (name, time) in &steps.done {
        eprintln!("  ok  {:>6.1} s  {name}", time.as_secs_f64());
    }
    eprintln!("  total {:.1} s", started.elapsed().as_secs_f64());
    result.map(|()| 0)
}

/// `cargo` (rustup's) with a command line written as one string.
fn cargo_line(line: &str) -> Command {
    let mut command = cargo();
    command.args(line.split_whitespace());
    command
}

fn all_tests(steps: &mut Steps) -> Result<()> {
    steps.step("Debian packages", deps::ensure)?;
    steps.step("formatting (cargo fmt --check)", || {
        run(&mut cargo_line("fmt --all -- --check"))?;
        // The fuzz crate and the video port image are workspaces of their own.
        run(&mut cargo_line(
            "fmt --manifest-path crates/dpclock-ioctl/fuzz/Cargo.toml -- --check",
        ))?;
        run(&mut cargo_line(
            "fmt --manifest-path crates/kspin/videoport-image/Cargo.toml -- --check",
        ))
    })?;
    // The driver builds apart from the rest: with the whole workspace, Cargo
    // would unify kspin's features and hand the no_std driver kspin's std
    // host backend.
    steps.step("clippy, host (-D warnings)", || {
        for line in [
            "clippy --workspace --exclude dpclock --all-targets -- -D warnings",
            "clippy -p kspin --all-targets --features checked,kernel,videoport -- -D warnings",
            "clippy -p dpclock --all-targets -- -D warnings",
            "clippy -p dpclock --all-targets --features checked -- -D warnings",
        ] {
            run(&mut cargo_line(line))?;
        }
        Ok(())
    })?;
    steps.step(
        "clippy, kspin for i686 (-D warnings; the driver and harness are linted by the cross builds)",
        cross::clippy_x86,
    )?;
    steps.step("host tests of every crate", || {
        for line in [
            "test --workspace --exclude dpclock",
            "test -p kspin --release --test guards --test safe_code",
            "test -p kspin --features checked --test guards --test safe_code",
            "test -p dpclock --lib --test build_flavors",
        ] {
            run(&mut cargo_line(line))?;
        }
        Ok(())
    })?;
    steps.step(
        "kspin's checked validator suite, 20 runs in a row (debug and release)",
        || kspin_checks::checked_repeatedly(cargo, 20),
    )?;
    // The rig's ntoskrnl.exe is built (once per machine: about 4 minutes,
    // much of it a download and a single-threaded configure) beside the
    // steps below, until the misuse driver's tests need it.
    let rig = Background::start(
        "the Wine rig's ntoskrnl.exe (cargo xtask rig)",
        xtask_itself()?.arg("rig"),
        &cross::target_dir().join("xtask-logs").join("rig.log"),
    )?;
    // Miri and libFuzzer each keep one core busy: side by side, they take
    // the time of the longer.
    steps.step(
        "Miri: kspin's guards, safe-code attacks and validator; beside it, coverage-guided fuzzing of dpclock-ioctl (cargo-fuzz, 60 s)",
        || {
            let log = cross::target_dir().join("xtask-logs").join("fuzz.log");
            let fuzz = Background::start(
                "fuzzing (cargo xtask fuzz --seconds 60)",
                xtask_itself()?.args(["fuzz", "--seconds", "60"]),
                &log,
            )?;
            let miri = kspin_checks::miri();
            let fuzzed = fuzz.join(Duration::from_secs(20 * 60));
            miri?;
            let took = fuzzed?;
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "  fuzzing passed beside Miri in {:.1} s; the end of its log ({}):\n{}",
                took.as_secs_f64(),
                log.display(),
                lines[lines.len().saturating_sub(8)..].join("\n")
            );
            Ok(())
        },
    )?;
    steps.step("loom model checks (LOOM_MAX_PREEMPTIONS=2)", || {
        let mut loom = cargo_line("test -p kspin --test loom --release");
        loom.env("RUSTFLAGS", "--cfg loom")
            .env("LOOM_MAX_PREEMPTIONS", "2")
            .env("CARGO_TARGET_DIR", cross::target_dir().join("loom"));
        run(&mut loom)
    })?;
    steps.step(
        "zero cost: kspin against the raw calls, instruction for instruction",
        kspin_checks::zero_cost,
    )?;
    steps.step(
        "the Wine rig's ntoskrnl.exe (built once per machine; the wait for the background build)",
        || {
            let took = rig.join(Duration::from_secs(40 * 60))?;
            eprintln!(
                "  built or found in {:.1} s, in the background",
                took.as_secs_f64()
            );
            xtask::rig::selected().map(|rig| eprintln!("  {rig:?}"))
        },
    )?;
    // The misuse driver's tests wait on Wine, not on the processors: they
    // run (one at a time, as every Wine test) beside the compilations below.
    let misuse_log = cross::target_dir().join("xtask-logs").join("misuse.log");
    let misuse = Background::start(
        "the rig's negative controls (cargo test -p dpclock --test misuse)",
        &mut cargo_line("test -p dpclock --test misuse -- --test-threads=1 --nocapture"),
        &misuse_log,
    )?;
    steps.step(
        "check-windows (real wdk crates, x86_64 and aarch64: check, clippy, layouts, link)",
        || {
            let times = xtask::check_windows::run()?;
            print_check_windows_times(&times);
            Ok(())
        },
    )?;
    steps.step(
        "cross builds, clippy-linted (dpclock.sys free and checked, dpclockctl.exe)",
        || cross::build(cross::Profile::Release).map(|_| ()),
    )?;
    steps.step("PE checks of dpclock.sys", || {
        run(&mut cargo_line("test -p dpclock --test pe"))
    })?;
    steps.step(
        "the rig's negative controls: a misuse driver must bugcheck with Verifier's codes (the wait for the background run)",
        || {
            let took = misuse.join(Duration::from_secs(20 * 60))?;
            let text = fs::read_to_string(&misuse_log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("misuse ") || l.starts_with("queued DPC probe") || l.starts_with("test result"))
                .collect();
            eprintln!(
                "  passed in {:.1} s, in the background (log: {}):\n  {}",
                took.as_secs_f64(),
                misuse_log.display(),
                lines.join("\n  ")
            );
            Ok(())
        },
    )?;
    steps.step("Wine end-to-end tests (serial)", || {
        run(&mut cargo_line(
            "test -p dpclock --test wine -- --test-threads=1",
        ))
    })?;
    steps.step("soak under Wine (2 minutes)", || {
        match xtask::soak::run(120, 1, 60)? {
            0 => Ok(()),
            code => Err(fail!(
                "the soak failed (exit {code}); see target/soak/report.txt"
            )),
        }
    })?;
    Ok(())
}

/// `--name VALUE` as a number, if given.
fn flag(args: &[String], name: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| fail!("{name} needs a number")),
    }
}

fn soak(args: &[String]) -> Result<i32> {
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        if !["--minutes", "--seconds", "--seed", "--sample-seconds"].contains(&arg.as_str()) {
            return Err(fail!("unknown soak flag `{arg}`\n{USAGE}"));
        }
    }
    let seconds = match (flag(args, "--seconds")?, flag(args, "--minutes")?) {
        (Some(s), _) => s,
        (None, Some(m)) => m * 60,
        (None, None) => 30 * 60,
    };
    xtask::soak::run(
        seconds,
        flag(args, "--seed")?.unwrap_or(1),
        flag(args, "--sample-seconds")?.unwrap_or(60),
    )
}

fn bench() -> Result<i32> {
    xtask::bench::run_all().map(|()| 0)
}
