//! dpclock's stand-in for the build scripts of `wdk`, `wdk-alloc` and
//! `wdk-panic`, used only by `cargo xtask check-windows`.
//!
//! `cargo xtask check-windows` copies those crates from the registry into
//! `target/check-windows/crates/` and puts this file in place of their
//! `build.rs`. The real one calls `wdk_build::configure_wdk_library_build()`,
//! which needs a Windows host and an installed WDK. For a WDM driver that
//! call emits the `driver_model__driver_type` check-cfg and cfg, and nothing
//! else; this script emits the same two lines.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!(
        "cargo::rustc-check-cfg=cfg(driver_model__driver_type, values(\"WDM\", \"KMDF\", \"UMDF\"))"
    );
    println!("cargo::rustc-cfg=driver_model__driver_type=\"WDM\"");
}
