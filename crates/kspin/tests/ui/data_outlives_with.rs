// The protected data is reachable only inside the acquisition: a reference
// cannot leave `with`, whose lock is released (and IRQL restored) when it
// returns.
use kspin::host::SpinLock;

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let escaped: &mut u32 = lock.with(|count| count);
    *escaped += 1;
}
