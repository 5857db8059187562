// KeAcquireSpinLock, then KeReleaseSpinLockFromDpcLevel: "it is an error ...
// because the caller's original IRQL is not restored". And two raising
// acquisitions released out of order lower the IRQL under the second lock.
// A raising acquisition is not a value that could be released the wrong
// way, out of order, or never: it is the scope of `with`, which releases
// with KeReleaseSpinLock before it returns.
use kspin::{DpcGuard, host::{Executive, SpinLock}};

fn release_from_dpc_level(guard: DpcGuard<'_, u32, Executive>) {
    guard.unlock();
}

fn main() {
    let first = SpinLock::new(0_u32, kspin::lock_class!("ui.first"));
    let second = SpinLock::new(0_u32, kspin::lock_class!("ui.second"));
    let a = first.lock();
    let b = second.lock();
    drop(a);
    release_from_dpc_level(b);
}
