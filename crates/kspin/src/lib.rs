//! RAII guards for Windows kernel spin locks, whose types make the documented
//! misuses impossible.
//!
//! The kernel offers several acquire/release pairs for one `KSPIN_LOCK`, and
//! pairing them wrongly compiles in C:
//!
//! | C acquire | must be released by | kspin |
//! |---|---|---|
//! | `KeAcquireSpinLock` (x64: `KeAcquireSpinLockRaiseToDpc`) | `KeReleaseSpinLock(lock, OldIrql)` | [`Lock::lock`] → [`RaisedGuard`] |
//! | `KeAcquireSpinLockAtDpcLevel` (at `DISPATCH_LEVEL` only) | `KeReleaseSpinLockFromDpcLevel` (x86: `KefReleaseSpinLockFromDpcLevel`) | [`Lock::lock_at_dpc_level`] → [`DpcGuard`] |
//! | `KeAcquireInStackQueuedSpinLock` | `KeReleaseInStackQueuedSpinLock(&handle)` | `QueuedSpinLock::lock(handle)` → [`RaisedGuard`] |
//! | `KeAcquireInStackQueuedSpinLockAtDpcLevel` | `KeReleaseInStackQueuedSpinLockFromDpcLevel(&handle)` | `QueuedSpinLock::lock_at_dpc_level(handle, at)` → [`DpcGuard`] |
//! | `VideoPortAcquireSpinLock` | `VideoPortReleaseSpinLock(ext, lock, OldIrql)` | `VideoPortSpinLock::lock` → [`RaisedGuard`] |
//! | `VideoPortAcquireSpinLockAtDpcLevel` | `VideoPortReleaseSpinLockFromDpcLevel` | `VideoPortSpinLock::lock_at_dpc_level` → [`DpcGuard`] |
//!
//! The guard type records how the lock was taken and releases it the only
//! way that matches: a lock acquired with the IRQL-raising routine can never
//! be released with the `FromDpcLevel` routine (which would leave the caller
//! at `DISPATCH_LEVEL`, the documented cause of deadlocks and fatal page
//! faults). The `AtDpcLevel` acquires take a [`DispatchLevel`] proof, which
//! safe code can only borrow where it is true: inside a DPC routine (the
//! kernel backend's DPC trampolines lend it), inside [`at_dispatch_level`],
//! or from a held raising guard.
//!
//! The guard machinery is written once, over two traits:
//! [`Platform`] (how IRQL is read and changed) and [`Backend`] (the raw
//! acquire/release calls of one lock family). The `kernel` feature provides
//! the Windows backends; the `host` feature provides a backend made of real
//! atomics and a per-thread simulated IRQL, so every rule here is tested on
//! any OS. The `checked` feature adds a validator in the spirit of lockdep and
//! Driver Verifier (see [`checked`]); without it, guards compile to exactly
//! the raw calls.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "host")]
extern crate std;

mod backend;
pub mod class;
mod irql;
mod lock;
mod platform;
#[cfg(feature = "host")]
mod sync;

#[cfg(feature = "checked")]
pub mod checked;
#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "kernel")]
pub mod kernel;

pub use backend::Backend;
pub use class::LockClass;
pub use irql::{DispatchLevel, Irql, IrqlModel, RaisedIrql, at_dispatch_level, raise_to_dispatch};
pub use lock::{DpcGuard, Lock, QueueHandle, RaisedGuard};
pub use platform::Platform;
