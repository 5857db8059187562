//! The checks of kspin's promise that go beyond ordinary tests: Miri over
//! the host backend's suites, the checked validator's suite run many times
//! in a row (it must be deterministic), and the zero-cost comparison of the
//! disassembled raw/guard pairs.

use std::{process::Command, time::Duration};

use crate::{
    bench, fail,
    process::{Result, run, run_captured},
};

/// The rustup toolchain Miri runs on.
const NIGHTLY: &str = "nightly";

/// `cargo` of the nightly toolchain through rustup, with nothing inherited
/// from the stable cargo that runs xtask.
fn nightly_cargo() -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", NIGHTLY, "cargo"])
        .current_dir(crate::cross::workspace())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO");
    command
}

fn has_miri() -> bool {
    nightly_cargo()
        .args(["miri", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Makes sure rustup's nightly toolchain has Miri and the standard library's
/// source, installing what is missing.
///
/// # Errors
///
/// When they cannot be installed, saying what to run.
pub fn ensure_miri() -> Result<()> {
    if has_miri() {
        return Ok(());
    }
    eprintln!("xtask: installing Miri for the {NIGHTLY} toolchain (rustup)");
    let installed = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(NIGHTLY));
    let mut rustup = Command::new("rustup");
    if installed {
        rustup.args([
            "component",
            "add",
            "--toolchain",
            NIGHTLY,
            "miri",
            "rust-src",
        ]);
    } else {
        rustup.args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "miri,rust-src",
        ]);
    }
    run(&mut rustup).map_err(|e| {
        fail!(
            "{e}\n  Miri is needed to check kspin for undefined behaviour; install it with\n    rustup toolchain install {NIGHTLY} --component miri,rust-src\n  (rustup must reach static.rust-lang.org)"
        )
    })?;
    if has_miri() {
        Ok(())
    } else {
        Err(fail!(
            "rustup installed Miri but `cargo +{NIGHTLY} miri --version` still fails"
        ))
    }
}

/// kspin's host suites under Miri: the guards, the safe-code attack suite
/// (whose leaks are deliberate, so Miri's leak report is off for it), and
/// the checked validator's suite, each of whose tests runs in a Miri of its
/// own.
///
/// Why one Miri per validator test: Miri's data-race detector keeps a
/// vector clock per thread ever started, and the validator's tests start
/// up to 129 threads each, so in one interpreter every later atomic access
/// pays for every earlier test's threads (64 threads' leaks took 4 s alone
/// and 2 minutes after the rest of the suite). Miri interprets on one core,
/// so two workers, each with a target folder of its own (a `cargo test`
/// holds its folder's lock until its tests end), run the jobs side by side.
///
/// # Errors
///
/// If Miri is missing and cannot be installed, or reports anything.
pub fn miri() -> Result<()> {
    ensure_miri()?;
    let validator_tests = list_tests(&["--features", "checked", "--test", "checked"])?;
    let mut jobs: Vec<MiriJob> = vec![
        MiriJob::new("guards", &["--test", "guards"], ""),
        MiriJob::new("safe_code", &["--test", "safe_code"], "-Zmiri-ignore-leaks"),
        // The inversion two threads take at the same moment, under several
        // fixed schedules: the validator must count it in every round of
        // each. (Seed 0 of f3eda08's validator missed 1 of 3 rounds, seed 4
        // all 3.)
        MiriJob::new(
            "checked finding_1_ under seeds 0..8",
            &["--features", "checked", "--test", "checked", "finding_1_"],
            "-Zmiri-many-seeds=0..8",
        ),
    ];
    for name in &validator_tests {
        let mut job = MiriJob::new(
            &format!("checked {name}"),
            &["--features", "checked", "--test", "checked"],
            "",
        );
        job.args
            .extend(["--".into(), "--exact".into(), name.clone()]);
        jobs.push(job);
    }
    // The longest first, so that the two workers end together (these took
    // 1 to 5 minutes each on 2 loaded cores; the rest under a minute).
    let heavy = [
        "clean_use_reports_nothing",
        "attack_17_f2",
        "attack_17_f1",
        "sixty_four",
        "finding_1_ under seeds",
        "finding_2_",
        "guards",
        "safe_code",
        "finding_3_",
    ];
    jobs.sort_by_key(|job| {
        heavy
            .iter()
            .position(|h| job.label.contains(h))
            .unwrap_or(heavy.len())
    });
    eprintln!(
        "  {} Miri jobs ({} validator tests one by one), two at a time",
        jobs.len(),
        validator_tests.len()
    );
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (queue, failures) = (&queue, &failures);
            scope.spawn(move || {
                let target = crate::cross::target_dir().join(format!("miri-{worker}"));
                loop {
                    let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                    let Some(job) = next else { break };
                    if let Err(e) = job.run(&target)
                        && let Ok(mut failures) = failures.lock()
                    {
                        failures.push(e.0);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(fail!("Miri failed:\n{}", failures.join("\n")))
    }
}

/// One `cargo miri test -p kspin` run.
struct MiriJob {
    label: String,
    args: Vec<String>,
    flags: String,
    /// The job names one test: it must run exactly that one (a name that
    /// matched nothing would pass with 0 tests run).
    one_test: bool,
}

impl MiriJob {
    fn new(label: &str, args: &[&str], flags: &str) -> Self {
        Self {
            label: label.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            flags: flags.to_owned(),
            one_test: false,
        }
    }

    fn run(&self, target: &std::path::Path) -> Result<()> {
        let mut command = nightly_cargo();
        command
            .args(["miri", "test", "-q", "-p", "kspin"])
            .args(&self.args)
            .env("CARGO_TARGET_DIR", target)
            .env("MIRIFLAGS", &self.flags);
        let output = run_captured(&mut command, Duration::from_secs(30 * 60))?;
        if output.success() && self.one_test && !output.stdout.contains("ok. 1 passed;") {
            return Err(fail!(
                "{} ran no test or more than one (`{}`) {output}",
                self.label,
                crate::process::describe(&command)
            ));
        }
        if output.success() {
            eprintln!(
                "  ok {:>6.1} s  {}",
                output.elapsed.as_secs_f64(),
                self.label
            );
            Ok(())
        } else {
            Err(fail!(
                "{} (`{}`) {output}",
                self.label,
                crate::process::describe(&command)
            ))
        }
    }
}

/// The names of the tests `cargo test -p kspin ARGS` would run (listed by
/// the host build: the same tests Miri runs).
fn list_tests(args: &[&str]) -> Result<Vec<String>> {
    let mut command = Command::new(env_cargo());
    command
        .current_dir(crate::cross::workspace())
        .args(["test", "-q", "-p", "kspin"])
        .args(args)
        .args(["--", "--list", "--format", "terse"]);
    let output = command
        .output()
        .map_err(|e| fail!("cannot list kspin's tests: {e}"))?;
    if !output.status.success() {
        return Err(fail!(
            "listing kspin's tests failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(fail!("listing kspin's tests found none"));
    }
    Ok(names)
}

/// rustup's cargo running xtask.
fn env_cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Runs the checked validator's suite `times` times in a row, in debug and
/// in release: every run must pass.
///
/// # Errors
///
/// On the first failing run, saying which.
pub fn checked_repeatedly(cargo: impl Fn() -> Command, times: usize) -> Result<()> {
    for profile in [None, Some("--release")] {
        let line = |quiet: bool| {
            let mut command = cargo();
            command.args([
                "test",
                "-p",
                "kspin",
                "--features",
                "checked",
                "--test",
                "checked",
            ]);
            command.args(profile);
            if quiet {
                command.arg("-q");
            }
            command
        };
        run(line(false).arg("--no-run"))?;
        for round in 1..=times {
            let output = line(true)
                .output()
                .map_err(|e| fail!("cannot run cargo test: {e}"))?;
            if !output.status.success() {
                return Err(fail!(
                    "the checked suite ({}) failed on run {round} of {times}:\n{}{}",
                    profile.unwrap_or("debug"),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        eprintln!(
            "  checked suite ({}): {times} runs of {times} passed",
            profile.unwrap_or("debug")
        );
    }
    Ok(())
}

/// Compiles the raw/guard pairs of `bench/` for the driver's target and
/// fails unless every kspin acquisition has exactly as many instructions as
/// the raw kernel calls it wraps (free build).
///
/// # Errors
///
/// If the build fails or a pair differs.
pub fn zero_cost() -> Result<()> {
    let counts = bench::zero_cost_counts()?;
    let mut differ = Vec::new();
    for (label, raw, guard) in &counts {
        eprintln!("  {raw:>3} raw, {guard:>3} kspin  {label}");
        if raw != guard {
            differ.push(format!("{label}: {raw} raw, {guard} kspin"));
        }
    }
    if differ.is_empty() {
        Ok(())
    } else {
        Err(fail!(
            "kspin costs more than the raw calls (free build):\n  {}\n  (`cargo xtask bench` writes the disassembly of each pair to target/bench/report.md)",
            differ.join("\n  ")
        ))
    }
}
