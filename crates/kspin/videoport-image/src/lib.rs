//! A video miniport's use of kspin's video port locks: the shape
//! `cargo xtask check-windows` links for x86_64 and aarch64 to show that the
//! video port family compiles to imports of exactly videoprt.sys's
//! documented spin-lock routines, with the calling convention `video.h`
//! declares (`NTAPI`).
//!
//! A miniport does not own its device extension: videoprt.sys allocates it
//! (`HwDeviceExtensionSize`) and passes it to every callback. The lock lives
//! in it, created at `PASSIVE_LEVEL` in `HwVidFindAdapter`, taken with the
//! raising scope from `HwVidStartIO`, and with the `AtDpcLevel` guard from
//! the DPC routine the miniport queues with `VideoPortQueueDpc`, which
//! videoprt.sys calls at `DISPATCH_LEVEL`.
//!
//! The image is linked, never loaded: `DriverEntry` would call
//! `VideoPortInitialize` with these callbacks, which would add a fourth kind
//! of import to the check; here it only keeps them in the image.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::{ffi::c_void, ptr};

use kspin::{
    LockClass, assume_dispatch_level,
    kernel::{Kernel, VideoPort},
};

/// What the queue lock protects: requests started and completed.
#[derive(Debug, Default)]
pub struct Queue {
    started: u32,
    completed: u32,
}

type QueueLock = kspin::Lock<Queue, VideoPort>;

static QUEUE: LockClass = LockClass::new("miniport.queue");

/// The miniport's device extension (`HwDeviceExtension`), laid out by the
/// miniport and allocated by videoprt.sys.
#[repr(C)]
pub struct DeviceExtension {
    queue: Option<QueueLock>,
}

const NO_ERROR: u32 = 0;
const ERROR_INVALID_PARAMETER: u32 = 87;
const ERROR_NOT_ENOUGH_MEMORY: u32 = 8;

/// `HwVidFindAdapter`, at `PASSIVE_LEVEL`: creates the queue lock.
///
/// # Safety
///
/// `extension` is the miniport's device extension, as videoprt.sys passes
/// it, not yet initialized.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HwVidFindAdapter(
    extension: *mut DeviceExtension,
    _hw_context: *mut c_void,
    _argument: *mut u16,
    config_info: *mut c_void,
    _again: *mut u8,
) -> u32 {
    // SAFETY: the extension is ours to initialize (caller); nothing reads it
    // before this write.
    unsafe { ptr::write(extension, DeviceExtension { queue: None }) };
    // SAFETY: the device extension outlives the lock, which lives in it; at
    // PASSIVE_LEVEL (HwVidFindAdapter's IRQL).
    let created = unsafe { QueueLock::create(extension.cast(), Queue::default(), &QUEUE) };
    let Ok(lock) = created else {
        return ERROR_NOT_ENOUGH_MEMORY;
    };
    // SAFETY: initialized above; videoprt.sys serializes HwVidFindAdapter
    // with every other callback.
    let queue = unsafe { &mut (*extension).queue };
    *queue = Some(lock);
    if config_info.is_null() {
        // The error path gives the lock back (VideoPortDeleteSpinLock).
        *queue = None;
        return ERROR_INVALID_PARAMETER;
    }
    NO_ERROR
}

/// `HwVidStartIO`, at `PASSIVE_LEVEL`: the raising scope
/// (`VideoPortAcquireSpinLock` / `VideoPortReleaseSpinLock`).
///
/// # Safety
///
/// `extension` was initialized by [`HwVidFindAdapter`].
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HwVidStartIO(
    extension: *const DeviceExtension,
    _request: *mut c_void,
) -> u8 {
    // SAFETY: initialized (caller) and shared: the lock is the only part
    // callbacks touch concurrently.
    let Some(queue) = (unsafe { &(*extension).queue }) else {
        return 0;
    };
    queue.with(|queue| queue.started = queue.started.wrapping_add(1));
    1
}

/// The DPC routine the miniport queues with `VideoPortQueueDpc`
/// (`PMINIPORT_DPC_ROUTINE`): the `AtDpcLevel` guard
/// (`VideoPortAcquireSpinLockAtDpcLevel` /
/// `VideoPortReleaseSpinLockFromDpcLevel`).
///
/// # Safety
///
/// Called by videoprt.sys at `DISPATCH_LEVEL` with the extension
/// [`HwVidFindAdapter`] initialized.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HwVidDpc(extension: *const DeviceExtension, _context: *mut c_void) {
    // SAFETY: as in HwVidStartIO.
    let Some(queue) = (unsafe { &(*extension).queue }) else {
        return;
    };
    // SAFETY: videoprt.sys runs a miniport DPC routine at DISPATCH_LEVEL,
    // for the whole call (caller).
    unsafe {
        assume_dispatch_level::<Kernel, _>(|at| {
            let mut guard = queue.lock_at_dpc_level(at);
            guard.completed = guard.completed.wrapping_add(1);
        });
    }
}

/// The image's entry, where a miniport calls `VideoPortInitialize` with
/// [`HwVidFindAdapter`] and [`HwVidStartIO`]; never run (see the crate
/// documentation).
///
/// # Safety
///
/// Called by the I/O manager, as any `DriverEntry`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(_driver: *mut c_void, _registry: *mut c_void) -> i32 {
    const STATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
    STATUS_NOT_SUPPORTED
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // No panic is reachable in this image; a kernel image has no unwinding.
    loop {
        core::hint::spin_loop();
    }
}
