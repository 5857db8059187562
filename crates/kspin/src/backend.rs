//! The raw acquire and release calls of one spin-lock family.

use crate::platform::Platform;

/// How a lock is acquired, and so released.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The raising routine, around a scope (`Lock::with`).
    Raising,
    /// The `AtDpcLevel` routine.
    AtDpcLevel,
}

/// The raw calls of one spin-lock family: executive (`KSPIN_LOCK`), in-stack
/// queued, or video miniport. The guards in [`crate::lock`] are written once
/// over this trait, in the manner of Rust-for-Linux's `lock::Backend`.
///
/// Each family has two acquire/release pairs: one that raises the IRQL to
/// `DISPATCH_LEVEL` and restores it on release, and one that must be called
/// at `DISPATCH_LEVEL` and leaves the IRQL alone. Which pair released a lock
/// is decided by the guard type, never by the caller.
///
/// # Safety
///
/// Implementations must provide mutual exclusion: between an acquire and the
/// matching release on one `State`, no other acquire on that `State`
/// returns, and the release happens-before the next acquire returns. A
/// raising acquire must leave the processor at `DISPATCH_LEVEL` and return
/// what its release needs to restore the caller's IRQL.
pub unsafe trait Backend: Sized + 'static {
    /// Where the IRQL is read and changed.
    type Platform: Platform;

    /// The lock itself, stored in [`crate::Lock`] (a `KSPIN_LOCK`, or a video
    /// port lock handle with its device extension).
    type State;

    /// Storage for one acquisition that must not move while the lock is held:
    /// `()` for executive and video port locks, the `KLOCK_QUEUE_HANDLE` for
    /// in-stack queued locks. kspin keeps it on the stack frame of the
    /// acquiring function (as Microsoft recommends for queued locks), hands
    /// it to the acquire uninitialized, and releases before that frame ends.
    type Handle;

    /// What the raising acquire returns for its release: the previous IRQL,
    /// or `()` when the handle keeps it.
    type Saved: Copy;

    /// Acquires at or below `DISPATCH_LEVEL`, raising to `DISPATCH_LEVEL`.
    ///
    /// # Safety
    ///
    /// `handle` must be valid for writes (it may be uninitialized: the
    /// acquire initializes it) and stay at its address until the matching
    /// [`Backend::release`]; the current thread must not hold `state`.
    unsafe fn acquire(state: &Self::State, handle: *mut Self::Handle) -> Self::Saved;

    /// Releases a lock taken with [`Backend::acquire`], restoring the IRQL.
    ///
    /// # Safety
    ///
    /// The lock must have been acquired by [`Backend::acquire`] with this
    /// `handle`, which returned `saved`, on this processor.
    unsafe fn release(state: &Self::State, handle: *mut Self::Handle, saved: Self::Saved);

    /// Acquires at `DISPATCH_LEVEL` without changing the IRQL.
    ///
    /// # Safety
    ///
    /// As for [`Backend::acquire`], and the processor must run at
    /// `DISPATCH_LEVEL` until the matching release.
    unsafe fn acquire_at_dpc_level(state: &Self::State, handle: *mut Self::Handle);

    /// Releases a lock taken with [`Backend::acquire_at_dpc_level`].
    ///
    /// # Safety
    ///
    /// The lock must have been acquired by [`Backend::acquire_at_dpc_level`]
    /// with this `handle` on this processor.
    unsafe fn release_from_dpc_level(state: &Self::State, handle: *mut Self::Handle);

    /// A racy look at the lock word, in the manner of `KeTestSpinLock`:
    /// `Some(true)` if some processor held the lock at the moment of the read,
    /// `None` where the family keeps its state opaque.
    fn is_locked(state: &Self::State) -> Option<bool>;

    /// Frees what creating `state` allocated (`VideoPortDeleteSpinLock`).
    ///
    /// # Safety
    ///
    /// Called once, when the lock is dropped: no acquisition is in progress
    /// and none can follow. (A leaked guard may have left the lock held;
    /// nothing can reach it any more.)
    unsafe fn destroy(_state: &mut Self::State) {}
}
