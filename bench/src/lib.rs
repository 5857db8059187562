//! Pairs of functions that do the same thing, once with the raw kernel calls
//! and once with kspin's guards. `cargo xtask bench` compiles this crate for
//! `x86_64-pc-windows-msvc` in release (feature `codegen`, and again with
//! `checked`), disassembles the object, and compares the instruction count
//! of each pair: with the validator off, a guard should cost nothing.
//! The pairs are `raw_<name>` and `guard_<name>`; xtask's `PAIRS` lists them.
//!
//! Every function takes its lock and data by reference and adds one to the
//! data under the lock, so that both versions touch the same memory.

#![no_std]
#![cfg(feature = "codegen")]
#![allow(clippy::missing_safety_doc)]

use core::{cell::UnsafeCell, pin::pin, sync::atomic::AtomicUsize};

use kspin::kernel::{DispatchLevel, LockQueueHandle, QueuedSpinLock, SpinLock, ffi};

/// What the raw versions lock: a `KSPIN_LOCK` and a `u64`, like the guards' `Lock<u64, _>`.
#[repr(C)]
pub struct RawLock {
    lock: AtomicUsize,
    data: UnsafeCell<u64>,
}

// SAFETY: every caller holds the lock around data accesses.
unsafe impl Sync for RawLock {}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_raising(lock: &RawLock) {
    // SAFETY: a valid lock; the data is touched only while it is held.
    unsafe {
        let old = ffi::KeAcquireSpinLockRaiseToDpc(lock.lock.as_ptr());
        *lock.data.get() += 1;
        ffi::KeReleaseSpinLock(lock.lock.as_ptr(), old);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_raising(lock: &SpinLock<u64>) {
    *lock.lock() += 1;
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_at_dpc_level(lock: &RawLock) {
    // SAFETY: as above; the caller runs at DISPATCH_LEVEL.
    unsafe {
        ffi::KeAcquireSpinLockAtDpcLevel(lock.lock.as_ptr());
        *lock.data.get() += 1;
        ffi::KeReleaseSpinLockFromDpcLevel(lock.lock.as_ptr());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_at_dpc_level(lock: &SpinLock<u64>, at: &DispatchLevel) {
    *lock.lock_at_dpc_level(at) += 1;
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_queued(lock: &RawLock) {
    let mut handle = ffi::KLOCK_QUEUE_HANDLE::default();
    // SAFETY: as above; the handle stays put on this frame while held.
    unsafe {
        ffi::KeAcquireInStackQueuedSpinLock(lock.lock.as_ptr(), &raw mut handle);
        *lock.data.get() += 1;
        ffi::KeReleaseInStackQueuedSpinLock(&raw mut handle);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_queued(lock: &QueuedSpinLock<u64>) {
    let mut handle = pin!(LockQueueHandle::new());
    *lock.lock(handle.as_mut()) += 1;
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_queued_at_dpc_level(lock: &RawLock) {
    let mut handle = ffi::KLOCK_QUEUE_HANDLE::default();
    // SAFETY: as above; the caller runs at DISPATCH_LEVEL.
    unsafe {
        ffi::KeAcquireInStackQueuedSpinLockAtDpcLevel(lock.lock.as_ptr(), &raw mut handle);
        *lock.data.get() += 1;
        ffi::KeReleaseInStackQueuedSpinLockFromDpcLevel(&raw mut handle);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_queued_at_dpc_level(lock: &QueuedSpinLock<u64>, at: &DispatchLevel) {
    let mut handle = pin!(LockQueueHandle::new());
    *lock.lock_at_dpc_level(handle.as_mut(), at) += 1;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
