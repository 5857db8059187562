//! Video miniport spin locks on the host. As in videoprt.sys, the lock is an
//! opaque object created for one device extension, and the lock value keeps
//! that extension so that every call passes the same one.

use core::ffi::c_void;

use super::{Host, spin_acquire, spin_release, verify_irql};
use crate::{backend::Backend, level::Irql, lock::Lock, platform::Platform, sync::AtomicBool};

extern crate alloc;
use alloc::boxed::Box;

/// The host's video port spin lock family.
#[derive(Debug)]
pub enum VideoPort {}

/// A `VP_STATUS` error from creating a video port lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpStatus(pub i32);

impl VpStatus {
    /// `ERROR_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: Self = Self(87);
}

/// A video port lock: the `PSPIN_LOCK` that `VideoPortCreateSpinLock` made,
/// and the `HwDeviceExtension` every call on it passes.
#[derive(Debug)]
pub struct VideoPortState {
    hw_device_extension: *mut c_void,
    lock: Box<AtomicBool>,
}

// SAFETY: the device extension pointer is only compared, never dereferenced,
// and the lock word is atomic.
unsafe impl Send for VideoPortState {}
// SAFETY: as above.
unsafe impl Sync for VideoPortState {}

impl VideoPortState {
    fn word(&self) -> &AtomicBool {
        &self.lock
    }
}

// SAFETY: a test-and-set word, as for the executive host backend.
unsafe impl Backend for VideoPort {
    type Platform = Host;
    type State = VideoPortState;
    type Handle = ();
    type Saved = Irql;

    unsafe fn acquire(state: &VideoPortState, _: *mut ()) -> Irql {
        verify_irql(
            |irql| irql <= Irql::DISPATCH,
            "VideoPortAcquireSpinLock above DISPATCH_LEVEL",
        );
        // SAFETY: raising to DISPATCH_LEVEL from at most DISPATCH_LEVEL.
        let old = unsafe { Host::raise_irql(Irql::DISPATCH) };
        spin_acquire(state.word());
        old
    }

    unsafe fn release(state: &VideoPortState, _: *mut (), saved: Irql) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "VideoPortReleaseSpinLock not at DISPATCH_LEVEL",
        );
        spin_release(state.word());
        // SAFETY: `saved` is what the matching raise returned (caller).
        unsafe { Host::lower_irql(saved) };
    }

    unsafe fn acquire_at_dpc_level(state: &VideoPortState, _: *mut ()) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "VideoPortAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL",
        );
        spin_acquire(state.word());
    }

    unsafe fn release_from_dpc_level(state: &VideoPortState, _: *mut ()) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "VideoPortReleaseSpinLockFromDpcLevel below DISPATCH_LEVEL",
        );
        spin_release(state.word());
    }

    fn is_locked(_: &VideoPortState) -> Option<bool> {
        None // opaque in videoprt.sys, so opaque here too
    }
}

impl<T> Lock<T, VideoPort> {
    /// Creates a lock for the device with extension `hw_device_extension`
    /// (`VideoPortCreateSpinLock`); dropping the lock deletes it
    /// (`VideoPortDeleteSpinLock`).
    ///
    /// # Errors
    ///
    /// [`VpStatus::INVALID_PARAMETER`] for a null device extension.
    pub fn create(
        hw_device_extension: *mut c_void,
        data: T,
        class: &'static crate::LockClass,
    ) -> Result<Self, VpStatus> {
        if hw_device_extension.is_null() {
            return Err(VpStatus::INVALID_PARAMETER);
        }
        let lock = Box::new(AtomicBool::new(false));
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

impl<T: ?Sized> Lock<T, VideoPort> {
    /// The `HwDeviceExtension` the lock was created for.
    #[must_use]
    pub fn hw_device_extension(&self) -> *mut c_void {
        self.state().hw_device_extension
    }
}
