// The kernel links waiters through KLOCK_QUEUE_HANDLEs, so an acquisition
// takes its handle pinned; a plain `&mut` is refused, and so is pinning a
// handle that could later be moved (it is !Unpin).
use core::pin::Pin;
use kspin::host::{LockQueueHandle, QueuedSpinLock};

fn main() {
    let lock = QueuedSpinLock::new(0_u32, kspin::lock_class!("ui"));
    let mut handle = LockQueueHandle::new();
    *lock.lock(&mut handle) += 1;
    *lock.lock(Pin::new(&mut handle)) += 1;
}
