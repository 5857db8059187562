//! In-stack queued spin locks.

use core::{
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
};

use super::{Kernel, ffi};
use crate::{
    backend::Backend,
    irql::{DispatchLevel, Irql},
    lock::{DpcGuard, Lock, QueueHandle, RaisedGuard},
};

/// The in-stack queued family: `KeAcquireInStackQueuedSpinLock(AtDpcLevel)` /
/// `KeReleaseInStackQueuedSpinLock(FromDpcLevel)`. Each acquisition supplies
/// a pinned [`super::LockQueueHandle`]; waiters spin on their own handle.
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

    unsafe fn saved_irql(handle: *const ffi::KLOCK_QUEUE_HANDLE, (): ()) -> Irql {
        // SAFETY: the handle of a held raising acquisition (caller).
        Irql(unsafe { (*handle).OldIrql })
    }
}

impl<T> Lock<T, InStackQueued> {
    /// A new, unlocked queued spin lock around `data`.
    pub const fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicUsize::new(0), data, class)
    }
}

impl<T: ?Sized> Lock<T, InStackQueued> {
    /// Acquires through `handle`, raising to `DISPATCH_LEVEL`.
    ///
    /// ```ignore
    /// let mut handle = core::pin::pin!(LockQueueHandle::new());
    /// let mut ledger = queued.lock(handle.as_mut());
    /// ```
    #[inline]
    pub fn lock<'a>(
        &'a self,
        handle: Pin<&'a mut QueueHandle<ffi::KLOCK_QUEUE_HANDLE>>,
    ) -> RaisedGuard<'a, T, InStackQueued> {
        // SAFETY: the handle is pinned and mutably borrowed for 'a.
        unsafe { self.acquire_raising(handle.raw()) }
    }

    /// Acquires through `handle` at `DISPATCH_LEVEL`.
    #[inline]
    pub fn lock_at_dpc_level<'a>(
        &'a self,
        handle: Pin<&'a mut QueueHandle<ffi::KLOCK_QUEUE_HANDLE>>,
        at: &'a DispatchLevel<Kernel>,
    ) -> DpcGuard<'a, T, InStackQueued> {
        // SAFETY: as in `lock`.
        unsafe { self.acquire_at_dpc_level(handle.raw(), at) }
    }
}
