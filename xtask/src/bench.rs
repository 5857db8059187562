//! `cargo xtask bench`: every measurement in one run, written to
//! `target/bench/report.json` and `target/bench/report.md`.
//!
//! 1. **Zero cost.** The raw-call/guard pairs of `bench/src/lib.rs`,
//!    compiled for the driver's target in release (with function merging
//!    off, so that a guard identical to its raw twin keeps its own symbol),
//!    disassembled with llvm-objdump; instruction counts compared (free and
//!    checked builds), and the free build's disassembly of every pair put in
//!    the report.
//! 2. **Lock against IOCTL cost, and plain against queued**, in Wine:
//!    `dpclockctl bench` against the free driver, then against the checked
//!    driver for hold times.
//! 3. **Host reference points**: criterion, kspin's host lock against
//!    `std::sync::Mutex` and `spin::Mutex`, 1 and 2 threads.
//! 4. **Build cost**: clean and incremental builds of the Linux flavor of
//!    dpclock.sys.
//!
//! Nothing here asserts a figure; the report says what was measured and how.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    COMMAND_TIMEOUT,
    cross::{self, DRIVER_TARGET, Profile, target_dir, workspace},
    fail,
    process::{Result, display, run},
    wine::Session,
};

/// A small JSON writer: the report is flat enough not to need serde here.
#[derive(Clone, Debug)]
enum Json {
    Num(f64),
    Int(i64),
    Str(String),
    Bool(bool),
    Raw(String),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn render(&self, out: &mut String) {
        match self {
            Self::Num(n) => {
                let _ = write!(
                    out,
                    "{}",
                    if n.is_finite() {
                        format!("{n:.6}")
                    } else {
                        "null".into()
                    }
                );
            }
            Self::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Str(s) => {
                let _ = write!(out, "\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
            }
            Self::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Self::Raw(raw) => out.push_str(raw.trim()),
            Self::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\"{key}\":");
                    value.render(out);
                }
                out.push('}');
            }
        }
    }
}

fn obj(fields: Vec<(&str, Json)>) -> Json {
    Json::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The instructions of each function of an object file, as llvm-objdump
/// prints them (without addresses).
fn disassembly(object: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let output = Command::new("llvm-objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(object)
        .output()
        .map_err(|e| fail!("cannot run llvm-objdump (Debian package llvm): {e}"))?;
    if !output.status.success() {
        return Err(fail!("llvm-objdump failed on {}", display(object)));
    }
    let mut functions = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed
            .strip_suffix(">:")
            .and_then(|l| l.split_once('<'))
            .map(|(_, n)| n)
        {
            current = Some(name.to_owned());
            functions.insert(name.to_owned(), Vec::new());
        } else if trimmed.is_empty() {
            current = None;
        } else if let Some(name) = &current
            && let Some((_, instruction)) = trimmed.split_once(':')
            && !trimmed.ends_with("int3")
            && !trimmed.ends_with("nop")
        {
            // `address: mnemonic operands`; padding (int3/nop) is not code.
            functions
                .entry(name.clone())
                .or_insert_with(Vec::new)
                .push(instruction.trim().replace('\t', " "));
        }
    }
    Ok(functions)
}

/// Builds the pairs crate for the driver's target and returns its object.
fn codegen_object(checked: bool) -> Result<PathBuf> {
    let dir = target_dir().join("bench").join(if checked {
        "codegen-checked"
    } else {
        "codegen"
    });
    let mut command = Command::new("/usr/bin/cargo");
    command
        .current_dir(workspace().join("bench"))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", "")
        .env("CARGO_TARGET_DIR", &dir)
        .args([
            "rustc",
            "--quiet",
            "--lib",
            "--release",
            "--target",
            DRIVER_TARGET,
        ])
        .args([
            "-Zbuild-std=core,compiler_builtins",
            "-Zbuild-std-features=compiler-builtins-mem",
        ])
        .args(["--features", if checked { "checked" } else { "codegen" }])
        // Without this, LLVM folds a guard that is identical to its raw twin
        // into an alias of it, and the guard has no code of its own to count.
        .args(["--", "--emit=obj", "-Zmerge-functions=disabled"]);
    run(&mut command)?;
    let deps = dir.join(DRIVER_TARGET).join("release").join("deps");
    let newest = fs::read_dir(&deps)
        .map_err(|e| fail!("cannot read {}: {e}", display(&deps)))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "o")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("dpclock_bench"))
        })
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
    newest.ok_or_else(|| fail!("no dpclock_bench object in {}", display(&deps)))
}

const PAIRS: [(&str, &str, &str); 6] = [
    (
        "raising: `with` (KeAcquireSpinLock / KeReleaseSpinLock)",
        "raw_raising",
        "guard_raising",
    ),
    (
        "at DPC level: `DpcGuard` (AtDpcLevel / FromDpcLevel)",
        "raw_at_dpc_level",
        "guard_at_dpc_level",
    ),
    (
        "at DPC level: `with_at_dpc_level`",
        "raw_at_dpc_level",
        "guard_at_dpc_level_scoped",
    ),
    ("in-stack queued: `with`", "raw_queued", "guard_queued"),
    (
        "in-stack queued at DPC level: `with_at_dpc_level`",
        "raw_queued_at_dpc_level",
        "guard_queued_at_dpc_level",
    ),
    (
        "`at_dispatch_level` (KeRaiseIrql / KeLowerIrql)",
        "raw_raise_irql",
        "guard_raise_irql",
    ),
];

/// The free build's instruction count of each pair: label, raw, kspin.
///
/// # Errors
///
/// If the pairs do not build or a function is missing from the object.
pub fn zero_cost_counts() -> Result<Vec<(&'static str, usize, usize)>> {
    let free = disassembly(&codegen_object(false)?)?;
    let count = |name: &str| {
        free.get(name)
            .map(Vec::len)
            .ok_or_else(|| fail!("{name} not found in the disassembly"))
    };
    PAIRS
        .iter()
        .map(|&(label, raw, guard)| Ok((label, count(raw)?, count(guard)?)))
        .collect()
}

struct ZeroCost {
    rows: Vec<(&'static str, usize, usize, usize)>,
    /// The free build's disassembly of each pair: label, raw, guard.
    listings: Vec<(&'static str, Vec<String>, Vec<String>)>,
    guard_extra: i64,
    checked_extra: i64,
}

fn zero_cost() -> Result<ZeroCost> {
    let free = disassembly(&codegen_object(false)?)?;
    let checked = disassembly(&codegen_object(true)?)?;
    let code = |map: &BTreeMap<String, Vec<String>>, name: &str| {
        map.get(name)
            .cloned()
            .ok_or_else(|| fail!("{name} not found in the disassembly"))
    };
    let mut rows = Vec::new();
    let mut listings = Vec::new();
    for (label, raw, guard) in PAIRS {
        let (raw_code, guard_code) = (code(&free, raw)?, code(&free, guard)?);
        rows.push((
            label,
            raw_code.len(),
            guard_code.len(),
            code(&checked, guard)?.len(),
        ));
        listings.push((label, raw_code, guard_code));
    }
    let guard_extra = rows
        .iter()
        .map(|&(_, r, g, _)| g as i64 - r as i64)
        .max()
        .unwrap_or(0);
    let checked_extra = rows
        .iter()
        .map(|&(_, r, _, c)| c as i64 - r as i64)
        .max()
        .unwrap_or(0);
    Ok(ZeroCost {
        rows,
        listings,
        guard_extra,
        checked_extra,
    })
}

/// `dpclockctl bench` in a fresh Wine session, against one package.
fn wine_bench(package: &cross::Package, name: &str) -> Result<String> {
    let session = Session::start(name)?;
    let installed = session.wine(
        &package.dir,
        "dpclockctl.exe",
        ["install", "--inf", "dpclock.inf"],
        COMMAND_TIMEOUT,
    )?;
    if !installed.success() {
        return Err(fail!(
            "install failed:\n{installed}\n{}",
            session.log_tail(30)
        ));
    }
    session.check_rig()?;
    let output = session.wine(
        &package.dir,
        "dpclockctl.exe",
        ["bench", "--json", "C:\\bench.json"],
        Duration::from_secs(600),
    )?;
    print!("{}", output.stdout);
    let _ = session.wine(
        &package.dir,
        "dpclockctl.exe",
        ["uninstall"],
        COMMAND_TIMEOUT,
    )?;
    if !output.success() {
        return Err(fail!(
            "dpclockctl bench failed:\n{output}\n{}",
            session.log_tail(30)
        ));
    }
    fs::read_to_string(session.prefix().join("drive_c").join("bench.json"))
        .map_err(|e| fail!("no bench JSON: {e}"))
}

/// A number at a JSON path like `noop_per_s.median` (the harness's JSON is
/// simple enough to scan).
fn json_number(json: &str, path: &str) -> Option<f64> {
    let mut rest = json;
    for key in path.split('.') {
        let at = rest.find(&format!("\"{key}\":"))?;
        rest = &rest[at + key.len() + 3..];
    }
    let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// Criterion's mean estimate (ns) of each host benchmark.
fn host_locks() -> Result<Vec<(String, f64)>> {
    let dir = target_dir().join("bench").join("host");
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(workspace().join("bench"))
        .env("CARGO_TARGET_DIR", &dir)
        .args([
            "bench",
            "--quiet",
            "--features",
            "host",
            "--bench",
            "host_locks",
            "--",
        ])
        .args(["--warm-up-time", "1", "--measurement-time", "3", "--noplot"]);
    run(&mut command)?;
    let mut results = Vec::new();
    let root = dir.join("criterion");
    for group in fs::read_dir(&root)
        .map_err(|e| fail!("no criterion output in {}: {e}", display(&root)))?
        .flatten()
    {
        for bench in fs::read_dir(group.path()).into_iter().flatten().flatten() {
            let estimates = bench.path().join("new").join("estimates.json");
            let Ok(text) = fs::read_to_string(&estimates) else {
                continue;
            };
            if let Some(mean) = json_number(&text, "mean.point_estimate") {
                let name = format!(
                    "{} / {}",
                    group.file_name().to_string_lossy(),
                    bench.file_name().to_string_lossy()
                );
                results.push((name, mean));
            }
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(results)
}

/// Clean and incremental build times of the free driver (release).
fn build_times() -> Result<(f64, f64)> {
    let dir = target_dir().join("bench").join("build-time");
    let _ = fs::remove_dir_all(&dir);
    let build = || -> Result<f64> {
        let mut command = Command::new("/usr/bin/cargo");
        command
            .current_dir(workspace())
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", &dir)
            .env("CARGO_ENCODED_RUSTFLAGS", cross::driver_rustflags())
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "dpclock",
                "--target",
                DRIVER_TARGET,
            ])
            .args([
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
            ]);
        let start = Instant::now();
        run(&mut command)?;
        Ok(start.elapsed().as_secs_f64())
    };
    let clean = build()?;
    // Touch the driver's ledger: what an edit to the driver rebuilds.
    let ledger = workspace().join("src").join("ledger.rs");
    let text = fs::read(&ledger).map_err(|e| fail!("{e}"))?;
    fs::write(&ledger, &text).map_err(|e| fail!("{e}"))?;
    let incremental = build()?;
    Ok((clean, incremental))
}

fn wine_version() -> String {
    Command::new("wine")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs every benchmark and writes the report.
///
/// # Errors
///
/// If a build, a Wine session or a tool fails.
pub fn run_all() -> Result<()> {
    crate::deps::ensure()?;
    let out = target_dir().join("bench");
    fs::create_dir_all(&out).map_err(|e| fail!("{e}"))?;
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);

    eprintln!("\n== 1. zero cost (disassembled guard/raw pairs, {DRIVER_TARGET}, release)");
    let zero = zero_cost()?;

    eprintln!("\n== 2 and 3. lock cost against IOCTL cost, plain against queued (Wine)");
    let [free, checked] = cross::build(Profile::Release)?;
    let free_json = wine_bench(&free, "bench-free")?;
    let checked_json = wine_bench(&checked, "bench-checked")?;

    eprintln!("\n== 3. host reference points (criterion)");
    let host = host_locks()?;

    eprintln!("\n== 4. build cost of dpclock.sys (Linux flavor, release)");
    let (clean, incremental) = build_times()?;

    let num = |json: &str, path: &str| json_number(json, path).unwrap_or(f64::NAN);
    let wine = wine_version();
    let report = obj(vec![
        ("guard_extra_instructions", Json::Int(zero.guard_extra)),
        ("checked_extra_instructions", Json::Int(zero.checked_extra)),
        (
            "lock_noop_ratio",
            Json::Num(num(&free_json, "lock_noop_ratio")),
        ),
        (
            "lock_bare_noop_ratio",
            Json::Num(num(&free_json, "lock_bare_noop_ratio")),
        ),
        (
            "queued_vs_plain_ratio",
            Json::Num(num(&free_json, "queued_vs_plain_ratio")),
        ),
        (
            "zero_cost",
            obj(vec![
                ("target", Json::Str(DRIVER_TARGET.into())),
                (
                    "profile",
                    Json::Str("release (opt-level 3, codegen-units 1)".into()),
                ),
                (
                    "pairs",
                    Json::Obj(
                        zero.rows
                            .iter()
                            .map(|&(label, raw, guard, checked)| {
                                (
                                    label.to_owned(),
                                    obj(vec![
                                        ("raw", Json::Int(raw as i64)),
                                        ("guard", Json::Int(guard as i64)),
                                        ("guard_checked", Json::Int(checked as i64)),
                                    ]),
                                )
                            })
                            .collect(),
                    ),
                ),
            ]),
        ),
        ("wine_free", Json::Raw(free_json.clone())),
        ("wine_checked", Json::Raw(checked_json.clone())),
        (
            "host_locks_mean_ns",
            Json::Obj(
                host.iter()
                    .map(|(n, v)| (n.clone(), Json::Num(*v)))
                    .collect(),
            ),
        ),
        (
            "build_seconds",
            obj(vec![
                ("clean", Json::Num(clean)),
                (
                    "incremental_after_touching_src_ledger_rs",
                    Json::Num(incremental),
                ),
                ("profile", Json::Str("release".into())),
            ]),
        ),
        (
            "environment",
            obj(vec![
                ("cpus", Json::Int(cpus as i64)),
                ("wine", Json::Str(wine.clone())),
                ("under_wine", Json::Bool(true)),
            ]),
        ),
    ]);
    let mut json = String::new();
    report.render(&mut json);
    fs::write(out.join("report.json"), &json).map_err(|e| fail!("{e}"))?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# dpclock benchmarks\n\nMeasured by `cargo xtask bench` on {cpus} CPUs, {wine}.\n"
    );
    let _ = writeln!(
        md,
        "## 1. Zero-cost guards ({DRIVER_TARGET}, release, instructions per function)\n"
    );
    let _ = writeln!(
        md,
        "| Pair | raw calls | kspin guard | guard, checked build |\n|---|---|---|---|"
    );
    for (label, raw, guard, checked) in &zero.rows {
        let _ = writeln!(md, "| {label} | {raw} | {guard} | {checked} |");
    }
    let _ = writeln!(
        md,
        "\n`guard_extra_instructions` = **{}** (largest guard − raw over the pairs; the goal is 0). \
         The checked build adds up to {} instructions per acquire/release pair (static count, excluding the validator's out-of-line functions).\n",
        zero.guard_extra, zero.checked_extra
    );
    let _ = writeln!(
        md,
        "The free build's code of each pair (llvm-objdump, AT&T syntax; `callq`s are to the kernel routines named in the pair; a guard's data sits 8 bytes further into its `Lock` than the raw version's, after the class pointer):\n"
    );
    for (label, raw, guard) in &zero.listings {
        let _ = writeln!(md, "{label}\n\n```text");
        let width = raw.iter().map(String::len).max().unwrap_or(0).max(24);
        let _ = writeln!(md, "{:width$}   kspin", "raw");
        for row in 0..raw.len().max(guard.len()) {
            let left = raw.get(row).map_or("", String::as_str);
            let right = guard.get(row).map_or("", String::as_str);
            let _ = writeln!(md, "{left:width$}   {right}");
        }
        let _ = writeln!(md, "```\n");
    }
    let _ = writeln!(
        md,
        "## 2. Lock cost against IOCTL cost (Wine, free build, one acquisition per IOCTL, median of {} rounds)\n",
        num(&free_json, "parameters.rounds")
    );
    let _ = writeln!(md, "| IOCTL | IOCTLs/s |\n|---|---|");
    for (label, key) in [
        ("NOOP, no buffers", "noop_per_s.median"),
        (
            "NOOP, a lock IOCTL's buffers (16 bytes in, 32 back)",
            "noop_lock_traffic_per_s.median",
        ),
        ("LOCK_PASSIVE", "lock_passive_per_s.median"),
        ("LOCK_DISPATCH", "lock_dispatch_per_s.median"),
    ] {
        let _ = writeln!(md, "| {label} | {:.0} |", num(&free_json, key));
    }
    let _ = writeln!(
        md,
        "\n`lock_noop_ratio` = **{:.3}** (the lower lock path over the NOOP that moves the same bytes; the goal is ≥ 0.95). \
         Against the bare NOOP: {:.3}, which also counts returning 32 bytes of output.\n",
        num(&free_json, "lock_noop_ratio"),
        num(&free_json, "lock_bare_noop_ratio")
    );
    let _ = writeln!(
        md,
        "## 3. Contention: DPC bursts (one KDPC per processor) on {} CPUs ({} acquisitions per CPU, work {}, median of {} bursts)\n",
        num(&free_json, "processors"),
        num(&free_json, "parameters.burst_iterations"),
        num(&free_json, "parameters.burst_work"),
        num(&free_json, "parameters.bursts"),
    );
    let _ = writeln!(
        md,
        "| Lock | free: acquisitions/s | checked: acquisitions/s |\n|---|---|---|"
    );
    for (label, key) in [
        ("executive (plain)", "burst_plain_acquisitions_per_s.median"),
        ("in-stack queued", "burst_queued_acquisitions_per_s.median"),
    ] {
        let _ = writeln!(
            md,
            "| {label} | {:.0} | {:.0} |",
            num(&free_json, key),
            num(&checked_json, key)
        );
    }
    let _ = writeln!(
        md,
        "\n`queued_vs_plain_ratio` = **{:.3}** (free build).\n",
        num(&free_json, "queued_vs_plain_ratio")
    );
    let _ = writeln!(
        md,
        "Hold times from the checked build's validator (all acquisitions of the run):\n"
    );
    let _ = writeln!(
        md,
        "| Lock | holds | mean ns | max ns | over 25 µs |\n|---|---|---|---|---|"
    );
    for kind in ["plain", "queued"] {
        let _ = writeln!(
            md,
            "| {kind} | {:.0} | {:.0} | {:.0} | {:.0} |",
            num(&checked_json, &format!("hold_time.{kind}.count")),
            num(&checked_json, &format!("hold_time.{kind}.mean_ns")),
            num(&checked_json, &format!("hold_time.{kind}.max_ns")),
            num(&checked_json, &format!("hold_time.{kind}.over_25us")),
        );
    }
    let _ = writeln!(
        md,
        "\nHost reference points (criterion mean per acquire/increment/release; the host backend is a simulation, not the kernel):\n"
    );
    let _ = writeln!(md, "| Benchmark | ns |\n|---|---|");
    for (name, ns) in &host {
        let _ = writeln!(md, "| {name} | {ns:.1} |");
    }
    let _ = writeln!(
        md,
        "\n## 4. Build cost (Linux flavor of dpclock.sys, release)\n\n| Build | seconds |\n|---|---|\n| clean (including -Zbuild-std of core/alloc) | {clean:.1} |\n| incremental (src/ledger.rs touched) | {incremental:.1} |"
    );
    fs::write(out.join("report.md"), &md).map_err(|e| fail!("{e}"))?;
    println!("{md}");
    println!(
        "written: {} and {}",
        display(&out.join("report.md")),
        display(&out.join("report.json"))
    );
    Ok(())
}
