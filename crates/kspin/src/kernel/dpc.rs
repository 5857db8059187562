//! DPC trampolines: the kernel calls DPC routines at `DISPATCH_LEVEL`, so
//! these hand the routine a [`DispatchLevel`] proof, the safe way into
//! `lock_at_dpc_level`.
//!
//! * [`deferred_routine`] is a `PKDEFERRED_ROUTINE` for `KeInitializeDpc`,
//!   so it serves KDPCs and the DPCs of KTIMERs (`KeSetTimerEx`).
//! * [`generic_call_dpc`] runs a routine on every processor at once with
//!   `KeGenericCallDpc` and always signals `KeSignalCallDpcDone`, which a
//!   hand-written routine can forget (hanging `KeGenericCallDpc` forever).

use core::ffi::c_void;

use super::{DispatchLevel, Kernel, ffi};
use crate::level::{Irql, IrqlModel};
use crate::platform::Platform;

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

/// What a [`GenericCallRoutine`] can do with the other processors running it.
pub struct CallDpcBarrier {
    system_argument2: *mut c_void,
}

impl CallDpcBarrier {
    /// Waits until every processor has reached this point
    /// (`KeSignalCallDpcSynchronize`); returns `true` on exactly one of them.
    ///
    /// Every processor must call it the same number of times: one that
    /// skips it leaves all the others spinning at `DISPATCH_LEVEL` (a hang,
    /// then the DPC watchdog's bugcheck 0x133), and so does one that calls
    /// it while holding a spin lock that another processor needs to get
    /// there.
    pub fn synchronize(&self) -> bool {
        // SAFETY: the argument KeGenericCallDpc passed to this DPC, at DISPATCH_LEVEL.
        unsafe { ffi::KeSignalCallDpcSynchronize(self.system_argument2) != 0 }
    }
}

/// A routine that [`generic_call_dpc`] runs on every processor at once.
pub trait GenericCallRoutine: Sync {
    /// Runs at `DISPATCH_LEVEL` on one processor, concurrently with the same
    /// routine on every other processor.
    fn run(&self, at: &DispatchLevel, barrier: &CallDpcBarrier);
}

unsafe extern "system" fn generic_call_trampoline<R: GenericCallRoutine>(
    _dpc: *mut c_void,
    context: *mut c_void,
    system_argument1: *mut c_void,
    system_argument2: *mut c_void,
) {
    // SAFETY: `context` is the `&R` that `generic_call_dpc` borrowed for the
    // whole (synchronous) KeGenericCallDpc call.
    let routine = unsafe { &*context.cast::<R>() };
    let barrier = CallDpcBarrier { system_argument2 };
    // SAFETY: KeGenericCallDpc runs its routine as a DPC, at DISPATCH_LEVEL.
    unsafe { crate::assume_dispatch_level::<Kernel, ()>(|at| routine.run(at, &barrier)) };
    // SAFETY: exactly once per processor, with the argument we were given.
    unsafe { ffi::KeSignalCallDpcDone(system_argument1) };
}

/// Runs `routine` as a DPC on every active processor at once and returns
/// when all of them have finished (`KeGenericCallDpc`).
///
/// Call it at `PASSIVE_LEVEL` or `APC_LEVEL`: never inside a DPC routine,
/// `at_dispatch_level`, a `with` closure or a `GenericCallRoutine`.
/// Safe code can reach all of those, and the types cannot tell, so the
/// IRQL is checked on every call (one `cr8` read, nothing beside a broadcast
/// to every processor): above `APC_LEVEL` this stops the system at once
/// with bugcheck `KSPN` (P1 = 0), where `KeGenericCallDpc` would take a
/// fast mutex at `DISPATCH_LEVEL` and spin every processor until the DPC
/// watchdog fires. (Where IRQL is not modelled, Wine, the check cannot run.)
pub fn generic_call_dpc<R: GenericCallRoutine>(routine: &R) {
    if super::Kernel::irql_model() == IrqlModel::Modelled
        && super::Kernel::current_irql() > Irql::APC
    {
        super::Kernel::fail_stop("generic_call_dpc called above APC_LEVEL", 0);
    }
    // SAFETY: KeGenericCallDpc returns only after every processor's routine
    // has called KeSignalCallDpcDone, so `routine` outlives every use.
    unsafe {
        ffi::KeGenericCallDpc(
            Some(generic_call_trampoline::<R>),
            core::ptr::from_ref(routine).cast_mut().cast(),
        );
    }
}
