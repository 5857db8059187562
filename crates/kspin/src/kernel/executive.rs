//! Executive spin locks (`KSPIN_LOCK`).

use core::sync::atomic::{AtomicUsize, Ordering};

use super::{Kernel, ffi};
use crate::{backend::Backend, level::Irql};

/// The `KSPIN_LOCK` family: `KeAcquireSpinLockRaiseToDpc` / `KeReleaseSpinLock`
/// and `KeAcquireSpinLockAtDpcLevel` / `KeReleaseSpinLockFromDpcLevel`.
#[derive(Debug)]
pub enum Executive {}

// SAFETY: the kernel's routines provide mutual exclusion with full barriers;
// KeAcquireSpinLockRaiseToDpc raises to DISPATCH_LEVEL and returns the old
// IRQL that KeReleaseSpinLock restores.
unsafe impl Backend for Executive {
    type Platform = Kernel;
    // The kernel changes the word with interlocked operations; kspin only
    // ever reads it atomically (`is_locked`).
    type State = AtomicUsize;
    type Handle = ();
    type Saved = Irql;

    #[inline]
    unsafe fn acquire(state: &AtomicUsize, _: *mut ()) -> Irql {
        // SAFETY: a valid KSPIN_LOCK in non-paged memory; at most DISPATCH_LEVEL (caller).
        Irql(unsafe { ffi::KeAcquireSpinLockRaiseToDpc(state.as_ptr()) })
    }

    #[inline]
    unsafe fn release(state: &AtomicUsize, _: *mut (), saved: Irql) {
        // SAFETY: held through KeAcquireSpinLockRaiseToDpc, which returned `saved` (caller).
        unsafe { ffi::KeReleaseSpinLock(state.as_ptr(), saved.0) }
    }

    #[inline]
    unsafe fn acquire_at_dpc_level(state: &AtomicUsize, _: *mut ()) {
        // SAFETY: at DISPATCH_LEVEL (caller).
        unsafe { ffi::KeAcquireSpinLockAtDpcLevel(state.as_ptr()) }
    }

    #[inline]
    unsafe fn release_from_dpc_level(state: &AtomicUsize, _: *mut ()) {
        // SAFETY: held through KeAcquireSpinLockAtDpcLevel (caller).
        unsafe { ffi::KeReleaseSpinLockFromDpcLevel(state.as_ptr()) }
    }

    fn is_locked(state: &AtomicUsize) -> Option<bool> {
        Some(state.load(Ordering::Relaxed) != 0)
    }
}

impl<T> crate::Lock<T, Executive> {
    /// A new, unlocked spin lock around `data`. A zeroed `KSPIN_LOCK` is what
    /// `KeInitializeSpinLock` produces, so this is a `const fn` and the lock
    /// can be a `static` or part of a device extension.
    pub const fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicUsize::new(0), data, class)
    }
}
