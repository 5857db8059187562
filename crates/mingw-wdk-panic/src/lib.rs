//! The Linux flavor's stand-in for `wdk-panic`: a panic handler that prints
//! where the panic happened and bugchecks with wdk-panic's code (`RPNC`).
//! Under Wine, `KeBugCheckEx` ends the driver host process, so a panicking
//! driver fails its test at once instead of hanging it.
//!
//! Like `wdk-panic`, link it with `extern crate` outside test builds only.

#![no_std]

#[cfg(not(test))]
use mingw_wdk_sys::ntddk::{DbgPrint, KeBugCheckEx};

/// wdk-panic's bugcheck code, `RPNC`.
#[cfg(not(test))]
const RUST_PANIC_BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"RPNC");

// Not in this crate's own test build, where std provides the handler.
#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let (file, line, column) = info
        .location()
        .map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    // SAFETY: `%.*s` reads exactly `file.len()` bytes of `file`.
    unsafe {
        DbgPrint(
            c"dpclock: Rust panic at %.*s:%u:%u\n".as_ptr(),
            file.len() as core::ffi::c_int,
            file.as_ptr(),
            line,
            column,
        );
    }
    // SAFETY: KeBugCheckEx never returns; the arguments are plain values.
    unsafe {
        KeBugCheckEx(
            RUST_PANIC_BUGCHECK_CODE,
            file.as_ptr() as u64,
            file.len() as u64,
            u64::from(line),
            u64::from(column),
        )
    }
}
