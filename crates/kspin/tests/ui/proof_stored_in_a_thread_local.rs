// A proof cannot be stored where it would outlive its scope.
use std::cell::Cell;
use kspin::host::{DispatchLevel, run_as_dpc};

thread_local! {
    static PROOF: Cell<Option<&'static DispatchLevel>> = const { Cell::new(None) };
}

fn main() {
    run_as_dpc(|at| PROOF.with(|p| p.set(Some(at))));
}
