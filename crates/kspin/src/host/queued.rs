//! In-stack queued spin locks on the host: an MCS queue lock, which is what
//! the kernel's `KLOCK_QUEUE_HANDLE` locks are. Each waiter spins on its own
//! handle, and the lock's tail points at the last waiter's handle, so a
//! handle must neither move nor be freed while it is queued: kspin keeps it
//! on the stack frame of [`crate::Lock::with`] / `with_at_dpc_level`, which
//! release before they return.

use core::{
    cell::Cell,
    ptr::{self, NonNull},
};

use super::{Host, verify_irql};
use crate::{
    backend::Backend,
    level::Irql,
    lock::Lock,
    platform::Platform,
    sync::{AtomicBool, AtomicPtr, Ordering, spin_loop},
};

/// The host's in-stack queued spin lock family.
#[derive(Debug)]
pub enum InStackQueued {}

/// One waiter in the queue: the host's `KLOCK_QUEUE_HANDLE`.
#[derive(Debug)]
pub struct McsNode {
    next: AtomicPtr<McsNode>,
    waiting: AtomicBool,
    old_irql: Cell<u8>,
}

/// Joins the queue behind the current tail and waits to be handed the lock.
///
/// # Safety
///
/// `node` is valid for writes (it may be uninitialized) and stays put until
/// [`mcs_release`] with the same node.
unsafe fn mcs_acquire(tail: &AtomicPtr<McsNode>, node: *mut McsNode) {
    // SAFETY: valid for writes (caller); initialized here before any use,
    // and before it is published to other threads by the swap below.
    unsafe {
        node.write(McsNode {
            next: AtomicPtr::new(ptr::null_mut()),
            waiting: AtomicBool::new(true),
            old_irql: Cell::new(0),
        });
    }
    // SAFETY: initialized just above, valid for the whole acquisition.
    let me = unsafe { &*node };
    let previous = tail.swap(node, Ordering::AcqRel);
    if let Some(previous) = NonNull::new(previous) {
        // SAFETY: the previous tail stays valid until it hands the lock over,
        // which it cannot do before seeing this link.
        unsafe { previous.as_ref() }
            .next
            .store(node, Ordering::Release);
        while me.waiting.load(Ordering::Acquire) {
            spin_loop();
        }
    }
}

/// Hands the lock to the next waiter, or empties the queue.
///
/// # Safety
///
/// `node` is the node of the current holder.
unsafe fn mcs_release(tail: &AtomicPtr<McsNode>, node: *mut McsNode) {
    // SAFETY: the holder's node is valid (caller).
    let me = unsafe { &*node };
    let mut next = me.next.load(Ordering::Acquire);
    if next.is_null() {
        if tail
            .compare_exchange(node, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        // A waiter swapped itself in but has not linked yet.
        loop {
            next = me.next.load(Ordering::Acquire);
            if !next.is_null() {
                break;
            }
            spin_loop();
        }
    }
    // SAFETY: a linked waiter stays valid while it spins on `waiting`.
    unsafe { &*next }.waiting.store(false, Ordering::Release);
}

// SAFETY: MCS gives mutual exclusion in FIFO order; the hand-over store is
// Release and the waiter's load Acquire, and an uncontended release is an
// AcqRel CAS on the tail, so each release happens-before the next acquire.
// The raising acquire sets DISPATCH_LEVEL and stores the old IRQL in the node.
unsafe impl Backend for InStackQueued {
    type Platform = Host;
    type State = AtomicPtr<McsNode>;
    type Handle = McsNode;
    type Saved = ();

    unsafe fn acquire(state: &Self::State, handle: *mut McsNode) {
        verify_irql(
            |irql| irql <= Irql::DISPATCH,
            "C4/0x42: KeAcquireInStackQueuedSpinLock above DISPATCH_LEVEL",
        );
        // SAFETY: raising to DISPATCH_LEVEL from at most DISPATCH_LEVEL.
        let old = unsafe { Host::raise_irql(Irql::DISPATCH) };
        // SAFETY: the handle is valid and pinned (caller).
        unsafe {
            mcs_acquire(state, handle);
            (*handle).old_irql.set(old.0);
        }
    }

    unsafe fn release(state: &Self::State, handle: *mut McsNode, (): ()) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "C4/0x36: KeReleaseInStackQueuedSpinLock not at DISPATCH_LEVEL",
        );
        // SAFETY: the holder's pinned handle (caller); read the IRQL before
        // handing over, after which the node may be reused.
        let old = Irql(unsafe { (*handle).old_irql.get() });
        // SAFETY: as above.
        unsafe { mcs_release(state, handle) };
        // SAFETY: `old` is what the acquisition's raise returned.
        unsafe { Host::lower_irql(old) };
    }

    unsafe fn acquire_at_dpc_level(state: &Self::State, handle: *mut McsNode) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "C4/0x40: KeAcquireInStackQueuedSpinLockAtDpcLevel below DISPATCH_LEVEL",
        );
        // SAFETY: the handle is valid and pinned (caller).
        unsafe { mcs_acquire(state, handle) };
    }

    unsafe fn release_from_dpc_level(state: &Self::State, handle: *mut McsNode) {
        verify_irql(
            |irql| irql == Irql::DISPATCH,
            "C4/0x41: KeReleaseInStackQueuedSpinLockFromDpcLevel below DISPATCH_LEVEL",
        );
        // SAFETY: the holder's pinned handle (caller).
        unsafe { mcs_release(state, handle) };
    }

    fn is_locked(state: &Self::State) -> Option<bool> {
        Some(!state.load(Ordering::Relaxed).is_null())
    }
}

impl<T> Lock<T, InStackQueued> {
    /// A new, unlocked queued spin lock around `data`.
    #[cfg(not(loom))]
    pub const fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicPtr::new(ptr::null_mut()), data, class)
    }

    /// A new, unlocked queued spin lock around `data`.
    #[cfg(loom)]
    pub fn new(data: T, class: &'static crate::LockClass) -> Self {
        Self::from_state(AtomicPtr::new(ptr::null_mut()), data, class)
    }
}
