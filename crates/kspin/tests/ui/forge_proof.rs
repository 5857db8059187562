// The proof of DISPATCH_LEVEL has no public constructor.
use kspin::{DispatchLevel, host::{Host, SpinLock}};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    let forged = DispatchLevel::<Host> { _not_send: core::marker::PhantomData };
    *lock.lock_at_dpc_level(&forged) += 1;
}
