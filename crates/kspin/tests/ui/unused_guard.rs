// A guard that is dropped at once protects nothing; #[must_use] says so.
#![deny(unused_must_use)]
use kspin::host::{SpinLock, run_as_dpc};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    run_as_dpc(|at| {
        lock.lock_at_dpc_level(at);
    });
}
