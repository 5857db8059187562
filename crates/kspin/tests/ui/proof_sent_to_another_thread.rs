// The proof is about this processor's IRQL; another thread may run anywhere.
use kspin::host::{SpinLock, run_as_dpc};

static LOCK: SpinLock<u32> = SpinLock::new(0, kspin::lock_class!("ui"));

fn main() {
    run_as_dpc(|at| {
        std::thread::scope(|scope| {
            scope.spawn(|| *LOCK.lock_at_dpc_level(at) += 1);
        });
    });
}
