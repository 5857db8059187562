// The way into DISPATCH_LEVEL for DPC trampolines is `unsafe`: safe code
// cannot claim DISPATCH_LEVEL on its own word.
use kspin::host::{Host, SpinLock};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    kspin::assume_dispatch_level::<Host, _>(|at| *lock.lock_at_dpc_level(at) += 1);
}
