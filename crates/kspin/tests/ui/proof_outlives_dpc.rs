// The proof lent to a DPC routine cannot leave it: after the routine returns
// the processor may be back at PASSIVE_LEVEL.
use kspin::host::{DispatchLevel, run_as_dpc};

fn main() {
    let escaped: &DispatchLevel = run_as_dpc(|at| at);
    let _ = escaped;
}
