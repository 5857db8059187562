//! The DPC trampoline: the kernel calls DPC routines at `DISPATCH_LEVEL`, so
//! it hands the routine a [`DispatchLevel`] proof, the safe way into
//! `lock_at_dpc_level`.
//!
//! [`deferred_routine`] is a `PKDEFERRED_ROUTINE` for `KeInitializeDpc`, so
//! it serves every KDPC: one queued with `KeInsertQueueDpc` (bound to a
//! processor with `KeSetTargetProcessorDpcEx`, to run a routine on each
//! processor, one KDPC per processor) and the DPC of a KTIMER
//! (`KeSetTimerEx`). Only documented DDIs: kspin no longer wraps
//! `KeGenericCallDpc`, which no WDK header declares.

use core::ffi::c_void;

use super::{DispatchLevel, Kernel};

/// A DPC routine that receives the proof of `DISPATCH_LEVEL`.
pub trait DeferredRoutine: Sync {
    /// Runs at `DISPATCH_LEVEL`: nothing here may block, wait, touch pageable
    /// memory, or hold a spin lock for long (guidance: 25 µs per lock, 100 µs
    /// per DPC).
    fn run(&self, at: &DispatchLevel);
}

/// Defines [`deferred_routine`] with the calling convention bindgen gives
/// `PKDEFERRED_ROUTINE`: `"C"` on x64 and ARM64 (where it is the only one;
/// `cargo xtask check-windows` type-checks both against wdk-sys), stdcall on
/// x86. Rust treats the two as different function-pointer types.
macro_rules! define_deferred_routine {
    ($abi:literal) => {
        /// The `PKDEFERRED_ROUTINE` that calls `R::run` on the `R` passed as
        /// `DeferredContext`. `D` is the KDPC type of your bindings, so that
        /// `Some(deferred_routine::<KDPC, MyRoutine>)` has the type
        /// `KeInitializeDpc` expects.
        ///
        /// # Safety
        ///
        /// Only the kernel calls this, as a DPC routine: `context` must point
        /// to an `R` that outlives every run of the DPC (cancel the timer, or
        /// flush the DPC, before freeing it). Never give it to
        /// `KeInitializeThreadedDpc`: a threaded DPC usually runs at
        /// `PASSIVE_LEVEL`, and the proof it lends would be false.
        pub unsafe extern $abi fn deferred_routine<D, R: DeferredRoutine>(
            _dpc: *mut D,
            context: *mut c_void,
            _system_argument1: *mut c_void,
            _system_argument2: *mut c_void,
        ) {
            // SAFETY: `context` is the live `R` given to KeInitializeDpc.
            let routine = unsafe { &*context.cast::<R>() };
            // SAFETY: the kernel runs DPC routines at DISPATCH_LEVEL.
            unsafe { crate::assume_dispatch_level::<Kernel, ()>(|at| routine.run(at)) };
        }
    };
}

#[cfg(not(target_arch = "x86"))]
define_deferred_routine!("C");
#[cfg(target_arch = "x86")]
define_deferred_routine!("system");
