//! The kernel routines kspin wraps, declared as the WDK headers declare them.
//!
//! kspin declares these few itself instead of depending on `wdk-sys`: wdk-sys
//! cannot be built without a WDK on a Windows host, and the guard library
//! must build and be tested everywhere. The types are layout-compatible with
//! wdk-sys's (`KSPIN_LOCK` = `ULONG_PTR`, `KIRQL` = `UCHAR`); the driver
//! crate's tests compare them against its bindings.
//!
//! On x64 and ARM64 every routine has one calling convention. On ARM64 the
//! IRQL routines are exported functions rather than x64's inline `cr8`
//! accesses (see the aarch64 block below). On x86 the
//! spin-lock routines are `FASTCALL` and several `Ke` names are macros over
//! `Kf`/`Kef` exports; the x86 block below binds the Rust names to those
//! exports, so `KeReleaseSpinLockFromDpcLevel` is the import
//! `KefReleaseSpinLockFromDpcLevel` there: the same routine under its fastcall
//! name.
#![allow(non_snake_case, non_camel_case_types, missing_docs)]

use core::ffi::c_void;

/// `KSPIN_LOCK`: a `ULONG_PTR`.
pub type KSPIN_LOCK = usize;
/// `KIRQL`: a `UCHAR`.
pub type KIRQL = u8;

/// `KSPIN_LOCK_QUEUE`: one link of an in-stack queued lock's waiter queue.
#[repr(C)]
#[derive(Debug)]
pub struct KSPIN_LOCK_QUEUE {
    pub Next: *mut KSPIN_LOCK_QUEUE,
    pub Lock: *mut KSPIN_LOCK,
}

/// `KLOCK_QUEUE_HANDLE`: the per-acquisition storage of an in-stack queued
/// spin lock. Must not move while the lock is held.
#[repr(C)]
#[derive(Debug)]
pub struct KLOCK_QUEUE_HANDLE {
    pub LockQueue: KSPIN_LOCK_QUEUE,
    pub OldIrql: KIRQL,
}

impl Default for KLOCK_QUEUE_HANDLE {
    fn default() -> Self {
        Self {
            LockQueue: KSPIN_LOCK_QUEUE {
                Next: core::ptr::null_mut(),
                Lock: core::ptr::null_mut(),
            },
            OldIrql: 0,
        }
    }
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(core::mem::size_of::<KLOCK_QUEUE_HANDLE>() == 24);
    assert!(core::mem::offset_of!(KLOCK_QUEUE_HANDLE, OldIrql) == 16);
};
#[cfg(target_pointer_width = "32")]
const _: () = {
    assert!(core::mem::size_of::<KLOCK_QUEUE_HANDLE>() == 12);
    assert!(core::mem::offset_of!(KLOCK_QUEUE_HANDLE, OldIrql) == 8);
};

#[cfg(not(target_arch = "x86"))]
unsafe extern "system" {
    // wdm.h: `KeAcquireSpinLock(Lock, &OldIrql)` is a macro over this on x64.
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    pub fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK);
    pub fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK);
    pub fn KeAcquireInStackQueuedSpinLock(
        SpinLock: *mut KSPIN_LOCK,
        LockHandle: *mut KLOCK_QUEUE_HANDLE,
    );
    pub fn KeReleaseInStackQueuedSpinLock(LockHandle: *mut KLOCK_QUEUE_HANDLE);
    pub fn KeAcquireInStackQueuedSpinLockAtDpcLevel(
        SpinLock: *mut KSPIN_LOCK,
        LockHandle: *mut KLOCK_QUEUE_HANDLE,
    );
    pub fn KeReleaseInStackQueuedSpinLockFromDpcLevel(LockHandle: *mut KLOCK_QUEUE_HANDLE);
}

#[cfg(target_arch = "x86")]
unsafe extern "fastcall" {
    // wdm.h (x86): `#define KeAcquireSpinLock(a,b) *(b) = KfAcquireSpinLock(a)`, exported by HAL.dll.
    #[link_name = "KfAcquireSpinLock"]
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    // wdm.h (x86): `#define KeReleaseSpinLock(a,b) KfReleaseSpinLock(a,b)`, HAL.dll.
    #[link_name = "KfReleaseSpinLock"]
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    // wdm.h (x86): `#define KeAcquireSpinLockAtDpcLevel(l) KefAcquireSpinLockAtDpcLevel(l)`.
    #[link_name = "KefAcquireSpinLockAtDpcLevel"]
    pub fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK);
    // wdm.h (x86): `#define KeReleaseSpinLockFromDpcLevel(l) KefReleaseSpinLockFromDpcLevel(l)`.
    #[link_name = "KefReleaseSpinLockFromDpcLevel"]
    pub fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK);
    pub fn KeAcquireInStackQueuedSpinLock(
        SpinLock: *mut KSPIN_LOCK,
        LockHandle: *mut KLOCK_QUEUE_HANDLE,
    );
    pub fn KeReleaseInStackQueuedSpinLock(LockHandle: *mut KLOCK_QUEUE_HANDLE);
    pub fn KeAcquireInStackQueuedSpinLockAtDpcLevel(
        SpinLock: *mut KSPIN_LOCK,
        LockHandle: *mut KLOCK_QUEUE_HANDLE,
    );
    pub fn KeReleaseInStackQueuedSpinLockFromDpcLevel(LockHandle: *mut KLOCK_QUEUE_HANDLE);
    // IRQL on x86 goes through HAL exports rather than cr8.
    pub fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL;
    pub fn KfLowerIrql(NewIrql: KIRQL);
}

#[cfg(target_arch = "x86")]
unsafe extern "system" {
    pub fn KeGetCurrentIrql() -> KIRQL;
}

// ARM64 wdm.h declares these three NTHALAPI and defines `KeRaiseIrql` and
// `KeLowerIrql` as macros over the `Kf` routines; there is no inline version
// (x64 inlines them as `cr8` accesses). Evidence, in docs/windows-fidelity.md
// ("ARM64"): the public symbols of ARM64 hal.dll, ReactOS's xdk/arm64/ke.h,
// microsoft/usersim issue 214, mingw-w64's ARM32 hal.def.
#[cfg(target_arch = "aarch64")]
unsafe extern "system" {
    pub fn KeGetCurrentIrql() -> KIRQL;
    pub fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL;
    pub fn KfLowerIrql(NewIrql: KIRQL);
}

unsafe extern "system" {
    // Owner identity and timestamps for the validator. (Exported on every
    // architecture; x64 headers also inline it as a read of gs:[0x188],
    // which Wine cannot emulate, so kspin always calls the export.)
    pub fn KeGetCurrentThread() -> *mut c_void;
    // Exported by HAL.dll (as Microsoft documents it); import it from there.
    pub fn KeQueryPerformanceCounter(PerformanceFrequency: *mut i64) -> i64;
    pub fn KeBugCheckEx(BugCheckCode: u32, P1: usize, P2: usize, P3: usize, P4: usize) -> !;
}

#[cfg(feature = "videoport")]
#[cfg_attr(target_os = "windows", link(name = "videoprt"))]
unsafe extern "system" {
    // video.h: VPAPI VP_STATUS NTAPI ..., with `PSPIN_LOCK` an opaque pointer.
    pub fn VideoPortCreateSpinLock(
        HwDeviceExtension: *mut c_void,
        SpinLock: *mut *mut c_void,
    ) -> i32;
    pub fn VideoPortDeleteSpinLock(HwDeviceExtension: *mut c_void, SpinLock: *mut c_void) -> i32;
    pub fn VideoPortAcquireSpinLock(
        HwDeviceExtension: *mut c_void,
        SpinLock: *mut c_void,
        OldIrql: *mut u8,
    );
    pub fn VideoPortReleaseSpinLock(
        HwDeviceExtension: *mut c_void,
        SpinLock: *mut c_void,
        NewIrql: u8,
    );
    pub fn VideoPortAcquireSpinLockAtDpcLevel(
        HwDeviceExtension: *mut c_void,
        SpinLock: *mut c_void,
    );
    pub fn VideoPortReleaseSpinLockFromDpcLevel(
        HwDeviceExtension: *mut c_void,
        SpinLock: *mut c_void,
    );
}
