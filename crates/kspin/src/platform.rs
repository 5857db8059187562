//! Where locks run: how the IRQL is read and changed, and the services the
//! validator needs.

use crate::level::{Irql, IrqlModel};

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
}
