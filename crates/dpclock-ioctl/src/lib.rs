//! The IOCTL protocol between dpclock.sys and its clients, shared by the
//! driver and the `dpclockctl` harness. `docs/protocol.md` describes every
//! byte, so that a client can be written in any language from it alone.
//!
//! Every IOCTL is `METHOD_BUFFERED`. Requests and responses are `#[repr(C)]`
//! little-endian structs that start with a `version` field; their layout is
//! pinned by compile-time assertions. Each IOCTL has one function that turns
//! the raw input buffer into a typed request, or into the status the driver
//! must complete the IRP with ([`Error::ntstatus`]):
//!
//! * a code the driver does not define → `STATUS_INVALID_DEVICE_REQUEST`;
//! * an input buffer shorter than the struct → `STATUS_BUFFER_TOO_SMALL`;
//! * then each field in offset order, the first bad one deciding: a bad
//!   field, or a count outside its documented limit →
//!   `STATUS_INVALID_PARAMETER`; the unlocked control while it is not
//!   enabled → `STATUS_NOT_SUPPORTED`;
//! * an output buffer shorter than the response → `STATUS_BUFFER_TOO_SMALL`.
//!
//! Longer input buffers are accepted; the bytes past the struct are ignored.
//! [`spec`] restates these rules as tables (the ones docs/protocol.md
//! prints), with an independent, table-driven oracle of the status every
//! request must get.

#![no_std]
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// The protocol version every request and response carries.
pub const PROTOCOL_VERSION: u32 = 2;

/// The device interface the driver registers; clients find the device with
/// `SetupDiGetClassDevs(&GUID_DEVINTERFACE_DPCLOCK, …, DIGCF_PRESENT | DIGCF_DEVICEINTERFACE)`.
/// `{488E151D-6911-4DB2-80EB-B1D6EB102E4C}`
pub const GUID_DEVINTERFACE_DPCLOCK: Guid = Guid::new(
    0x488e_151d,
    0x6911,
    0x4db2,
    [0x80, 0xeb, 0xb1, 0xd6, 0xeb, 0x10, 0x2e, 0x4c],
);

/// The device class GUID given to `IoCreateDeviceSecure`, which keys the
/// registry location where an administrator may override the device's
/// security descriptor. `{9C4D7517-192A-4537-B1E6-661399CD6B20}`
pub const GUID_DEVCLASS_DPCLOCK_SECURITY: Guid = Guid::new(
    0x9c4d_7517,
    0x192a,
    0x4537,
    [0xb1, 0xe6, 0x66, 0x13, 0x99, 0xcd, 0x6b, 0x20],
);

/// A GUID with the Windows layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Guid {
    /// `Data1`.
    pub data1: u32,
    /// `Data2`.
    pub data2: u16,
    /// `Data3`.
    pub data3: u16,
    /// `Data4`.
    pub data4: [u8; 8],
}

impl Guid {
    /// Builds a GUID from its four fields.
    #[must_use]
    pub const fn new(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Self {
        Self {
            data1,
            data2,
            data3,
            data4,
        }
    }
}

/// The device type of every dpclock IOCTL (vendor range 0x8000–0xFFFF).
pub const DEVICE_TYPE: u32 = 0x8DC1;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_ANY_ACCESS`.
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_READ_ACCESS`.
pub const FILE_READ_ACCESS: u32 = 1;
/// `FILE_WRITE_ACCESS`.
pub const FILE_WRITE_ACCESS: u32 = 2;

/// `CTL_CODE` from the WDK headers.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Takes no lock. Ignores its input and zero-fills the output buffer, up to
/// [`NOOP_MAX_OUTPUT`] bytes: sent bare it times an IOCTL round trip, sent
/// with a lock request's buffers it carries exactly the lock IOCTLs' traffic
/// (see [`noop_reply`]).
pub const IOCTL_DPCLOCK_NOOP: u32 = ctl_code(DEVICE_TYPE, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// [`LockRequest`] → [`LockResponse`]: acquisitions at `PASSIVE_LEVEL`
/// through the IRQL-raising guard.
pub const IOCTL_DPCLOCK_LOCK_PASSIVE: u32 = ctl_code(
    DEVICE_TYPE,
    0x801,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// [`LockRequest`] → [`LockResponse`]: raise to `DISPATCH_LEVEL`, then
/// acquisitions through the `AtDpcLevel` guard.
pub const IOCTL_DPCLOCK_LOCK_DISPATCH: u32 = ctl_code(
    DEVICE_TYPE,
    0x802,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// [`LockRequest`] → [`LockResponse`]: a DPC on every processor at once
/// (`KeGenericCallDpc`), each making `iterations` acquisitions.
pub const IOCTL_DPCLOCK_DPC_BURST: u32 = ctl_code(
    DEVICE_TYPE,
    0x803,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// [`TimerRequest`] → nothing: starts the periodic timer DPC, or changes its
/// rate and load if it runs.
pub const IOCTL_DPCLOCK_TIMER_START: u32 = ctl_code(
    DEVICE_TYPE,
    0x804,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// nothing → nothing: stops the periodic timer and waits for its DPC.
pub const IOCTL_DPCLOCK_TIMER_STOP: u32 = ctl_code(
    DEVICE_TYPE,
    0x805,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// nothing → [`Stats`]: the ledgers, counters and validator report.
pub const IOCTL_DPCLOCK_GET_STATS: u32 =
    ctl_code(DEVICE_TYPE, 0x806, METHOD_BUFFERED, FILE_READ_ACCESS);
/// nothing → nothing: zeroes ledgers and counters (refused while the timer runs).
pub const IOCTL_DPCLOCK_RESET: u32 = ctl_code(
    DEVICE_TYPE,
    0x807,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);

/// nothing → [`Health`]: the driver's own counters (IRPs in flight,
/// remove-lock references, armed timers, allocations). Added after the
/// first release of the protocol: a driver without it answers
/// `STATUS_INVALID_DEVICE_REQUEST`.
pub const IOCTL_DPCLOCK_GET_HEALTH: u32 =
    ctl_code(DEVICE_TYPE, 0x808, METHOD_BUFFERED, FILE_READ_ACCESS);

/// Every IOCTL code the driver defines.
pub const ALL_IOCTLS: [u32; 9] = [
    IOCTL_DPCLOCK_NOOP,
    IOCTL_DPCLOCK_LOCK_PASSIVE,
    IOCTL_DPCLOCK_LOCK_DISPATCH,
    IOCTL_DPCLOCK_DPC_BURST,
    IOCTL_DPCLOCK_TIMER_START,
    IOCTL_DPCLOCK_TIMER_STOP,
    IOCTL_DPCLOCK_GET_STATS,
    IOCTL_DPCLOCK_RESET,
    IOCTL_DPCLOCK_GET_HEALTH,
];

/// Limits on request fields; a value outside them is `STATUS_INVALID_PARAMETER`.
pub mod limits {
    /// Most acquisitions one `LOCK_PASSIVE` request may ask for.
    pub const MAX_PASSIVE_ITERATIONS: u32 = 1_000_000;
    /// Most acquisitions one `LOCK_DISPATCH` request may ask for (all of
    /// them run at `DISPATCH_LEVEL`).
    pub const MAX_DISPATCH_ITERATIONS: u32 = 100_000;
    /// Most acquisitions each processor's DPC makes in one `DPC_BURST`.
    pub const MAX_BURST_ITERATIONS: u32 = 100_000;
    /// Most acquisitions each timer DPC makes.
    pub const MAX_TIMER_ITERATIONS: u32 = 10_000;
    /// Most work units done while holding the lock, per acquisition.
    pub const MAX_WORK: u32 = 10_000;
    /// Shortest timer period, in milliseconds.
    pub const MIN_TIMER_PERIOD_MS: u32 = 1;
    /// Longest timer period, in milliseconds.
    pub const MAX_TIMER_PERIOD_MS: u32 = 10_000;
}

/// Which lock protects the updates of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum LockKind {
    /// An executive spin lock (`KeAcquireSpinLock…`).
    Plain = 0,
    /// An in-stack queued spin lock (`KeAcquireInStackQueuedSpinLock…`).
    Queued = 1,
    /// No lock at all: a test aid that must lose updates under contention.
    /// The driver refuses it (`STATUS_NOT_SUPPORTED`) unless the registry
    /// value `AllowUnlockedControl` (DWORD 1) is set under the service's
    /// `Parameters` key.
    Unlocked = 2,
}

impl LockKind {
    /// All kinds, in ledger order ([`Stats::ledgers`]).
    pub const ALL: [Self; 3] = [Self::Plain, Self::Queued, Self::Unlocked];

    /// The kind with this wire value.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Plain),
            1 => Some(Self::Queued),
            2 => Some(Self::Unlocked),
            _ => None,
        }
    }

    /// Index of this kind's ledger in [`Stats::ledgers`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name (`plain`, `queued`, `unlocked`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Queued => "queued",
            Self::Unlocked => "unlocked",
        }
    }
}

/// The code paths that update a ledger, in the order of
/// [`LedgerStats::updates`] and [`LedgerStats::performed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Path {
    /// `LOCK_PASSIVE`: the IOCTL path at `PASSIVE_LEVEL`.
    Passive = 0,
    /// `LOCK_DISPATCH`: the IOCTL path raised to `DISPATCH_LEVEL`.
    Dispatch = 1,
    /// `DPC_BURST`: `KeGenericCallDpc` routines.
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

/// Why a request is refused, and the NTSTATUS that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The input or output buffer is shorter than the struct.
    BufferTooSmall,
    /// A field is invalid or outside its limit.
    InvalidParameter,
    /// The IOCTL code is not one of dpclock's.
    InvalidDeviceRequest,
    /// The unlocked control was asked for while it is not enabled.
    NotSupported,
}

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: i32 = 0;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const STATUS_BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32.cast_signed();
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32.cast_signed();
/// `STATUS_INVALID_DEVICE_REQUEST`.
pub const STATUS_INVALID_DEVICE_REQUEST: i32 = 0xC000_0010_u32.cast_signed();
/// `STATUS_NOT_SUPPORTED`: the unlocked control was asked for but not enabled.
pub const STATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32.cast_signed();
/// `STATUS_DEVICE_BUSY`: `RESET` while the timer runs.
pub const STATUS_DEVICE_BUSY: i32 = 0x8000_0011_u32.cast_signed();
/// `STATUS_DELETE_PENDING`: the device is being removed.
pub const STATUS_DELETE_PENDING: i32 = 0xC000_0056_u32.cast_signed();

impl Error {
    /// The NTSTATUS the driver completes the IRP with.
    #[must_use]
    pub const fn ntstatus(self) -> i32 {
        match self {
            Self::BufferTooSmall => STATUS_BUFFER_TOO_SMALL,
            Self::InvalidParameter => STATUS_INVALID_PARAMETER,
            Self::InvalidDeviceRequest => STATUS_INVALID_DEVICE_REQUEST,
            Self::NotSupported => STATUS_NOT_SUPPORTED,
        }
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn put_u32(out: &mut [u8], offset: usize, value: u32) {
    out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut [u8], offset: usize, value: u64) {
    out[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

fn check_version(version: u32) -> Result<(), Error> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::InvalidParameter)
    }
}

/// What the driver allows beyond the fixed limits: its configuration,
/// read once at load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    /// `AllowUnlockedControl` is set: `lock_kind = 2` is accepted.
    pub unlocked_control: bool,
}

/// A `lock_kind` field: unknown → `InvalidParameter`; the unlocked control
/// while not enabled → `NotSupported`.
fn check_lock_kind(value: u32, policy: Policy) -> Result<LockKind, Error> {
    match LockKind::from_u32(value) {
        None => Err(Error::InvalidParameter),
        Some(LockKind::Unlocked) if !policy.unlocked_control => Err(Error::NotSupported),
        Some(kind) => Ok(kind),
    }
}

fn check_range(value: u32, min: u32, max: u32) -> Result<u32, Error> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::InvalidParameter)
    }
}

/// Input of `LOCK_PASSIVE`, `LOCK_DISPATCH` and `DPC_BURST` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// A [`LockKind`].
    pub lock_kind: u32,
    /// Acquisitions to make (per processor, for `DPC_BURST`), at least 1.
    pub iterations: u32,
    /// Work units to do while holding the lock, per acquisition.
    pub work: u32,
}

const _: () = {
    assert!(size_of::<LockRequest>() == 16);
    assert!(offset_of!(LockRequest, version) == 0);
    assert!(offset_of!(LockRequest, lock_kind) == 4);
    assert!(offset_of!(LockRequest, iterations) == 8);
    assert!(offset_of!(LockRequest, work) == 12);
};

/// A validated [`LockRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockWork {
    /// The lock to use.
    pub lock_kind: LockKind,
    /// Acquisitions to make.
    pub iterations: u32,
    /// Work units per acquisition.
    pub work: u32,
}

impl LockRequest {
    /// The request for `work` as bytes, for clients.
    #[must_use]
    pub fn encode(lock_kind: LockKind, iterations: u32, work: u32) -> [u8; size_of::<Self>()] {
        let mut out = [0; size_of::<Self>()];
        put_u32(&mut out, offset_of!(Self, version), PROTOCOL_VERSION);
        put_u32(&mut out, offset_of!(Self, lock_kind), lock_kind as u32);
        put_u32(&mut out, offset_of!(Self, iterations), iterations);
        put_u32(&mut out, offset_of!(Self, work), work);
        out
    }

    fn parse(input: &[u8], max_iterations: u32, policy: Policy) -> Result<LockWork, Error> {
        if input.len() < size_of::<Self>() {
            return Err(Error::BufferTooSmall);
        }
        // Fields in offset order: the first bad one decides the status.
        check_version(u32_at(input, offset_of!(Self, version)))?;
        let lock_kind = check_lock_kind(u32_at(input, offset_of!(Self, lock_kind)), policy)?;
        let iterations = check_range(
            u32_at(input, offset_of!(Self, iterations)),
            1,
            max_iterations,
        )?;
        let work = check_range(u32_at(input, offset_of!(Self, work)), 0, limits::MAX_WORK)?;
        Ok(LockWork {
            lock_kind,
            iterations,
            work,
        })
    }
}

/// Output of `LOCK_PASSIVE`, `LOCK_DISPATCH` and `DPC_BURST` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The [`LockKind`] used.
    pub lock_kind: u32,
    /// Acquisitions made by this request (for `DPC_BURST`: `iterations`
    /// times `dpc_runs`).
    pub acquisitions: u64,
    /// Of those, how many found the lock held by someone else first.
    pub contended: u64,
    /// `DPC_BURST`: processors that ran the DPC; otherwise 0.
    pub dpc_runs: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = {
    assert!(size_of::<LockResponse>() == 32);
    assert!(offset_of!(LockResponse, version) == 0);
    assert!(offset_of!(LockResponse, lock_kind) == 4);
    assert!(offset_of!(LockResponse, acquisitions) == 8);
    assert!(offset_of!(LockResponse, contended) == 16);
    assert!(offset_of!(LockResponse, dpc_runs) == 24);
    assert!(offset_of!(LockResponse, reserved) == 28);
};

impl LockResponse {
    /// Writes the response into `out`, returning the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] if `out` cannot hold it.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out
            .get_mut(..size_of::<Self>())
            .ok_or(Error::BufferTooSmall)?;
        put_u32(out, offset_of!(Self, version), PROTOCOL_VERSION);
        put_u32(out, offset_of!(Self, lock_kind), self.lock_kind);
        put_u64(out, offset_of!(Self, acquisitions), self.acquisitions);
        put_u64(out, offset_of!(Self, contended), self.contended);
        put_u32(out, offset_of!(Self, dpc_runs), self.dpc_runs);
        put_u32(out, offset_of!(Self, reserved), 0);
        Ok(size_of::<Self>())
    }

    /// Reads a response, for clients.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] or, for another version,
    /// [`Error::InvalidParameter`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < size_of::<Self>() {
            return Err(Error::BufferTooSmall);
        }
        check_version(u32_at(bytes, offset_of!(Self, version)))?;
        Ok(Self {
            version: PROTOCOL_VERSION,
            lock_kind: u32_at(bytes, offset_of!(Self, lock_kind)),
            acquisitions: u64_at(bytes, offset_of!(Self, acquisitions)),
            contended: u64_at(bytes, offset_of!(Self, contended)),
            dpc_runs: u32_at(bytes, offset_of!(Self, dpc_runs)),
            reserved: 0,
        })
    }
}

/// Input of `TIMER_START` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// A [`LockKind`].
    pub lock_kind: u32,
    /// Period of the timer, in milliseconds.
    pub period_ms: u32,
    /// Acquisitions each timer DPC makes.
    pub iterations: u32,
    /// Work units per acquisition.
    pub work: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = {
    assert!(size_of::<TimerRequest>() == 24);
    assert!(offset_of!(TimerRequest, version) == 0);
    assert!(offset_of!(TimerRequest, lock_kind) == 4);
    assert!(offset_of!(TimerRequest, period_ms) == 8);
    assert!(offset_of!(TimerRequest, iterations) == 12);
    assert!(offset_of!(TimerRequest, work) == 16);
    assert!(offset_of!(TimerRequest, reserved) == 20);
};

/// A validated [`TimerRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerWork {
    /// The timer period, in milliseconds.
    pub period_ms: u32,
    /// What each tick does.
    pub tick: LockWork,
}

impl TimerRequest {
    /// The request as bytes, for clients.
    #[must_use]
    pub fn encode(
        lock_kind: LockKind,
        period_ms: u32,
        iterations: u32,
        work: u32,
    ) -> [u8; size_of::<Self>()] {
        let mut out = [0; size_of::<Self>()];
        put_u32(&mut out, offset_of!(Self, version), PROTOCOL_VERSION);
        put_u32(&mut out, offset_of!(Self, lock_kind), lock_kind as u32);
        put_u32(&mut out, offset_of!(Self, period_ms), period_ms);
        put_u32(&mut out, offset_of!(Self, iterations), iterations);
        put_u32(&mut out, offset_of!(Self, work), work);
        out
    }
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
    /// Burst DPC routines run since the last reset (one per processor per burst).
    pub burst_dpc_runs: u64,
    /// One per [`LockKind`], in [`LockKind::ALL`] order.
    pub ledgers: [LedgerStats; 3],
    /// The validator's report.
    pub validator: ValidatorStats,
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
    assert!(size_of::<Stats>() == 40 + 3 * 376 + 72);
};

/// Writes little-endian fields in struct order.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put32(&mut self, v: u32) {
        put_u32(self.out, self.at, v);
        self.at += 4;
    }
    fn put64(&mut self, v: u64) {
        put_u64(self.out, self.at, v);
        self.at += 8;
    }
}

/// Reads little-endian fields in struct order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn get32(&mut self) -> u32 {
        self.at += 4;
        u32_at(self.bytes, self.at - 4)
    }
    fn get64(&mut self) -> u64 {
        self.at += 8;
        u64_at(self.bytes, self.at - 8)
    }
}

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
        Ok(stats)
    }
}

/// Output of `GET_HEALTH` (72 bytes): the driver's own counters, kept
/// driver-wide with interlocked operations. A quiet device answers with
/// `irps_in_flight` and `remove_lock_references` at 1 (the `GET_HEALTH`
/// request itself); a driver whose last device was removed has every
/// `*_in_flight`/`*_references`/`*_armed`/`*_live` counter at 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Zero.
    pub reserved: u32,
    /// IRPs inside the driver's dispatch routines now, this one included.
    pub irps_in_flight: u64,
    /// Remove-lock acquisitions not yet released, this request's included.
    pub remove_lock_references: u64,
    /// Periodic timers armed (one per device at most).
    pub timers_armed: u64,
    /// Heap allocations made through the driver's allocator and not freed.
    pub allocations_live: u64,
    /// Bytes of those allocations.
    pub allocated_bytes_live: u64,
    /// Allocations made since the driver loaded.
    pub allocations_total: u64,
    /// IRPs dispatched since the driver loaded, this one included.
    pub irps_total: u64,
    /// Device objects the driver has (created in AddDevice, deleted at
    /// `IRP_MN_REMOVE_DEVICE`).
    pub devices: u64,
}

const _: () = {
    assert!(size_of::<Health>() == 72);
    assert!(offset_of!(Health, version) == 0);
    assert!(offset_of!(Health, reserved) == 4);
    assert!(offset_of!(Health, irps_in_flight) == 8);
    assert!(offset_of!(Health, remove_lock_references) == 16);
    assert!(offset_of!(Health, timers_armed) == 24);
    assert!(offset_of!(Health, allocations_live) == 32);
    assert!(offset_of!(Health, allocated_bytes_live) == 40);
    assert!(offset_of!(Health, allocations_total) == 48);
    assert!(offset_of!(Health, irps_total) == 56);
    assert!(offset_of!(Health, devices) == 64);
};

impl Health {
    /// Writes the counters into `out`, returning the bytes written.
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
        w.put32(0);
        for v in [
            self.irps_in_flight,
            self.remove_lock_references,
            self.timers_armed,
            self.allocations_live,
            self.allocated_bytes_live,
            self.allocations_total,
            self.irps_total,
            self.devices,
        ] {
            w.put64(v);
        }
        debug_assert_eq!(w.at, size_of::<Self>());
        Ok(size_of::<Self>())
    }

    /// Reads the counters, for clients.
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
        let _reserved = r.get32();
        Ok(Self {
            version: PROTOCOL_VERSION,
            reserved: 0,
            irps_in_flight: r.get64(),
            remove_lock_references: r.get64(),
            timers_armed: r.get64(),
            allocations_live: r.get64(),
            allocated_bytes_live: r.get64(),
            allocations_total: r.get64(),
            irps_total: r.get64(),
            devices: r.get64(),
        })
    }
}

/// A request, validated: what the driver acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `NOOP`.
    Noop,
    /// `LOCK_PASSIVE`.
    LockPassive(LockWork),
    /// `LOCK_DISPATCH`.
    LockDispatch(LockWork),
    /// `DPC_BURST`.
    DpcBurst(LockWork),
    /// `TIMER_START`.
    TimerStart(TimerWork),
    /// `TIMER_STOP`.
    TimerStop,
    /// `GET_STATS`.
    GetStats,
    /// `RESET`.
    Reset,
    /// `GET_HEALTH`.
    GetHealth,
}

impl Request {
    /// Bytes of output buffer this request needs.
    #[must_use]
    pub const fn output_len(&self) -> usize {
        match self {
            Self::LockPassive(_) | Self::LockDispatch(_) | Self::DpcBurst(_) => {
                size_of::<LockResponse>()
            }
            Self::GetStats => size_of::<Stats>(),
            Self::GetHealth => size_of::<Health>(),
            Self::Noop | Self::TimerStart(_) | Self::TimerStop | Self::Reset => 0,
        }
    }
}

/// `LOCK_PASSIVE`'s input.
///
/// # Errors
///
/// As described in the crate documentation.
pub fn parse_lock_passive(input: &[u8], policy: Policy) -> Result<LockWork, Error> {
    LockRequest::parse(input, limits::MAX_PASSIVE_ITERATIONS, policy)
}

/// `LOCK_DISPATCH`'s input.
///
/// # Errors
///
/// As described in the crate documentation.
pub fn parse_lock_dispatch(input: &[u8], policy: Policy) -> Result<LockWork, Error> {
    LockRequest::parse(input, limits::MAX_DISPATCH_ITERATIONS, policy)
}

/// `DPC_BURST`'s input.
///
/// # Errors
///
/// As described in the crate documentation.
pub fn parse_dpc_burst(input: &[u8], policy: Policy) -> Result<LockWork, Error> {
    LockRequest::parse(input, limits::MAX_BURST_ITERATIONS, policy)
}

/// `TIMER_START`'s input.
///
/// # Errors
///
/// As described in the crate documentation.
pub fn parse_timer_start(input: &[u8], policy: Policy) -> Result<TimerWork, Error> {
    if input.len() < size_of::<TimerRequest>() {
        return Err(Error::BufferTooSmall);
    }
    // Fields in offset order: the first bad one decides the status.
    check_version(u32_at(input, offset_of!(TimerRequest, version)))?;
    let lock_kind = check_lock_kind(u32_at(input, offset_of!(TimerRequest, lock_kind)), policy)?;
    let period_ms = check_range(
        u32_at(input, offset_of!(TimerRequest, period_ms)),
        limits::MIN_TIMER_PERIOD_MS,
        limits::MAX_TIMER_PERIOD_MS,
    )?;
    let iterations = check_range(
        u32_at(input, offset_of!(TimerRequest, iterations)),
        1,
        limits::MAX_TIMER_ITERATIONS,
    )?;
    let work = check_range(
        u32_at(input, offset_of!(TimerRequest, work)),
        0,
        limits::MAX_WORK,
    )?;
    if u32_at(input, offset_of!(TimerRequest, reserved)) != 0 {
        return Err(Error::InvalidParameter);
    }
    Ok(TimerWork {
        period_ms,
        tick: LockWork {
            lock_kind,
            iterations,
            work,
        },
    })
}

/// The most `NOOP` writes: the size of a [`LockResponse`].
pub const NOOP_MAX_OUTPUT: usize = size_of::<LockResponse>();

/// `NOOP`'s reply: zeroes the first `min(output.len(), NOOP_MAX_OUTPUT)`
/// bytes of `output` and returns that count.
///
/// Returning as many bytes as a lock IOCTL does makes `NOOP` a baseline
/// that differs from `LOCK_PASSIVE` only by the lock: the I/O path's cost
/// depends on how much output comes back (in Wine, markedly).
pub fn noop_reply(output: &mut [u8]) -> usize {
    let written = output.len().min(NOOP_MAX_OUTPUT);
    output[..written].fill(0);
    written
}

/// Validates any request: the code, the input (length, then each field in
/// offset order) and the output buffer size, in that order; the first
/// failure decides the status. The driver calls this before doing anything
/// else with an IRP, with the [`Policy`] it read at load.
///
/// # Errors
///
/// [`Error::InvalidDeviceRequest`] for an unknown code, otherwise as
/// described in the crate documentation (input problems before a short
/// output buffer).
pub fn parse(code: u32, input: &[u8], output_len: usize, policy: Policy) -> Result<Request, Error> {
    let request = match code {
        IOCTL_DPCLOCK_NOOP => Request::Noop,
        IOCTL_DPCLOCK_LOCK_PASSIVE => Request::LockPassive(parse_lock_passive(input, policy)?),
        IOCTL_DPCLOCK_LOCK_DISPATCH => Request::LockDispatch(parse_lock_dispatch(input, policy)?),
        IOCTL_DPCLOCK_DPC_BURST => Request::DpcBurst(parse_dpc_burst(input, policy)?),
        IOCTL_DPCLOCK_TIMER_START => Request::TimerStart(parse_timer_start(input, policy)?),
        IOCTL_DPCLOCK_TIMER_STOP => Request::TimerStop,
        IOCTL_DPCLOCK_GET_STATS => Request::GetStats,
        IOCTL_DPCLOCK_RESET => Request::Reset,
        IOCTL_DPCLOCK_GET_HEALTH => Request::GetHealth,
        _ => return Err(Error::InvalidDeviceRequest),
    };
    if output_len < request.output_len() {
        return Err(Error::BufferTooSmall);
    }
    Ok(request)
}

pub mod spec;

#[cfg(test)]
mod tests;
