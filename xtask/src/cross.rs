//! The Linux flavor's cross builds: dpclock.sys with Debian's rustc-web and
//! lld-link, dpclockctl.exe with mingw-w64, and the INF, stamped as stampinf
//! would. Each build variant lands in a package folder like the one
//! `cargo make` makes on Windows:
//!
//! ```text
//! target/wine-package/<profile>/free/     dpclock.sys dpclock.inf dpclockctl.exe
//! target/wine-package/<profile>/checked/  the same, with the kspin validator on
//! ```

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    fail,
    process::{Result, display, run},
};

/// The driver's target.
pub const DRIVER_TARGET: &str = "x86_64-pc-windows-msvc";
/// The harness's target: x86_64-pc-windows-gnu's std imports ProcessPrng
/// from bcryptprimitives.dll, which Wine 8.0 lacks; the win7 target's does not.
pub const HARNESS_TARGET: &str = "x86_64-win7-windows-gnu";

/// The workspace root (xtask lives one level below it).
#[must_use]
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `target/` of the workspace.
#[must_use]
pub fn target_dir() -> PathBuf {
    workspace().join("target")
}

/// A Cargo profile of the cross builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `dev` (debug assertions on).
    Debug,
    /// `release` (LTO).
    Release,
}

impl Profile {
    /// The folder cargo puts it in.
    #[must_use]
    pub const fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }
}

/// Which driver build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Guards compile to exactly the kernel calls.
    Free,
    /// With kspin's validator (`--features checked`).
    Checked,
}

impl Variant {
    /// Its folder name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Checked => "checked",
        }
    }
}

/// One package folder.
#[derive(Clone, Debug)]
pub struct Package {
    /// The folder.
    pub dir: PathBuf,
    /// `dpclock.sys`.
    pub sys: PathBuf,
    /// `dpclock.inf`.
    pub inf: PathBuf,
    /// `dpclockctl.exe`.
    pub harness: PathBuf,
}

/// Debian's toolchain, for the Windows targets only (host crates build with
/// rustup's stable toolchain).
pub(crate) fn debian_cargo(target_dir: &Path) -> Command {
    // Cargo finds `cargo-clippy` and `clippy-driver` on the PATH, where
    // rustup's proxies come first; Debian's must win for these targets.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![PathBuf::from("/usr/bin")];
    paths.extend(std::env::split_paths(&path));
    let mut command = Command::new("/usr/bin/cargo");
    command
        .env("PATH", std::env::join_paths(paths).unwrap_or(path))
        .current_dir(workspace())
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .arg("--quiet");
    command.env("CARGO_TARGET_DIR", target_dir);
    command
}

/// The rustflags of the driver's Linux flavor: the `dpclock_mingw` cfg that
/// selects the mingw-based bindings, the static CRT that windows-drivers-rs
/// requires, and lld-link.
#[must_use]
pub fn driver_rustflags() -> OsString {
    [
        "--cfg",
        "dpclock_mingw",
        "-C",
        "target-feature=+crt-static",
        "-C",
        "linker=lld-link",
    ]
    .join("\x1f")
    .into()
}

fn profile_args(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::Debug => &[],
        Profile::Release => &["--release"],
    }
}

/// Clippy's lints for our own crates, run by the cross builds themselves.
///
/// `cargo clippy` is `cargo check` with `clippy-driver` as the workspace's
/// rustc wrapper; a separate clippy pass would type-check every crate the
/// build compiles a second time. So the builds run `clippy-driver` on the
/// workspace's crates (the standard library, from `-Zbuild-std`, is not a
/// workspace crate and stays plain rustc) and deny warnings there: a
/// Windows-target lint fails the build. `CLIPPY_ARGS` is how `cargo clippy`
/// hands `-- -D warnings` to the driver, each argument followed by the
/// separator.
fn lint_while_building(command: &mut Command) {
    command
        .env("RUSTC_WORKSPACE_WRAPPER", "/usr/bin/clippy-driver")
        .env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        );
}

/// Builds the driver for its Windows target, linted (see
/// [`lint_while_building`]).
fn driver_command(variant: Variant, profile: Profile) -> Command {
    let mut command = debian_cargo(&target_dir().join(format!("win-{}", variant.name())));
    lint_while_building(&mut command);
    command
        .env("CARGO_ENCODED_RUSTFLAGS", driver_rustflags())
        .args(["build", "-p", "dpclock", "--target", DRIVER_TARGET])
        .args([
            "-Zbuild-std=core,alloc,compiler_builtins",
            "-Zbuild-std-features=compiler-builtins-mem",
        ])
        .args(profile_args(profile));
    if variant == Variant::Checked {
        command.args(["--features", "checked"]);
    }
    command
}

fn harness_command(profile: Profile) -> Command {
    let mut command = debian_cargo(&target_dir().join("win-harness"));
    lint_while_building(&mut command);
    command
        .env(
            "CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_LINKER",
            "x86_64-w64-mingw32-gcc",
        )
        .args([
            "build",
            "-p",
            "dpclockctl",
            "--target",
            HARNESS_TARGET,
            "-Zbuild-std=std,panic_abort",
        ])
        .args(profile_args(profile));
    command
}

/// Clippy, denying warnings, on kspin's x86 bindings (the `Kef*`/`Kf*`
/// fastcall names), which no build compiles: windows-drivers-rs has no x86.
/// The driver and the harness are linted for their Windows targets by the
/// builds themselves ([`build`]).
///
/// # Errors
///
/// If clippy reports anything.
pub fn clippy_x86() -> Result<()> {
    let mut x86 = debian_cargo(&target_dir().join("win-x86"));
    x86.env("CARGO_ENCODED_RUSTFLAGS", "")
        .args([
            "clippy",
            "-p",
            "kspin",
            "--no-default-features",
            "--features",
            "kernel,videoport,checked",
        ])
        .args([
            "--target",
            "i686-pc-windows-msvc",
            "-Zbuild-std=core,alloc",
            "--",
            "-D",
            "warnings",
        ]);
    run(&mut x86)
}

/// Builds everything, clippy-linted with warnings denied, and fills both
/// package folders.
///
/// # Errors
///
/// If a build fails.
pub fn build(profile: Profile) -> Result<[Package; 2]> {
    crate::deps::ensure()?;
    run(&mut harness_command(profile))?;
    let harness = target_dir()
        .join("win-harness")
        .join(HARNESS_TARGET)
        .join(profile.dir())
        .join("dpclockctl.exe");
    let mut packages = Vec::new();
    for variant in [Variant::Free, Variant::Checked] {
        run(&mut driver_command(variant, profile))?;
        let built = target_dir()
            .join(format!("win-{}", variant.name()))
            .join(DRIVER_TARGET)
            .join(profile.dir())
            .join("dpclock.dll");
        packages.push(package(variant, profile, &built, &harness)?);
    }
    let [free, checked]: [Package; 2] = packages
        .try_into()
        .map_err(|_| fail!("two packages expected"))?;
    Ok([free, checked])
}

/// The package folder of a variant, whether built yet or not.
#[must_use]
pub fn package_dir(variant: Variant, profile: Profile) -> PathBuf {
    target_dir()
        .join("wine-package")
        .join(profile.dir())
        .join(variant.name())
}

fn package(variant: Variant, profile: Profile, driver: &Path, harness: &Path) -> Result<Package> {
    let dir = package_dir(variant, profile);
    fs::create_dir_all(&dir).map_err(|e| fail!("cannot create {}: {e}", display(&dir)))?;
    let copy = |from: &Path, name: &str| -> Result<PathBuf> {
        let to = dir.join(name);
        fs::copy(from, &to)
            .map_err(|e| fail!("cannot copy {} to {}: {e}", display(from), display(&to)))?;
        Ok(to)
    };
    // cargo names the driver `.dll`; `cargo make` renames it the same way.
    let sys = copy(driver, "dpclock.sys")?;
    let harness = copy(harness, "dpclockctl.exe")?;
    let inf = dir.join("dpclock.inf");
    let inx = fs::read_to_string(workspace().join("dpclock.inx"))
        .map_err(|e| fail!("cannot read dpclock.inx: {e}"))?;
    fs::write(&inf, stamp_for_wine(&inx))
        .map_err(|e| fail!("cannot write {}: {e}", display(&inf)))?;
    Ok(Package {
        dir,
        sys,
        inf,
        harness,
    })
}

/// What `stampinf -a amd64 -d * -v *` does to the INX on Windows (the
/// architecture and a DriverVer line), plus one change for Wine only:
/// Wine 8.0's SetupAPI matches a models section by its platform decoration
/// alone (`NTamd64`) and skips `NTamd64.10.0...19041`, so the target OS
/// version is dropped from the decoration. There is no catalog: Wine checks
/// no signatures.
#[must_use]
pub fn stamp_for_wine(inx: &str) -> String {
    let mut out = String::new();
    for line in inx.lines() {
        let line = line
            .replace("$ARCH$", "amd64")
            .replace("NTamd64.10.0...19041", "NTamd64");
        out.push_str(&line);
        out.push_str("\r\n");
        if line.trim_start().starts_with("Signature") {
            out.push_str(&format!(
                "DriverVer   = 01/01/2026,{}.0\r\n",
                env!("CARGO_PKG_VERSION")
            ));
        }
    }
    out
}
