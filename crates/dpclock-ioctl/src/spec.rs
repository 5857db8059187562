//! The protocol as data: every IOCTL, every request field with its rule, and
//! the order in which the driver checks them, as docs/protocol.md prints
//! them. The tables are checked against that document by the crate's
//! `protocol_doc` test, and [`expected`] (a table-driven reading of the
//! document's order of checks) is checked against [`crate::parse`] by the
//! unit tests and the cargo-fuzz target. The harness uses the same oracle
//! for the status every request sent to the real driver must get, and its
//! malformed-request generators build requests from these tables.

use core::mem::size_of;

use crate::{
    ALL_IOCTLS, DEVICE_TYPE, Error, FILE_ANY_ACCESS, FILE_READ_ACCESS, FILE_WRITE_ACCESS, Health,
    LockRequest, LockResponse, METHOD_BUFFERED, NOOP_MAX_OUTPUT, PROTOCOL_VERSION, Policy, Stats,
    TimerRequest, ctl_code, limits,
};

/// How one `u32` request field is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Must be [`PROTOCOL_VERSION`]; otherwise `STATUS_INVALID_PARAMETER`.
    Version,
    /// 0 or 1; 2 only while the unlocked control is enabled (otherwise
    /// `STATUS_NOT_SUPPORTED`); anything else `STATUS_INVALID_PARAMETER`.
    LockKind,
    /// `min..=max`; otherwise `STATUS_INVALID_PARAMETER`.
    Range {
        /// Smallest valid value.
        min: u32,
        /// Largest valid value.
        max: u32,
    },
    /// Must be 0; otherwise `STATUS_INVALID_PARAMETER`.
    Zero,
}

impl Rule {
    /// The status a field with `value` gets under `policy`, or `Ok`.
    ///
    /// # Errors
    ///
    /// The field's error, as described on each variant.
    pub const fn check(self, value: u32, policy: Policy) -> Result<(), Error> {
        let ok = match self {
            Self::Version => value == PROTOCOL_VERSION,
            Self::LockKind => {
                if value == 2 && !policy.unlocked_control {
                    return Err(Error::NotSupported);
                }
                value <= 2
            }
            Self::Range { min, max } => value >= min && value <= max,
            Self::Zero => value == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidParameter)
        }
    }
}

/// One little-endian `u32` field of a request struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its name in docs/protocol.md.
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: usize,
    /// How it is checked.
    pub rule: Rule,
}

/// A request struct, as one IOCTL checks it (the limits of `LockRequest`
/// differ between IOCTLs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    /// The struct's name.
    pub name: &'static str,
    /// Its size: a shorter input buffer is `STATUS_BUFFER_TOO_SMALL`.
    pub size: usize,
    /// Its fields, in offset order (the order they are checked in).
    pub fields: &'static [Field],
    /// The budget the fields must fit together, checked after every field.
    pub budget: Option<Budget>,
}

/// A bound on a request's cost that no single field expresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// `iterations × acquisition_cost(work)` at most
    /// [`limits::TIMER_TICK_BUDGET_NS`] (see [`limits::timer_tick_fits`]):
    /// one tick is one DPC run.
    TimerTick {
        /// Offset of `iterations`.
        iterations: usize,
        /// Offset of `work`.
        work: usize,
    },
}

impl Budget {
    /// Whether a request struct whose fields passed their rules fits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if it does not.
    pub fn check(self, input: &[u8]) -> Result<(), Error> {
        let field = |at: usize| {
            let mut word = [0_u8; 4];
            word.copy_from_slice(&input[at..at + 4]);
            u32::from_le_bytes(word)
        };
        let fits = match self {
            Self::TimerTick { iterations, work } => {
                limits::timer_tick_fits(field(iterations), field(work))
            }
        };
        if fits {
            Ok(())
        } else {
            Err(Error::InvalidParameter)
        }
    }
}

/// What an IOCTL writes to the output buffer on success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Nothing: any output buffer is accepted and left untouched.
    Nothing,
    /// A response struct of this name and size; a shorter output buffer is
    /// `STATUS_BUFFER_TOO_SMALL`, a longer one gets exactly `size` bytes.
    Response {
        /// The struct's name.
        name: &'static str,
        /// Its size.
        size: usize,
    },
    /// Zeros, up to this many bytes (`NOOP`).
    ZerosUpTo(usize),
}

/// One IOCTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ioctl {
    /// `NOOP`, `LOCK_PASSIVE`, …
    pub name: &'static str,
    /// The `Function` of `CTL_CODE`.
    pub function: u32,
    /// The `Access` of `CTL_CODE`.
    pub access: u32,
    /// The code.
    pub code: u32,
    /// The request struct, or `None` if the input is ignored.
    pub input: Option<Input>,
    /// What a success writes.
    pub output: Output,
}

const fn lock_request(fields: &'static [Field; 4]) -> Input {
    Input {
        name: "LockRequest",
        size: size_of::<LockRequest>(),
        fields,
        budget: None,
    }
}

const fn lock_fields(max_iterations: u32) -> [Field; 4] {
    [
        Field {
            name: "version",
            offset: 0,
            rule: Rule::Version,
        },
        Field {
            name: "lock_kind",
            offset: 4,
            rule: Rule::LockKind,
        },
        Field {
            name: "iterations",
            offset: 8,
            rule: Rule::Range {
                min: 1,
                max: max_iterations,
            },
        },
        Field {
            name: "work",
            offset: 12,
            rule: Rule::Range {
                min: 0,
                max: limits::MAX_WORK,
            },
        },
    ]
}

const LOCK_FIELDS_PASSIVE: [Field; 4] = lock_fields(limits::MAX_PASSIVE_ITERATIONS);
const LOCK_FIELDS_DISPATCH: [Field; 4] = lock_fields(limits::MAX_DISPATCH_ITERATIONS);
const LOCK_FIELDS_BURST: [Field; 4] = lock_fields(limits::MAX_BURST_ITERATIONS);

const TIMER_FIELDS: [Field; 6] = [
    Field {
        name: "version",
        offset: 0,
        rule: Rule::Version,
    },
    Field {
        name: "lock_kind",
        offset: 4,
        rule: Rule::LockKind,
    },
    Field {
        name: "period_ms",
        offset: 8,
        rule: Rule::Range {
            min: limits::MIN_TIMER_PERIOD_MS,
            max: limits::MAX_TIMER_PERIOD_MS,
        },
    },
    Field {
        name: "iterations",
        offset: 12,
        rule: Rule::Range {
            min: 1,
            max: limits::MAX_TIMER_ITERATIONS,
        },
    },
    Field {
        name: "work",
        offset: 16,
        rule: Rule::Range {
            min: 0,
            max: limits::MAX_WORK,
        },
    },
    Field {
        name: "reserved",
        offset: 20,
        rule: Rule::Zero,
    },
];

const LOCK_RESPONSE: Output = Output::Response {
    name: "LockResponse",
    size: size_of::<LockResponse>(),
};

const READ_WRITE: u32 = FILE_READ_ACCESS | FILE_WRITE_ACCESS;

const fn ioctl(
    name: &'static str,
    function: u32,
    access: u32,
    input: Option<Input>,
    output: Output,
) -> Ioctl {
    Ioctl {
        name,
        function,
        access,
        code: ctl_code(DEVICE_TYPE, function, METHOD_BUFFERED, access),
        input,
        output,
    }
}

/// Every IOCTL, in the order of docs/protocol.md's table of codes.
pub const IOCTLS: [Ioctl; 9] = [
    ioctl(
        "NOOP",
        0x800,
        FILE_ANY_ACCESS,
        None,
        Output::ZerosUpTo(NOOP_MAX_OUTPUT),
    ),
    ioctl(
        "LOCK_PASSIVE",
        0x801,
        READ_WRITE,
        Some(lock_request(&LOCK_FIELDS_PASSIVE)),
        LOCK_RESPONSE,
    ),
    ioctl(
        "LOCK_DISPATCH",
        0x802,
        READ_WRITE,
        Some(lock_request(&LOCK_FIELDS_DISPATCH)),
        LOCK_RESPONSE,
    ),
    ioctl(
        "DPC_BURST",
        0x803,
        READ_WRITE,
        Some(lock_request(&LOCK_FIELDS_BURST)),
        LOCK_RESPONSE,
    ),
    ioctl(
        "TIMER_START",
        0x804,
        READ_WRITE,
        Some(Input {
            name: "TimerRequest",
            size: size_of::<TimerRequest>(),
            fields: &TIMER_FIELDS,
            budget: Some(Budget::TimerTick {
                iterations: 12,
                work: 16,
            }),
        }),
        Output::Nothing,
    ),
    ioctl("TIMER_STOP", 0x805, READ_WRITE, None, Output::Nothing),
    ioctl(
        "GET_STATS",
        0x806,
        FILE_READ_ACCESS,
        None,
        Output::Response {
            name: "Stats",
            size: size_of::<Stats>(),
        },
    ),
    ioctl("RESET", 0x807, READ_WRITE, None, Output::Nothing),
    ioctl(
        "GET_HEALTH",
        0x808,
        FILE_READ_ACCESS,
        None,
        Output::Response {
            name: "Health",
            size: size_of::<Health>(),
        },
    ),
];

// The table and the crate's constants name the same codes.
const _: () = {
    let codes = ALL_IOCTLS;
    assert!(IOCTLS.len() == codes.len());
    let mut i = 0;
    while i < codes.len() {
        assert!(IOCTLS[i].code == codes[i]);
        i += 1;
    }
};

/// The IOCTL with this code, if dpclock defines it.
#[must_use]
pub fn ioctl_by_code(code: u32) -> Option<&'static Ioctl> {
    IOCTLS.iter().find(|i| i.code == code)
}

/// The IOCTL with this name, if dpclock defines it.
#[must_use]
pub fn ioctl_by_name(name: &str) -> Option<&'static Ioctl> {
    IOCTLS.iter().find(|i| i.name == name)
}

/// Every NTSTATUS the driver completes a request with, and its Win32 error
/// (what `DeviceIoControl`'s `GetLastError` gives): name, NTSTATUS, Win32
/// error code, Win32 error name.
pub const STATUSES: [(&str, u32, u32, &str); 8] = [
    ("STATUS_SUCCESS", 0x0000_0000, 0, "ERROR_SUCCESS"),
    (
        "STATUS_INVALID_DEVICE_REQUEST",
        0xC000_0010,
        1,
        "ERROR_INVALID_FUNCTION",
    ),
    (
        "STATUS_BUFFER_TOO_SMALL",
        0xC000_0023,
        122,
        "ERROR_INSUFFICIENT_BUFFER",
    ),
    (
        "STATUS_INVALID_PARAMETER",
        0xC000_000D,
        87,
        "ERROR_INVALID_PARAMETER",
    ),
    (
        "STATUS_NOT_SUPPORTED",
        0xC000_00BB,
        50,
        "ERROR_NOT_SUPPORTED",
    ),
    ("STATUS_DEVICE_BUSY", 0x8000_0011, 170, "ERROR_BUSY"),
    (
        "STATUS_DELETE_PENDING",
        0xC000_0056,
        5,
        "ERROR_ACCESS_DENIED",
    ),
    (
        "STATUS_CANCELLED",
        0xC000_0120,
        995,
        "ERROR_OPERATION_ABORTED",
    ),
];

/// The status a request must get by the document's order of checks, before
/// the driver's state is consulted: `Ok(n)` if it passes every check and a
/// success writes `n` output bytes, or the error that decides its status.
///
/// 1. The code: not one of [`IOCTLS`] → `STATUS_INVALID_DEVICE_REQUEST`.
/// 2. The input, if the IOCTL takes a struct: shorter than the struct →
///    `STATUS_BUFFER_TOO_SMALL`; then each field in offset order, the first
///    that breaks its [`Rule`] deciding; then the struct's [`Budget`].
/// 3. The output: shorter than the IOCTL's response struct →
///    `STATUS_BUFFER_TOO_SMALL`.
///
/// What remains is state: `RESET` while the timer runs is
/// `STATUS_DEVICE_BUSY`, and every other request that passes succeeds.
///
/// # Errors
///
/// The [`Error`] whose status the request must get.
pub fn expected(
    code: u32,
    input: &[u8],
    output_len: usize,
    policy: Policy,
) -> Result<usize, Error> {
    let ioctl = ioctl_by_code(code).ok_or(Error::InvalidDeviceRequest)?;
    if let Some(request) = ioctl.input {
        if input.len() < request.size {
            return Err(Error::BufferTooSmall);
        }
        for field in request.fields {
            let mut word = [0_u8; 4];
            word.copy_from_slice(&input[field.offset..field.offset + 4]);
            field.rule.check(u32::from_le_bytes(word), policy)?;
        }
        if let Some(budget) = request.budget {
            budget.check(input)?;
        }
    }
    match ioctl.output {
        Output::Nothing => Ok(0),
        Output::ZerosUpTo(most) => Ok(output_len.min(most)),
        Output::Response { size, .. } if output_len < size => Err(Error::BufferTooSmall),
        Output::Response { size, .. } => Ok(size),
    }
}
