//! Why a request is refused, and the NTSTATUS that says so
//! (docs/protocol.md, "Statuses").

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
/// `STATUS_CANCELLED`: the request was cancelled (`CancelIoEx`, or its
/// thread ended) while it ran; it stopped between two chunks.
pub const STATUS_CANCELLED: i32 = 0xC000_0120_u32.cast_signed();

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
