//! What a client sends, and how the driver checks it: docs/protocol.md's
//! "Order of checks", "Request structs" and "The unlocked control".

use core::mem::{offset_of, size_of};

use crate::wire::{check_version, put_u32, u32_at};
use crate::{
    Error, Health, IOCTL_DPCLOCK_DPC_BURST, IOCTL_DPCLOCK_GET_HEALTH, IOCTL_DPCLOCK_GET_STATS,
    IOCTL_DPCLOCK_LOCK_DISPATCH, IOCTL_DPCLOCK_LOCK_PASSIVE, IOCTL_DPCLOCK_NOOP,
    IOCTL_DPCLOCK_RESET, IOCTL_DPCLOCK_TIMER_START, IOCTL_DPCLOCK_TIMER_STOP, LockResponse,
    PROTOCOL_VERSION, Stats, limits,
};

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
    // Then the tick's cost, from the fields together: one tick is one DPC
    // run, and must fit its budget.
    if !limits::timer_tick_fits(iterations, work) {
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
