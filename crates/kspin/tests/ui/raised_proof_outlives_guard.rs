// A held raising guard proves DISPATCH_LEVEL only while it is held.
use kspin::host::SpinLock;

fn main() {
    let outer = SpinLock::new(0_u32, kspin::lock_class!("ui.outer"));
    let inner = SpinLock::new(0_u32, kspin::lock_class!("ui.inner"));
    let at = {
        let guard = outer.lock();
        guard.dispatch_level()
    };
    *inner.lock_at_dpc_level(at) += 1;
}
