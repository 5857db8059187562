//! Where locks run: how the IRQL is read and changed, and the services the
//! validator needs.

#[cfg(feature = "checked")]
use core::cell::Cell;

use crate::level::{Irql, IrqlModel};

/// What the `checked` validator keeps about one thread outside its fixed
/// tables: the scopes it opened after finding every context taken, and the
/// locks it holds in them. A platform keeps one per thread, reached through
/// [`Platform::with_thread_record`].
#[cfg(feature = "checked")]
#[derive(Debug, Default)]
pub struct ThreadRecord {
    /// Open scopes since the outermost one found no context (0: none).
    pub(crate) depth: Cell<u32>,
    /// The owner token of those scopes' locks.
    pub(crate) token: Cell<u64>,
    /// Locks taken in them and not yet released.
    pub(crate) held: Cell<u32>,
}

#[cfg(feature = "checked")]
impl ThreadRecord {
    /// An empty record.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            depth: Cell::new(0),
            token: Cell::new(0),
            held: Cell::new(0),
        }
    }
}

/// The IRQL model of an execution environment: the Windows kernel, or the
/// host simulation used by tests.
///
/// # Safety
///
/// [`Platform::raise_irql`] must really raise the processor's IRQL (so that
/// the thread cannot be preempted on its processor until the matching
/// [`Platform::lower_irql`]), and [`Platform::current_irql`] must report the
/// IRQL the caller runs at whenever [`Platform::irql_model`] says
/// [`IrqlModel::Modelled`]. Guards rely on both for their `DISPATCH_LEVEL`
/// proofs.
pub unsafe trait Platform: Sized + 'static {
    /// The current IRQL (`KeGetCurrentIrql`).
    fn current_irql() -> Irql;

    /// Raises the IRQL to `new` and returns the previous one (`KeRaiseIrql`).
    ///
    /// # Safety
    ///
    /// `new` must be at least the current IRQL, and the caller must restore
    /// the returned IRQL with [`Platform::lower_irql`] on the same processor.
    unsafe fn raise_irql(new: Irql) -> Irql;

    /// Lowers the IRQL to `new` (`KeLowerIrql`).
    ///
    /// # Safety
    ///
    /// `new` must be the IRQL returned by the matching raise, and no spin lock
    /// acquired after that raise may still be held.
    unsafe fn lower_irql(new: Irql);

    /// Whether [`Platform::current_irql`] can be trusted here. Wine, for
    /// instance, runs drivers in user mode, where every IRQL read returns
    /// `PASSIVE_LEVEL`; IRQL assertions are then reported as unavailable
    /// instead of failing.
    fn irql_model() -> IrqlModel;

    /// An identifier of the current thread, never 0 (owner tracking).
    fn current_thread() -> usize;

    /// A monotonic clock in nanoseconds (hold-time statistics).
    fn now_ns() -> u64;

    /// Stops the system on a violation that cannot be survived, such as a
    /// recursive acquire that would otherwise spin forever: a bugcheck in the
    /// kernel, a panic on the host.
    fn fail_stop(violation: &'static str, lock: usize) -> !;

    /// Runs `f` with the current thread's [`ThreadRecord`] (feature
    /// `checked`), or returns `None` where the platform keeps none. With a
    /// record, a scope begun while every context is taken is still judged
    /// as the outermost, its leaks reported and its recursive acquires
    /// stopped; without one, the validator claims no context while such a
    /// scope is open anywhere, so that none of its inner scopes can be
    /// taken for an outermost one (those scopes go unchecked, counted).
    #[cfg(feature = "checked")]
    fn with_thread_record<R>(f: impl FnOnce(&ThreadRecord) -> R) -> Option<R> {
        let _ = f;
        None
    }
}
