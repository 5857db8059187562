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
//!
//! Each part of the protocol has its file, to be read beside its section of
//! docs/protocol.md; everything is re-exported here:
//!
//! | File | docs/protocol.md |
//! |---|---|
//! | `codes.rs` | Finding and opening the device; Codes |
//! | `limits.rs` | Limits |
//! | `requests.rs` | Order of checks; Request structs; The unlocked control |
//! | `replies.rs` | Response structs: `LockResponse`, `Health` |
//! | `stats.rs` | `Stats` and its parts; Verifying a ledger |
//! | `errors.rs` | Statuses |
//! | `wire.rs` | Conventions (little-endian fields at fixed offsets) |

#![no_std]
#![forbid(unsafe_code)]

mod codes;
mod errors;
pub mod limits;
mod replies;
mod requests;
mod stats;
mod wire;

pub use codes::*;
pub use errors::*;
pub use replies::*;
pub use requests::*;
pub use stats::*;

/// The protocol version every request and response carries.
pub const PROTOCOL_VERSION: u32 = 3;

pub mod spec;

#[cfg(test)]
mod tests;
