//! The checks of kspin's promise that go beyond ordinary tests: Miri over
//! the host backend's suites, the checked validator's suite run many times
//! in a row (it must be deterministic), and the zero-cost comparison of the
//! disassembled raw/guard pairs.

use std::process::Command;

use crate::{
    bench, fail,
    process::{Result, run},
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
/// the checked validator's suite.
///
/// # Errors
///
/// If Miri is missing and cannot be installed, or reports anything.
pub fn miri() -> Result<()> {
    ensure_miri()?;
    let suites: [(&[&str], &str); 3] = [
        (&["--test", "guards"], ""),
        (&["--test", "safe_code"], "-Zmiri-ignore-leaks"),
        (&["--features", "checked", "--test", "checked"], ""),
    ];
    for (args, flags) in suites {
        let mut command = nightly_cargo();
        command
            .args(["miri", "test", "-p", "kspin"])
            .args(args)
            .env("MIRIFLAGS", flags);
        run(&mut command)?;
    }
    // The inversion two threads take at the same moment, under several
    // fixed schedules: the validator must count it in every round of each.
    // (Seed 0 of f3eda08's validator missed 1 of 3 rounds, seed 4 all 3.)
    let mut command = nightly_cargo();
    command
        .args(["miri", "test", "-p", "kspin", "--features", "checked"])
        .args(["--test", "checked", "finding_1_"])
        .env("MIRIFLAGS", "-Zmiri-many-seeds=0..8");
    run(&mut command)?;
    Ok(())
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
