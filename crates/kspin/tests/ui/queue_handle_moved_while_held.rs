// Moving (here: swapping out) a queue handle while its lock is held would
// corrupt the waiter queue; a pinned handle cannot be moved at all.
use core::pin::pin;
use kspin::host::{LockQueueHandle, QueuedSpinLock};

fn main() {
    let lock = QueuedSpinLock::new(0_u32, kspin::lock_class!("ui"));
    let mut handle = pin!(LockQueueHandle::new());
    let guard = lock.lock(handle.as_mut());
    let mut other = LockQueueHandle::new();
    core::mem::swap(&mut *handle, &mut other);
    drop(guard);
}
