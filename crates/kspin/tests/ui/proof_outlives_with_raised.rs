// At PASSIVE_LEVEL the nearest way to a proof of DISPATCH_LEVEL is a
// raising scope that lends it; the proof stays in that scope.
use kspin::host::SpinLock;

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui.lock"));
    let other = SpinLock::new(0_u32, kspin::lock_class!("ui.other"));
    let at = lock.with_raised(|_, at| at);
    *other.lock_at_dpc_level(at) += 1;
}
