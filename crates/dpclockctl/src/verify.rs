//! Checks the driver's ledgers against what the harness asked for.
//!
//! For the ledger the run used, and for every path:
//!
//! 1. **Performed exactly once.** The acquisitions the driver says it
//!    performed equal those the harness requested (IOCTL paths), so no
//!    request was dropped or run twice.
//! 2. **No lost or duplicated update.** The ledger's own update count for the
//!    path equals what was performed. A lost update (two racing updates
//!    writing the same count) leaves it short; the unlocked control must.
//! 3. **No torn update.** The ledger's total equals the sum of its per-path
//!    counts, and its running checksum equals the checksum the counts imply
//!    ([`dpclock_ioctl::expected_checksum`]).
//!
//! Also: every burst ran on every processor, the timer DPC ran if it was
//! started, the ledgers the run did not use stayed empty, and the checked
//! build's validator saw no violation.

use dpclock_ioctl::{LockKind, PATH_COUNT, Path, Stats, expected_checksum};
use serde::Serialize;

/// What the harness asked the driver to do, per path of the run's ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requested {
    /// Acquisitions requested per [`Path`]. For the timer path the harness
    /// cannot know the tick count in advance: it is taken from the driver.
    pub acquisitions: [u64; PATH_COUNT],
    /// Bursts issued, and how many of them ran on fewer processors than exist.
    pub bursts: u64,
    /// Bursts whose DPC did not run on every processor.
    pub short_bursts: u64,
    /// Whether the timer was started.
    pub timer_started: bool,
}

/// Per-path counts in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PathCounts {
    /// Acquisitions the harness requested.
    pub requested: u64,
    /// Acquisitions the driver performed.
    pub performed: u64,
    /// Updates the ledger recorded.
    pub recorded: u64,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// True when every check passed.
    pub verified: bool,
    /// Requested minus recorded, over all paths: updates that were lost
    /// (negative: recorded twice).
    pub lost_updates: i64,
    /// The counts, per path name.
    pub paths: Vec<(Path, PathCounts)>,
    /// One line per failed check.
    pub findings: Vec<String>,
}

/// Verifies `stats` after a run on `kind`'s ledger that requested `requested`.
#[must_use]
pub fn verify(kind: LockKind, requested: &Requested, stats: &Stats) -> Verification {
    let ledger = &stats.ledgers[kind.index()];
    let mut findings = Vec::new();
    let mut lost_updates = 0_i64;
    let mut paths = Vec::new();

    for path in Path::ALL {
        let i = path as usize;
        let performed = ledger.performed[i];
        let wanted = if path == Path::TimerDpc {
            performed
        } else {
            requested.acquisitions[i]
        };
        let recorded = ledger.updates[i];
        if performed != wanted {
            findings.push(format!(
                "{}: requested {wanted} acquisitions but the driver performed {performed}",
                path.name()
            ));
        }
        if recorded < performed {
            findings.push(format!(
                "{}: {} lost updates ({recorded} recorded of {performed})",
                path.name(),
                performed - recorded
            ));
        } else if recorded > performed {
            findings.push(format!(
                "{}: {} duplicated updates ({recorded} recorded of {performed})",
                path.name(),
                recorded - performed
            ));
        }
        lost_updates +=
            i64::try_from(wanted).unwrap_or(i64::MAX) - i64::try_from(recorded).unwrap_or(i64::MAX);
        paths.push((
            path,
            PathCounts {
                requested: wanted,
                performed,
                recorded,
            },
        ));
    }

    let sum: u64 = ledger.updates.iter().sum();
    if ledger.total != sum {
        findings.push(format!(
            "torn update: the ledger's total is {} but its paths sum to {sum}",
            ledger.total
        ));
    }
    if ledger.checksum != expected_checksum(&ledger.updates) {
        findings.push(
            "torn or lost update: the ledger's checksum does not match its counts".to_owned(),
        );
    }
    if requested.short_bursts > 0 {
        findings.push(format!(
            "{} of {} bursts did not run on all {} processors",
            requested.short_bursts, requested.bursts, stats.processors
        ));
    }
    if requested.timer_started && stats.timer_ticks == 0 {
        findings.push("the periodic timer was started but its DPC never ran".to_owned());
    }
    for other in LockKind::ALL.into_iter().filter(|&other| other != kind) {
        let untouched = &stats.ledgers[other.index()];
        if untouched
            .updates
            .iter()
            .chain(&untouched.performed)
            .any(|&n| n != 0)
        {
            findings.push(format!(
                "the {} ledger changed although this run used {}",
                other.name(),
                kind.name()
            ));
        }
    }
    let violations = stats.validator.violations();
    if violations > 0 {
        findings.push(format!(
            "the checked build's validator reported {violations} violations: {:?}",
            stats.validator
        ));
    }
    if stats.validator.untracked > 0 {
        findings.push(format!(
            "the checked build's validator had no room to check {} acquisitions or scopes",
            stats.validator.untracked
        ));
    }

    Verification {
        verified: findings.is_empty(),
        lost_updates,
        paths,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use dpclock_ioctl::{LedgerStats, update_mix};

    use super::*;

    /// Stats of a driver that did exactly `counts` updates, one at a time.
    fn consistent(kind: LockKind, counts: [u64; PATH_COUNT]) -> Stats {
        let mut stats = Stats {
            processors: 2,
            ..Stats::default()
        };
        let mut ledger = LedgerStats {
            updates: counts,
            performed: counts,
            total: counts.iter().sum(),
            ..LedgerStats::default()
        };
        ledger.checksum = expected_checksum(&counts);
        stats.ledgers[kind.index()] = ledger;
        stats.timer_ticks = counts[Path::TimerDpc as usize];
        stats
    }

    fn requested(counts: [u64; PATH_COUNT]) -> Requested {
        Requested {
            acquisitions: counts,
            bursts: 1,
            short_bursts: 0,
            timer_started: counts[3] > 0,
        }
    }

    #[test]
    fn a_consistent_run_verifies() {
        let counts = [1000, 2000, 4000, 30];
        let result = verify(
            LockKind::Queued,
            &requested(counts),
            &consistent(LockKind::Queued, counts),
        );
        assert!(result.verified, "{:?}", result.findings);
        assert_eq!(result.lost_updates, 0);
        assert_eq!(
            result.paths[2].1,
            PathCounts {
                requested: 4000,
                performed: 4000,
                recorded: 4000
            }
        );
    }

    #[test]
    fn lost_updates_are_counted_and_fail_verification() {
        // Two racing updates of the burst path both wrote count 7: the
        // ledger recorded one update fewer than was performed.
        let counts = [10, 0, 100, 0];
        let mut stats = consistent(LockKind::Unlocked, counts);
        let ledger = &mut stats.ledgers[LockKind::Unlocked.index()];
        ledger.updates[2] -= 1;
        ledger.total -= 1;
        ledger.checksum = ledger.checksum.wrapping_sub(update_mix(2, 100));
        let result = verify(LockKind::Unlocked, &requested(counts), &stats);
        assert!(!result.verified);
        assert_eq!(result.lost_updates, 1);
        assert!(
            result.findings.iter().any(|f| f.contains("1 lost updates")),
            "{:?}",
            result.findings
        );
    }

    #[test]
    fn a_torn_update_fails_even_when_the_counts_agree() {
        let counts = [5, 5, 5, 0];
        let mut stats = consistent(LockKind::Plain, counts);
        stats.ledgers[0].total += 1;
        stats.ledgers[0].checksum ^= 1;
        let result = verify(LockKind::Plain, &requested(counts), &stats);
        assert!(!result.verified);
        assert_eq!(result.lost_updates, 0);
        assert!(result.findings.iter().any(|f| f.contains("torn update")));
        assert!(result.findings.iter().any(|f| f.contains("checksum")));
    }

    #[test]
    fn dropped_requests_short_bursts_silent_timers_and_violations_fail() {
        let counts = [10, 10, 10, 0];
        let stats = consistent(LockKind::Plain, counts);
        let mut asked = requested([11, 10, 10, 0]);
        asked.short_bursts = 1;
        asked.timer_started = true;
        let mut stats = stats;
        stats.validator.order_inversions = 1;
        stats.ledgers[LockKind::Queued.index()].performed[0] = 1;
        let result = verify(LockKind::Plain, &asked, &stats);
        let all = result.findings.join("\n");
        assert!(
            all.contains("requested 11 acquisitions but the driver performed 10"),
            "{all}"
        );
        assert!(all.contains("did not run on all 2 processors"), "{all}");
        assert!(
            all.contains("timer was started but its DPC never ran"),
            "{all}"
        );
        assert!(all.contains("validator reported 1 violations"), "{all}");
        assert!(all.contains("queued ledger changed"), "{all}");
        assert_eq!(result.lost_updates, 1);
    }
}
