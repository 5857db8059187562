//! Atomics and spin hints, swapped for loom's models under `--cfg loom` so
//! that the host backend's lock protocol can be model checked.

#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr};

#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr};

pub(crate) use core::sync::atomic::Ordering;
