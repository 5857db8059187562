// "Do not mix queued and ordinary calls on one KSPIN_LOCK": each family is
// its own lock type, so a queued lock offers no plain acquire.
use kspin::host::QueuedSpinLock;

fn main() {
    let lock = QueuedSpinLock::new(0_u32, kspin::lock_class!("ui"));
    *lock.lock() += 1;
}
