//! In-stack queued spin locks.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::{Kernel, ffi};
use crate::{backend::Backend, lock::Lock};

/// The in-stack queued family: `KeAcquireInStackQueuedSpinLock(AtDpcLevel)` /
/// `KeReleaseInStackQueuedSpinLock(FromDpcLevel)`. Each acquisition's
/// `KLOCK_QUEUE_HANDLE` lives on the stack frame of `Lock::with` /
/// `Lock::with_at_dpc_level`, which release before returning, so a handle
/// is never moved or freed while the kernel links waiters through it.
///
/// Never mix queued and plain acquisitions on one `KSPIN_LOCK`; giving each
/// family its own lock type makes that impossible here.
#[derive(Debug)]
pub enum InStackQueued {}

// SAFETY: the kernel's queued lock routines provide mutual exclusion; the
// raising acquire stores the old IRQL in the handle, which its release
// restores.
unsafe impl Backend for InStackQueued {
    type Platform = Kernel;
    type State = AtomicUsize;
    type Handle = ffi::KLOCK_QUEUE_HANDLE;
    type Saved = ();

    #[inline]
    unsafe fn acquire(state: &AtomicUsize, handle: *mut ffi::KLOCK_QUEUE_HANDLE) {
        // SAFETY: a valid lock and a pinned handle (caller).
        unsafe { ffi::KeAcquireInStackQueuedSpinLock(state.as_ptr(), handle) }
    }

    #[inline]
    unsafe fn release(_: &AtomicUsize, handle: *mut ffi::KLOCK_QUEUE_HANDLE, (): ()) {
        // SAFETY: the handle of the raising acquisition (caller).
        unsafe { ffi::KeReleaseInStackQueuedSpinLock(handle) }
    }

    #[inline]
    unsafe fn acquire_at_dpc_level(state: &AtomicUsize, handle: *mut ffi::KLOCK_QUEUE_HANDLE) {
        // SAFETY: at DISPATCH_LEVEL, valid lock, pinned handle (caller).
        unsafe { ffi::KeAcquireInStackQueuedSpinLockAtDpcLevel(state.as_ptr(), handle) }
    }

    #[inline]
    unsafe fn release_from_dpc_level(_: &AtomicUsize, handle: *mut ffi::KLOCK_QUEUE_HANDLE) {
        // SAFETY: the handle of the AtDpcLevel acquisition (caller).
        unsafe { ffi::KeReleaseInStackQueuedSpinLockFromDpcLevel(handle) }
    }

    fn is_locked(state: &AtomicUsize) -> Option<bool> {
        // The lock word holds the queue's tail while anyone holds the lock.
        Some(state.load(Ordering::Relaxed) != 0)
    }
}

impl<T> Lock<T, InStackQueued> {
    /// A new, unlocked queued spin lock around `data`.
    pub const fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicUsize::new(0), data, class)
    }
}
