//! The device as the harness sees it: IOCTLs in, an NTSTATUS and a byte
//! count out. The Windows implementation is in `win::device`; everything
//! built on this trait is ordinary, host-testable Rust.

use std::fmt;

use dpclock_ioctl::{
    Health, IOCTL_DPCLOCK_GET_HEALTH, IOCTL_DPCLOCK_GET_STATS, IOCTL_DPCLOCK_NOOP,
    IOCTL_DPCLOCK_RESET, IOCTL_DPCLOCK_TIMER_START, IOCTL_DPCLOCK_TIMER_STOP, LockKind,
    LockRequest, LockResponse, Stats, TimerRequest,
};

/// What one IOCTL returned: the NTSTATUS the driver (or the I/O manager)
/// completed it with, and `IoStatus.Information`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoResult {
    /// The NTSTATUS.
    pub status: i32,
    /// Bytes returned.
    pub information: usize,
}

/// An open dpclock device.
pub trait Device: Sync {
    /// One `METHOD_BUFFERED` IOCTL with ordinary buffers.
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> IoResult;

    /// One IOCTL with raw buffer pointers, for fuzzing the I/O manager's and
    /// the driver's handling of null, misaligned and odd-sized buffers.
    ///
    /// # Safety
    ///
    /// Each non-null pointer must be valid for its length.
    unsafe fn ioctl_raw(
        &self,
        code: u32,
        input: *const u8,
        input_len: u32,
        output: *mut u8,
        output_len: u32,
    ) -> IoResult;
}

/// An IOCTL that failed, with the NTSTATUS that says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceError {
    /// Which operation.
    pub operation: &'static str,
    /// The NTSTATUS.
    pub status: i32,
}

impl DeviceError {
    /// Whether the status means the device went away (removed or
    /// uninstalled while the harness was using it).
    #[must_use]
    pub fn is_removal(&self) -> bool {
        matches!(
            self.status as u32,
            0xC000_0056 // STATUS_DELETE_PENDING
                | 0xC000_000E // STATUS_NO_SUCH_DEVICE
                | 0xC000_00C0 // STATUS_DEVICE_DOES_NOT_EXIST
                | 0xC000_0008 // STATUS_INVALID_HANDLE
                | 0xC000_0123 // STATUS_FILE_DELETED
                | 0xC000_0128 // STATUS_FILE_CLOSED
                | 0xC000_02B6 // STATUS_DEVICE_REMOVED
        )
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed with {}",
            self.operation,
            status_name(self.status)
        )
    }
}

impl std::error::Error for DeviceError {}

/// An NTSTATUS with its name where the harness knows it.
#[must_use]
pub fn status_name(status: i32) -> String {
    let name = match status as u32 {
        0 => "STATUS_SUCCESS",
        0x8000_0011 => "STATUS_DEVICE_BUSY",
        0xC000_0005 => "STATUS_ACCESS_VIOLATION",
        0xC000_0008 => "STATUS_INVALID_HANDLE",
        0xC000_000D => "STATUS_INVALID_PARAMETER",
        0xC000_000E => "STATUS_NO_SUCH_DEVICE",
        0xC000_0010 => "STATUS_INVALID_DEVICE_REQUEST",
        0xC000_0022 => "STATUS_ACCESS_DENIED",
        0xC000_0023 => "STATUS_BUFFER_TOO_SMALL",
        0xC000_0056 => "STATUS_DELETE_PENDING",
        0xC000_00BB => "STATUS_NOT_SUPPORTED",
        0xC000_00C0 => "STATUS_DEVICE_DOES_NOT_EXIST",
        0xC000_0123 => "STATUS_FILE_DELETED",
        0xC000_0128 => "STATUS_FILE_CLOSED",
        0xC000_02B6 => "STATUS_DEVICE_REMOVED",
        _ => return format!("NTSTATUS {:#010x}", status as u32),
    };
    format!("{name} ({:#010x})", status as u32)
}

fn call(
    device: &dyn Device,
    operation: &'static str,
    code: u32,
    input: &[u8],
    output: &mut [u8],
) -> Result<usize, DeviceError> {
    let result = device.ioctl(code, input, output);
    if result.status < 0 {
        Err(DeviceError {
            operation,
            status: result.status,
        })
    } else {
        Ok(result.information)
    }
}

/// `NOOP`.
///
/// # Errors
///
/// The IOCTL's status if it failed.
pub fn noop(device: &dyn Device) -> Result<(), DeviceError> {
    call(device, "NOOP", IOCTL_DPCLOCK_NOOP, &[], &mut []).map(|_| ())
}

/// `NOOP` carrying a lock IOCTL's traffic: a [`LockRequest`] in, a
/// [`LockResponse`]-sized `output`. Returns the bytes written, which the
/// protocol says are all of `output`, all zero.
///
/// # Errors
///
/// The IOCTL's status if it failed.
pub fn noop_with_lock_traffic(
    device: &dyn Device,
    output: &mut [u8; size_of::<LockResponse>()],
) -> Result<usize, DeviceError> {
    let input = LockRequest::encode(LockKind::Plain, 1, 0);
    call(device, "NOOP", IOCTL_DPCLOCK_NOOP, &input, output)
}

/// `LOCK_PASSIVE`, `LOCK_DISPATCH` or `DPC_BURST` (`code`).
///
/// # Errors
///
/// The IOCTL's status if it failed, or `STATUS_INVALID_PARAMETER` for a
/// response that does not decode.
pub fn lock(
    device: &dyn Device,
    operation: &'static str,
    code: u32,
    kind: LockKind,
    iterations: u32,
    work: u32,
) -> Result<LockResponse, DeviceError> {
    let mut output = [0_u8; size_of::<LockResponse>()];
    let written = call(
        device,
        operation,
        code,
        &LockRequest::encode(kind, iterations, work),
        &mut output,
    )?;
    LockResponse::decode(&output[..written]).map_err(|error| DeviceError {
        operation,
        status: error.ntstatus(),
    })
}

/// `GET_STATS`.
///
/// # Errors
///
/// As for [`lock`].
pub fn stats(device: &dyn Device) -> Result<Stats, DeviceError> {
    let mut output = vec![0_u8; size_of::<Stats>()];
    let written = call(
        device,
        "GET_STATS",
        IOCTL_DPCLOCK_GET_STATS,
        &[],
        &mut output,
    )?;
    Stats::decode(&output[..written]).map_err(|error| DeviceError {
        operation: "GET_STATS",
        status: error.ntstatus(),
    })
}

/// `GET_HEALTH`.
///
/// # Errors
///
/// As for [`lock`].
pub fn health(device: &dyn Device) -> Result<Health, DeviceError> {
    let mut output = [0_u8; size_of::<Health>()];
    let written = call(
        device,
        "GET_HEALTH",
        IOCTL_DPCLOCK_GET_HEALTH,
        &[],
        &mut output,
    )?;
    Health::decode(&output[..written]).map_err(|error| DeviceError {
        operation: "GET_HEALTH",
        status: error.ntstatus(),
    })
}

/// `TIMER_START`.
///
/// # Errors
///
/// The IOCTL's status if it failed.
pub fn timer_start(
    device: &dyn Device,
    kind: LockKind,
    period_ms: u32,
    iterations: u32,
    work: u32,
) -> Result<(), DeviceError> {
    let request = TimerRequest::encode(kind, period_ms, iterations, work);
    call(
        device,
        "TIMER_START",
        IOCTL_DPCLOCK_TIMER_START,
        &request,
        &mut [],
    )
    .map(|_| ())
}

/// `TIMER_STOP`.
///
/// # Errors
///
/// The IOCTL's status if it failed.
pub fn timer_stop(device: &dyn Device) -> Result<(), DeviceError> {
    call(device, "TIMER_STOP", IOCTL_DPCLOCK_TIMER_STOP, &[], &mut []).map(|_| ())
}

/// `RESET`.
///
/// # Errors
///
/// The IOCTL's status if it failed (`STATUS_DEVICE_BUSY` while the timer runs).
pub fn reset(device: &dyn Device) -> Result<(), DeviceError> {
    call(device, "RESET", IOCTL_DPCLOCK_RESET, &[], &mut []).map(|_| ())
}
