// An in-stack queued lock links waiters through each acquisition's
// KLOCK_QUEUE_HANDLE, so a handle must outlive its acquisition. A guard
// could be forgotten while its handle is freed (the old API's use-after-
// free), so queued locks are taken only in a scope, with the handle on
// kspin's stack frame: there is no queued guard, and no handle to free.
use kspin::host::{QueuedSpinLock, run_as_dpc};

fn main() {
    let lock = QueuedSpinLock::new(0_u32, kspin::lock_class!("ui"));
    run_as_dpc(|at| {
        let guard = lock.lock_at_dpc_level(at);
        core::mem::forget(guard);
    });
}
