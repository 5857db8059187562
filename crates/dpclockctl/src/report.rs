//! The stress report: a table for people, JSON (`--json PATH`) for tools.

use std::{collections::BTreeMap, fmt::Write as _};

use dpclock_ioctl::{HOLD_BUCKETS, LockKind, Path, STATS_CHECKED_BUILD, Timings, ValidatorStats};
use serde::Serialize;

use crate::stress::{Config, Ending, Op, Run};

/// Where the run happened.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// Processors the driver reports (`KeQueryActiveProcessorCountEx`).
    pub cpus: u32,
    /// The OS, as the harness sees it (for Wine: its version).
    pub os: String,
    /// Whether the harness runs under Wine.
    pub under_wine: bool,
    /// Whether the driver found IRQL modelled (false under Wine).
    pub irql_modelled: bool,
    /// Whether the driver is a checked build (validator on).
    pub checked_build: bool,
    /// This harness's version.
    pub harness_version: &'static str,
}

/// p50/p99/max of one IOCTL kind, in microseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LatencySummary {
    /// IOCTLs measured.
    pub count: u64,
    /// Median.
    pub p50: u32,
    /// 99th percentile.
    pub p99: u32,
    /// Slowest.
    pub max: u32,
}

/// Hold times from the checked build's validator.
#[derive(Clone, Debug, Serialize)]
pub struct HoldTime {
    /// Holds measured.
    pub count: u64,
    /// Mean hold, ns.
    pub mean_ns: u64,
    /// Longest hold, ns.
    pub max_ns: u64,
    /// Holds over Microsoft's 25 µs guidance.
    pub over_25us: u64,
    /// `"2^i ns"` bucket → holds, non-empty buckets only.
    pub histogram: BTreeMap<String, u64>,
}

/// The machine-readable report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when the run completed and every check passed.
    pub verified: bool,
    /// Requested minus recorded updates over all paths (lost; negative: duplicated).
    pub lost_updates: i64,
    /// Acquisitions the driver performed on the run's ledger.
    pub acquisitions_total: u64,
    /// IOCTLs per second, all kinds.
    pub ioctls_per_s: f64,
    /// Acquisitions per second, per path and in total.
    pub acquisitions_per_s: BTreeMap<&'static str, f64>,
    /// Latency per IOCTL kind.
    pub latency_us: BTreeMap<&'static str, LatencySummary>,
    /// Contended acquisitions divided by acquisitions.
    pub contention_rate: f64,
    /// Present for checked builds.
    pub hold_time: Option<HoldTime>,
    /// `plain`, `queued` or `unlocked`.
    pub lock_kind: &'static str,
    /// `completed` or `device_removed: …` / `failed: …`.
    pub outcome: String,
    /// Why verification failed, one line per check.
    pub findings: Vec<String>,
    /// Requested, performed and recorded acquisitions per path.
    pub paths: BTreeMap<&'static str, crate::verify::PathCounts>,
    /// The checked build's validator counters (serialized by `to_json`).
    #[serde(skip)]
    pub validator: Option<ValidatorStats>,
    /// Timer DPCs and burst DPC routines that ran.
    pub dpc_runs: BTreeMap<&'static str, u64>,
    /// The driver's own timings (`GET_STATS`'s `timings`): its longest
    /// hold, DPC routine run and raised section, in ns, and the timer ticks
    /// skipped for coming back to back.
    pub timings: BTreeMap<&'static str, u64>,
    /// The run's parameters.
    pub parameters: Config,
    /// Seconds the IOCTL phase took.
    pub elapsed_s: f64,
    /// Where the run happened.
    pub environment: Environment,
}

impl Serialize for ValidatorStatsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let v = self.0;
        let mut map = s.serialize_map(Some(10))?;
        map.serialize_entry(
            "irql_checks",
            if v.irql_checks == 1 {
                "enabled"
            } else {
                "unavailable"
            },
        )?;
        map.serialize_entry("classes", &v.classes)?;
        map.serialize_entry("recursive_acquires", &v.recursive_acquires)?;
        map.serialize_entry("foreign_releases", &v.foreign_releases)?;
        map.serialize_entry("order_inversions", &v.order_inversions)?;
        map.serialize_entry("same_class_nesting", &v.same_class_nesting)?;
        map.serialize_entry("irql_at_acquire", &v.irql_at_acquire)?;
        map.serialize_entry("irql_at_release", &v.irql_at_release)?;
        map.serialize_entry("held_at_scope_end", &v.held_at_scope_end)?;
        map.serialize_entry("untracked", &v.untracked)?;
        map.end()
    }
}

struct ValidatorStatsJson<'a>(&'a ValidatorStats);

/// `GET_STATS`'s `timings` by field name.
#[must_use]
pub fn timings_map(t: &Timings) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("max_hold_ns", t.max_hold_ns),
        ("max_dpc_ns", t.max_dpc_ns),
        ("max_raised_ns", t.max_raised_ns),
        ("timer_back_to_back", t.timer_back_to_back),
    ])
}

/// `GET_STATS`'s `timings` in one line, beside the budgets they keep.
#[must_use]
pub fn timings_line(t: &Timings) -> String {
    format!(
        "driver timings: longest sampled hold {} ns (budget {} ns), DPC run {} ns and raised section {} ns (budget {} ns); {} back-to-back timer ticks skipped",
        t.max_hold_ns,
        dpclock_ioctl::limits::HOLD_BUDGET_NS,
        t.max_dpc_ns,
        t.max_raised_ns,
        dpclock_ioctl::limits::DPC_BUDGET_NS,
        t.timer_back_to_back
    )
}

impl Report {
    /// Builds the report of `run`.
    #[must_use]
    pub fn new(run: &Run, environment: Environment) -> Self {
        let kind = run.config.lock_kind;
        let seconds = run.elapsed.as_secs_f64().max(1e-9);
        let stats = run.stats.as_ref();
        let ledger = stats.map(|s| s.ledgers[kind.index()]);
        let performed = |path: Path| ledger.map_or(0, |l| l.performed[path as usize]);
        let acquisitions_total: u64 = Path::ALL.iter().map(|&p| performed(p)).sum();

        let mut acquisitions_per_s: BTreeMap<&'static str, f64> = Path::ALL
            .iter()
            .map(|&p| (p.name(), performed(p) as f64 / seconds))
            .collect();
        acquisitions_per_s.insert("total", acquisitions_total as f64 / seconds);

        let latency_us = Op::ALL
            .iter()
            .map(|&op| {
                let samples = &run.latencies[op as usize];
                (
                    op.name(),
                    LatencySummary {
                        count: samples.0.len() as u64,
                        p50: samples.quantile(0.5),
                        p99: samples.quantile(0.99),
                        max: samples.quantile(1.0),
                    },
                )
            })
            .collect();

        let hold_time = stats
            .filter(|s| s.flags & STATS_CHECKED_BUILD != 0)
            .and_then(|_| {
                let hold = ledger?.hold;
                (kind != LockKind::Unlocked).then(|| HoldTime {
                    count: hold.count,
                    mean_ns: hold.total_ns.checked_div(hold.count).unwrap_or(0),
                    max_ns: hold.max_ns,
                    over_25us: hold.over_guidance,
                    histogram: (0..HOLD_BUCKETS)
                        .filter(|&i| hold.histogram[i] != 0)
                        .map(|i| (format!("2^{i:02} ns"), hold.histogram[i]))
                        .collect(),
                })
            });

        let verification = run.verification.as_ref();
        let outcome = match run.ending {
            Ending::Completed => "completed".to_owned(),
            Ending::DeviceRemoved(error) => format!("device_removed: {error}"),
            Ending::Failed(error) => format!("failed: {error}"),
        };
        let contended = ledger.map_or(0, |l| l.contended);
        Self {
            verified: run.ending == Ending::Completed && verification.is_some_and(|v| v.verified),
            lost_updates: verification.map_or(0, |v| v.lost_updates),
            acquisitions_total,
            ioctls_per_s: run.ioctls.iter().sum::<u64>() as f64 / seconds,
            acquisitions_per_s,
            latency_us,
            contention_rate: if acquisitions_total == 0 {
                0.0
            } else {
                contended as f64 / acquisitions_total as f64
            },
            hold_time,
            lock_kind: kind.name(),
            outcome,
            findings: verification.map(|v| v.findings.clone()).unwrap_or_default(),
            paths: verification
                .map(|v| v.paths.iter().map(|(p, c)| (p.name(), *c)).collect())
                .unwrap_or_default(),
            validator: stats
                .filter(|s| s.flags & STATS_CHECKED_BUILD != 0)
                .map(|s| s.validator),
            dpc_runs: BTreeMap::from([
                ("timer", stats.map_or(0, |s| s.timer_ticks)),
                ("timer_skipped", stats.map_or(0, |s| s.timer_skipped)),
                ("burst", stats.map_or(0, |s| s.burst_dpc_runs)),
            ]),
            timings: stats.map(|s| timings_map(&s.timings)).unwrap_or_default(),
            parameters: run.config.clone(),
            elapsed_s: seconds,
            environment,
        }
    }

    /// The report as JSON.
    ///
    /// # Errors
    ///
    /// Never in practice (every field serializes).
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut value = serde_json::to_value(self)?;
        if let (Some(map), Some(v)) = (value.as_object_mut(), &self.validator) {
            map.insert(
                "validator".to_owned(),
                serde_json::to_value(ValidatorStatsJson(v))?,
            );
        }
        serde_json::to_string_pretty(&value)
    }

    /// The report as a table.
    #[must_use]
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let e = &self.environment;
        let _ = writeln!(
            t,
            "dpclock stress: {} lock, {} threads, {:.1} s on {} CPUs ({}; IRQL {}; {} build)",
            self.lock_kind,
            self.parameters.threads,
            self.elapsed_s,
            e.cpus,
            e.os,
            if e.irql_modelled {
                "modelled"
            } else {
                "not modelled"
            },
            if e.checked_build { "checked" } else { "free" },
        );
        let _ = writeln!(
            t,
            "\n  {:<10} {:>14} {:>14} {:>14} {:>14}",
            "path", "requested", "performed", "recorded", "per second"
        );
        for (name, counts) in &self.paths {
            let _ = writeln!(
                t,
                "  {name:<10} {:>14} {:>14} {:>14} {:>14.0}",
                counts.requested,
                counts.performed,
                counts.recorded,
                self.acquisitions_per_s.get(name).copied().unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            t,
            "  {:<10} {:>14} {:>14} {:>14} {:>14.0}",
            "total",
            "",
            self.acquisitions_total,
            "",
            self.acquisitions_per_s.get("total").copied().unwrap_or(0.0)
        );
        let _ = writeln!(
            t,
            "\n  {:<10} {:>10} {:>10} {:>10} {:>10}",
            "ioctl", "count", "p50 µs", "p99 µs", "max µs"
        );
        for (name, l) in &self.latency_us {
            let _ = writeln!(
                t,
                "  {name:<10} {:>10} {:>10} {:>10} {:>10}",
                l.count, l.p50, l.p99, l.max
            );
        }
        let _ = writeln!(
            t,
            "\n  IOCTLs/s {:.0}   contention {:.2}%   timer DPCs {} ({} skipped)   burst DPCs {}",
            self.ioctls_per_s,
            self.contention_rate * 100.0,
            self.dpc_runs["timer"],
            self.dpc_runs["timer_skipped"],
            self.dpc_runs["burst"],
        );
        if !self.timings.is_empty() {
            let _ = writeln!(
                t,
                "  driver timings: longest sampled hold {} ns, DPC run {} ns, raised section {} ns; {} back-to-back timer ticks skipped",
                self.timings["max_hold_ns"],
                self.timings["max_dpc_ns"],
                self.timings["max_raised_ns"],
                self.timings["timer_back_to_back"],
            );
        }
        if let Some(h) = &self.hold_time {
            let _ = writeln!(
                t,
                "  hold time (validator): {} holds, mean {} ns, max {} ns, {} over 25 µs",
                h.count, h.mean_ns, h.max_ns, h.over_25us
            );
        }
        if let Some(v) = &self.validator {
            let _ = writeln!(
                t,
                "  validator: {} violations; IRQL checks {}",
                v.violations(),
                if v.irql_checks == 1 {
                    "enabled"
                } else {
                    "unavailable (IRQL not modelled)"
                }
            );
        }
        let _ = writeln!(t);
        if self.verified {
            let _ = writeln!(
                t,
                "VERIFIED: every requested acquisition was performed once; no lost, duplicated or torn update."
            );
        } else {
            let _ = writeln!(
                t,
                "NOT VERIFIED ({}): {} lost updates",
                self.outcome, self.lost_updates
            );
            for finding in &self.findings {
                let _ = writeln!(t, "  - {finding}");
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dpclock_ioctl::{LedgerStats, Stats, expected_checksum};

    use super::*;
    use crate::{
        stress::Latencies,
        verify::{Requested, verify},
    };

    fn environment() -> Environment {
        Environment {
            cpus: 2,
            os: "test".into(),
            under_wine: true,
            irql_modelled: false,
            checked_build: true,
            harness_version: "0",
        }
    }

    fn run_with(counts: [u64; 4], lost: u64) -> Run {
        let mut stats = Stats {
            processors: 2,
            flags: STATS_CHECKED_BUILD,
            timer_ticks: 3,
            ..Stats::default()
        };
        let mut ledger = LedgerStats {
            updates: counts,
            performed: counts,
            contended: 50,
            ..LedgerStats::default()
        };
        ledger.updates[2] -= lost;
        ledger.total = ledger.updates.iter().sum();
        ledger.checksum = expected_checksum(&ledger.updates);
        ledger.hold.count = 10;
        ledger.hold.total_ns = 1000;
        ledger.hold.histogram[6] = 10;
        stats.ledgers[0] = ledger;
        let requested = Requested {
            acquisitions: counts,
            bursts: 1,
            short_bursts: 0,
            timer_started: true,
        };
        Run {
            config: Config::default(),
            ending: Ending::Completed,
            elapsed: Duration::from_secs(2),
            ioctls: [10, 10, 10],
            latencies: [
                Latencies(vec![5, 7, 9]),
                Latencies(vec![4]),
                Latencies(vec![]),
            ],
            verification: Some(verify(LockKind::Plain, &requested, &stats)),
            requested,
            contended: 50,
            stats: Some(stats),
        }
    }

    #[test]
    fn the_json_has_the_documented_keys() {
        let report = Report::new(&run_with([100, 200, 300, 400], 0), environment());
        let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        for key in [
            "verified",
            "lost_updates",
            "acquisitions_total",
            "ioctls_per_s",
            "acquisitions_per_s",
            "latency_us",
            "contention_rate",
            "hold_time",
            "lock_kind",
            "parameters",
            "environment",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["verified"], true);
        assert_eq!(json["acquisitions_total"], 1000);
        assert_eq!(json["acquisitions_per_s"]["total"], 500.0);
        assert_eq!(json["ioctls_per_s"], 15.0);
        assert_eq!(json["latency_us"]["passive"]["p50"], 7);
        assert_eq!(json["contention_rate"], 0.05);
        assert_eq!(json["hold_time"]["mean_ns"], 100);
        assert_eq!(json["environment"]["under_wine"], true);
        assert_eq!(json["validator"]["irql_checks"], "unavailable");
        assert_eq!(json["parameters"]["lock_kind"], "plain");
        assert!(report.to_table().contains("VERIFIED"));
    }

    #[test]
    fn lost_updates_show_in_both_forms() {
        let report = Report::new(&run_with([100, 200, 300, 400], 7), environment());
        assert!(!report.verified);
        assert_eq!(report.lost_updates, 7);
        let table = report.to_table();
        assert!(table.contains("NOT VERIFIED"), "{table}");
        assert!(table.contains("7 lost updates"), "{table}");
    }
}
