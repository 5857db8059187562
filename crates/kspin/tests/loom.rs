//! Model checks of the guard protocol over the host backend, with loom
//! exploring thread interleavings and memory orderings.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p kspin
//! --test loom --release` (`cargo xtask test` does). The protected counter is
//! a `loom::cell::UnsafeCell`, so loom reports any access that the lock does
//! not order (mutual exclusion and release ordering), and the final value
//! checks that no update was lost.
#![cfg(loom)]

use kspin::host::{QueuedSpinLock, SpinLock, run_as_dpc};
use loom::{cell::UnsafeCell, sync::Arc, thread};

fn increment(cell: &mut UnsafeCell<u64>) {
    // SAFETY: called with the lock held; loom checks that claim.
    cell.with_mut(|value| unsafe { *value += 1 });
}

fn read(cell: &mut UnsafeCell<u64>) -> u64 {
    // SAFETY: called with the lock held.
    cell.with(|value| unsafe { *value })
}

// The executive lock is a test-and-set word, on which two spinning waiters
// make loom's branch count unbounded (every failed spin is a branch), so it
// is modelled with two threads; the queued lock, whose waiters each spin on
// their own handle, is modelled with three.

#[test]
fn executive_raising_guards_exclude_and_order() {
    loom::model(|| {
        let lock = Arc::new(SpinLock::new(
            UnsafeCell::new(0_u64),
            kspin::lock_class!("loom.exec"),
        ));
        let other = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                lock.with(increment);
                lock.with(increment);
            })
        };
        lock.with(increment);
        other.join().expect("thread");
        assert_eq!(lock.with(read), 3);
    });
}

#[test]
fn executive_dpc_and_raising_guards_exclude_each_other() {
    loom::model(|| {
        let lock = Arc::new(SpinLock::new(
            UnsafeCell::new(0_u64),
            kspin::lock_class!("loom.mixed"),
        ));
        let dpc = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || run_as_dpc(|at| increment(&mut lock.lock_at_dpc_level(at))))
        };
        lock.with(increment);
        dpc.join().expect("thread");
        assert_eq!(lock.with(read), 2);
    });
}

#[test]
fn queued_guards_exclude_and_order() {
    loom::model(|| {
        let lock = Arc::new(QueuedSpinLock::new(
            UnsafeCell::new(0_u64),
            kspin::lock_class!("loom.queued"),
        ));
        let other = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || run_as_dpc(|at| lock.with_at_dpc_level(at, increment)))
        };
        lock.with(increment);
        other.join().expect("thread");
        assert_eq!(lock.with(read), 2);
    });
}

#[test]
fn queued_lock_hands_over_between_three_threads() {
    loom::model(|| {
        let lock = Arc::new(QueuedSpinLock::new(
            UnsafeCell::new(0_u64),
            kspin::lock_class!("loom.queued3"),
        ));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || lock.with(increment))
            })
            .collect();
        lock.with(increment);
        for other in others {
            other.join().expect("thread");
        }
        assert_eq!(lock.with(read), 3);
    });
}
