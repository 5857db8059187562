// The proof kspin's scopes lend is one private constant: safe code can
// neither name it nor build one (see forge_proof).
use kspin::{DispatchLevel, host::{Host, SpinLock}};

fn main() {
    let lock = SpinLock::new(0_u32, kspin::lock_class!("ui"));
    *lock.lock_at_dpc_level(&DispatchLevel::<Host>::PROOF) += 1;
}
