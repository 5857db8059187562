// KeAcquireSpinLockAtDpcLevel may only be called at DISPATCH_LEVEL (Driver
// Verifier: C4/0x40); without a proof of it there is nothing to pass.
use kspin::host::SpinLock;

fn ioctl_at_passive(lock: &SpinLock<u32>) {
    *lock.lock_at_dpc_level() += 1;
}

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    ioctl_at_passive(&lock);
}
