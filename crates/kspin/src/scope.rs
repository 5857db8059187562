//! The `DISPATCH_LEVEL` proof, and the scopes that lend it.

use core::marker::PhantomData;

use crate::{
    level::{Irql, IrqlModel},
    platform::Platform,
};

/// Proof that the current processor runs at `DISPATCH_LEVEL`.
///
/// The `AtDpcLevel` acquire routines may only be called at `DISPATCH_LEVEL`
/// (Driver Verifier bugchecks with 0xC4/0x40 otherwise), so they take a
/// `&DispatchLevel`. Safe code never owns one; it can only borrow one, for
/// the span of a scope in which the IRQL is known:
///
/// * a DPC routine's call, from the kernel backend's DPC trampolines;
/// * [`at_dispatch_level`]'s closure.
///
/// Those scopes lend it to a closure or a trait method as `&'s DispatchLevel`
/// for a lifetime `'s` that ends before the IRQL can drop, so a proof (and
/// every [`crate::DpcGuard`] that borrows it) can be neither stored beyond
/// the scope (`Box::leak` gives no longer lifetime than the borrow) nor
/// used after it. It is zero-sized, and neither `Send` nor `Sync`, so it
/// cannot reach another processor.
pub struct DispatchLevel<P: Platform> {
    _not_send: PhantomData<(*mut (), P)>,
}

impl<P: Platform> DispatchLevel<P> {
    /// The proof itself, lent only by the scopes of this crate (always as
    /// a reference whose lifetime the borrowing closure cannot choose).
    pub(crate) const PROOF: Self = Self {
        _not_send: PhantomData,
    };
}

/// Raises the current processor to `DISPATCH_LEVEL`, runs `f` with the proof,
/// then restores the IRQL it found (`KeRaiseIrql(DISPATCH_LEVEL, &OldIrql)` …
/// `KeLowerIrql(OldIrql)`).
///
/// This is the IOCTL path's way into `AtDpcLevel` acquisitions: raise once,
/// then take one lock or several at `DISPATCH_LEVEL`.
///
/// ```
/// # use kspin::host::{SpinLock, Host};
/// static A: SpinLock<u64> = SpinLock::new(0, kspin::lock_class!("doc.a"));
/// static B: SpinLock<u64> = SpinLock::new(0, kspin::lock_class!("doc.b"));
/// kspin::at_dispatch_level::<Host, _>(|at| {
///     let mut a = A.lock_at_dpc_level(at); // always A before B
///     let mut b = B.lock_at_dpc_level(at);
///     *a += 1;
///     *b += 1;
/// }); // both released, then the IRQL restored
/// assert_eq!(A.with(|a| *a) + B.with(|b| *b), 2);
/// ```
///
/// Call it at or below `DISPATCH_LEVEL`. The IRQL is lowered after `f`
/// returns or unwinds, in kspin's frame: `f` cannot lower it early, and
/// every guard `f` made from the proof is gone by then, unless `f` leaked
/// it, which leaves that lock held (see the crate documentation on leaks).
#[inline]
pub fn at_dispatch_level<P: Platform, R>(f: impl FnOnce(&DispatchLevel<P>) -> R) -> R {
    debug_assert!(
        P::irql_model() == IrqlModel::NotModelled || P::current_irql() <= Irql::DISPATCH,
        "at_dispatch_level called above DISPATCH_LEVEL"
    );
    // SAFETY: raising to DISPATCH_LEVEL from at most DISPATCH_LEVEL; `_lower`
    // lowers back to `previous` when this frame ends, on this processor
    // (raised, the thread cannot move), after `f` and all it borrowed.
    let previous = unsafe { P::raise_irql(Irql::DISPATCH) };
    let _lower = Lower::<P> {
        previous,
        #[cfg(feature = "checked")]
        scope: crate::checked::enter_scope::<P>(),
        _platform: PhantomData,
    };
    f(&DispatchLevel::PROOF)
}

/// Restores the IRQL when [`at_dispatch_level`]'s frame ends. It never
/// leaves that frame, so it cannot be forgotten or dropped early.
struct Lower<P: Platform> {
    previous: Irql,
    #[cfg(feature = "checked")]
    scope: crate::checked::Ticket,
    _platform: PhantomData<P>,
}

impl<P: Platform> Drop for Lower<P> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(feature = "checked")]
        crate::checked::exit_scope::<P>(&self.scope);
        // SAFETY: `previous` is what the raise in `at_dispatch_level` returned,
        // on this processor.
        unsafe { P::lower_irql(self.previous) }
    }
}

/// Runs `f` with a proof of `DISPATCH_LEVEL`, without changing the IRQL:
/// the body of a DPC trampoline. The kernel backend's trampolines
/// (`kernel::dpc`) and the host's `run_as_dpc` are built on it; use it to
/// write a trampoline of your own. The checked build treats the call as a
/// DPC routine: a lock still held when it returns is reported.
///
/// # Safety
///
/// The current processor runs at `DISPATCH_LEVEL` for the whole call (the
/// kernel calls DPC routines at `DISPATCH_LEVEL`).
#[inline]
pub unsafe fn assume_dispatch_level<P: Platform, R>(f: impl FnOnce(&DispatchLevel<P>) -> R) -> R {
    debug_assert!(
        P::irql_model() == IrqlModel::NotModelled || P::current_irql() == Irql::DISPATCH,
        "assume_dispatch_level called at IRQL {}, not DISPATCH_LEVEL",
        P::current_irql().0
    );
    #[cfg(feature = "checked")]
    let _scope = ScopeEnd::<P> {
        ticket: crate::checked::enter_scope::<P>(),
        _platform: PhantomData,
    };
    f(&DispatchLevel::PROOF)
}

/// Ends a checked DPC scope when [`assume_dispatch_level`]'s frame ends.
#[cfg(feature = "checked")]
struct ScopeEnd<P: Platform> {
    ticket: crate::checked::Ticket,
    _platform: PhantomData<P>,
}

#[cfg(feature = "checked")]
impl<P: Platform> Drop for ScopeEnd<P> {
    fn drop(&mut self) {
        crate::checked::exit_scope::<P>(&self.ticket);
    }
}
