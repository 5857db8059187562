//! The Linux flow of dpclock, run as `cargo xtask …`:
//!
//! * `deps`: install the Debian packages the flow needs (as root);
//! * `build`: cross-build dpclock.sys (free and checked) and dpclockctl.exe
//!   into package folders;
//! * `stress [--checked] [HARNESS FLAGS]`: install the driver in a fresh Wine
//!   prefix, run `dpclockctl stress`, uninstall;
//! * `test`: every test (formatting, clippy, host tests, loom, PE checks,
//!   Wine end-to-end tests);
//! * `bench`: the benchmarks, written to target/bench;
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
pub mod process;
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
