//! Build script of the dpclock driver.
//!
//! On Windows this is the windows-drivers-rs sample's one-liner: wdk-build
//! reads `[package.metadata.wdk]` and emits the WDM linker configuration.
//!
//! The Linux flavor (`--cfg dpclock_mingw`, see `cargo xtask build`) links
//! with lld-link instead, given the arguments wdk-build 0.6.0 emits for WDM
//! minus `/KERNEL` (which lld-link does not accept) and the MSVC-only map
//! options. Host builds (unit tests, clippy) link nothing kernel-side.
//!
//! `cargo xtask check-windows` builds the Windows flavor on Linux, with the
//! wdk-* crates' build scripts swapped for small shims. It sets
//! `DPCLOCK_WDK_SHIM_DIR`, and this script then emits what wdk-build's
//! `configure_wdk_binary_build` emits for a WDM driver, as lld-link takes it.

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

/// What wdk-build 0.6.0's `configure_binary_build` passes the linker for a
/// WDM driver, in its order. lld-link rejects `/KERNEL` and
/// `/MAPINFO:EXPORTS`; `cargo xtask check-windows` passes the rest.
#[cfg(not(windows))]
const WDK_BUILD_WDM_LINK_ARGS: [&str; 14] = [
    "/DRIVER",
    "/NODEFAULTLIB",
    "/SUBSYSTEM:NATIVE",
    "/KERNEL",
    "/ENTRY:DriverEntry",
    "/IGNORE:4257",
    "/IGNORE:4216",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/MAP",
    "/MAPINFO:EXPORTS",
    "/OPT:REF,ICF",
    "/INTEGRITYCHECK",
    "/MANIFEST:NO",
];
#[cfg(not(windows))]
const LLD_LINK_REJECTS: [&str; 2] = ["/KERNEL", "/MAPINFO:EXPORTS"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DPCLOCK_WDK_SHIM_DIR");
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
    if std::env::var_os("DPCLOCK_WDK_SHIM_DIR").is_some() {
        wdk_build_shim();
        return;
    }
    eprintln!(
        "error: the Windows flavor of dpclock (windows-drivers-rs and a WDK) builds on a Windows host only; \
         on Linux, build with `cargo xtask build`, which selects the Linux flavor (--cfg dpclock_mingw)"
    );
    std::process::exit(1);
}

/// `cargo xtask check-windows` only: what wdk-build's `configure_binary_build`
/// emits for WDM, except the WDK's library folders (the check passes its stub
/// libraries' folder itself) and the two arguments lld-link rejects.
#[cfg(not(windows))]
fn wdk_build_shim() {
    // wdk-build refuses a dynamically linked C runtime
    // (ConfigError::StaticCrtNotEnabled); .cargo/config.toml enables it.
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|feature| feature == "crt-static") {
        eprintln!(
            "error: wdk-build requires `-C target-feature=+crt-static` for drivers \
             (StaticCrtNotEnabled); .cargo/config.toml sets it for MSVC targets"
        );
        std::process::exit(1);
    }
    for arg in WDK_BUILD_WDM_LINK_ARGS {
        if !LLD_LINK_REJECTS.contains(&arg) {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
    }
    println!(
        "cargo::rustc-check-cfg=cfg(driver_model__driver_type, values(\"WDM\", \"KMDF\", \"UMDF\"))"
    );
    println!("cargo::rustc-cfg=driver_model__driver_type=\"WDM\"");
}
