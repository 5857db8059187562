//! What a video miniport does with kspin's video port family, reduced to
//! the calls: a lock created in the miniport's context (its
//! `HwDeviceExtension`), taken with the raising scope and with the
//! `AtDpcLevel` guard from a DPC-level scope, then deleted. `cargo xtask
//! check-windows` links this, for x86_64 and aarch64, against an import
//! library of videoprt.sys's documented spin-lock exports, and checks that
//! the image imports exactly those names, undecorated as video.h's `NTAPI`
//! declarations are on those architectures. It is never run: a real
//! miniport's `DriverEntry` calls `VideoPortInitialize`, and videoprt.sys
//! calls back with the device extension.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::c_void;

use kspin::{LockClass, kernel::VideoPortSpinLock};

/// kspin's declarations of the video port spin-lock routines have the
/// types of video.h's prototypes (`VPAPI VP_STATUS NTAPI …`; `NTAPI` is
/// `__stdcall`, Rust's `"system"`): a mismatch stops this crate compiling.
const _: () = {
    use kspin::kernel::ffi;
    type Extension = *mut c_void;
    type SpinLock = *mut c_void;
    let _: unsafe extern "system" fn(Extension, *mut SpinLock) -> i32 =
        ffi::VideoPortCreateSpinLock;
    let _: unsafe extern "system" fn(Extension, SpinLock) -> i32 = ffi::VideoPortDeleteSpinLock;
    let _: unsafe extern "system" fn(Extension, SpinLock, *mut u8) = ffi::VideoPortAcquireSpinLock;
    let _: unsafe extern "system" fn(Extension, SpinLock, u8) = ffi::VideoPortReleaseSpinLock;
    let _: unsafe extern "system" fn(Extension, SpinLock) = ffi::VideoPortAcquireSpinLockAtDpcLevel;
    let _: unsafe extern "system" fn(Extension, SpinLock) =
        ffi::VideoPortReleaseSpinLockFromDpcLevel;
};

static STATE_CLASS: LockClass = LockClass::new("probe.miniport-state");

/// The miniport's state behind the lock.
struct State {
    interrupts: u64,
    vsyncs: u64,
}

/// The calls a miniport makes on its lock, from `HwFindAdapter` (where it
/// owns the device extension, at `PASSIVE_LEVEL`) on.
///
/// # Safety
///
/// `hw_device_extension` is the miniport's device extension, and the caller
/// runs at `PASSIVE_LEVEL`.
unsafe fn use_the_lock(hw_device_extension: *mut c_void) -> i32 {
    let state = State {
        interrupts: 0,
        vsyncs: 0,
    };
    // SAFETY: the miniport's extension, which outlives this frame's lock;
    // PASSIVE_LEVEL (caller).
    let lock = match unsafe { VideoPortSpinLock::create(hw_device_extension, state, &STATE_CLASS) }
    {
        Ok(lock) => lock,
        Err(status) => return status,
    };
    // VideoPortAcquireSpinLock … VideoPortReleaseSpinLock(old).
    lock.with(|state| state.interrupts += 1);
    // A DPC-level scope: VideoPortAcquireSpinLockAtDpcLevel …
    // VideoPortReleaseSpinLockFromDpcLevel.
    kspin::kernel::at_dispatch_level(|at| lock.lock_at_dpc_level(at).vsyncs += 1);
    let total = lock.with(|state| state.interrupts + state.vsyncs);
    i32::from(total != 2)
} // VideoPortDeleteSpinLock

/// The image's entry point. A miniport's would call `VideoPortInitialize`;
/// this one hands its first argument on as the device extension, so that
/// the lock code is linked in and nothing is dead.
///
/// # Safety
///
/// Never called: the image is linked and inspected, not loaded.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    hw_device_extension: *mut c_void,
    _registry_path: *mut c_void,
) -> i32 {
    // SAFETY: never run (see above).
    unsafe { use_the_lock(hw_device_extension) }
}

// Two symbols every windows-drivers-rs driver gets from wdk-sys, defined
// here for the same reasons: LLVM references `_fltused` whenever it sees
// floating-point types, and rustup's prebuilt `core` (built to unwind)
// names `__CxxFrameHandler3` in its unwind tables, which an image built
// with `panic = "abort"` never uses.
#[unsafe(no_mangle)]
#[used]
static _fltused: i32 = 0;

/// Never called (see above).
#[unsafe(no_mangle)]
pub extern "system" fn __CxxFrameHandler3() -> i32 {
    0
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
