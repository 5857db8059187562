//! Windows kernel spin locks whose API makes the documented misuses
//! impossible in safe code.
//!
//! The kernel offers several acquire/release pairs for one `KSPIN_LOCK`, and
//! pairing them wrongly compiles in C:
//!
//! | C acquire | must be released by | kspin |
//! |---|---|---|
//! | `KeAcquireSpinLock` (x64: `KeAcquireSpinLockRaiseToDpc`) | `KeReleaseSpinLock(lock, OldIrql)` | [`Lock::with`]`(\|data\| …)` |
//! | `KeAcquireSpinLockAtDpcLevel` (at `DISPATCH_LEVEL` only) | `KeReleaseSpinLockFromDpcLevel` (x86: `KefReleaseSpinLockFromDpcLevel`) | [`Lock::lock_at_dpc_level`]`(at)` → [`DpcGuard`] |
//! | `KeAcquireInStackQueuedSpinLock` | `KeReleaseInStackQueuedSpinLock(&handle)` | [`Lock::with`] on a queued lock |
//! | `KeAcquireInStackQueuedSpinLockAtDpcLevel` | `KeReleaseInStackQueuedSpinLockFromDpcLevel(&handle)` | [`Lock::with_at_dpc_level`]`(at, …)` on a queued lock |
//! | `VideoPortAcquireSpinLock` | `VideoPortReleaseSpinLock(ext, lock, OldIrql)` | [`Lock::with`] on a video port lock |
//! | `VideoPortAcquireSpinLockAtDpcLevel` | `VideoPortReleaseSpinLockFromDpcLevel` | [`Lock::lock_at_dpc_level`] on a video port lock |
//! | `KeRaiseIrql(DISPATCH_LEVEL)` | `KeLowerIrql(OldIrql)` | [`at_dispatch_level`]`(\|at\| …)` |
//! | `KeAcquireSpinLock`, then `AtDpcLevel` acquisitions inside | `FromDpcLevel`, then `KeReleaseSpinLock` | [`Lock::with_raised`]`(\|data, at\| …)` |
//! | two locks of one class, lower address first | both `FromDpcLevel` | [`Lock::lock_pair_at_dpc_level`]`(x, y, at)` |
//!
//! # The promise, and how it is kept
//!
//! For every program without `unsafe`, whatever it does with kspin's values
//! (moves them into closures, forgets or leaks them, drops them in any
//! order, holds them across `.await`):
//!
//! 1. no undefined behaviour;
//! 2. no `AtDpcLevel` or `FromDpcLevel` call below `DISPATCH_LEVEL`;
//! 3. every call that raises the IRQL gives it back exactly as it found it,
//!    and never lowers it while a lock taken inside it is held, unless that
//!    lock's guard was leaked;
//! 4. the worst a leak can do is leave a lock held: a deadlock for the next
//!    acquirer, as with a leaked `std::sync::MutexGuard`.
//!
//! The IRQL is only ever raised by a function that also lowers it before
//! returning ([`Lock::with`], [`at_dispatch_level`]): raising and lowering
//! are nested by the call stack, not by drop order, so nothing safe code
//! does to a value can unbalance them. A lock taken with the raising routine
//! is released inside that same function by the routine that restores the
//! IRQL, never by the `FromDpcLevel` routine. The `AtDpcLevel` acquires take
//! a [`DispatchLevel`] proof, which safe code can only borrow from a scope
//! in which the IRQL is `DISPATCH_LEVEL` (a DPC routine, or
//! [`at_dispatch_level`]) for a lifetime that ends with the scope: neither
//! the proof nor a [`DpcGuard`] built on it can outlive it, and neither can
//! move to another processor. In-stack queued locks keep their
//! `KLOCK_QUEUE_HANDLE` on kspin's stack frame, so it is never moved or freed
//! while the kernel links other waiters through it.
//!
//! # What a leak does
//!
//! Safe Rust can leak a [`DpcGuard`] (`mem::forget`, `Box::leak`, an `Rc`
//! cycle). Its lock is then never released: every later acquisition spins,
//! exactly like a C driver that forgot `KeReleaseSpinLockFromDpcLevel`. That
//! is all: the data cannot be reached through the leaked guard after its
//! scope (the borrow checker ends it with the proof), the IRQL is restored
//! when the scope ends, and nothing is freed while in use. The `checked`
//! build reports it: when a thread's outermost scope ends (a DPC routine
//! returns, or the IRQL is about to drop below `DISPATCH_LEVEL`) with a lock
//! taken inside still held, it counts
//! [`checked::Violations::held_at_scope_end`] and names the lock's class;
//! and a later acquisition of that lock, by any thread, is fail-stopped
//! (counted as a recursive acquire) instead of spinning forever.
//!
//! # Structure
//!
//! The machinery is written once, over two traits: [`Platform`] (how IRQL is
//! read and changed) and [`Backend`] (the raw acquire/release calls of one
//! lock family). The `kernel` feature provides the Windows backends; the
//! `host` feature provides a backend made of real atomics and a per-thread
//! simulated IRQL, so every rule here is tested (and run under Miri and
//! loom) on any OS. The `checked` feature adds a validator in the spirit of
//! lockdep and Driver Verifier (see `checked`); without it, every
//! acquisition compiles to exactly the raw calls.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "host")]
extern crate std;

mod backend;
pub mod class;
mod level;
mod lock;
mod platform;
mod scope;
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
pub use level::{Irql, IrqlModel};
pub use lock::{DpcGuard, Lock, Nested};
pub use platform::Platform;
pub use scope::{DispatchLevel, assume_dispatch_level, at_dispatch_level};
