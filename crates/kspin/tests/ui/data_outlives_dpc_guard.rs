// The data behind a DpcGuard is reachable only while the guard holds the lock.
use kspin::host::{SpinLock, run_as_dpc};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    run_as_dpc(|at| {
        let escaped: &mut u32 = {
            let mut guard = lock.lock_at_dpc_level(at);
            &mut *guard
        };
        *escaped += 1;
    });
}
