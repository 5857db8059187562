//! Every guard against the host backend: what each acquire does to the IRQL,
//! how it is released, and that the locks really exclude each other.

use std::{pin::pin, sync::Barrier, thread};

use kspin::{
    Backend, Irql, Platform, at_dispatch_level,
    host::{
        Executive, Host, LockQueueHandle, QueuedSpinLock, SpinLock, VideoPortSpinLock, VpStatus,
        run_as_dpc,
    },
    lock_class, raise_to_dispatch,
};

fn irql() -> Irql {
    Host::current_irql()
}

#[test]
fn raising_guard_raises_to_dispatch_and_restores_passive() {
    let lock = SpinLock::new(0_u32, lock_class!("t.raising"));
    assert_eq!(irql(), Irql::PASSIVE);
    {
        let mut guard = lock.lock();
        assert_eq!(irql(), Irql::DISPATCH);
        *guard += 1;
        assert_eq!(lock.is_locked(), Some(true));
    }
    assert_eq!(irql(), Irql::PASSIVE);
    assert_eq!(lock.is_locked(), Some(false));
    assert_eq!(*lock.lock(), 1);
}

#[test]
fn raising_guard_taken_at_dispatch_restores_dispatch() {
    let lock = SpinLock::new(0_u32, lock_class!("t.raising-at-dispatch"));
    run_as_dpc(|_| {
        let guard = lock.lock();
        assert_eq!(irql(), Irql::DISPATCH);
        guard.unlock();
        assert_eq!(
            irql(),
            Irql::DISPATCH,
            "KeReleaseSpinLock restores the saved DISPATCH_LEVEL"
        );
    });
    assert_eq!(irql(), Irql::PASSIVE);
}

#[test]
fn dpc_guard_leaves_the_irql_alone() {
    let lock = SpinLock::new(0_u32, lock_class!("t.dpc"));
    run_as_dpc(|at| {
        *lock.lock_at_dpc_level(at) += 1;
        assert_eq!(irql(), Irql::DISPATCH);
        let guard = lock.lock_at_dpc_level(at);
        assert_eq!(*guard, 1);
    });
}

#[test]
fn a_held_raising_guard_proves_dispatch_for_nested_locks() {
    let outer = SpinLock::new(0_u32, lock_class!("t.outer"));
    let inner = SpinLock::new(0_u32, lock_class!("t.inner"));
    let mut outer_guard = outer.lock();
    let mut inner_guard = inner.lock_at_dpc_level(outer_guard.dispatch_level());
    *inner_guard += 1;
    drop(inner_guard);
    *outer_guard += 1;
    drop(outer_guard);
    assert_eq!(irql(), Irql::PASSIVE);
    assert_eq!((*outer.lock(), *inner.lock()), (1, 1));
}

#[test]
fn raise_to_dispatch_and_at_dispatch_level_restore_the_irql() {
    let lock = SpinLock::new(0_u32, lock_class!("t.raise"));
    let raised = raise_to_dispatch::<Host>();
    assert_eq!((irql(), raised.previous()), (Irql::DISPATCH, Irql::PASSIVE));
    *lock.lock_at_dpc_level(raised.dispatch_level()) += 1;
    drop(raised);
    assert_eq!(irql(), Irql::PASSIVE);

    at_dispatch_level::<Host, _>(|at| {
        assert_eq!(irql(), Irql::DISPATCH);
        *lock.lock_at_dpc_level(at) += 1;
    });
    assert_eq!(irql(), Irql::PASSIVE);
    assert_eq!(*lock.lock(), 2);
}

#[test]
fn queued_guards_in_both_modes_and_handle_reuse() {
    let lock = QueuedSpinLock::new(0_u32, lock_class!("t.queued"));
    let mut handle = pin!(LockQueueHandle::new());
    for _ in 0..3 {
        let mut guard = lock.lock(handle.as_mut());
        assert_eq!(irql(), Irql::DISPATCH);
        *guard += 1;
    }
    assert_eq!(irql(), Irql::PASSIVE);
    run_as_dpc(|at| {
        *lock.lock_at_dpc_level(handle.as_mut(), at) += 1;
        assert_eq!(irql(), Irql::DISPATCH);
    });
    assert_eq!(lock.is_locked(), Some(false));
    assert_eq!(*lock.lock(handle.as_mut()), 4);
}

#[test]
fn video_port_lock_needs_a_device_extension_and_has_both_modes() {
    let no_extension = VideoPortSpinLock::create(std::ptr::null_mut(), 0_u32, lock_class!("t.vp"));
    assert_eq!(no_extension.err(), Some(VpStatus::INVALID_PARAMETER));

    let mut extension = [0_u8; 64];
    let lock = VideoPortSpinLock::create(extension.as_mut_ptr().cast(), 0_u32, lock_class!("t.vp"))
        .expect("created");
    assert_eq!(lock.hw_device_extension(), extension.as_mut_ptr().cast());
    *lock.lock() += 1;
    assert_eq!(irql(), Irql::PASSIVE);
    run_as_dpc(|at| *lock.lock_at_dpc_level(at) += 1);
    assert_eq!(lock.is_locked(), None, "video port locks are opaque");
    assert_eq!(*lock.lock(), 2);
}

/// Threads hammer one counter through `lock`; the lock must lose nothing.
fn hammer(threads: usize, per_thread: u64, body: impl Fn(u64) + Sync) {
    let start = Barrier::new(threads);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                start.wait();
                for i in 0..per_thread {
                    body(i);
                }
            });
        }
    });
}

/// A read-modify-write with room for another thread to interleave.
fn slow_increment(value: &mut u64) {
    let seen = std::hint::black_box(*value);
    widen_race_window();
    *value = seen + 1;
}

fn widen_race_window() {
    for _ in 0..200 {
        std::hint::spin_loop();
    }
}

#[test]
fn every_family_and_mode_excludes_other_threads() {
    const THREADS: usize = 4;
    const EACH: u64 = 300;
    let plain = SpinLock::new(0_u64, lock_class!("t.x.plain"));
    let queued = QueuedSpinLock::new(0_u64, lock_class!("t.x.queued"));
    let mut extension = 0_u64;
    let video =
        VideoPortSpinLock::create((&raw mut extension).cast(), 0_u64, lock_class!("t.x.vp"))
            .expect("created");

    hammer(THREADS, EACH, |i| {
        if i % 2 == 0 {
            slow_increment(&mut plain.lock());
            slow_increment(&mut video.lock());
            slow_increment(&mut queued.lock(pin!(LockQueueHandle::new())));
        } else {
            run_as_dpc(|at| {
                slow_increment(&mut plain.lock_at_dpc_level(at));
                slow_increment(&mut video.lock_at_dpc_level(at));
                slow_increment(&mut queued.lock_at_dpc_level(pin!(LockQueueHandle::new()), at));
            });
        }
    });
    let expected = THREADS as u64 * EACH;
    assert_eq!(*plain.lock(), expected);
    assert_eq!(*video.lock(), expected);
    assert_eq!(*queued.lock(pin!(LockQueueHandle::new())), expected);
}

#[test]
fn the_same_work_without_a_lock_loses_updates() {
    // The negative control for the test above: the same read-modify-write,
    // unlocked, loses updates, so the exact locked counts mean something.
    // A single round may by chance interleave nothing; one of many will not.
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let lost_in_some_round = (0..100).any(|_| {
        let counter = AtomicU64::new(0);
        hammer(4, 300, |_| {
            let seen = counter.load(Relaxed);
            widen_race_window();
            counter.store(seen + 1, Relaxed);
        });
        counter.into_inner() < 1200
    });
    assert!(
        lost_in_some_round,
        "unlocked increments never lost an update"
    );
}

#[test]
fn get_mut_needs_no_lock() {
    let mut lock = SpinLock::new(5_u32, lock_class!("t.get-mut"));
    *lock.get_mut() += 1;
    assert_eq!(*lock.lock(), 6);
    assert_eq!(lock.class().name(), "t.get-mut");
}

// What the types prevent, shown through the `unsafe` doors they close.

#[test]
#[should_panic(expected = "below DISPATCH_LEVEL")]
fn assuming_dispatch_level_at_passive_is_caught() {
    let lock = SpinLock::new(0_u32, lock_class!("t.forged"));
    // SAFETY: deliberately false, to show what the host backend (like Driver
    // Verifier) does when the proof is a lie.
    let at = unsafe { kspin::DispatchLevel::<Host>::assume() };
    let _guard = lock.lock_at_dpc_level(at);
}

#[test]
#[should_panic(expected = "C4/0x40")]
fn an_at_dpc_level_acquire_at_passive_is_what_verifier_bugchecks() {
    let lock_word = <Executive as Backend>::State::new(false);
    // SAFETY: deliberately called at PASSIVE_LEVEL, as C code could.
    unsafe { Executive::acquire_at_dpc_level(&lock_word, std::ptr::NonNull::dangling().as_ptr()) };
}

#[test]
fn releasing_a_raised_lock_from_dpc_level_never_restores_the_irql() {
    // The documented misuse, written with the raw backend calls: the lock is
    // released but the caller is left at DISPATCH_LEVEL. kspin's guards make
    // this pairing unrepresentable.
    let lock_word = <Executive as Backend>::State::new(false);
    let no_handle = std::ptr::NonNull::<()>::dangling().as_ptr();
    // SAFETY: a fresh lock, acquired and released on this thread.
    unsafe {
        let _old = Executive::acquire(&lock_word, no_handle);
        Executive::release_from_dpc_level(&lock_word, no_handle);
    }
    assert_eq!(
        irql(),
        Irql::DISPATCH,
        "the caller's IRQL was never restored"
    );
    // SAFETY: repair this thread's simulated IRQL for the other tests.
    unsafe { Host::lower_irql(Irql::PASSIVE) };
}

#[test]
#[should_panic(expected = "0xC8")]
fn a_dpc_routine_must_return_at_dispatch_level() {
    run_as_dpc(|_| {
        // SAFETY: deliberately wrong, as a buggy DPC routine would be.
        unsafe { Host::lower_irql(Irql::PASSIVE) };
    });
}
