// "Do not mix queued and ordinary calls on one KSPIN_LOCK": each family is
// its own lock type, so a queued lock cannot be taken by code written for
// an executive one.
use kspin::host::{QueuedSpinLock, SpinLock};

fn plain_path(lock: &SpinLock<u32>) {
    lock.with(|count| *count += 1);
}

fn main() {
    let lock = QueuedSpinLock::new(0_u32, kspin::lock_class!("ui"));
    plain_path(&lock);
}
