// A guard must be released on the processor that acquired it, at the IRQL
// its proof is about, so guards are !Send.
use kspin::host::{SpinLock, run_as_dpc};

static LOCK: SpinLock<u32> = SpinLock::new(0, kspin::lock_class!("ui"));

fn main() {
    run_as_dpc(|at| {
        let guard = LOCK.lock_at_dpc_level(at);
        std::thread::scope(|scope| {
            scope.spawn(move || drop(guard));
        });
    });
}
