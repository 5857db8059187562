//! The data-owning lock: its scoped acquisitions and its `AtDpcLevel` guard,
//! written once for every [`Backend`].
//!
//! # Why the raising acquire is a scope and not a guard
//!
//! A lock taken with the IRQL-raising routine must be released by the
//! routine that restores the IRQL, in the reverse order of acquisition, and
//! exactly once. A guard value cannot promise any of that: safe Rust may
//! forget it (`mem::forget`, `Box::leak`, an `Rc` cycle), drop it out of
//! order, move it into a closure or hold it across an `.await`. So the
//! raising acquisitions ([`Lock::with`], [`crate::at_dispatch_level`]) raise
//! and restore inside kspin's own stack frame, around a closure: the IRQL
//! always comes back to what it was, in nesting order, whatever the closure
//! does. The `AtDpcLevel` acquire keeps its guard ([`DpcGuard`]), because
//! releasing it never touches the IRQL: its proof of `DISPATCH_LEVEL` is
//! borrowed from a scope, and cannot outlive it.

use core::{
    cell::UnsafeCell,
    fmt,
    mem::MaybeUninit,
    ops::{Deref, DerefMut},
};

use crate::{
    backend::{Backend, Mode},
    class::LockClass,
    scope::DispatchLevel,
};

/// A spin lock that owns the data it protects, like `Mutex<T>`: the data is
/// reachable only inside an acquisition, and how the lock was acquired
/// decides how it is released.
///
/// | Acquire | Kernel routines | Where |
/// |---|---|---|
/// | [`with`](Lock::with) | `KeAcquireSpinLock` … `KeReleaseSpinLock` (queued: `KeAcquireInStackQueuedSpinLock` … `KeReleaseInStackQueuedSpinLock`) | at or below `DISPATCH_LEVEL` |
/// | [`lock_at_dpc_level`](Lock::lock_at_dpc_level) → [`DpcGuard`] | `KeAcquireSpinLockAtDpcLevel` … `KeReleaseSpinLockFromDpcLevel` | at `DISPATCH_LEVEL`, proved |
/// | [`with_at_dpc_level`](Lock::with_at_dpc_level) | the `AtDpcLevel` pair of any family, queued included | at `DISPATCH_LEVEL`, proved |
///
/// Place it in non-paged memory (a device extension, a driver `static`, or
/// non-paged pool): the lock and its data are touched at `DISPATCH_LEVEL`.
///
/// ```
/// use kspin::host::{SpinLock, run_as_dpc};
/// static LEDGER: SpinLock<u64> = SpinLock::new(0, kspin::lock_class!("doc.ledger"));
///
/// // An IOCTL path, at PASSIVE_LEVEL: KeAcquireSpinLock … KeReleaseSpinLock.
/// LEDGER.with(|count| *count += 1);
///
/// // A DPC routine, at DISPATCH_LEVEL: the AtDpcLevel pair, as a guard.
/// run_as_dpc(|at| {
///     let mut count = LEDGER.lock_at_dpc_level(at);
///     *count += 1;
/// }); // KeReleaseSpinLockFromDpcLevel when `count` drops
///
/// assert_eq!(LEDGER.with(|count| *count), 2);
/// ```
// `repr(C)` with the backend state first: the address of the lock is the
// address of its `KSPIN_LOCK`, so an acquisition passes the caller's pointer
// straight to the kernel, exactly as hand-written C would (see `cargo xtask
// bench`).
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

    /// Runs `f` on the data with the lock held through its IRQL-raising
    /// routine, then releases it and restores the caller's IRQL:
    /// `KeAcquireSpinLock` … `KeReleaseSpinLock(lock, OldIrql)` (x64:
    /// `KeAcquireSpinLockRaiseToDpc`), or for an in-stack queued lock
    /// `KeAcquireInStackQueuedSpinLock` … `KeReleaseInStackQueuedSpinLock`
    /// with the `KLOCK_QUEUE_HANDLE` on this function's stack.
    ///
    /// Call at or below `DISPATCH_LEVEL`. The release and the IRQL restore
    /// happen here, after `f` returns (or unwinds), so nothing `f` does can
    /// skip them, reorder them, or release the lock the wrong way.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.raising(0, true, f)
    }

    /// [`Lock::with`], also lending the proof of `DISPATCH_LEVEL` that
    /// the raising acquire establishes, for taking further locks with their
    /// `AtDpcLevel` routines inside it: `KeAcquireSpinLock(a)`,
    /// `KeAcquireSpinLockAtDpcLevel(b)`, … in C, without a second raise.
    ///
    /// ```
    /// use kspin::host::SpinLock;
    /// static A: SpinLock<u64> = SpinLock::new(0, kspin::lock_class!("doc.with_raised.a"));
    /// static B: SpinLock<u64> = SpinLock::new(0, kspin::lock_class!("doc.with_raised.b"));
    /// A.with_raised(|a, at| {
    ///     *a += 1;
    ///     *B.lock_at_dpc_level(at) += 1; // AtDpcLevel: A's acquire raised
    /// }); // B released, then A with KeReleaseSpinLock(A, OldIrql)
    /// assert_eq!(A.with(|a| *a) + B.with(|b| *b), 2);
    /// ```
    ///
    /// The proof is lent for the closure's call only, like
    /// [`crate::at_dispatch_level`]'s: it and every guard made from it are
    /// gone before the release lowers the IRQL.
    #[inline]
    pub fn with_raised<R>(&self, f: impl FnOnce(&mut T, &DispatchLevel<B::Platform>) -> R) -> R {
        self.raising(0, true, |data| f(data, &DispatchLevel::PROOF))
    }

    /// [`Lock::with`], for reading the data in order to report on it: the
    /// checked build checks it like any acquisition but leaves its hold time
    /// out of the class's statistics, so that reading the statistics does
    /// not change them. The same as `with` in free builds.
    #[inline]
    pub fn inspect<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.raising(0, false, f)
    }

    /// Runs `f` on the data with the lock held through its `AtDpcLevel`
    /// routine, then releases it with the `FromDpcLevel` routine; the IRQL
    /// is never touched. For in-stack queued locks this is the only
    /// `AtDpcLevel` form (`KeAcquireInStackQueuedSpinLockAtDpcLevel` …
    /// `KeReleaseInStackQueuedSpinLockFromDpcLevel`, handle on this stack).
    #[inline]
    pub fn with_at_dpc_level<R>(
        &self,
        at: &DispatchLevel<B::Platform>,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        self.at_dpc_level(0, at, f)
    }

    /// This lock acquired as subclass `subclass` of its class, for taking
    /// two locks of one class at once in a fixed order, as lockdep's
    /// `spin_lock_nested`. Only the checked build's order checking sees the
    /// subclass: without it, holding two locks of one class is reported.
    #[must_use]
    pub fn nested(&self, subclass: u8) -> Nested<'_, T, B> {
        Nested {
            lock: self,
            subclass,
        }
    }

    /// The raising acquisition of [`Lock::with`], as subclass `subclass`;
    /// `measured`: whether its hold time counts in the checked statistics.
    #[inline]
    fn raising<R>(&self, subclass: u8, measured: bool, f: impl FnOnce(&mut T) -> R) -> R {
        let mut handle = MaybeUninit::<B::Handle>::uninit();
        let handle = handle.as_mut_ptr();
        let pending = self.check_acquire(subclass, Mode::Raising);
        // SAFETY: the handle is this frame's storage and stays put until the
        // release below; the validator (when on) has ruled out recursion.
        let saved = unsafe { B::acquire(&self.state, handle) };
        let _release = RaisingRelease {
            lock: self,
            handle,
            saved,
            ticket: self.acquired(pending, measured),
        };
        // SAFETY: the lock is held until `_release` drops, after `f`, and
        // the borrow handed to `f` cannot outlive `f`.
        f(unsafe { &mut *self.data.get() })
    }

    /// The `AtDpcLevel` acquisition of [`Lock::with_at_dpc_level`].
    #[inline]
    fn at_dpc_level<R>(
        &self,
        subclass: u8,
        _at: &DispatchLevel<B::Platform>,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let mut handle = MaybeUninit::<B::Handle>::uninit();
        let handle = handle.as_mut_ptr();
        // SAFETY: `_at` proves DISPATCH_LEVEL for this whole call; the handle
        // is this frame's storage and stays put until the release.
        let ticket = unsafe { self.acquire_at_dpc_level(subclass, handle) };
        let _release = DpcRelease {
            lock: self,
            handle,
            ticket,
        };
        // SAFETY: as in `raising`.
        f(unsafe { &mut *self.data.get() })
    }

    /// The `AtDpcLevel` acquire with its checks.
    ///
    /// # Safety
    ///
    /// The caller runs at `DISPATCH_LEVEL` until the matching
    /// [`Lock::release_from_dpc_level`], and `handle` is valid and stays put
    /// until then.
    #[inline]
    unsafe fn acquire_at_dpc_level(&self, subclass: u8, handle: *mut B::Handle) -> Ticket {
        let pending = self.check_acquire(subclass, Mode::AtDpcLevel);
        // SAFETY: forwarded contract.
        unsafe { B::acquire_at_dpc_level(&self.state, handle) };
        self.acquired(pending, true)
    }

    /// The `FromDpcLevel` release with its bookkeeping.
    ///
    /// # Safety
    ///
    /// Acquired by [`Lock::acquire_at_dpc_level`] with this `handle` and
    /// `ticket`, on this processor, still at `DISPATCH_LEVEL`.
    #[inline]
    unsafe fn release_from_dpc_level(&self, handle: *mut B::Handle, ticket: &Ticket) {
        self.releasing(ticket, Mode::AtDpcLevel);
        // SAFETY: forwarded contract.
        unsafe { B::release_from_dpc_level(&self.state, handle) };
    }

    /// The backend state, for family-specific accessors.
    #[cfg(feature = "host")]
    pub(crate) fn state(&self) -> &B::State {
        &self.state
    }

    /// The lock's address (that of its backend state, which comes first).
    fn addr(&self) -> usize {
        core::ptr::from_ref(&self.state).addr()
    }
}

/// What the validator remembers about one acquisition.
#[cfg(feature = "checked")]
use crate::checked::Ticket;

/// Nothing to remember in free builds.
#[cfg(not(feature = "checked"))]
struct Ticket;

/// What the validator's checks before an acquisition pass on to its record.
#[cfg(feature = "checked")]
struct Pending {
    me: usize,
    subclass: u8,
    mode: Mode,
}

/// Nothing to pass on in free builds.
#[cfg(not(feature = "checked"))]
struct Pending;

/// The validator's hooks around the raw calls. In free builds they are
/// empty, and every acquisition compiles to the raw calls alone.
impl<T: ?Sized, B: Backend> Lock<T, B> {
    /// Checks before the raw acquire: recursion, IRQL, lock order.
    #[inline]
    fn check_acquire(&self, subclass: u8, mode: Mode) -> Pending {
        #[cfg(feature = "checked")]
        {
            let me = crate::checked::before_acquire::<B::Platform>(
                self.addr(),
                &self.owner,
                self.class,
                subclass,
                mode,
            );
            Pending { me, subclass, mode }
        }
        #[cfg(not(feature = "checked"))]
        {
            let _ = (subclass, mode);
            Pending
        }
    }

    /// Records an acquisition once the raw acquire has returned;
    /// `measured`: whether its hold time counts in the statistics.
    #[inline]
    fn acquired(&self, pending: Pending, measured: bool) -> Ticket {
        #[cfg(feature = "checked")]
        {
            crate::checked::after_acquire::<B::Platform>(
                &self.owner,
                self.class,
                pending.subclass,
                pending.mode,
                pending.me,
                measured,
            )
        }
        #[cfg(not(feature = "checked"))]
        {
            let (Pending, _) = (pending, measured);
            Ticket
        }
    }

    /// All the bookkeeping of a release, done before the raw release so
    /// that it stays right even if the release panics (host backend).
    #[inline]
    fn releasing(&self, ticket: &Ticket, mode: Mode) {
        #[cfg(feature = "checked")]
        crate::checked::before_release::<B::Platform>(&self.owner, self.class, ticket, mode);
        #[cfg(not(feature = "checked"))]
        let (Ticket, _) = (ticket, mode);
    }
}

impl<T: ?Sized, B: Backend<Handle = ()>> Lock<T, B> {
    /// Acquires the lock at `DISPATCH_LEVEL`, as proved by `at`; dropping
    /// the guard releases it without touching the IRQL
    /// (`KeAcquireSpinLockAtDpcLevel` / `KeReleaseSpinLockFromDpcLevel`,
    /// x86: `KefReleaseSpinLockFromDpcLevel`; video port:
    /// `VideoPortAcquireSpinLockAtDpcLevel` /
    /// `VideoPortReleaseSpinLockFromDpcLevel`).
    ///
    /// The guard borrows `at`, so it cannot outlive the DPC routine or the
    /// raised scope that proved the IRQL. Forgetting it leaves the lock held
    /// (nothing worse; see the crate documentation on leaks).
    #[inline]
    pub fn lock_at_dpc_level<'a>(
        &'a self,
        at: &'a DispatchLevel<B::Platform>,
    ) -> DpcGuard<'a, T, B> {
        self.guard_at_dpc_level(0, at)
    }

    /// Acquires two locks at `DISPATCH_LEVEL`, the one at the lower address
    /// first, as the kernel's double-lock helpers do: two processors taking
    /// the same two locks this way, in whatever argument order, cannot
    /// deadlock. Returns the guards in argument order, or `None` if both are
    /// the same lock (which cannot be held twice).
    ///
    /// This is the way to hold two locks of one class, say two accounts in a
    /// transfer: `transfer(x, y)` and `transfer(y, x)` take them in one
    /// order. Nesting them by position with [`Lock::nested`] does not, and
    /// the checked build cannot see it (a subclass names a position, not a
    /// lock). The checked build sees a same-class pair as subclasses 0 and 1
    /// of the class. Two locks of different classes get no fixed order
    /// between their classes here, so the checked build records the edge of
    /// each acquisition as it happens: once the two classes have been taken
    /// both ways round (by pairs whose addresses compared differently, or by
    /// a pair and a nesting elsewhere), it reports the inversion.
    ///
    /// The order is the locks' addresses while both are borrowed, that is
    /// for as long as either is held: neither can move meanwhile, so every
    /// processor holding one of them saw the same order.
    ///
    /// ```
    /// use kspin::host::{SpinLock, run_as_dpc};
    /// let class = kspin::lock_class!("doc.account");
    /// let (x, y) = (SpinLock::new(100_i64, class), SpinLock::new(0_i64, class));
    /// let transfer = |from: &SpinLock<i64>, to: &SpinLock<i64>, amount| {
    ///     run_as_dpc(|at| {
    ///         let (mut from, mut to) = SpinLock::lock_pair_at_dpc_level(from, to, at)
    ///             .expect("two accounts");
    ///         *from -= amount;
    ///         *to += amount;
    ///     });
    /// };
    /// transfer(&x, &y, 30);
    /// transfer(&y, &x, 10); // the same order of acquisition: no ABBA
    /// assert_eq!((x.with(|v| *v), y.with(|v| *v)), (80, 20));
    /// ```
    #[inline]
    pub fn lock_pair_at_dpc_level<'a>(
        first: &'a Self,
        second: &'a Self,
        at: &'a DispatchLevel<B::Platform>,
    ) -> Option<(DpcGuard<'a, T, B>, DpcGuard<'a, T, B>)> {
        let (first_at, second_at) = (first.addr(), second.addr());
        if first_at == second_at {
            return None;
        }
        // Subclasses exist only for the checked build's order graph.
        let inner = u8::from(core::ptr::eq(first.class, second.class));
        Some(if first_at < second_at {
            let low = first.guard_at_dpc_level(0, at);
            (low, second.guard_at_dpc_level(inner, at))
        } else {
            let low = second.guard_at_dpc_level(0, at);
            (first.guard_at_dpc_level(inner, at), low)
        })
    }

    #[inline]
    fn guard_at_dpc_level<'a>(
        &'a self,
        subclass: u8,
        at: &'a DispatchLevel<B::Platform>,
    ) -> DpcGuard<'a, T, B> {
        // SAFETY: `at` proves DISPATCH_LEVEL for 'a, which the guard cannot
        // outlive; the handle is `()`, for which a dangling pointer is valid.
        let ticket = unsafe { self.acquire_at_dpc_level(subclass, core::ptr::dangling_mut()) };
        DpcGuard {
            lock: self,
            proof: at,
            ticket,
        }
    }
}

impl<T: ?Sized, B: Backend> Drop for Lock<T, B> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no acquisition is running; called once.
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

/// A [`Lock`] acquired as a subclass of its class (see [`Lock::nested`]).
#[derive(Debug)]
pub struct Nested<'a, T: ?Sized, B: Backend> {
    lock: &'a Lock<T, B>,
    subclass: u8,
}

impl<T: ?Sized, B: Backend> Nested<'_, T, B> {
    /// [`Lock::with`], as this subclass.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.raising(self.subclass, true, f)
    }

    /// [`Lock::with_at_dpc_level`], as this subclass.
    #[inline]
    pub fn with_at_dpc_level<R>(
        &self,
        at: &DispatchLevel<B::Platform>,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        self.lock.at_dpc_level(self.subclass, at, f)
    }
}

impl<'l, T: ?Sized, B: Backend<Handle = ()>> Nested<'l, T, B> {
    /// [`Lock::lock_at_dpc_level`], as this subclass.
    #[inline]
    pub fn lock_at_dpc_level<'a>(&self, at: &'a DispatchLevel<B::Platform>) -> DpcGuard<'a, T, B>
    where
        'l: 'a,
    {
        self.lock.guard_at_dpc_level(self.subclass, at)
    }
}

/// Releases a raising acquisition when [`Lock::with`]'s frame ends, normally
/// or by unwinding. It never leaves that frame, so it cannot be forgotten.
struct RaisingRelease<'a, T: ?Sized, B: Backend> {
    lock: &'a Lock<T, B>,
    handle: *mut B::Handle,
    saved: B::Saved,
    ticket: Ticket,
}

impl<T: ?Sized, B: Backend> Drop for RaisingRelease<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        self.lock.releasing(&self.ticket, Mode::Raising);
        // SAFETY: acquired by `B::acquire` in `Lock::raising` with this
        // handle, which returned `saved`; still on the acquiring processor,
        // since that frame has not returned.
        unsafe { B::release(&self.lock.state, self.handle, self.saved) };
    }
}

/// Releases an `AtDpcLevel` acquisition when [`Lock::with_at_dpc_level`]'s
/// frame ends; like [`RaisingRelease`], it cannot be forgotten.
struct DpcRelease<'a, T: ?Sized, B: Backend> {
    lock: &'a Lock<T, B>,
    handle: *mut B::Handle,
    ticket: Ticket,
}

impl<T: ?Sized, B: Backend> Drop for DpcRelease<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: acquired in `Lock::at_dpc_level` with this handle; that
        // frame's proof keeps the processor at DISPATCH_LEVEL until now.
        unsafe { self.lock.release_from_dpc_level(self.handle, &self.ticket) };
    }
}

/// A lock held through its `AtDpcLevel` routine. Dropping it releases the lock
/// with the `FromDpcLevel` routine; the IRQL is never touched.
///
/// It borrows the [`DispatchLevel`] proof it was acquired with, so it cannot
/// outlive the DPC routine or raised scope that proved the IRQL. It is
/// neither `Send` nor `Sync`: the release must run on the acquiring
/// processor.
///
/// Guards may be dropped in any order (none of them changes the IRQL). A
/// guard that is never dropped leaves its lock held for good: every later
/// acquisition spins, which is a deadlock, never undefined behaviour; the
/// checked build reports the scope that ended with it still held.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct DpcGuard<'a, T: ?Sized, B: Backend<Handle = ()>> {
    lock: &'a Lock<T, B>,
    proof: &'a DispatchLevel<B::Platform>,
    ticket: Ticket,
}

impl<'a, T: ?Sized, B: Backend<Handle = ()>> DpcGuard<'a, T, B> {
    /// The proof this guard was acquired with, for further `AtDpcLevel`
    /// acquisitions in the same scope.
    #[must_use]
    pub fn dispatch_level(&self) -> &'a DispatchLevel<B::Platform> {
        self.proof
    }

    /// Releases the lock now; the same as dropping the guard.
    pub fn unlock(self) {}
}

impl<T: ?Sized, B: Backend<Handle = ()>> Deref for DpcGuard<'_, T, B> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, B: Backend<Handle = ()>> DerefMut for DpcGuard<'_, T, B> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, B: Backend<Handle = ()>> Drop for DpcGuard<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: acquired by `acquire_at_dpc_level` with the `()` handle;
        // the borrowed proof keeps the processor at DISPATCH_LEVEL until now,
        // and the guard is !Send, so this is the acquiring processor.
        unsafe {
            self.lock
                .release_from_dpc_level(core::ptr::dangling_mut(), &self.ticket);
        }
    }
}

impl<T: ?Sized + fmt::Debug, B: Backend<Handle = ()>> fmt::Debug for DpcGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
