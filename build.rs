//! Build script of the dpclock driver.
//!
//! On Windows this is the windows-drivers-rs sample's one-liner: wdk-build
//! reads `[package.metadata.wdk]` and emits the WDM linker configuration.
//!
//! The Linux flavor (`--cfg dpclock_mingw`, see `cargo xtask build`) links
//! with lld-link instead, given the arguments wdk-build 0.6.0 emits for WDM
//! minus `/KERNEL` (which lld-link does not accept) and the MSVC-only map
//! options. Host builds (unit tests, clippy) link nothing kernel-side.

/// What wdk-build 0.6.0 passes the linker for a WDM driver, as lld-link takes it.
const WDM_LINK_ARGS: [&str; 9] = [
    "/DRIVER",
    "/NODEFAULTLIB",
    "/SUBSYSTEM:NATIVE",
    "/ENTRY:DriverEntry",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/OPT:REF,ICF",
    "/INTEGRITYCHECK",
    "/MANIFEST:NO",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let windows_target = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    let mingw_flavor = std::env::var_os("CARGO_CFG_DPCLOCK_MINGW").is_some();
    if windows_target && mingw_flavor {
        for arg in WDM_LINK_ARGS {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
    } else if windows_target {
        windows_flavor();
    }
}

#[cfg(windows)]
fn windows_flavor() {
    if let Err(error) = wdk_build::configure_wdk_binary_build() {
        eprintln!("wdk-build could not configure the driver build: {error:?}");
        std::process::exit(1);
    }
}

#[cfg(not(windows))]
fn windows_flavor() {
    eprintln!(
        "error: the Windows flavor of dpclock (windows-drivers-rs and a WDK) builds on a Windows host only; \
         on Linux, build with `cargo xtask build`, which selects the Linux flavor (--cfg dpclock_mingw)"
    );
    std::process::exit(1);
}
