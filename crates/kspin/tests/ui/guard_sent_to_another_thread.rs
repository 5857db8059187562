// A guard must be released on the processor that acquired it (the raising
// guard restores that processor's IRQL), so guards are !Send.
use kspin::host::SpinLock;

static LOCK: SpinLock<u32> = SpinLock::new(0, kspin::lock_class!("ui"));

fn main() {
    let guard = LOCK.lock();
    std::thread::spawn(move || drop(guard));
}
