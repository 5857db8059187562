// The escape hatch for DPC trampolines is `unsafe`: safe code cannot claim
// DISPATCH_LEVEL on its own word.
use kspin::{DispatchLevel, host::{Host, SpinLock}};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let assumed = DispatchLevel::<Host>::assume();
    *lock.lock_at_dpc_level(assumed) += 1;
}
