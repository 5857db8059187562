//! IRQL values, the `DISPATCH_LEVEL` proof, and raising to it.

use core::marker::PhantomData;

use crate::platform::Platform;

/// An interrupt request level (`KIRQL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Irql(pub u8);

impl Irql {
    /// `PASSIVE_LEVEL`: threads, IOCTL dispatch routines.
    pub const PASSIVE: Self = Self(0);
    /// `APC_LEVEL`.
    pub const APC: Self = Self(1);
    /// `DISPATCH_LEVEL`: DPC routines, code holding a spin lock.
    pub const DISPATCH: Self = Self(2);
}

/// Whether a platform's IRQL reads can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum IrqlModel {
    /// IRQL reads report the real level: IRQL assertions are on.
    Modelled = 1,
    /// The environment does not model IRQL (Wine): IRQL assertions are off
    /// and reported as unavailable.
    NotModelled = 0,
}

/// Proof that the current processor runs at `DISPATCH_LEVEL`.
///
/// The `AtDpcLevel` acquire routines may only be called at `DISPATCH_LEVEL`
/// (Driver Verifier bugchecks with 0xC4/0x40 otherwise), so
/// [`crate::Lock::lock_at_dpc_level`] takes a `&DispatchLevel`. Safe code
/// can only borrow one where it is true:
///
/// * inside a DPC routine, from the kernel backend's DPC trampolines;
/// * inside [`at_dispatch_level`], or from a live [`RaisedIrql`];
/// * from a held IRQL-raising lock guard ([`crate::RaisedGuard::dispatch_level`]).
///
/// It is zero-sized, has no public constructor, is neither `Send` nor `Sync`
/// (so it cannot reach another processor), and is only ever lent by
/// reference for the span in which the IRQL is known.
pub struct DispatchLevel<P: Platform> {
    _not_send: PhantomData<(*mut (), P)>,
}

impl<P: Platform> DispatchLevel<P> {
    /// The proof itself, for types that own one and lend it.
    pub(crate) const PROOF: Self = Self {
        _not_send: PhantomData,
    };

    /// Borrows a proof that the caller runs at `DISPATCH_LEVEL`.
    ///
    /// Use it to write a DPC trampoline of your own, or in code that the
    /// kernel documents as running at `DISPATCH_LEVEL`.
    ///
    /// # Safety
    ///
    /// The current processor must run at `DISPATCH_LEVEL` for all of `'a`,
    /// and the reference must stay on this thread (it cannot be sent).
    #[must_use]
    pub unsafe fn assume<'a>() -> &'a Self {
        debug_assert!(
            P::irql_model() == IrqlModel::NotModelled || P::current_irql() == Irql::DISPATCH,
            "DispatchLevel::assume called below DISPATCH_LEVEL (at IRQL {})",
            P::current_irql().0
        );
        &Self::PROOF
    }
}

/// The processor raised to `DISPATCH_LEVEL`; dropping it restores the
/// previous IRQL (`KeRaiseIrql` / `KeLowerIrql`).
///
/// Guards of locks acquired through its [`RaisedIrql::dispatch_level`] borrow
/// it, so they are released before the IRQL is lowered.
#[must_use = "the IRQL is lowered again as soon as this is dropped"]
pub struct RaisedIrql<P: Platform> {
    previous: Irql,
    proof: DispatchLevel<P>,
}

impl<P: Platform> RaisedIrql<P> {
    /// The proof of `DISPATCH_LEVEL`, for as long as the IRQL stays raised.
    #[must_use]
    pub fn dispatch_level(&self) -> &DispatchLevel<P> {
        &self.proof
    }

    /// The IRQL that dropping this restores.
    #[must_use]
    pub fn previous(&self) -> Irql {
        self.previous
    }
}

impl<P: Platform> Drop for RaisedIrql<P> {
    fn drop(&mut self) {
        // SAFETY: `previous` is what the matching raise returned; every guard
        // that used this proof borrowed `self` and has been dropped already.
        unsafe { P::lower_irql(self.previous) }
    }
}

/// Raises the current processor to `DISPATCH_LEVEL` until the returned value
/// is dropped (`KeRaiseIrql(DISPATCH_LEVEL, &OldIrql)` … `KeLowerIrql(OldIrql)`).
///
/// Call it at or below `DISPATCH_LEVEL`. Raising guards must be dropped in
/// the reverse order of their creation; prefer [`at_dispatch_level`], which
/// makes that order structural.
pub fn raise_to_dispatch<P: Platform>() -> RaisedIrql<P> {
    debug_assert!(
        P::irql_model() == IrqlModel::NotModelled || P::current_irql() <= Irql::DISPATCH,
        "raise_to_dispatch called above DISPATCH_LEVEL"
    );
    // SAFETY: raising to DISPATCH_LEVEL from at most DISPATCH_LEVEL; Drop
    // lowers back to the returned IRQL on this processor (the value is !Send).
    let previous = unsafe { P::raise_irql(Irql::DISPATCH) };
    RaisedIrql {
        previous,
        proof: DispatchLevel::PROOF,
    }
}

/// Runs `f` at `DISPATCH_LEVEL` with the proof, then restores the IRQL.
///
/// This is the IOCTL path's way into `AtDpcLevel` acquisitions:
///
/// ```
/// # use kspin::host::{SpinLock, Host};
/// static LEDGER: SpinLock<u64> = SpinLock::new(0, kspin::lock_class!("doc.ledger"));
/// kspin::at_dispatch_level::<Host, _>(|at| {
///     for _ in 0..3 {
///         *LEDGER.lock_at_dpc_level(at) += 1;
///     }
/// });
/// assert_eq!(*LEDGER.lock(), 3);
/// ```
pub fn at_dispatch_level<P: Platform, R>(f: impl FnOnce(&DispatchLevel<P>) -> R) -> R {
    let raised = raise_to_dispatch::<P>();
    f(raised.dispatch_level())
}
