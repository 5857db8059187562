//! Every acquisition form against the host backend: what each does to the
//! IRQL, how it is released, and that the locks really exclude each other.

use std::{sync::Barrier, thread};

use kspin::{
    Backend, Irql, Platform, at_dispatch_level,
    host::{Executive, Host, QueuedSpinLock, SpinLock, VideoPortSpinLock, VpStatus, run_as_dpc},
    lock_class,
};

fn irql() -> Irql {
    Host::current_irql()
}

/// Fewer iterations under Miri, which interprets every instruction.
const fn scaled(n: u64) -> u64 {
    if cfg!(miri) { n / 50 + 2 } else { n }
}

#[test]
fn with_raises_to_dispatch_and_restores_passive() {
    let lock = SpinLock::new(0_u32, lock_class!("t.raising"));
    assert_eq!(irql(), Irql::PASSIVE);
    lock.with(|count| {
        assert_eq!(irql(), Irql::DISPATCH);
        *count += 1;
        assert_eq!(lock.is_locked(), Some(true));
    });
    assert_eq!(irql(), Irql::PASSIVE);
    assert_eq!(lock.is_locked(), Some(false));
    assert_eq!(lock.with(|count| *count), 1);
}

#[test]
fn with_taken_at_dispatch_restores_dispatch() {
    let lock = SpinLock::new(0_u32, lock_class!("t.raising-at-dispatch"));
    run_as_dpc(|_| {
        lock.with(|_| assert_eq!(irql(), Irql::DISPATCH));
        assert_eq!(
            irql(),
            Irql::DISPATCH,
            "KeReleaseSpinLock restores the saved DISPATCH_LEVEL"
        );
    });
    assert_eq!(irql(), Irql::PASSIVE);
}

#[test]
fn with_returns_the_closures_value() {
    let lock = SpinLock::new(vec![1, 2, 3], lock_class!("t.value"));
    let sum: i32 = lock.with(|v| v.iter().sum());
    assert_eq!(sum, 6);
}

#[test]
fn dpc_guard_leaves_the_irql_alone() {
    let lock = SpinLock::new(0_u32, lock_class!("t.dpc"));
    run_as_dpc(|at| {
        *lock.lock_at_dpc_level(at) += 1;
        assert_eq!(irql(), Irql::DISPATCH);
        let guard = lock.lock_at_dpc_level(at);
        assert_eq!(*guard, 1);
        guard.unlock();
        lock.with_at_dpc_level(at, |count| *count += 1);
        assert_eq!(irql(), Irql::DISPATCH);
    });
    assert_eq!(lock.with(|count| *count), 2);
}

#[test]
fn at_dispatch_level_restores_the_irql_and_nests() {
    let a = SpinLock::new(0_u32, lock_class!("t.raise.a"));
    let b = SpinLock::new(0_u32, lock_class!("t.raise.b"));
    let seen = at_dispatch_level::<Host, _>(|at| {
        assert_eq!(irql(), Irql::DISPATCH);
        let mut a = a.lock_at_dpc_level(at);
        let mut b = b.lock_at_dpc_level(a.dispatch_level());
        *a += 1;
        *b += 1;
        // A nested raise from DISPATCH_LEVEL gives DISPATCH_LEVEL back.
        at_dispatch_level::<Host, _>(|_| ());
        irql()
    });
    assert_eq!((seen, irql()), (Irql::DISPATCH, Irql::PASSIVE));
    assert_eq!(a.with(|a| *a) + b.with(|b| *b), 2);
}

#[test]
fn dpc_guards_may_be_released_in_any_order() {
    // No AtDpcLevel release touches the IRQL, so out-of-order drops are fine.
    let a = SpinLock::new(0_u32, lock_class!("t.order.a"));
    let b = SpinLock::new(0_u32, lock_class!("t.order.b"));
    run_as_dpc(|at| {
        let ga = a.lock_at_dpc_level(at);
        let gb = b.lock_at_dpc_level(at);
        drop(ga);
        assert_eq!(irql(), Irql::DISPATCH);
        drop(gb);
        assert_eq!((a.is_locked(), b.is_locked()), (Some(false), Some(false)));
    });
}

#[test]
fn queued_lock_in_both_modes() {
    let lock = QueuedSpinLock::new(0_u32, lock_class!("t.queued"));
    for _ in 0..3 {
        lock.with(|count| {
            assert_eq!(irql(), Irql::DISPATCH);
            assert_eq!(lock.is_locked(), Some(true));
            *count += 1;
        });
    }
    assert_eq!(irql(), Irql::PASSIVE);
    run_as_dpc(|at| {
        lock.with_at_dpc_level(at, |count| *count += 1);
        assert_eq!(irql(), Irql::DISPATCH);
    });
    assert_eq!(lock.is_locked(), Some(false));
    assert_eq!(lock.with(|count| *count), 4);
}

#[test]
fn video_port_lock_needs_a_device_extension_and_has_every_form() {
    let no_extension = VideoPortSpinLock::create(std::ptr::null_mut(), 0_u32, lock_class!("t.vp"));
    assert_eq!(no_extension.err(), Some(VpStatus::INVALID_PARAMETER));

    let mut extension = [0_u8; 64];
    let lock = VideoPortSpinLock::create(extension.as_mut_ptr().cast(), 0_u32, lock_class!("t.vp"))
        .expect("created");
    assert_eq!(lock.hw_device_extension(), extension.as_mut_ptr().cast());
    lock.with(|count| *count += 1);
    assert_eq!(irql(), Irql::PASSIVE);
    run_as_dpc(|at| {
        *lock.lock_at_dpc_level(at) += 1;
        lock.with_at_dpc_level(at, |count| *count += 1);
    });
    assert_eq!(lock.is_locked(), None, "video port locks are opaque");
    assert_eq!(lock.with(|count| *count), 3);
}

#[test]
fn nested_subclasses_take_the_same_locks() {
    let outer = SpinLock::new(0_u32, lock_class!("t.nested"));
    let inner = SpinLock::new(0_u32, lock_class!("t.nested"));
    run_as_dpc(|at| {
        let _outer = outer.lock_at_dpc_level(at);
        *inner.nested(1).lock_at_dpc_level(at) += 1;
        inner.nested(1).with_at_dpc_level(at, |v| *v += 1);
    });
    inner.nested(1).with(|v| *v += 1);
    assert_eq!(inner.with(|v| *v), 3);
}

#[test]
fn a_pair_is_taken_lower_address_first_whatever_the_argument_order() {
    let class = lock_class!("t.pair");
    let locks = [SpinLock::new(0_u32, class), SpinLock::new(0_u32, class)];
    let (low, high) = (&locks[0], &locks[1]);
    for (first, second) in [(low, high), (high, low)] {
        run_as_dpc(|at| {
            let (mut a, mut b) =
                SpinLock::lock_pair_at_dpc_level(first, second, at).expect("two locks");
            // Guards come back in argument order.
            *a += 1;
            *b += 10;
            assert_eq!(
                (first.is_locked(), second.is_locked()),
                (Some(true), Some(true))
            );
        });
    }
    assert_eq!((low.with(|v| *v), high.with(|v| *v)), (11, 11));
    // One lock twice is no pair.
    run_as_dpc(|at| assert!(SpinLock::lock_pair_at_dpc_level(low, low, at).is_none()));
    assert_eq!(low.is_locked(), Some(false));
}

#[test]
fn pairs_taken_both_ways_round_on_two_threads_do_not_deadlock() {
    let class = lock_class!("t.pair.threads");
    let (x, y) = (SpinLock::new(0_u64, class), SpinLock::new(0_u64, class));
    let rounds = if cfg!(miri) { 20 } else { 20_000 };
    thread::scope(|s| {
        for (from, to) in [(&x, &y), (&y, &x)] {
            s.spawn(move || {
                for _ in 0..rounds {
                    run_as_dpc(|at| {
                        let (mut from, mut to) =
                            SpinLock::lock_pair_at_dpc_level(from, to, at).expect("two locks");
                        *from += 1;
                        *to += 1;
                    });
                }
            });
        }
    });
    assert_eq!(x.with(|v| *v) + y.with(|v| *v), 4 * rounds);
}

/// Threads hammer one counter; the lock must lose nothing.
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
    let each = scaled(300);
    let plain = SpinLock::new(0_u64, lock_class!("t.x.plain"));
    let queued = QueuedSpinLock::new(0_u64, lock_class!("t.x.queued"));
    let mut extension = 0_u64;
    let video =
        VideoPortSpinLock::create((&raw mut extension).cast(), 0_u64, lock_class!("t.x.vp"))
            .expect("created");

    hammer(THREADS, each, |i| match i % 3 {
        0 => {
            plain.with(slow_increment);
            video.with(slow_increment);
            queued.with(slow_increment);
        }
        1 => run_as_dpc(|at| {
            slow_increment(&mut plain.lock_at_dpc_level(at));
            slow_increment(&mut video.lock_at_dpc_level(at));
            queued.with_at_dpc_level(at, slow_increment);
        }),
        _ => at_dispatch_level::<Host, _>(|at| {
            plain.with_at_dpc_level(at, slow_increment);
            video.with_at_dpc_level(at, slow_increment);
            queued.with_at_dpc_level(at, slow_increment);
        }),
    });
    let expected = THREADS as u64 * each;
    assert_eq!(plain.with(|v| *v), expected);
    assert_eq!(video.with(|v| *v), expected);
    assert_eq!(queued.with(|v| *v), expected);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a timing-dependent race; Miri runs the locked version above"
)]
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
    assert_eq!(lock.with(|v| *v), 6);
    assert_eq!(lock.class().name(), "t.get-mut");
}

#[test]
fn a_panic_inside_with_releases_the_lock_and_restores_the_irql() {
    let lock = QueuedSpinLock::new(0_u32, lock_class!("t.panic"));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lock.with(|count| {
            *count += 1;
            panic!("deliberate");
        })
    }));
    assert!(outcome.is_err());
    assert_eq!((irql(), lock.is_locked()), (Irql::PASSIVE, Some(false)));
    assert_eq!(lock.with(|count| *count), 1);
}

// What the types prevent, shown through the `unsafe` doors they close.

#[test]
#[should_panic(expected = "DISPATCH_LEVEL")]
fn assuming_dispatch_level_at_passive_is_caught() {
    let lock = SpinLock::new(0_u32, lock_class!("t.forged"));
    // SAFETY: deliberately false (the IRQL is PASSIVE_LEVEL), to show what
    // happens when the proof is a lie: `assume_dispatch_level`'s debug
    // assertion fires in debug builds, and in release builds the host
    // backend bugchecks as Driver Verifier would ("C4/0x40: …
    // KeAcquireSpinLockAtDpcLevel called below DISPATCH_LEVEL").
    unsafe {
        kspin::assume_dispatch_level::<Host, _>(|at| drop(lock.lock_at_dpc_level(at)));
    }
}

#[test]
#[should_panic(expected = "C4/0x40")]
fn an_at_dpc_level_acquire_at_passive_is_what_verifier_bugchecks() {
    let lock_word = <Executive as Backend>::State::new(false);
    // SAFETY: deliberately called at PASSIVE_LEVEL, as C code could.
    unsafe { Executive::acquire_at_dpc_level(&lock_word, std::ptr::dangling_mut()) };
}

#[test]
fn releasing_a_raised_lock_from_dpc_level_never_restores_the_irql() {
    // The documented misuse, written with the raw backend calls: the lock is
    // released but the caller is left at DISPATCH_LEVEL. kspin releases a
    // raising acquisition only inside `with`, with the matching routine.
    let lock_word = <Executive as Backend>::State::new(false);
    let no_handle = std::ptr::dangling_mut::<()>();
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
