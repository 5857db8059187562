//! Video miniport spin locks (videoprt.sys).

use core::{ffi::c_void, ptr};

use super::{Kernel, ffi};
use crate::{backend::Backend, level::Irql, lock::Lock};

/// The video port family: `VideoPortAcquireSpinLock` / `VideoPortReleaseSpinLock`
/// and `VideoPortAcquireSpinLockAtDpcLevel` / `VideoPortReleaseSpinLockFromDpcLevel`,
/// over a lock from `VideoPortCreateSpinLock`. Their documentation carries the
/// same rule as the `Ke` routines: releasing with the `FromDpcLevel` routine a
/// lock taken with the raising one never restores the caller's IRQL.
#[derive(Debug)]
pub enum VideoPort {}

/// A video port lock: the `PSPIN_LOCK` from `VideoPortCreateSpinLock` and the
/// `HwDeviceExtension` every call on it passes.
#[derive(Debug)]
pub struct VideoPortState {
    hw_device_extension: *mut c_void,
    lock: *mut c_void,
}

// SAFETY: both pointers name objects owned by videoprt.sys, which may be used
// from any processor; the video port routines synchronize the lock itself.
unsafe impl Send for VideoPortState {}
// SAFETY: as above.
unsafe impl Sync for VideoPortState {}

// SAFETY: videoprt.sys's routines provide mutual exclusion; the raising
// acquire returns the old IRQL through its out-parameter.
unsafe impl Backend for VideoPort {
    type Platform = Kernel;
    type State = VideoPortState;
    type Handle = ();
    type Saved = Irql;

    #[inline]
    unsafe fn acquire(state: &VideoPortState, _: *mut ()) -> Irql {
        let mut old = 0;
        // SAFETY: a lock created for this extension; at most DISPATCH_LEVEL (caller).
        unsafe {
            ffi::VideoPortAcquireSpinLock(state.hw_device_extension, state.lock, &raw mut old)
        };
        Irql(old)
    }

    #[inline]
    unsafe fn release(state: &VideoPortState, _: *mut (), saved: Irql) {
        // SAFETY: held through VideoPortAcquireSpinLock, which returned `saved` (caller).
        unsafe { ffi::VideoPortReleaseSpinLock(state.hw_device_extension, state.lock, saved.0) }
    }

    #[inline]
    unsafe fn acquire_at_dpc_level(state: &VideoPortState, _: *mut ()) {
        // SAFETY: at DISPATCH_LEVEL (caller).
        unsafe { ffi::VideoPortAcquireSpinLockAtDpcLevel(state.hw_device_extension, state.lock) }
    }

    #[inline]
    unsafe fn release_from_dpc_level(state: &VideoPortState, _: *mut ()) {
        // SAFETY: held through VideoPortAcquireSpinLockAtDpcLevel (caller).
        unsafe { ffi::VideoPortReleaseSpinLockFromDpcLevel(state.hw_device_extension, state.lock) }
    }

    fn is_locked(_: &VideoPortState) -> Option<bool> {
        None // PSPIN_LOCK is opaque
    }

    unsafe fn destroy(state: &mut VideoPortState) {
        // SAFETY: created by VideoPortCreateSpinLock for this extension, not
        // held, deleted once. Deletion cannot fail for a valid lock.
        let _ = unsafe { ffi::VideoPortDeleteSpinLock(state.hw_device_extension, state.lock) };
    }
}

impl<T> Lock<T, VideoPort> {
    /// Creates a lock for the miniport whose device extension is
    /// `hw_device_extension` (`VideoPortCreateSpinLock`); dropping the lock
    /// deletes it (`VideoPortDeleteSpinLock`).
    ///
    /// # Errors
    ///
    /// The `VP_STATUS` that `VideoPortCreateSpinLock` returned.
    ///
    /// # Safety
    ///
    /// `hw_device_extension` must be the miniport's device extension and
    /// outlive the lock; call at `PASSIVE_LEVEL`.
    pub unsafe fn create(
        hw_device_extension: *mut c_void,
        data: T,
        class: &'static crate::LockClass,
    ) -> Result<Self, i32> {
        let mut lock = ptr::null_mut();
        // SAFETY: a valid device extension at PASSIVE_LEVEL (caller).
        let status = unsafe { ffi::VideoPortCreateSpinLock(hw_device_extension, &raw mut lock) };
        if status != 0 {
            return Err(status);
        }
        Ok(Self::from_state(
            VideoPortState {
                hw_device_extension,
                lock,
            },
            data,
            class,
        ))
    }
}
