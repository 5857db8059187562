// The proof lent by `at_dispatch_level` is good until it lowers the IRQL,
// and no longer.
use kspin::host::{Host, SpinLock};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let at = kspin::at_dispatch_level::<Host, _>(|at| at);
    *lock.lock_at_dpc_level(at) += 1;
}
