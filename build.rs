//! Build script of the dpclock driver.
//!
//! On Windows this is the windows-drivers-rs sample's one-liner: wdk-build
//! reads `[package.metadata.wdk]` and emits the WDM linker configuration.
//!
//! The Linux flavor (`--cfg dpclock_mingw`, see `cargo xtask build`) links
//! with lld-link instead, given the arguments wdk-build 0.6.0 emits for WDM
//! minus `/KERNEL` (which lld-link does not accept) and the MSVC-only map
//! options. Host builds (unit tests, clippy) link nothing kernel-side.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let mingw_flavor = std::env::var_os("CARGO_CFG_DPCLOCK_MINGW").is_some();
    let windows_target = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    if mingw_flavor && windows_target {
        for arg in [
            "/DRIVER",
            "/NODEFAULTLIB",
            "/SUBSYSTEM:NATIVE",
            "/ENTRY:DriverEntry",
            "/NXCOMPAT",
            "/DYNAMICBASE",
            "/OPT:REF,ICF",
            "/INTEGRITYCHECK",
            "/MANIFEST:NO",
        ] {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
        return;
    }
    #[cfg(windows)]
    if windows_target {
        if let Err(error) = wdk_build::configure_wdk_binary_build() {
            eprintln!("wdk-build could not configure the driver build: {error:?}");
            std::process::exit(1);
        }
    }
}
