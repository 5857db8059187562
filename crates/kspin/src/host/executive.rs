//! Executive spin locks on the host: a test-and-set word.

use super::{Host, spin_acquire, spin_release, verify_irql};
use crate::{
    backend::Backend,
    level::Irql,
    platform::Platform,
    sync::{AtomicBool, Ordering},
};

/// The host's `KSPIN_LOCK` family.
#[derive(Debug)]
pub enum Executive {}

// SAFETY: a test-and-set lock with Acquire/Release ordering gives mutual
// exclusion and orders each release before the next acquire; the raising
// acquire sets the simulated IRQL to DISPATCH_LEVEL and returns the old one.
unsafe impl Backend for Executive {
    type Platform = Host;
    type State = AtomicBool;
    type Handle = ();
    type Saved = Irql;

    unsafe fn acquire(state: &AtomicBool, _: *mut ()) -> Irql {
        verify_irql(
            |irql| irql <= Irql::DISPATCH,
            "C4/0x42: KeAcquireSpinLock above DISPATCH_LEVEL",
        );
        // SAFETY: raising to DISPATCH_LEVEL from at most DISPATCH_LEVEL.
        let old = unsafe { Host::raise_irql(Irql::DISPATCH) };
        spin_acquire(state);
        old
    }

    unsafe fn release(state: &AtomicBool, _: *mut (), saved: Irql) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "C4/0x32: KeReleaseSpinLock not at DISPATCH_LEVEL",
        );
        spin_release(state);
        // SAFETY: `saved` is what the matching raise returned (caller).
        unsafe { Host::lower_irql(saved) };
    }

    unsafe fn acquire_at_dpc_level(state: &AtomicBool, _: *mut ()) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "C4/0x40: KeAcquireSpinLockAtDpcLevel called below DISPATCH_LEVEL",
        );
        spin_acquire(state);
    }

    unsafe fn release_from_dpc_level(state: &AtomicBool, _: *mut ()) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "C4/0x41: KeReleaseSpinLockFromDpcLevel called below DISPATCH_LEVEL",
        );
        spin_release(state);
    }

    fn is_locked(state: &AtomicBool) -> Option<bool> {
        Some(state.load(Ordering::Relaxed))
    }
}

impl<T> crate::Lock<T, Executive> {
    /// A new, unlocked spin lock around `data` (a `KSPIN_LOCK` of 0).
    #[cfg(not(loom))]
    pub const fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicBool::new(false), data, class)
    }

    /// A new, unlocked spin lock around `data` (loom's atomics are not const).
    #[cfg(loom)]
    pub fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicBool::new(false), data, class)
    }
}
