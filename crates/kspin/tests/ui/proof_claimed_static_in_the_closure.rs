// Annotating the closure's parameter as `'static` does not make the proof
// last: the scope lends it for a lifetime of its own choosing, and a
// closure that demands more is not accepted.
use kspin::host::{DispatchLevel, Host};

fn main() {
    let mut keep: Option<&'static DispatchLevel> = None;
    kspin::at_dispatch_level::<Host, _>(|at: &'static DispatchLevel| keep = Some(at));
    let _ = keep;
}
