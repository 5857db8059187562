// A DpcGuard borrows its proof, so it cannot outlive the raised scope either:
// when the scope lowers the IRQL, every guard built on its proof is gone.
use kspin::host::{Host, SpinLock};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let guard = kspin::at_dispatch_level::<Host, _>(|at| lock.lock_at_dpc_level(at));
    drop(guard);
}
