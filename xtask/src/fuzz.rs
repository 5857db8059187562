//! `cargo xtask fuzz [--seconds N]`: coverage-guided fuzzing of
//! dpclock-ioctl's parser and encoders with cargo-fuzz (libFuzzer), on the
//! host, with rustup's nightly toolchain.
//!
//! The fuzz crate (`crates/dpclock-ioctl/fuzz`) is a workspace of its own,
//! so that the project's workspace never needs nightly. The corpus kept in
//! the repository (`fuzz/corpus/protocol`) seeds each run; what a run adds
//! goes to `target/fuzz/corpus`, and crashes to `target/fuzz/artifacts`,
//! so a run leaves the repository as it was. The report, with executions
//! and coverage (libFuzzer's edge count, and which of the crate's functions
//! ran), goes to `target/fuzz/report.txt`.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    cross::{target_dir, workspace},
    fail,
    process::{Result, describe, display, run, run_captured},
};

/// The fuzz crate's folder.
#[must_use]
pub fn fuzz_dir() -> PathBuf {
    workspace()
        .join("crates")
        .join("dpclock-ioctl")
        .join("fuzz")
}

fn rustup_cargo() -> Command {
    // `cargo +nightly` goes through rustup's proxy; the CARGO and RUSTC
    // variables of the cargo running xtask would pin the stable toolchain.
    let mut command = Command::new("cargo");
    command
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    command
}

/// Makes sure the nightly toolchain and cargo-fuzz are there, installing
/// cargo-fuzz if it is missing.
///
/// # Errors
///
/// Saying what is missing and how to get it.
pub fn ensure_tools() -> Result<()> {
    let nightly = rustup_cargo()
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        return Err(fail!(
            "the fuzzer needs rustup's nightly toolchain (libFuzzer's instrumentation is nightly-only), \
             and `cargo +nightly` does not work here; install it with `rustup toolchain install nightly`"
        ));
    }
    let have_fuzz = rustup_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_fuzz {
        eprintln!(
            "xtask: cargo-fuzz is missing; installing it (cargo install cargo-fuzz --locked)"
        );
        run(rustup_cargo().args(["install", "cargo-fuzz", "--locked"])).map_err(|e| {
            fail!("{e}\n  could not install cargo-fuzz from crates.io, so the fuzzer cannot run")
        })?;
    }
    Ok(())
}

/// What one run found.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    /// Inputs executed.
    pub executions: u64,
    /// libFuzzer's coverage counter (edges) at the end.
    pub edges: u64,
    /// libFuzzer's feature counter at the end.
    pub features: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
    /// Functions of dpclock-ioctl that ran, and that did not.
    pub covered: BTreeSet<String>,
    /// Functions of dpclock-ioctl that never ran.
    pub uncovered: BTreeSet<String>,
    /// Edges of dpclock-ioctl's functions that ran, and all of them
    /// (libFuzzer's `-print_coverage`; the rest are mostly the panic paths
    /// of bounds checks, which no input reaches).
    pub crate_edges: (u64, u64),
}

fn after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Reads libFuzzer's output (`-print_final_stats=1 -print_coverage=1`).
#[must_use]
pub fn findings(output: &str) -> Findings {
    let mut found = Findings::default();
    for line in output.lines() {
        if line.starts_with('#') && line.contains("cov:") {
            found.edges = after(line, "cov:").unwrap_or(found.edges);
            found.features = after(line, "ft:").unwrap_or(found.features);
            found.corpus = after(line, "corp:")
                .or_else(|| {
                    line.split("corp:")
                        .nth(1)
                        .and_then(|r| r.split('/').next())
                        .and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or(found.corpus);
        }
        if let Some(n) = after(line, "stat::number_of_executed_units:") {
            found.executions = n;
        }
        for (key, covered) in [("COVERED_FUNC:", true), ("UNCOVERED_FUNC:", false)] {
            if let Some(rest) = line.trim().strip_prefix(key)
                && let Some((name, edges)) = function_of_the_crate(rest)
            {
                found.crate_edges.0 += edges.0;
                found.crate_edges.1 += edges.1;
                if covered {
                    found.covered.insert(name);
                } else {
                    found.uncovered.insert(name);
                }
            }
        }
    }
    found.uncovered.retain(|f| !found.covered.contains(f));
    found
}

/// `hits: 3 edges: 5/7 dpclock_ioctl::parse /path/src/lib.rs:123` → the
/// function's name and its edges (covered, all), if it is dpclock-ioctl's
/// own (not the fuzz target's).
fn function_of_the_crate(rest: &str) -> Option<(String, (u64, u64))> {
    let (head, file) = rest.trim().rsplit_once(' ')?;
    if !file.contains("dpclock-ioctl/src/") {
        return None;
    }
    let after_edges = head.split_once("edges: ")?.1;
    let (edges, name) = after_edges.split_once(' ')?;
    let (covered, all) = edges.split_once('/')?;
    Some((
        name.trim().to_owned(),
        (covered.parse().ok()?, all.parse().ok()?),
    ))
}

/// Fuzzes for `seconds` and writes the report.
///
/// # Errors
///
/// If the tools are missing, the build fails, or the fuzzer finds a crash.
pub fn run_for(seconds: u64) -> Result<Findings> {
    ensure_tools()?;
    let out = target_dir().join("fuzz");
    let corpus = out.join("corpus");
    let artifacts = out.join("artifacts");
    for dir in [&corpus, &artifacts] {
        fs::create_dir_all(dir).map_err(|e| fail!("cannot create {}: {e}", display(dir)))?;
    }
    let seeds = fuzz_dir().join("corpus").join("protocol");
    let mut command = rustup_cargo();
    command
        .current_dir(fuzz_dir().parent().unwrap_or(&workspace()))
        .args(["+nightly", "fuzz", "run", "--target-dir"])
        .arg(out.join("build"))
        .arg("protocol")
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", display(&artifacts)))
        .args(["-print_final_stats=1", "-print_coverage=1", "-max_len=4096"]);
    eprintln!("  $ {}", describe(&command));
    // Building takes a few minutes the first time; the run its seconds.
    let output = run_captured(&mut command, Duration::from_secs(seconds + 1200))?;
    let log = out.join("fuzz.log");
    let text = format!("{}\n{}", output.stdout, output.stderr);
    fs::write(&log, &text).map_err(|e| fail!("cannot write {}: {e}", display(&log)))?;
    let found = findings(&text);
    if !output.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        return Err(fail!(
            "the fuzzer failed ({}); artifacts in {}, log {}:\n{}",
            output
                .status
                .map_or("killed: timed out".to_owned(), |s| s.to_string()),
            display(&artifacts),
            display(&log),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "dpclock-ioctl fuzz (libFuzzer): {seconds} s, {} executions ({:.0}/s), {} edges, {} features, corpus {} inputs",
        found.executions,
        found.executions as f64 / seconds.max(1) as f64,
        found.edges,
        found.features,
        found.corpus
    );
    let total = found.covered.len() + found.uncovered.len();
    let _ = writeln!(
        report,
        "  functions of dpclock-ioctl reached: {} of {total}; their edges reached: {} of {}",
        found.covered.len(),
        found.crate_edges.0,
        found.crate_edges.1
    );
    for f in &found.uncovered {
        let _ = writeln!(report, "    not reached: {f}");
    }
    let _ = writeln!(report, "  log: {}", display(&log));
    fs::write(out.join("report.txt"), &report)
        .map_err(|e| fail!("cannot write the fuzz report: {e}"))?;
    print!("{report}");
    if found.executions == 0 {
        return Err(fail!("the fuzzer ran no input; log: {}", display(&log)));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_output_is_read() {
        let output = "\
#2\tINITED cov: 120 ft: 130 corp: 12/300b exec/s: 0 rss: 30Mb
#4096\tpulse  cov: 250 ft: 400 corp: 40/1Kb lim: 43 exec/s: 2048 rss: 31Mb
#90000\tDONE   cov: 260 ft: 410 corp: 45/1200b lim: 4096 exec/s: 3000 rss: 40Mb
COVERAGE:
COVERED_FUNC: hits: 900 edges: 10/12 dpclock_ioctl::parse /w/crates/dpclock-ioctl/src/lib.rs:980
UNCOVERED_FUNC: hits: 0 edges: 0/7 <dpclock_ioctl::Error as core::fmt::Debug>::fmt /w/crates/dpclock-ioctl/src/lib.rs:303
COVERED_FUNC: hits: 9 edges: 1/1 protocol::rust_fuzzer_test_input /w/crates/dpclock-ioctl/fuzz/fuzz_targets/protocol.rs:20
stat::number_of_executed_units: 90000
";
        let found = findings(output);
        assert_eq!(
            (found.executions, found.edges, found.features, found.corpus),
            (90000, 260, 410, 45)
        );
        assert_eq!(
            found.covered.iter().collect::<Vec<_>>(),
            ["dpclock_ioctl::parse"]
        );
        assert_eq!(
            found.uncovered.iter().collect::<Vec<_>>(),
            ["<dpclock_ioctl::Error as core::fmt::Debug>::fmt"]
        );
        assert_eq!(found.crate_edges, (10, 19));
    }
}
