//! The Debian packages the Linux flow needs, installed when missing.

use std::process::Command;

use crate::{
    fail,
    process::{Result, run},
};

/// Each package and why it is needed.
pub const PACKAGES: &[(&str, &str)] = &[
    (
        "rustc-web",
        "a rustc with the Windows targets (rustup cannot add targets here)",
    ),
    ("cargo-web", "the cargo that goes with it"),
    (
        "rust-web-src",
        "the standard library's source, for -Zbuild-std",
    ),
    ("rust-web-clippy", "clippy for the Windows targets"),
    ("lld", "lld-link, the driver's linker"),
    (
        "clang",
        "clang's builtin headers, for bindgen; check-windows' static stub libraries",
    ),
    ("libclang-dev", "libclang, for bindgen"),
    (
        "llvm",
        "llvm-dlltool, llvm-objdump, llvm-lib and llvm-nm (check-windows' stub libraries)",
    ),
    (
        "mingw-w64-x86-64-dev",
        "the DDK headers and import libraries",
    ),
    (
        "gcc-mingw-w64-x86-64",
        "the linker of the user-mode programs",
    ),
    ("wine", "Wine, the rig that runs the driver"),
    ("wine64", "64-bit Wine"),
    (
        "autoconf",
        "the rig's ntoskrnl.exe: Wine's configure is generated (rig/wine/build.sh)",
    ),
    ("autotools-dev", "the rig: config.sub and config.guess"),
    ("flex", "the rig: Wine's build tools (widl, wrc)"),
    ("bison", "the rig: Wine's build tools (widl, wrc)"),
    ("make", "the rig: Wine's build"),
    ("gcc", "the rig: Wine's build tools"),
    ("patch", "the rig: Debian's patches and the rig's hooks"),
];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Packages that are not installed.
#[must_use]
pub fn missing() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .map(|&(name, _)| name)
        .filter(|name| !installed(name))
        .collect()
}

/// Makes sure every package is installed, installing missing ones with
/// apt-get when running as root.
///
/// # Errors
///
/// When packages are missing and cannot be installed, naming them.
pub fn ensure() -> Result<()> {
    if !std::path::Path::new("/usr/bin/dpkg-query").exists() {
        return Err(fail!(
            "this flow needs Debian 12 (dpkg and apt); on Windows, build with `cargo make` instead (see README)"
        ));
    }
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    let explain: Vec<String> = PACKAGES
        .iter()
        .filter(|(name, _)| missing.contains(name))
        .map(|(name, why)| format!("    {name}: {why}"))
        .collect();
    eprintln!(
        "xtask: installing missing Debian packages:\n{}",
        explain.join("\n")
    );
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err(fail!(
            "these Debian packages are missing: {list}\n  install them with: sudo apt-get install -y --no-install-recommends {list}"
        ));
    }
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-q"]).map_err(|e| {
        fail!("{e}\n  (apt-get update failed: is the network or the Debian mirror reachable?)")
    })?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install).map_err(|e| fail!("{e}\n  could not install: {list}"))?;
    let still = self::missing();
    if still.is_empty() {
        Ok(())
    } else {
        Err(fail!(
            "apt-get finished but these packages are still missing: {}",
            still.join(" ")
        ))
    }
}
