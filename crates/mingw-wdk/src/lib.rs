//! The Linux flavor's stand-in for three windows-drivers-rs crates, which
//! cannot be built off Windows:
//!
//! * `wdk`: [`println!`] and [`print!`], through `DbgPrint`, formatted on the
//!   stack (no allocation, so usable at any IRQL `DbgPrint` allows);
//! * `wdk-alloc`: [`WdkAllocator`], over `ExAllocatePoolWithTag` because Wine
//!   8.0 does not export the `ExAllocatePool2` that wdk-alloc calls.
//!
//! (`wdk-panic`'s stand-in is the separate `mingw-wdk-panic` crate, because a
//! panic handler must stay out of test builds.) The driver imports this crate
//! as `wdk` and `wdk_alloc` on Linux.

#![no_std]

use core::{
    alloc::{GlobalAlloc, Layout},
    fmt::{self, Write},
};

use mingw_wdk_sys::{
    _POOL_TYPE::NonPagedPoolNx,
    SIZE_T,
    ntddk::{DbgPrint, ExAllocatePoolWithTag, ExFreePoolWithTag},
};

/// Prints to the kernel debugger, like `wdk::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

/// Prints a line to the kernel debugger, like `wdk::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

/// A 512-byte stack buffer flushed to `DbgPrint` whenever it fills, as wdk's
/// `FlushableFormatBuffer` does.
struct DbgPrintBuffer {
    bytes: [u8; 512],
    len: usize,
}

impl DbgPrintBuffer {
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `%.*s` bounds the read to `len` bytes of `bytes`, which are
        // initialized; `len` is at most 512, so the cast is lossless.
        unsafe {
            DbgPrint(
                c"%.*s".as_ptr(),
                self.len as core::ffi::c_int,
                self.bytes.as_ptr(),
            );
        }
        self.len = 0;
    }
}

impl Write for DbgPrintBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.bytes.len()) {
            if self.len + chunk.len() > self.bytes.len() {
                self.flush();
            }
            self.bytes[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut buffer = DbgPrintBuffer {
        bytes: [0; 512],
        len: 0,
    };
    // Formatting into the buffer cannot fail; a Display impl that errors
    // just truncates the line.
    let _ = buffer.write_fmt(args);
    buffer.flush();
}

/// Pool tag of every allocation, as wdk-alloc uses (`rust`).
const RUST_TAG: u32 = u32::from_ne_bytes(*b"rust");

/// The global allocator of the Linux flavor: non-paged, no-execute pool.
pub struct WdkAllocator;

// SAFETY: ExAllocatePoolWithTag returns memory aligned to at least 16 bytes on
// x64 (MEMORY_ALLOCATION_ALIGNMENT), or null; larger alignments are refused.
unsafe impl GlobalAlloc for WdkAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: plain pool allocation; a null result is passed through.
        unsafe { ExAllocatePoolWithTag(NonPagedPoolNx, layout.size() as SIZE_T, RUST_TAG).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a pointer this allocator returned.
        unsafe { ExFreePoolWithTag(ptr.cast(), RUST_TAG) }
    }
}
