//! How a client finds the device and names each request: docs/protocol.md's
//! "Finding and opening the device" and "Codes".

/// The device interface the driver registers; clients find the device with
/// `SetupDiGetClassDevs(&GUID_DEVINTERFACE_DPCLOCK, …, DIGCF_PRESENT | DIGCF_DEVICEINTERFACE)`.
/// `{488E151D-6911-4DB2-80EB-B1D6EB102E4C}`
pub const GUID_DEVINTERFACE_DPCLOCK: Guid = Guid::new(
    0x488e_151d,
    0x6911,
    0x4db2,
    [0x80, 0xeb, 0xb1, 0xd6, 0xeb, 0x10, 0x2e, 0x4c],
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
/// (one KDPC per processor, in rounds), each making `iterations`
/// acquisitions.
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
