//! The `checked` validator against the host backend. The validator's
//! counters are process-wide, so these tests run one at a time and compare
//! counters before and after.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Mutex, MutexGuard},
    thread,
    time::Duration,
};

use kspin::{
    Irql, Platform,
    checked::{self, HOLD_GUIDANCE_NS, Violations},
    host::{self, Host, SpinLock, run_as_dpc},
    lock_class,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn violations() -> Violations {
    checked::report::<Host>().violations
}

#[test]
fn recursive_acquire_is_reported_and_stopped_not_deadlocked() {
    let _serial = serial();
    let lock = SpinLock::new(0_u32, lock_class!("c.recursive"));
    let before = violations();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _first = lock.lock();
        let _second = lock.lock(); // would spin forever on a real spin lock
    }));
    let message = *outcome
        .expect_err("fail-stop")
        .downcast::<String>()
        .expect("panic message");
    assert!(message.contains("recursive acquire"), "{message}");
    assert_eq!(
        violations().recursive_acquires,
        before.recursive_acquires + 1
    );
    assert_eq!(
        Host::current_irql(),
        Irql::PASSIVE,
        "the first guard was released while unwinding"
    );
    assert_eq!(lock.is_locked(), Some(false));
}

/// A guard made `Send` behind the type system's back, as unsafe code could.
struct Smuggled<T>(T);
// SAFETY: deliberately false, to provoke a release by a non-owner.
unsafe impl<T> Send for Smuggled<T> {}

#[test]
fn release_by_another_thread_is_reported() {
    let _serial = serial();
    let lock = SpinLock::new(0_u32, lock_class!("c.foreign"));
    let before = violations();
    run_as_dpc(|at| {
        let guard = Smuggled(lock.lock_at_dpc_level(at));
        thread::scope(|scope| {
            scope.spawn(move || {
                let guard = guard;
                run_as_dpc(|_| drop(guard.0));
            });
        });
    });
    assert_eq!(violations().foreign_releases, before.foreign_releases + 1);
    assert_eq!(lock.is_locked(), Some(false));
}

#[test]
fn lock_order_inversion_is_reported_before_any_deadlock() {
    let _serial = serial();
    let a = SpinLock::new((), lock_class!("c.order.a"));
    let b = SpinLock::new((), lock_class!("c.order.b"));
    let before = violations();

    // A then B: teaches the validator the order A → B.
    let ga = a.lock();
    let gb = b.lock_at_dpc_level(ga.dispatch_level());
    drop(gb);
    drop(ga);
    assert_eq!(violations().order_inversions, before.order_inversions);

    // B then A, on one thread and with no contention: no deadlock happens
    // here, but two processors doing A→B and B→A could deadlock.
    let gb = b.lock();
    let ga = a.lock_at_dpc_level(gb.dispatch_level());
    drop(ga);
    drop(gb);
    assert_eq!(violations().order_inversions, before.order_inversions + 1);

    // The same inversion again is already known: counted once per edge.
    let gb = b.lock();
    drop(a.lock_at_dpc_level(gb.dispatch_level()));
    drop(gb);
    assert_eq!(violations().order_inversions, before.order_inversions + 1);
}

#[test]
fn a_transitive_cycle_is_an_inversion_too() {
    let _serial = serial();
    let a = SpinLock::new((), lock_class!("c.cycle.a"));
    let b = SpinLock::new((), lock_class!("c.cycle.b"));
    let c = SpinLock::new((), lock_class!("c.cycle.c"));
    let before = violations();
    for (outer, inner) in [(&a, &b), (&b, &c)] {
        let g = outer.lock();
        drop(inner.lock_at_dpc_level(g.dispatch_level()));
    }
    assert_eq!(violations().order_inversions, before.order_inversions);
    let g = c.lock();
    drop(a.lock_at_dpc_level(g.dispatch_level()));
    drop(g);
    assert_eq!(violations().order_inversions, before.order_inversions + 1);
}

#[test]
fn raising_guards_released_out_of_order_are_reported() {
    let _serial = serial();
    let a = SpinLock::new((), lock_class!("c.raise-order.a"));
    let b = SpinLock::new((), lock_class!("c.raise-order.b"));
    let before = violations();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let first = a.lock(); // saves PASSIVE_LEVEL
        let second = b.lock(); // saves DISPATCH_LEVEL
        drop(first); // back to PASSIVE_LEVEL while `second` is still held
        drop(second); // now released below DISPATCH_LEVEL
    }));
    assert_eq!(violations().release_order, before.release_order + 1);
    assert_eq!(violations().irql_at_release, before.irql_at_release + 1);
    // And the host backend then bugchecks as Driver Verifier would (C4/0x32).
    let message = *outcome
        .expect_err("bugcheck")
        .downcast::<String>()
        .expect("message");
    assert!(message.contains("C4/0x32"), "{message}");
    // SAFETY: repair this thread's simulated IRQL after the provoked bugcheck.
    unsafe { Host::lower_irql(Irql::PASSIVE) };
}

#[test]
fn wrong_irql_at_acquire_is_counted() {
    let _serial = serial();
    let lock = SpinLock::new((), lock_class!("c.irql"));
    let before = violations();
    // SAFETY: simulate running at DIRQL (an ISR), where executive spin locks
    // must not be used; lowered again below.
    let previous = unsafe { Host::raise_irql(Irql(5)) };
    let outcome = catch_unwind(AssertUnwindSafe(|| drop(lock.lock())));
    // SAFETY: undo the raise above.
    unsafe { Host::lower_irql(previous) };
    assert_eq!(violations().irql_at_acquire, before.irql_at_acquire + 1);
    let message = *outcome
        .expect_err("bugcheck")
        .downcast::<String>()
        .expect("message");
    assert!(message.contains("C4/0x42"), "{message}");
}

#[test]
fn where_irql_is_not_modelled_the_checks_say_unavailable() {
    let _serial = serial();
    assert_eq!(checked::report::<Host>().irql_checks, 1);
    host::simulate_unmodelled_irql(true);
    let report = checked::report::<Host>();
    let lock = SpinLock::new(0_u32, lock_class!("c.wine"));
    let before = violations();
    // At "PASSIVE" as far as reads go, yet nothing is reported: the reads
    // cannot be trusted, so the validator does not pretend to check them.
    run_as_dpc(|at| *lock.lock_at_dpc_level(at) += 1);
    *lock.lock() += 1;
    host::simulate_unmodelled_irql(false);
    assert_eq!(report.irql_checks, 0);
    assert_eq!(violations(), before);
    assert_eq!(*lock.lock(), 2);
}

#[test]
fn hold_times_are_measured_and_an_over_long_hold_is_flagged() {
    let _serial = serial();
    let class = lock_class!("c.hold");
    let lock = SpinLock::new(0_u32, class);
    class.reset_hold_stats();
    for _ in 0..10 {
        *lock.lock() += 1;
    }
    let short = class.hold_stats();
    assert_eq!(short.count, 10);
    assert_eq!(short.histogram.iter().sum::<u64>(), 10);
    assert!(short.max_ns <= short.total_ns);

    {
        let _held = lock.lock();
        thread::sleep(Duration::from_millis(2)); // far over the 25 µs guidance
    }
    let stats = class.hold_stats();
    assert_eq!(stats.count, 11);
    assert!(stats.over_guidance >= 1);
    assert!(
        stats.max_ns >= 2_000_000,
        "a 2 ms hold, over the {HOLD_GUIDANCE_NS} ns guidance"
    );
    let long_bucket = (u64::BITS - 1 - stats.max_ns.leading_zeros()) as usize;
    assert!(stats.histogram[long_bucket] >= 1);

    class.reset_hold_stats();
    assert_eq!(class.hold_stats(), checked::HoldStats::default());
}

#[test]
fn clean_use_reports_nothing() {
    let _serial = serial();
    let plain = SpinLock::new(0_u64, lock_class!("c.clean"));
    let before = violations();
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for i in 0..500 {
                    if i % 2 == 0 {
                        *plain.lock() += 1;
                    } else {
                        run_as_dpc(|at| *plain.lock_at_dpc_level(at) += 1);
                    }
                }
            });
        }
    });
    assert_eq!(*plain.lock(), 2000);
    assert_eq!(violations(), before);
    assert!(checked::report::<Host>().classes >= 1);
}
