//! `GET_STATS`'s report and how a client verifies a ledger with it:
//! docs/protocol.md's `Stats`, `LedgerStats`, `HoldStats`, `ValidatorStats`
//! and "Verifying a ledger".

use core::mem::{offset_of, size_of};

use crate::wire::{Reader, Writer, check_version};
use crate::{Error, PROTOCOL_VERSION};

/// The code paths that update a ledger, in the order of
/// [`LedgerStats::updates`] and [`LedgerStats::performed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Path {
    /// `LOCK_PASSIVE`: the IOCTL path at `PASSIVE_LEVEL`.
    Passive = 0,
    /// `LOCK_DISPATCH`: the IOCTL path raised to `DISPATCH_LEVEL`.
    Dispatch = 1,
    /// `DPC_BURST`: the per-processor burst DPCs.
    BurstDpc = 2,
    /// The periodic timer's DPC.
    TimerDpc = 3,
}

/// Number of [`Path`]s.
pub const PATH_COUNT: usize = 4;

impl Path {
    /// All paths, in ledger order.
    pub const ALL: [Self; PATH_COUNT] = [
        Self::Passive,
        Self::Dispatch,
        Self::BurstDpc,
        Self::TimerDpc,
    ];

    /// A short name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Passive => "passive",
            Self::Dispatch => "dispatch",
            Self::BurstDpc => "burst_dpc",
            Self::TimerDpc => "timer_dpc",
        }
    }
}

/// One ledger update's contribution to the checksum: splitmix64 of
/// `(path << 56) | count`, where `count` is the path's update count after
/// the update (1 for the first). The checksum of a consistent ledger is
/// therefore the wrapping sum of `update_mix(p, k)` for `k` in
/// `1..=updates[p]`, over every path `p`, whatever order the updates ran in.
#[must_use]
pub const fn update_mix(path: u32, count: u64) -> u64 {
    let mut z =
        ((path as u64) << 56 | (count & 0x00ff_ffff_ffff_ffff)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The checksum a consistent ledger with these per-path update counts has.
#[must_use]
pub fn expected_checksum(updates: &[u64; PATH_COUNT]) -> u64 {
    let mut sum = 0_u64;
    for (path, &count) in updates.iter().enumerate() {
        for k in 1..=count {
            sum = sum.wrapping_add(update_mix(path as u32, k));
        }
    }
    sum
}

/// Per lock kind: the ledger (read under its lock) and the driver's own
/// counts (kept with interlocked operations, outside the lock).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// The ledger's update count per [`Path`].
    pub updates: [u64; PATH_COUNT],
    /// The ledger's running total: equals the sum of `updates` unless an
    /// update was torn.
    pub total: u64,
    /// The ledger's running checksum: equals [`expected_checksum`] of
    /// `updates` unless an update was lost, duplicated or torn.
    pub checksum: u64,
    /// Acquisitions the driver performed per [`Path`]: what the ledger's
    /// `updates` must equal.
    pub performed: [u64; PATH_COUNT],
    /// Acquisitions that found the lock already held.
    pub contended: u64,
    /// Hold-time statistics from the checked build's validator (zeros in
    /// other builds).
    pub hold: HoldStats,
}

/// Hold-time statistics of one lock (checked builds).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldStats {
    /// Holds measured.
    pub count: u64,
    /// Sum of hold times, ns.
    pub total_ns: u64,
    /// Longest hold, ns.
    pub max_ns: u64,
    /// Holds over the 25 µs guidance.
    pub over_guidance: u64,
    /// `histogram[i]`: holds of `2^i..2^(i+1)` ns (the last bucket: longer).
    pub histogram: [u64; HOLD_BUCKETS],
}

/// Buckets of [`HoldStats::histogram`].
pub const HOLD_BUCKETS: usize = 32;

/// The checked build's validator report.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidatorStats {
    /// 1 if IRQL assertions ran; 0 if IRQL is not modelled (Wine) and they
    /// were skipped, or the build is not checked.
    pub irql_checks: u32,
    /// Lock classes the order checker knows.
    pub classes: u32,
    /// Recursive acquisitions (each one stops the system).
    pub recursive_acquires: u64,
    /// Releases by a thread that did not acquire.
    pub foreign_releases: u64,
    /// Acquisitions that closed a cycle in the lock-class order graph.
    pub order_inversions: u64,
    /// Acquisitions of a lock while another lock of the same class and
    /// subclass was held (lockdep's rule: name a subclass to nest them).
    pub same_class_nesting: u64,
    /// Acquisitions at the wrong IRQL.
    pub irql_at_acquire: u64,
    /// Releases at the wrong IRQL, and raised scopes that ended at another
    /// IRQL than they began at.
    pub irql_at_release: u64,
    /// Locks still held when the outermost scope they were taken in ended
    /// (a DPC routine, an IOCTL's raised scope): leaked guards.
    pub held_at_scope_end: u64,
    /// Acquisitions and scopes the validator's table had no room for (not
    /// checked; a sign that more locks are held at once than it tracks).
    pub untracked: u64,
}

impl ValidatorStats {
    /// The sum of the violation counters (`untracked` is not a violation).
    #[must_use]
    pub const fn violations(&self) -> u64 {
        self.recursive_acquires
            + self.foreign_releases
            + self.order_inversions
            + self.same_class_nesting
            + self.irql_at_acquire
            + self.irql_at_release
            + self.held_at_scope_end
    }
}

/// `Stats::flags`: the machine models IRQL (false under Wine).
pub const STATS_IRQL_MODELLED: u32 = 1;
/// `Stats::flags`: the driver is a checked build (validator on).
pub const STATS_CHECKED_BUILD: u32 = 2;
/// `Stats::flags`: the unlocked control is enabled.
pub const STATS_UNLOCKED_ALLOWED: u32 = 4;
/// `Stats::flags`: the periodic timer is running.
pub const STATS_TIMER_RUNNING: u32 = 8;

/// Output of `GET_STATS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// `STATS_*` bits.
    pub flags: u32,
    /// Active processors (`KeQueryActiveProcessorCountEx`).
    pub processors: u32,
    /// The timer's period while it runs, else 0.
    pub timer_period_ms: u32,
    /// Timer DPCs run since the last reset.
    pub timer_ticks: u64,
    /// Timer DPCs that returned at once because the previous one was still
    /// running (one tick runs at a time).
    pub timer_skipped: u64,
    /// Burst DPC routines run since the last reset (one per processor per
    /// round of each burst).
    pub burst_dpc_runs: u64,
    /// One per [`LockKind`], in [`LockKind::ALL`] order.
    pub ledgers: [LedgerStats; 3],
    /// The validator's report.
    pub validator: ValidatorStats,
    /// The driver's own timings since the last reset (every build).
    pub timings: Timings,
}

/// What the driver measured of its own time at `DISPATCH_LEVEL`, in every
/// build, with `KeQueryPerformanceCounter`; the maxima are kept outside the
/// locks. Each must stay within its budget ([`crate::limits`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Longest spin-lock hold of the ledger locks, ns (from just after the
    /// acquire returned to just before the release).
    pub max_hold_ns: u64,
    /// Longest DPC routine run (a burst DPC or a timer tick), ns.
    pub max_dpc_ns: u64,
    /// Longest section an IOCTL raised to `DISPATCH_LEVEL` (one
    /// `LOCK_DISPATCH` chunk, timed from before the raise to after the
    /// lower), ns.
    pub max_raised_ns: u64,
    /// Timer ticks skipped because they came less than half a period after
    /// the previous tick ended: a tick that would run back to back with the
    /// last one, without the processor leaving `DISPATCH_LEVEL` between.
    pub timer_back_to_back: u64,
}

const _: () = {
    assert!(size_of::<HoldStats>() == 288);
    assert!(size_of::<LedgerStats>() == 88 + 288);
    assert!(offset_of!(LedgerStats, updates) == 0);
    assert!(offset_of!(LedgerStats, total) == 32);
    assert!(offset_of!(LedgerStats, checksum) == 40);
    assert!(offset_of!(LedgerStats, performed) == 48);
    assert!(offset_of!(LedgerStats, contended) == 80);
    assert!(offset_of!(LedgerStats, hold) == 88);
    assert!(size_of::<ValidatorStats>() == 72);
    assert!(offset_of!(ValidatorStats, recursive_acquires) == 8);
    assert!(offset_of!(ValidatorStats, same_class_nesting) == 32);
    assert!(offset_of!(ValidatorStats, untracked) == 64);
    assert!(offset_of!(Stats, timer_ticks) == 16);
    assert!(offset_of!(Stats, timer_skipped) == 24);
    assert!(offset_of!(Stats, burst_dpc_runs) == 32);
    assert!(offset_of!(Stats, ledgers) == 40);
    assert!(offset_of!(Stats, validator) == 40 + 3 * 376);
    assert!(size_of::<Timings>() == 32);
    assert!(offset_of!(Stats, timings) == 40 + 3 * 376 + 72);
    assert!(size_of::<Stats>() == 40 + 3 * 376 + 72 + 32);
};

impl Stats {
    /// Writes the stats into `out`, returning the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] if `out` cannot hold them.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out
            .get_mut(..size_of::<Self>())
            .ok_or(Error::BufferTooSmall)?;
        let mut w = Writer { out, at: 0 };
        w.put32(PROTOCOL_VERSION);
        w.put32(self.flags);
        w.put32(self.processors);
        w.put32(self.timer_period_ms);
        w.put64(self.timer_ticks);
        w.put64(self.timer_skipped);
        w.put64(self.burst_dpc_runs);
        for ledger in &self.ledgers {
            ledger.updates.iter().for_each(|&v| w.put64(v));
            w.put64(ledger.total);
            w.put64(ledger.checksum);
            ledger.performed.iter().for_each(|&v| w.put64(v));
            w.put64(ledger.contended);
            let h = &ledger.hold;
            [h.count, h.total_ns, h.max_ns, h.over_guidance]
                .iter()
                .for_each(|&v| w.put64(v));
            h.histogram.iter().for_each(|&v| w.put64(v));
        }
        let v = &self.validator;
        w.put32(v.irql_checks);
        w.put32(v.classes);
        [
            v.recursive_acquires,
            v.foreign_releases,
            v.order_inversions,
            v.same_class_nesting,
            v.irql_at_acquire,
            v.irql_at_release,
            v.held_at_scope_end,
            v.untracked,
        ]
        .iter()
        .for_each(|&x| w.put64(x));
        let t = &self.timings;
        [
            t.max_hold_ns,
            t.max_dpc_ns,
            t.max_raised_ns,
            t.timer_back_to_back,
        ]
        .iter()
        .for_each(|&x| w.put64(x));
        debug_assert_eq!(w.at, size_of::<Self>());
        Ok(size_of::<Self>())
    }

    /// Reads stats, for clients.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] or, for another version,
    /// [`Error::InvalidParameter`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < size_of::<Self>() {
            return Err(Error::BufferTooSmall);
        }
        let mut r = Reader { bytes, at: 0 };
        check_version(r.get32())?;
        let mut stats = Self {
            version: PROTOCOL_VERSION,
            flags: r.get32(),
            processors: r.get32(),
            ..Self::default()
        };
        stats.timer_period_ms = r.get32();
        stats.timer_ticks = r.get64();
        stats.timer_skipped = r.get64();
        stats.burst_dpc_runs = r.get64();
        // The arrays are filled in place: unoptimized, `array::from_fn`'s
        // temporaries made this frame larger than a page, which needs
        // `__chkstk`, an import x64's ntoskrnl.exe does not export. The
        // driver links this code too; `cargo xtask check-windows` found it.
        for ledger in &mut stats.ledgers {
            ledger.updates.iter_mut().for_each(|v| *v = r.get64());
            ledger.total = r.get64();
            ledger.checksum = r.get64();
            ledger.performed.iter_mut().for_each(|v| *v = r.get64());
            ledger.contended = r.get64();
            let h = &mut ledger.hold;
            h.count = r.get64();
            h.total_ns = r.get64();
            h.max_ns = r.get64();
            h.over_guidance = r.get64();
            h.histogram.iter_mut().for_each(|v| *v = r.get64());
        }
        let v = &mut stats.validator;
        v.irql_checks = r.get32();
        v.classes = r.get32();
        v.recursive_acquires = r.get64();
        v.foreign_releases = r.get64();
        v.order_inversions = r.get64();
        v.same_class_nesting = r.get64();
        v.irql_at_acquire = r.get64();
        v.irql_at_release = r.get64();
        v.held_at_scope_end = r.get64();
        v.untracked = r.get64();
        let t = &mut stats.timings;
        t.max_hold_ns = r.get64();
        t.max_dpc_ns = r.get64();
        t.max_raised_ns = r.get64();
        t.timer_back_to_back = r.get64();
        Ok(stats)
    }
}
