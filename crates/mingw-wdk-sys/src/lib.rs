//! Kernel bindings for the Linux flavor of dpclock, generated from mingw-w64's
//! DDK headers and laid out like `wdk-sys` 0.5: types and constants at the
//! crate root, functions in [`ntddk`], `STATUS_*` as typed [`NTSTATUS`]
//! constants.
//!
//! The driver imports this crate under the name `wdk_sys` when it is built on
//! Linux, so one driver source compiles against either. Only what the two
//! header sets share is portable; `docs/windows-fidelity.md` lists every item
//! the driver uses with the evidence that wdk-sys has it under the same name.

#![no_std]
// The bindings are bindgen's output; its unsafe blocks carry no SAFETY notes.
#![allow(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    unsafe_op_in_unsafe_fn,
    unnecessary_transmutes
)]

/// C types of the LLP64 Windows ABI, whatever the host the crate is built for.
pub mod ctypes {
    pub type c_char = i8;
    pub type c_schar = i8;
    pub type c_uchar = u8;
    pub type c_short = i16;
    pub type c_ushort = u16;
    pub type c_int = i32;
    pub type c_uint = u32;
    pub type c_long = i32;
    pub type c_ulong = u32;
    pub type c_longlong = i64;
    pub type c_ulonglong = u64;
    pub type c_float = f32;
    pub type c_double = f64;
    pub type c_void = core::ffi::c_void;
}

include!(concat!(env!("OUT_DIR"), "/types.rs"));
include!(concat!(env!("OUT_DIR"), "/status.rs"));

/// Functions exported by ntoskrnl.exe and HAL.dll, as in `wdk_sys::ntddk`.
pub mod ntddk {
    #[allow(clippy::wildcard_imports)]
    use crate::*;
    include!(concat!(env!("OUT_DIR"), "/ntddk.rs"));
}

/// `NT_SUCCESS` from ntdef.h, as wdk-sys provides it.
#[must_use]
pub const fn NT_SUCCESS(status: NTSTATUS) -> bool {
    status >= 0
}

// LLVM references `_fltused` whenever floating point types appear, even with
// soft-float kernel code; wdk-sys defines it the same way.
#[unsafe(no_mangle)]
pub static _fltused: () = ();

// compiler_builtins' bundled libm references `fma` and `fmaf`, which an MSVC
// target expects from the C runtime, and a driver links no C runtime. Nothing
// in a driver calls them (kernel code may not touch the FPU without saving
// its state first); they exist so that lld-link can resolve unoptimized
// builds, and reaching one bugchecks instead of computing a wrong answer.
#[cfg(target_os = "windows")]
mod crt_float_stubs {
    /// Bugcheck code for "a C runtime float routine was called": `FPCR`.
    const FLOAT_ROUTINE_CALLED: u32 = u32::from_be_bytes(*b"FPCR");

    #[unsafe(no_mangle)]
    extern "C" fn fma(_x: f64, _y: f64, _z: f64) -> f64 {
        // SAFETY: KeBugCheckEx takes plain values and does not return.
        unsafe { crate::ntddk::KeBugCheckEx(FLOAT_ROUTINE_CALLED, 0, 0, 0, 0) }
    }

    #[unsafe(no_mangle)]
    extern "C" fn fmaf(_x: f32, _y: f32, _z: f32) -> f32 {
        // SAFETY: as above.
        unsafe { crate::ntddk::KeBugCheckEx(FLOAT_ROUTINE_CALLED, 1, 0, 0, 0) }
    }
}
