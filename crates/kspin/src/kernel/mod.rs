//! The Windows kernel backends: executive spin locks, in-stack queued spin
//! locks, video miniport spin locks (feature `videoport`), the IRQL (through
//! `cr8` as the x64 WDK headers inline it, through the HAL's exported
//! routines on ARM64 and x86), and DPC trampolines that lend a
//! [`DispatchLevel`] proof to DPC routines.
//!
//! Which lock to use from where:
//!
//! | Caller | IRQL | Acquire with |
//! |---|---|---|
//! | IOCTL dispatch routine, system thread | `PASSIVE_LEVEL` | `with(\|data\| …)` (raises and restores) |
//! | DPC routine (via [`dpc`]) | `DISPATCH_LEVEL` | `lock_at_dpc_level(at)`, `with_at_dpc_level(at, …)` |
//! | inside [`at_dispatch_level`](crate::at_dispatch_level) | `DISPATCH_LEVEL` | `lock_at_dpc_level(at)`, `with_at_dpc_level(at, …)` |
//! | ISR / `KeSynchronizeExecution` | DIRQL | none of these: executive spin locks must not be used above `DISPATCH_LEVEL` |

pub mod dpc;
mod executive;
pub mod ffi;
mod queued;
#[cfg(feature = "videoport")]
mod videoport;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub use executive::Executive;
pub use queued::InStackQueued;
#[cfg(feature = "videoport")]
pub use videoport::{VideoPort, VideoPortState};

use crate::{
    level::{Irql, IrqlModel},
    platform::Platform,
};

/// The Windows kernel.
#[derive(Debug)]
pub enum Kernel {}

/// An executive spin lock (`KSPIN_LOCK`) owning its data.
pub type SpinLock<T> = crate::Lock<T, Executive>;
/// An in-stack queued spin lock owning its data.
pub type QueuedSpinLock<T> = crate::Lock<T, InStackQueued>;
/// A video miniport spin lock owning its data.
#[cfg(feature = "videoport")]
pub type VideoPortSpinLock<T> = crate::Lock<T, VideoPort>;
/// The kernel's proof of `DISPATCH_LEVEL`.
pub type DispatchLevel = crate::DispatchLevel<Kernel>;

/// [`crate::at_dispatch_level`] on the kernel: `KeRaiseIrql(DISPATCH_LEVEL,
/// &OldIrql)`, `f(at)`, `KeLowerIrql(OldIrql)`, without naming the platform.
#[inline]
pub fn at_dispatch_level<R>(f: impl FnOnce(&DispatchLevel) -> R) -> R {
    crate::at_dispatch_level::<Kernel, R>(f)
}

/// [`IrqlModel`] as a number: the kernel models IRQL unless told otherwise.
static IRQL_MODEL: AtomicU32 = AtomicU32::new(IrqlModel::Modelled as u32);

/// Tells kspin whether IRQL reads can be trusted here (see
/// [`detect_irql_model`], which is what a driver should call).
///
/// # Safety
///
/// [`IrqlModel::NotModelled`] switches off the IRQL checks (the debug
/// assertions, and the checked validator's); pass it only where IRQL reads
/// really cannot be trusted (Wine).
pub unsafe fn set_irql_model(model: IrqlModel) {
    IRQL_MODEL.store(model as u32, Ordering::Relaxed);
}

/// Finds out whether this environment models IRQL, records the answer for
/// the IRQL assertions and the validator, and returns it.
///
/// It raises to `DISPATCH_LEVEL` and reads the IRQL back: Windows reports
/// `DISPATCH_LEVEL`; Wine, which runs drivers in user mode and emulates
/// `cr8` as always 0, reports `PASSIVE_LEVEL`. Call it once, at
/// `PASSIVE_LEVEL` (in `DriverEntry`).
pub fn detect_irql_model() -> IrqlModel {
    // SAFETY: called at PASSIVE_LEVEL (documented); raise and lower pair up
    // on this processor with no lock taken in between.
    let seen = unsafe {
        let previous = Kernel::raise_irql(Irql::DISPATCH);
        let seen = Kernel::current_irql();
        Kernel::lower_irql(previous);
        seen
    };
    let model = if seen == Irql::DISPATCH {
        IrqlModel::Modelled
    } else {
        IrqlModel::NotModelled
    };
    // SAFETY: the model just observed on this system.
    unsafe { set_irql_model(model) };
    model
}

#[cfg(target_arch = "x86_64")]
mod irql_impl {
    // The x64 WDK inlines KeGetCurrentIrql, KeRaiseIrql and KeLowerIrql as
    // reads and writes of cr8 (the task priority register).
    pub(super) fn read() -> u8 {
        let value: u64;
        // SAFETY: reading cr8 has no side effects; kernel mode only, which is
        // where the kernel backend runs.
        unsafe {
            core::arch::asm!("mov {}, cr8", out(reg) value, options(nomem, nostack, preserves_flags))
        };
        value as u8
    }

    pub(super) unsafe fn raise(irql: u8) -> u8 {
        let old = read();
        // SAFETY: raising (caller).
        unsafe { lower(irql) };
        old
    }

    pub(super) unsafe fn lower(irql: u8) {
        // SAFETY: the caller upholds the raise/lower contract; `memory`
        // ordering (no `nomem`) keeps accesses from moving across the change.
        unsafe {
            core::arch::asm!("mov cr8, {}", in(reg) u64::from(irql), options(nostack, preserves_flags))
        };
    }
}

// ARM64 and x86 have no inline IRQL access: wdm.h declares KeGetCurrentIrql,
// KfRaiseIrql and KfLowerIrql as HAL exports (`KeRaiseIrql`/`KeLowerIrql` are
// macros over the `Kf` pair). See ffi.rs for the evidence and the x86
// calling conventions.
#[cfg(any(target_arch = "aarch64", target_arch = "x86"))]
mod irql_impl {
    use super::ffi;

    pub(super) fn read() -> u8 {
        // SAFETY: a plain query.
        unsafe { ffi::KeGetCurrentIrql() }
    }

    pub(super) unsafe fn raise(irql: u8) -> u8 {
        // SAFETY: the caller upholds the raise contract.
        unsafe { ffi::KfRaiseIrql(irql) }
    }

    pub(super) unsafe fn lower(irql: u8) {
        // SAFETY: the caller upholds the lower contract.
        unsafe { ffi::KfLowerIrql(irql) }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86")))]
compile_error!(
    "kspin's kernel backend supports the architectures of Windows drivers: x86_64, aarch64 and x86"
);

/// `KeQueryPerformanceCounter`'s frequency, read once.
static QPC_FREQUENCY: AtomicU64 = AtomicU64::new(0);

/// Bugcheck code for a validator fail-stop: `KSPN`.
pub const KSPIN_BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"KSPN");

// SAFETY: cr8 (x64) and the HAL routines (ARM64, x86) are the processor's real IRQL;
// `irql_model` is only NotModelled when the driver has found out otherwise.
unsafe impl Platform for Kernel {
    #[inline]
    fn current_irql() -> Irql {
        Irql(irql_impl::read())
    }

    #[inline]
    unsafe fn raise_irql(new: Irql) -> Irql {
        // SAFETY: raising (caller).
        Irql(unsafe { irql_impl::raise(new.0) })
    }

    #[inline]
    unsafe fn lower_irql(new: Irql) {
        // SAFETY: lowering to the value the matching raise returned (caller).
        unsafe { irql_impl::lower(new.0) }
    }

    fn irql_model() -> IrqlModel {
        if IRQL_MODEL.load(Ordering::Relaxed) == IrqlModel::Modelled as u32 {
            IrqlModel::Modelled
        } else {
            IrqlModel::NotModelled
        }
    }

    fn current_thread() -> usize {
        // The KTHREAD, not the thread id: at DISPATCH_LEVEL a DPC runs on
        // whatever thread it interrupted, and every processor's idle thread
        // has thread id 0, while each has its own KTHREAD.
        // SAFETY: callable at any IRQL; never null.
        unsafe { ffi::KeGetCurrentThread() }.addr()
    }

    fn now_ns() -> u64 {
        let mut frequency = QPC_FREQUENCY.load(Ordering::Relaxed);
        let mut ticks_and_frequency = 0_i64;
        // SAFETY: callable at any IRQL; the out-parameter is a local.
        let ticks = unsafe { ffi::KeQueryPerformanceCounter(&raw mut ticks_and_frequency) };
        if frequency == 0 {
            frequency = u64::try_from(ticks_and_frequency).unwrap_or(1).max(1);
            QPC_FREQUENCY.store(frequency, Ordering::Relaxed);
        }
        let ticks = u128::from(u64::try_from(ticks).unwrap_or(0));
        u64::try_from(ticks * 1_000_000_000 / u128::from(frequency)).unwrap_or(u64::MAX)
    }

    fn fail_stop(_violation: &'static str, lock: usize) -> ! {
        // P1 is the lock's address (0 when the violation is not about one
        // lock), P2 the current KTHREAD.
        // SAFETY: KeBugCheckEx takes plain values and never returns.
        unsafe { ffi::KeBugCheckEx(KSPIN_BUGCHECK_CODE, lock, Self::current_thread(), 0, 0) }
    }
}
