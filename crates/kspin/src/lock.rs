//! The data-owning lock and its two guard types, written once for every
//! [`Backend`].

use core::{
    cell::UnsafeCell,
    fmt,
    marker::{PhantomData, PhantomPinned},
    ops::{Deref, DerefMut},
    pin::Pin,
    ptr::NonNull,
};

use crate::{backend::Backend, class::LockClass, irql::DispatchLevel};

/// A spin lock that owns the data it protects, like `Mutex<T>`: the data is
/// reachable only through a guard, and the guard's type says how the lock was
/// acquired and therefore how it is released.
///
/// Place it in non-paged memory (a device extension, a driver `static`, or
/// non-paged pool): the lock and its data are touched at `DISPATCH_LEVEL`.
// `repr(C)` with the backend state first: the address of the lock is the
// address of its `KSPIN_LOCK`, so a guard passes the caller's pointer straight
// to the kernel, exactly as hand-written C would (see `cargo xtask bench`).
#[repr(C)]
pub struct Lock<T: ?Sized, B: Backend> {
    state: B::State,
    class: &'static LockClass,
    #[cfg(feature = "checked")]
    owner: crate::checked::Owner,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one holder at a time access to `T`, so sharing it
// between threads only moves access to `T` between them: `T: Send` suffices,
// as for `Mutex<T>`. The backend state is shared by the raw calls themselves.
unsafe impl<T: ?Sized + Send, B: Backend> Sync for Lock<T, B> where B::State: Sync {}
// SAFETY: moving the lock moves `T` and the backend state.
unsafe impl<T: ?Sized + Send, B: Backend> Send for Lock<T, B> where B::State: Send {}

impl<T, B: Backend> Lock<T, B> {
    /// Wraps `data` with an initialized backend `state`.
    pub(crate) const fn from_state(state: B::State, data: T, class: &'static LockClass) -> Self {
        Self {
            state,
            class,
            #[cfg(feature = "checked")]
            owner: crate::checked::Owner::new(),
            data: UnsafeCell::new(data),
        }
    }
}

impl<T: ?Sized, B: Backend> Lock<T, B> {
    /// The class the lock was created with.
    #[must_use]
    pub fn class(&self) -> &'static LockClass {
        self.class
    }

    /// The data, without locking: `&mut self` proves nobody else can hold it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// A racy look at whether some processor holds the lock right now, in
    /// the manner of `KeTestSpinLock`; `None` where the family does not
    /// expose its lock word (video port locks). Useful for counting
    /// contention; never for deciding whether to touch the data.
    #[must_use]
    pub fn is_locked(&self) -> Option<bool> {
        B::is_locked(&self.state)
    }

    pub(crate) fn state(&self) -> &B::State {
        &self.state
    }

    /// Acquires with the raising routine into `handle`.
    ///
    /// # Safety
    ///
    /// `handle` must be valid and stay at its address for `'a`.
    pub(crate) unsafe fn acquire_raising<'a>(
        &'a self,
        handle: NonNull<B::Handle>,
    ) -> RaisedGuard<'a, T, B> {
        #[cfg(feature = "checked")]
        let me = crate::checked::before_acquire::<B::Platform>(
            self.address(),
            &self.owner,
            self.class,
            crate::checked::Mode::Raising,
        );
        // SAFETY: `handle` is valid and stays put (caller), and the validator
        // (when on) has ruled out a recursive acquire.
        let saved = unsafe { B::acquire(&self.state, handle.as_ptr()) };
        RaisedGuard {
            lock: self,
            handle,
            saved,
            proof: DispatchLevel::PROOF,
            #[cfg(feature = "checked")]
            ticket: crate::checked::after_acquire::<B::Platform>(&self.owner, self.class, me),
            _handle: PhantomData,
        }
    }

    /// Acquires with the `AtDpcLevel` routine into `handle`.
    ///
    /// # Safety
    ///
    /// As for [`Lock::acquire_raising`].
    pub(crate) unsafe fn acquire_at_dpc_level<'a>(
        &'a self,
        handle: NonNull<B::Handle>,
        at: &'a DispatchLevel<B::Platform>,
    ) -> DpcGuard<'a, T, B> {
        #[cfg(feature = "checked")]
        let me = crate::checked::before_acquire::<B::Platform>(
            self.address(),
            &self.owner,
            self.class,
            crate::checked::Mode::AtDpcLevel,
        );
        // SAFETY: `at` proves DISPATCH_LEVEL for 'a, which outlives the guard;
        // `handle` is valid and stays put (caller).
        unsafe { B::acquire_at_dpc_level(&self.state, handle.as_ptr()) };
        DpcGuard {
            lock: self,
            handle,
            proof: at,
            #[cfg(feature = "checked")]
            ticket: crate::checked::after_acquire::<B::Platform>(&self.owner, self.class, me),
            _handle: PhantomData,
        }
    }

    #[cfg(feature = "checked")]
    fn address(&self) -> usize {
        core::ptr::from_ref(&self.state).addr()
    }
}

impl<T: ?Sized, B: Backend<Handle = ()>> Lock<T, B> {
    /// Acquires the lock, raising to `DISPATCH_LEVEL`; the guard releases it
    /// and restores the IRQL (`KeAcquireSpinLock` / `KeReleaseSpinLock`).
    /// Call at or below `DISPATCH_LEVEL`.
    #[inline]
    pub fn lock(&self) -> RaisedGuard<'_, T, B> {
        // SAFETY: the handle is `()`, for which a dangling pointer is valid
        // and never moves.
        unsafe { self.acquire_raising(NonNull::dangling()) }
    }

    /// Acquires the lock at `DISPATCH_LEVEL`, as proved by `at`; the guard
    /// releases it without touching the IRQL (`KeAcquireSpinLockAtDpcLevel`
    /// / `KeReleaseSpinLockFromDpcLevel`).
    #[inline]
    pub fn lock_at_dpc_level<'a>(
        &'a self,
        at: &'a DispatchLevel<B::Platform>,
    ) -> DpcGuard<'a, T, B> {
        // SAFETY: as in `lock`.
        unsafe { self.acquire_at_dpc_level(NonNull::dangling(), at) }
    }
}

impl<T: ?Sized, B: Backend> Drop for Lock<T, B> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no guard is alive; called once.
        unsafe { B::destroy(&mut self.state) }
    }
}

impl<T: ?Sized, B: Backend> fmt::Debug for Lock<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("class", &self.class.name())
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Storage for one in-stack queued acquisition (a `KLOCK_QUEUE_HANDLE`).
///
/// The kernel links waiters through these handles, so a handle must not move
/// while its lock is held. It is `!Unpin` and acquisitions take it as
/// `Pin<&mut QueueHandle<_>>`: pin it on the stack with [`core::pin::pin!`]
/// and reuse it for as many acquisitions as you like, one at a time.
pub struct QueueHandle<H> {
    raw: UnsafeCell<H>,
    _pinned: PhantomPinned,
}

impl<H: Default> QueueHandle<H> {
    /// A handle for the next acquisition.
    #[must_use]
    pub fn new() -> Self {
        Self {
            raw: UnsafeCell::new(H::default()),
            _pinned: PhantomPinned,
        }
    }
}

impl<H: Default> Default for QueueHandle<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> QueueHandle<H> {
    /// The raw handle, at an address that stays fixed while `self` is pinned.
    pub(crate) fn raw(self: Pin<&mut Self>) -> NonNull<H> {
        // SAFETY: nothing is moved out of the pinned handle; the pointer is
        // derived from its (fixed) address.
        let this = unsafe { self.get_unchecked_mut() };
        NonNull::from(this.raw.get_mut())
    }
}

/// A lock held through its IRQL-raising routine. Dropping it releases the lock
/// with the matching routine and restores the IRQL saved at acquisition.
///
/// While it lives the processor runs at `DISPATCH_LEVEL`, so it lends a
/// [`DispatchLevel`] proof for nested `AtDpcLevel` acquisitions, which then
/// borrow it and are released first.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RaisedGuard<'a, T: ?Sized, B: Backend> {
    lock: &'a Lock<T, B>,
    handle: NonNull<B::Handle>,
    saved: B::Saved,
    proof: DispatchLevel<B::Platform>,
    #[cfg(feature = "checked")]
    ticket: crate::checked::Ticket,
    _handle: PhantomData<&'a mut B::Handle>,
}

impl<T: ?Sized, B: Backend> RaisedGuard<'_, T, B> {
    /// The proof of `DISPATCH_LEVEL` that holding this lock gives, for nested
    /// `AtDpcLevel` acquisitions.
    #[must_use]
    pub fn dispatch_level(&self) -> &DispatchLevel<B::Platform> {
        &self.proof
    }

    /// Releases the lock now; the same as dropping the guard.
    pub fn unlock(self) {}
}

impl<T: ?Sized, B: Backend> Deref for RaisedGuard<'_, T, B> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, B: Backend> DerefMut for RaisedGuard<'_, T, B> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, B: Backend> Drop for RaisedGuard<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(feature = "checked")]
        let end = crate::checked::before_release::<B::Platform>(
            &self.lock.owner,
            crate::checked::Mode::Raising,
            // SAFETY: the handle of this (held) raising acquisition.
            Some(unsafe { B::saved_irql(self.handle.as_ptr(), self.saved) }),
        );
        // SAFETY: acquired by `B::acquire` with this handle, which returned
        // `saved`; the guard is !Send, so this is the acquiring processor.
        unsafe { B::release(self.lock.state(), self.handle.as_ptr(), self.saved) };
        #[cfg(feature = "checked")]
        crate::checked::after_release(self.lock.class, &self.ticket, end);
    }
}

/// A lock held through its `AtDpcLevel` routine. Dropping it releases the lock
/// with the `FromDpcLevel` routine; the IRQL is never touched.
///
/// It borrows the [`DispatchLevel`] proof it was acquired with, so it cannot
/// outlive the DPC routine or raised section that proved the IRQL.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct DpcGuard<'a, T: ?Sized, B: Backend> {
    lock: &'a Lock<T, B>,
    handle: NonNull<B::Handle>,
    proof: &'a DispatchLevel<B::Platform>,
    #[cfg(feature = "checked")]
    ticket: crate::checked::Ticket,
    _handle: PhantomData<&'a mut B::Handle>,
}

impl<'a, T: ?Sized, B: Backend> DpcGuard<'a, T, B> {
    /// The proof this guard was acquired with.
    #[must_use]
    pub fn dispatch_level(&self) -> &'a DispatchLevel<B::Platform> {
        self.proof
    }

    /// Releases the lock now; the same as dropping the guard.
    pub fn unlock(self) {}
}

impl<T: ?Sized, B: Backend> Deref for DpcGuard<'_, T, B> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, B: Backend> DerefMut for DpcGuard<'_, T, B> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, B: Backend> Drop for DpcGuard<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(feature = "checked")]
        let end = crate::checked::before_release::<B::Platform>(
            &self.lock.owner,
            crate::checked::Mode::AtDpcLevel,
            None,
        );
        // SAFETY: acquired by `B::acquire_at_dpc_level` with this handle; the
        // borrowed proof keeps the processor at DISPATCH_LEVEL until now.
        unsafe { B::release_from_dpc_level(self.lock.state(), self.handle.as_ptr()) };
        #[cfg(feature = "checked")]
        crate::checked::after_release(self.lock.class, &self.ticket, end);
    }
}

impl<T: ?Sized + fmt::Debug, B: Backend> fmt::Debug for RaisedGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug, B: Backend> fmt::Debug for DpcGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
