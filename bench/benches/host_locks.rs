//! Reference points for the host backend: an uncontended and a 2-thread
//! contended acquire/increment/release, against `std::sync::Mutex` and the
//! `spin` crate's mutex. These time the host simulation (an atomic
//! test-and-set plus a thread-local IRQL), not the Windows kernel.

use std::{hint::black_box, sync::Barrier, thread, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kspin::host::SpinLock;

/// `iterations` increments under `lock`, split over `threads` threads.
fn contended(threads: usize, iterations: u64, op: impl Fn() + Sync) -> std::time::Duration {
    let start = Barrier::new(threads + 1);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                start.wait();
                for _ in 0..iterations / threads as u64 {
                    op();
                }
            });
        }
        start.wait();
        let began = Instant::now();
        // The scope joins the threads before returning.
        began
    })
    .elapsed()
}

fn locks(c: &mut Criterion) {
    let kspin_lock = SpinLock::new(0_u64, kspin::lock_class!("bench"));
    let std_lock = std::sync::Mutex::new(0_u64);
    let spin_lock = spin::Mutex::new(0_u64);

    let mut group = c.benchmark_group("uncontended (1 thread)");
    group.bench_function("kspin host SpinLock", |b| {
        b.iter(|| kspin_lock.with(|v| *v += black_box(1)))
    });
    group.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *std_lock.lock().unwrap() += black_box(1))
    });
    group.bench_function("spin::Mutex", |b| {
        b.iter(|| *spin_lock.lock() += black_box(1))
    });
    group.finish();

    let mut group = c.benchmark_group("contended (2 threads)");
    group.bench_function("kspin host SpinLock", |b| {
        b.iter_custom(|n| contended(2, n, || kspin_lock.with(|v| *v += black_box(1))))
    });
    group.bench_function("std::sync::Mutex", |b| {
        b.iter_custom(|n| contended(2, n, || *std_lock.lock().unwrap() += black_box(1)))
    });
    group.bench_function("spin::Mutex", |b| {
        b.iter_custom(|n| contended(2, n, || *spin_lock.lock() += black_box(1)))
    });
    group.finish();
}

criterion_group!(benches, locks);
criterion_main!(benches);
