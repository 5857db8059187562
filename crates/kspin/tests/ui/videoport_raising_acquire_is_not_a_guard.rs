// The video port form of the same rule: VideoPortAcquireSpinLock must be
// paired with VideoPortReleaseSpinLock (restoring the IRQL), never with
// VideoPortReleaseSpinLockFromDpcLevel. The raising form is a scope.
use kspin::{DpcGuard, host::{VideoPort, VideoPortSpinLock}};

fn release_from_dpc_level(guard: DpcGuard<'_, u32, VideoPort>) {
    guard.unlock();
}

fn main() {
    let mut extension = 0_u64;
    let lock = VideoPortSpinLock::create((&raw mut extension).cast(), 0_u32, kspin::lock_class!("ui"))
        .unwrap();
    release_from_dpc_level(lock.with(|_| ()));
}
