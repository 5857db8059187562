//! `cargo xtask soak [--minutes N | --seconds S] [--seed N]`: one Wine
//! session running `dpclockctl soak` (see its module documentation) for the
//! given time, then:
//!
//! * the driver's own counters, which it prints when it removes its device
//!   and in `DriverUnload`, checked in the session log for every cycle;
//! * a one-screen report, `target/soak/report.txt`;
//! * the harness's JSON, `target/soak/soak.json`;
//! * a picture, `target/soak/soak.svg`: throughput over time, IOCTL latency
//!   percentiles and the checked build's hold-time histogram.
//!
//! The exit status is non-zero on any failure.

use std::{fmt::Write as _, fs, path::Path, time::Duration};

use plotters::prelude::*;
use serde_json::Value;

use crate::{
    cross::{self, target_dir},
    fail,
    process::{Result, display},
    wine::Session,
};

/// A Linux path as a Wine path (`Z:` maps the Unix root).
#[must_use]
pub fn wine_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("Z:{}", display(&absolute).replace('/', "\\"))
}

/// What the driver printed about its counters, per removal and unload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DriverCounters {
    /// `device removed: health:` lines.
    pub removals: usize,
    /// `DriverUnload: health:` lines.
    pub unloads: usize,
    /// Lines with a counter that is not back at zero.
    pub not_zero: Vec<String>,
}

/// Reads the driver's counter lines from its log. After a removal, the
/// remove-lock references, armed timers, devices and live allocations must
/// be 0; in `DriverUnload`, those and the IRPs in flight. (At the removal,
/// an IRP that entered a dispatch routine just before may still be on its
/// way to being refused with `STATUS_DELETE_PENDING`: it holds no
/// remove-lock reference, and is counted in `other_irps_in_flight`.)
#[must_use]
pub fn driver_counters(lines: &[String]) -> DriverCounters {
    let mut counters = DriverCounters::default();
    for line in lines {
        let removal = line.contains("device removed: health:");
        let unload = line.contains("DriverUnload: health:");
        if !removal && !unload {
            continue;
        }
        counters.removals += usize::from(removal);
        counters.unloads += usize::from(unload);
        let must_be_zero = [
            "irps_in_flight",
            "remove_lock_references",
            "timers_armed",
            "devices",
            "allocations_live",
            "allocated_bytes_live",
        ];
        let bad = line.split_whitespace().any(|field| {
            field.split_once('=').is_some_and(|(name, value)| {
                must_be_zero.contains(&name) && value.trim_end_matches(',') != "0"
            })
        });
        if bad {
            counters.not_zero.push(line.clone());
        }
    }
    counters
}

fn u(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// The one-screen report.
#[must_use]
pub fn screen(
    report: &Value,
    counters: &DriverCounters,
    minutes: f64,
    failures: &[String],
) -> String {
    let mut t = String::new();
    let elapsed = f(&report["elapsed_s"]).max(1e-9);
    let verified = u(&report["acquisitions_verified"]);
    let per_30 = |n: u64| n as f64 * 1800.0 / elapsed;
    let _ = writeln!(
        t,
        "dpclock soak: {:.1} minutes under Wine, {} — {}",
        elapsed / 60.0,
        if failures.is_empty() {
            "PASSED"
        } else {
            "FAILED"
        },
        if minutes >= 30.0 {
            "the long run"
        } else {
            "a short run"
        }
    );
    let _ = writeln!(
        t,
        "\n  {:<44} {:>16} {:>18}",
        "", "count", "per 30 min (target)"
    );
    let rows = [
        (
            "acquisitions verified (exact, at checkpoints)",
            verified,
            format!("{:.2e} (1e9)", per_30(verified)),
        ),
        (
            "  of them in the free build",
            u(&report["acquisitions_verified_by_build"]["free"]),
            String::new(),
        ),
        (
            "  of them in the checked build",
            u(&report["acquisitions_verified_by_build"]["checked"]),
            String::new(),
        ),
        (
            "lost, duplicated or torn updates",
            u(&report["ledger_errors"]),
            "(0)".into(),
        ),
        (
            "malformed requests, each its documented status",
            u(&report["malformed"]),
            format!("{:.0} (100000)", per_30(u(&report["malformed"]))),
        ),
        (
            "remove-and-reinstall cycles under load",
            u(&report["cycles"]),
            format!("{:.0} (100)", per_30(u(&report["cycles"]))),
        ),
        ("checkpoints", u(&report["checkpoints"]), String::new()),
        (
            "timer restarts",
            u(&report["timer_restarts"]),
            String::new(),
        ),
        (
            "acquisitions answered after the last checkpoint of a cycle",
            u(&report["acquisitions_unverified"]),
            String::new(),
        ),
    ];
    for (name, count, target) in rows {
        let _ = writeln!(t, "  {name:<44} {count:>16} {target:>18}");
    }
    let _ = writeln!(
        t,
        "\n  rate: {:.2} M verified acquisitions/s, {:.0} IOCTLs/s, {:.0} malformed/s",
        verified as f64 / elapsed / 1e6,
        u(&report["ioctls"]) as f64 / elapsed,
        u(&report["malformed"]) as f64 / elapsed
    );
    let _ = writeln!(
        t,
        "  the driver's counters back at zero: {} removals and {} unloads logged, {} not at zero",
        counters.removals,
        counters.unloads,
        counters.not_zero.len()
    );
    if let Some(statuses) = report["removal_statuses"].as_object() {
        let list: Vec<String> = statuses
            .iter()
            .map(|(k, v)| format!("{} ×{}", k.split(' ').next().unwrap_or(k), u(v)))
            .collect();
        let _ = writeln!(t, "  old handles at removal: {}", list.join(", "));
    }
    let _ = writeln!(
        t,
        "\n  {:<14} {:>12} {:>10} {:>10} {:>10}",
        "latency", "count", "p50 µs", "p99 µs", "max µs"
    );
    if let Some(latency) = report["latency"].as_object() {
        for (name, l) in latency {
            let _ = writeln!(
                t,
                "  {name:<14} {:>12} {:>10} {:>10} {:>10}",
                u(&l["count"]),
                u(&l["p50_us"]),
                u(&l["p99_us"]),
                u(&l["max_us"])
            );
        }
    }
    if let Some(leaks) = report["leaks"].as_array() {
        // Series of the long-lived processes and the driver's counters; the
        // driver host is a new process each cycle.
        let list: Vec<String> = leaks
            .iter()
            .filter(|l| u(&l["samples"]) >= 3 || l["leaked"] == true)
            .map(|l| {
                format!(
                    "{} {}→{}{}",
                    l["what"].as_str().unwrap_or("?"),
                    u(&l["first"]),
                    u(&l["last"]),
                    if l["leaked"] == true { " LEAK" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(
            t,
            "\n  leak checks on the once-a-minute samples: {}",
            list.join("; ")
        );
    }
    for failure in failures {
        let _ = writeln!(t, "  FAILURE: {failure}");
    }
    t
}

/// `1 µs`, `10 ms`, `1 s` for a log axis in µs.
fn duration_label(us: f64) -> String {
    match us {
        v if v >= 1e6 => format!("{:.0} s", v / 1e6),
        v if v >= 1e3 => format!("{:.0} ms", v / 1e3),
        v => format!("{v:.0} µs"),
    }
}

/// `10`, `1k`, `1M` for a log axis of counts.
fn count_label(n: f64) -> String {
    match n {
        v if v >= 1e9 => format!("{:.0}G", v / 1e9),
        v if v >= 1e6 => format!("{:.0}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn draw(report: &Value, svg: &Path) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let root = SVGBackend::new(svg, (1100, 1350)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let (top, rest) = root.split_vertically(470);
    let (middle, bottom) = rest.split_vertically(440);

    // Throughput over time, coloured by build, removals as grey lines.
    let points = report["timeline"].as_array().cloned().unwrap_or_default();
    let t_max = points.last().map_or(1.0, |p| f(&p["t_s"])).max(1.0);
    let y_max = points
        .iter()
        .map(|p| f(&p["acquisitions_per_s"]) / 1e6)
        .fold(0.1, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "Acquisitions answered per second (free build blue, checked orange; grey: device removed)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the soak")
        .y_desc("million acquisitions / s")
        .draw()
        .map_err(e)?;
    let orange = RGBColor(230, 120, 20);
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut build = String::new();
    let flush = |chart: &mut ChartContext<'_, _, _>, run: &mut Vec<(f64, f64)>, build: &str| {
        if run.len() > 1 {
            let color = if build == "checked" { orange } else { BLUE };
            let _ = chart.draw_series(LineSeries::new(run.clone(), color.stroke_width(2)));
        }
        run.clear();
    };
    for p in &points {
        let b = p["build"].as_str().unwrap_or("").to_owned();
        if b != build {
            flush(&mut chart, &mut run, &build);
            build = b;
        }
        if !build.is_empty() {
            run.push((f(&p["t_s"]), f(&p["acquisitions_per_s"]) / 1e6));
        }
    }
    flush(&mut chart, &mut run, &build);
    for event in report["events"].as_array().into_iter().flatten() {
        if event["what"] == "removed" {
            let t = f(&event["t_s"]);
            chart
                .draw_series(LineSeries::new(
                    [(t, 0.0), (t, y_max)],
                    RGBColor(170, 170, 170),
                ))
                .map_err(e)?;
        }
    }

    // Latency percentiles per IOCTL, log scale.
    let latency: Vec<(String, [u64; 3])> = report["latency"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, l)| {
                    (
                        k.clone(),
                        [u(&l["p50_us"]), u(&l["p99_us"]), u(&l["max_us"])],
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let top_us = latency
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(10)
        .max(10) as f64
        * 2.0;
    let n = latency.len().max(1);
    let mut chart = ChartBuilder::on(&middle)
        .caption(
            "IOCTL latency: p50 (green), p99 (blue), max (red)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, (1.0..top_us).log_scale())
        .map_err(e)?;
    let names: Vec<String> = latency.iter().map(|(k, _)| k.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("latency")
        .y_label_formatter(&|v| duration_label(*v))
        .draw()
        .map_err(e)?;
    for (i, (_, values)) in latency.iter().enumerate() {
        for (j, (value, color)) in values
            .iter()
            .zip([RGBColor(40, 160, 60), BLUE, RED])
            .enumerate()
        {
            let x = i as f64 + 0.15 + j as f64 * 0.24;
            chart
                .draw_series([Rectangle::new(
                    [(x, 1.0), (x + 0.2, (*value).max(1) as f64)],
                    color.filled(),
                )])
                .map_err(e)?;
        }
    }

    // The checked build's hold-time histogram.
    let histogram: Vec<u64> = report["hold_histogram"]
        .as_array()
        .map(|a| a.iter().map(u).collect())
        .unwrap_or_default();
    let top_count = histogram.iter().copied().max().unwrap_or(1).max(1) as f64 * 3.0;
    let last = histogram.iter().rposition(|&c| c > 0).unwrap_or(8) + 2;
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            format!(
                "Checked build: lock hold times (longest {} ns)",
                u(&report["hold_max_ns"])
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..last as f64, (1.0..top_count).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("hold time, ns (bucket 2^i to 2^(i+1))")
        .y_desc("holds")
        .y_label_formatter(&|v| count_label(*v))
        .x_labels(last.min(32))
        .x_label_formatter(&|x| format!("2^{}", x.round() as u32))
        .draw()
        .map_err(e)?;
    for (i, &count) in histogram.iter().enumerate().filter(|(_, c)| **c > 0) {
        chart
            .draw_series([Rectangle::new(
                [(i as f64 + 0.1, 1.0), (i as f64 + 0.9, count as f64)],
                RGBColor(120, 80, 170).filled(),
            )])
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Runs the soak for `seconds` and reports; returns the exit code.
///
/// # Errors
///
/// If the packages or the session cannot be made.
pub fn run(seconds: u64, seed: u64, sample_seconds: u64) -> Result<i32> {
    let [free, checked] = cross::build(cross::Profile::Release)?;
    let out = target_dir().join("soak");
    fs::create_dir_all(&out).map_err(|e| fail!("cannot create {}: {e}", display(&out)))?;
    let json = out.join("soak.json");
    let _ = fs::remove_file(&json);
    let session = Session::start("soak")?;
    let args = [
        "soak".to_owned(),
        "--seconds".into(),
        seconds.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--sample-seconds".into(),
        sample_seconds.to_string(),
        "--free-inf".into(),
        wine_path(&free.inf),
        "--checked-inf".into(),
        wine_path(&checked.inf),
        "--json".into(),
        wine_path(&json),
    ];
    // The run itself, a last cycle that may overrun it, and the harness's
    // own request timeouts; a hung harness is killed.
    let timeout = Duration::from_secs(seconds + 300);
    eprintln!(
        "  running dpclockctl soak for {seconds} s (killed after {} s); driver log: {}",
        timeout.as_secs(),
        display(session.log_path())
    );
    let code = session.wine_inherit(&free.dir, "dpclockctl.exe", &args, timeout)?;
    let mut failures = Vec::new();
    match code {
        Some(0) => {}
        Some(code) => failures.push(format!("dpclockctl soak exited with {code}")),
        None => failures.push(format!(
            "dpclockctl soak did not finish within {} s and was killed",
            timeout.as_secs()
        )),
    }
    if let Some(crash) = session.driver_crash() {
        failures.push(format!("the driver host reported: {crash}"));
    }
    // The soak's driver hosts come and go with its cycles; each one that
    // started printed the rig's marker (or, on stock Wine, none did).
    if let Err(e) = session.check_rig() {
        failures.push(e.0);
    }
    let report: Value = fs::read_to_string(&json)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| {
            failures.push(format!("the harness wrote no report to {}", display(&json)));
            Value::Null
        });
    for failure in report["failures"].as_array().into_iter().flatten() {
        failures.push(format!(
            "at {:.1} s, cycle {}: {}",
            f(&failure["at_s"]),
            u(&failure["cycle"]),
            failure["what"].as_str().unwrap_or("?")
        ));
    }
    let counters = driver_counters(&session.driver_lines());
    let cycles = u(&report["cycles"]) as usize;
    if counters.removals < cycles || counters.unloads < cycles {
        failures.push(format!(
            "{cycles} cycles, but the driver logged {} removals and {} unloads",
            counters.removals, counters.unloads
        ));
    }
    for line in &counters.not_zero {
        failures.push(format!("a driver counter is not back at zero: {line}"));
    }
    let text = screen(&report, &counters, seconds as f64 / 60.0, &failures);
    let svg = out.join("soak.svg");
    if report != Value::Null
        && let Err(error) = draw(&report, &svg)
    {
        eprintln!("xtask: drawing {} failed: {error}", display(&svg));
    }
    fs::write(out.join("report.txt"), &text).map_err(|e| fail!("cannot write the report: {e}"))?;
    println!("\n{text}");
    println!(
        "  report: {}\n  data:   {}\n  figure: {}\n  driver log: {}",
        display(&out.join("report.txt")),
        display(&json),
        display(&svg),
        display(session.log_path())
    );
    if !failures.is_empty() {
        eprintln!(
            "xtask: the soak failed; last lines of the driver log:\n{}",
            session.log_tail(30)
        );
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_counters_must_all_be_back_at_zero() {
        let lines = [
            "dpclock: device removed: health: other_irps_in_flight=0 remove_lock_references=0 timers_armed=0 devices=0 allocations_live=0",
            "dpclock: DriverUnload: health: irps_in_flight=0 remove_lock_references=0 timers_armed=0 devices=0 allocations_live=0 allocated_bytes_live=0 allocations_total=0 irps_total=812",
            "dpclock: device removed: health: other_irps_in_flight=1 remove_lock_references=1 timers_armed=0 devices=0 allocations_live=0",
            "dpclock: DriverEntry: IRQL not modelled",
        ]
        .map(String::from);
        let counters = driver_counters(&lines);
        assert_eq!((counters.removals, counters.unloads), (2, 1));
        assert_eq!(counters.not_zero, [lines[2].clone()]);
    }

    #[test]
    fn the_picture_and_the_screen_render_from_a_report() {
        let report = serde_json::json!({
            "elapsed_s": 120.0,
            "acquisitions_verified": 123_456_789,
            "cycles": 7,
            "malformed": 5000,
            "timeline": [
                {"t_s": 1.0, "acquisitions_per_s": 1.5e6, "build": "free"},
                {"t_s": 2.0, "acquisitions_per_s": 1.7e6, "build": "free"},
                {"t_s": 3.0, "acquisitions_per_s": 0.0, "build": null},
                {"t_s": 4.0, "acquisitions_per_s": 0.5e6, "build": "checked"},
                {"t_s": 5.0, "acquisitions_per_s": 0.6e6, "build": "checked"}
            ],
            "events": [{"t_s": 2.5, "what": "removed"}],
            "latency": {"LOCK_PASSIVE": {"count": 10, "p50_us": 300, "p99_us": 2000, "max_us": 9000}},
            "hold_histogram": [0, 0, 0, 0, 0, 0, 10, 500, 20, 1]
        });
        let dir = target_dir().join("tmp");
        fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("soak-test.svg");
        draw(&report, &svg).unwrap();
        let text = fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg") && text.contains("LOCK_PASSIVE"));
        let screen = screen(&report, &DriverCounters::default(), 2.0, &[]);
        assert!(
            screen.contains("PASSED") && screen.contains("123456789"),
            "{screen}"
        );
    }
}
