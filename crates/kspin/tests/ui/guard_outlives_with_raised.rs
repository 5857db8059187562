// The nearest thing to a raised guard that exists: a DpcGuard taken on the
// proof that `with_raised` lends. It cannot leave the raised scope, so a
// lock taken there can never be held past KeReleaseSpinLock's restore of
// the IRQL, nor released by KeReleaseSpinLockFromDpcLevel afterwards.
use kspin::host::SpinLock;

fn main() {
    let outer = SpinLock::new(0_u32, kspin::lock_class!("ui.outer"));
    let inner = SpinLock::new(0_u32, kspin::lock_class!("ui.inner"));
    let guard = outer.with_raised(|_, at| inner.lock_at_dpc_level(at));
    drop(guard);
}
