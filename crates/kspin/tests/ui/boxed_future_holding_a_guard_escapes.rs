// Boxing a future and erasing its type does not erase the borrow of the
// proof it holds: it still cannot leave the DPC routine.
use std::{future::Future, pin::Pin};
use kspin::host::{SpinLock, run_as_dpc};

static LOCK: SpinLock<u32> = SpinLock::new(0, kspin::lock_class!("ui"));

fn main() {
    let future: Pin<Box<dyn Future<Output = ()>>> = run_as_dpc(|at| {
        Box::pin(async move {
            *LOCK.lock_at_dpc_level(at) += 1;
        }) as Pin<Box<dyn Future<Output = ()>>>
    });
    drop(future);
}
