//! The Linux flow of dpclock, run as `cargo xtask …`:
//!
//! * `deps`: install the Debian packages the flow needs (as root);
//! * `build`: cross-build dpclock.sys (free and checked) and dpclockctl.exe
//!   into package folders;
//! * `stress [--checked] [HARNESS FLAGS]`: install the driver in a fresh Wine
//!   prefix, run `dpclockctl stress`, uninstall;
//! * `test`: every test (formatting, clippy, host tests, Miri, the checked
//!   validator's suite 20 times, loom, the zero-cost check, check-windows,
//!   a 60 s fuzz, PE checks, Wine end-to-end tests, a 2-minute soak);
//! * `miri`: kspin's host suites under Miri;
//! * `zero-cost`: every kspin acquisition compiles to the raw calls;
//! * `bench`: the benchmarks, written to target/bench;
//! * `soak [--minutes N]`: everything at once for N minutes under Wine,
//!   with a report and a picture in target/soak;
//! * `fuzz [--seconds N]`: coverage-guided fuzzing of the protocol crate;
//! * `check-windows`: the Windows flavor, type-checked, clippy-checked,
//!   layout-checked and linked on Linux against the real windows-drivers-rs
//!   crates ([`check_windows`]).
//!
//! The end-to-end tests in the workspace's `tests/` use this crate as a
//! library for the packages ([`cross`]) and Wine sessions ([`wine`]).

pub mod bench;
pub mod check_windows;
pub mod cross;
pub mod deps;
pub mod fuzz;
pub mod kspin_checks;
pub mod process;
pub mod rig;
pub mod soak;
pub mod videoport_image;
pub mod wine;

use std::{sync::OnceLock, time::Duration};

/// The release packages, built once per process (tests share them).
///
/// # Errors
///
/// If the build fails.
pub fn packages() -> process::Result<&'static [cross::Package; 2]> {
    static PACKAGES: OnceLock<Result<[cross::Package; 2], String>> = OnceLock::new();
    PACKAGES
        .get_or_init(|| cross::build(cross::Profile::Release).map_err(|e| e.0))
        .as_ref()
        .map_err(|e| process::Error(e.clone()))
}

/// How long any single harness command may take in the tests and in `stress`
/// before it is killed: a hung driver must fail the run, not hang it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
