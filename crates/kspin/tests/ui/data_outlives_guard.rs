// The protected data is reachable only through the guard, and only while it
// is held.
use kspin::host::SpinLock;

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let escaped: &mut u32 = {
        let mut guard = lock.lock();
        &mut *guard
    };
    *escaped += 1;
}
