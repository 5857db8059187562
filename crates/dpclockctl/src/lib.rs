//! dpclockctl: installs dpclock.sys, drives it with IOCTLs and DPCs,
//! verifies its ledgers and reports contention.
//!
//! The logic (stress runs, verification, reports, fuzz cases) is plain Rust
//! over the [`device::Device`] trait and is tested on any host; the Win32
//! layer (`win`) exists on Windows, which includes Wine.

pub mod bench;
pub mod check;
pub mod device;
pub mod fuzz;
pub mod protocol_doc;
pub mod report;
pub mod soak;
pub mod stress;
pub mod verify;
#[cfg(windows)]
pub mod win;
