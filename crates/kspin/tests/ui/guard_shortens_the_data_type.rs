// A guard is invariant in the data's type: it cannot be viewed as guarding
// data of a shorter lifetime, which would let a short-lived reference be
// written into data that outlives it.
use kspin::{DpcGuard, host::{Executive, SpinLock, run_as_dpc}};

static LOCK: SpinLock<&'static str> = SpinLock::new("static", kspin::lock_class!("ui"));

fn shorten<'a, 's>(guard: DpcGuard<'a, &'static str, Executive>) -> DpcGuard<'a, &'s str, Executive> {
    guard
}

fn main() {
    run_as_dpc(|at| {
        let local = String::from("local");
        let mut guard = shorten(LOCK.lock_at_dpc_level(at));
        *guard = &local;
    });
    LOCK.with(|s| println!("{s}"));
}
