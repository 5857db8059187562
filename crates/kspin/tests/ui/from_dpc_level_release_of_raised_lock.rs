// KeAcquireSpinLock, then KeReleaseSpinLockFromDpcLevel: "it is an error ...
// because the caller's original IRQL is not restored". A raising acquire
// yields a RaisedGuard, which is not a DpcGuard, so it cannot be handed to
// code that releases from DPC level.
use kspin::{DpcGuard, host::{Executive, SpinLock}};

fn release_from_dpc_level(guard: DpcGuard<'_, u32, Executive>) {
    guard.unlock();
}

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let guard = lock.lock();
    release_from_dpc_level(guard);
}
