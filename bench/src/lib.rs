//! Pairs of functions that do the same thing, once with the raw kernel calls
//! and once with kspin's scoped acquisitions or guards. `cargo xtask bench` compiles this crate for
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

use core::{cell::UnsafeCell, mem::MaybeUninit, sync::atomic::AtomicUsize};

use kspin::kernel::{DispatchLevel, Kernel, QueuedSpinLock, SpinLock, ffi};

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
    lock.with(|data| *data += 1);
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

/// The same pair through the scoped form (`with_at_dpc_level`).
#[unsafe(no_mangle)]
pub extern "C" fn guard_at_dpc_level_scoped(lock: &SpinLock<u64>, at: &DispatchLevel) {
    lock.with_at_dpc_level(at, |data| *data += 1);
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_queued(lock: &RawLock) {
    // As in C: `KLOCK_QUEUE_HANDLE handle;` on the stack, filled in by the acquire.
    let mut handle = MaybeUninit::<ffi::KLOCK_QUEUE_HANDLE>::uninit();
    // SAFETY: as above; the handle stays put on this frame while held.
    unsafe {
        ffi::KeAcquireInStackQueuedSpinLock(lock.lock.as_ptr(), handle.as_mut_ptr());
        *lock.data.get() += 1;
        ffi::KeReleaseInStackQueuedSpinLock(handle.as_mut_ptr());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_queued(lock: &QueuedSpinLock<u64>) {
    lock.with(|data| *data += 1);
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_queued_at_dpc_level(lock: &RawLock) {
    let mut handle = MaybeUninit::<ffi::KLOCK_QUEUE_HANDLE>::uninit();
    // SAFETY: as above; the caller runs at DISPATCH_LEVEL.
    unsafe {
        ffi::KeAcquireInStackQueuedSpinLockAtDpcLevel(lock.lock.as_ptr(), handle.as_mut_ptr());
        *lock.data.get() += 1;
        ffi::KeReleaseInStackQueuedSpinLockFromDpcLevel(handle.as_mut_ptr());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_queued_at_dpc_level(lock: &QueuedSpinLock<u64>, at: &DispatchLevel) {
    lock.with_at_dpc_level(at, |data| *data += 1);
}

/// `KeRaiseIrql(DISPATCH_LEVEL, &old)` … `KeLowerIrql(old)`, which the x64
/// WDK headers inline as reads and writes of cr8.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_raise_irql(data: &mut u64) {
    let old: u64;
    // SAFETY: kernel mode; raise to DISPATCH_LEVEL, then restore.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) old, options(nomem, nostack, preserves_flags));
        core::arch::asm!("mov cr8, {}", in(reg) 2_u64, options(nostack, preserves_flags));
    }
    *data += 1;
    // SAFETY: lowering back to the IRQL read above.
    unsafe { core::arch::asm!("mov cr8, {}", in(reg) old & 0xff, options(nostack, preserves_flags)) };
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_raise_irql(data: &mut u64) {
    kspin::at_dispatch_level::<Kernel, _>(|_| *data += 1);
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_raise_irql_kernel(data: &mut u64) {
    kspin::kernel::at_dispatch_level(|_| *data += 1);
}

/// `KeAcquireSpinLock(a)`, then `b` at DPC level on the IRQL `a` raised,
/// released in reverse.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_raising_then_at_dpc_level(a: &RawLock, b: &RawLock) {
    // SAFETY: valid locks; the data is touched only while held; the raising
    // acquire of `a` puts the processor at DISPATCH_LEVEL for `b`.
    unsafe {
        let old = ffi::KeAcquireSpinLockRaiseToDpc(a.lock.as_ptr());
        *a.data.get() += 1;
        ffi::KeAcquireSpinLockAtDpcLevel(b.lock.as_ptr());
        *b.data.get() += 1;
        ffi::KeReleaseSpinLockFromDpcLevel(b.lock.as_ptr());
        ffi::KeReleaseSpinLock(a.lock.as_ptr(), old);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_with_raised(a: &SpinLock<u64>, b: &SpinLock<u64>) {
    a.with_raised(|a, at| {
        *a += 1;
        *b.lock_at_dpc_level(at) += 1;
    });
}

/// Two locks taken lower address first, as the kernel's double-lock helpers
/// do, and released in argument order reversed (`b`, then `a`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn raw_pair(a: &RawLock, b: &RawLock) {
    let (pa, pb) = (a.lock.as_ptr(), b.lock.as_ptr());
    if pa == pb {
        return;
    }
    // SAFETY: valid locks; the caller runs at DISPATCH_LEVEL.
    unsafe {
        if pa < pb {
            ffi::KeAcquireSpinLockAtDpcLevel(pa);
            ffi::KeAcquireSpinLockAtDpcLevel(pb);
        } else {
            ffi::KeAcquireSpinLockAtDpcLevel(pb);
            ffi::KeAcquireSpinLockAtDpcLevel(pa);
        }
        *a.data.get() += 1;
        *b.data.get() += 1;
        ffi::KeReleaseSpinLockFromDpcLevel(pb);
        ffi::KeReleaseSpinLockFromDpcLevel(pa);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guard_pair(a: &SpinLock<u64>, b: &SpinLock<u64>, at: &DispatchLevel) {
    if let Some((mut a, mut b)) = SpinLock::lock_pair_at_dpc_level(a, b, at) {
        *a += 1;
        *b += 1;
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
