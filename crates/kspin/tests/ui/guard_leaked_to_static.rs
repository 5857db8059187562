// Box::leak gives a reference as long as the guard's own lifetime, which is
// the proof's: a leaked guard (or proof) cannot be kept for use after the
// IRQL has dropped.
use kspin::host::{Executive, SpinLock, run_as_dpc};

type Guard = kspin::DpcGuard<'static, u32, Executive>;

static LOCK: SpinLock<u32> = SpinLock::new(0, kspin::lock_class!("ui"));

fn main() {
    let mut kept: Option<&'static mut Guard> = None;
    run_as_dpc(|at| kept = Some(Box::leak(Box::new(LOCK.lock_at_dpc_level(at)))));
    **kept.unwrap() += 1;
}
