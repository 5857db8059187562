// A guard held across `.await` lives in its future; the future borrows the
// proof, so it cannot be polled (or dropped) after the scope has ended.
use kspin::host::{SpinLock, run_as_dpc};

static LOCK: SpinLock<u32> = SpinLock::new(0, kspin::lock_class!("ui"));

fn main() {
    let future = run_as_dpc(|at| async move {
        let mut guard = LOCK.lock_at_dpc_level(at);
        *guard += 1;
    });
    drop(future);
}
