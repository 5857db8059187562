//! The two build flavors resolve different crates: a Linux build (host, or
//! the Linux flavor of the Windows target) never resolves the
//! windows-drivers-rs crates, whose build scripts refuse any host but
//! Windows; the Windows flavor resolves them and not the mingw stand-ins.

use std::process::Command;

const WDK_CRATES: [&str; 5] = ["wdk", "wdk-sys", "wdk-build", "wdk-alloc", "wdk-panic"];
const STAND_INS: [&str; 3] = ["mingw-wdk", "mingw-wdk-sys", "mingw-wdk-panic"];

/// The package names in `cargo tree` of the driver, with `extra` arguments
/// and `rustflags` for the target.
fn tree(extra: &[&str], rustflags: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .args([
            "tree",
            "-p",
            "dpclock",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(extra)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn has(packages: &[String], name: &str) -> bool {
    packages.iter().any(|p| p == name)
}

#[test]
fn a_linux_host_build_never_resolves_the_wdk_crates() {
    let packages = tree(&[], "");
    for name in WDK_CRATES {
        assert!(
            !has(&packages, name),
            "{name} resolved for the host: {packages:?}"
        );
    }
    assert!(has(&packages, "mingw-wdk-sys"), "{packages:?}");
}

#[test]
fn the_linux_flavor_of_the_windows_target_never_resolves_them() {
    let packages = tree(
        &["--target", "x86_64-pc-windows-msvc"],
        "--cfg\x1fdpclock_mingw",
    );
    for name in WDK_CRATES {
        assert!(
            !has(&packages, name),
            "{name} resolved for the Linux flavor: {packages:?}"
        );
    }
    for name in STAND_INS {
        assert!(
            has(&packages, name),
            "{name} missing from the Linux flavor: {packages:?}"
        );
    }
}

#[test]
fn the_windows_flavor_resolves_the_wdk_crates_and_not_the_stand_ins() {
    // Without the cfg, the Windows target gets windows-drivers-rs (wdk-build,
    // a build dependency, is evaluated against the host, so it is absent
    // here on Linux and present on a Windows host).
    let packages = tree(&["--target", "x86_64-pc-windows-msvc"], "");
    for name in ["wdk", "wdk-sys", "wdk-alloc", "wdk-panic"] {
        assert!(
            has(&packages, name),
            "{name} missing from the Windows flavor: {packages:?}"
        );
    }
    for name in STAND_INS {
        assert!(
            !has(&packages, name),
            "{name} resolved for the Windows flavor: {packages:?}"
        );
    }
}
