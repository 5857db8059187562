//! `cargo xtask check-windows`: the Windows flavor, built on Linux against
//! the real windows-drivers-rs crates.
//!
//! The driver is compiled exactly as the Windows flavor is (no
//! `dpclock_mingw` cfg; `wdk`, `wdk-sys`, `wdk-alloc` and `wdk-panic` at the
//! versions in Cargo.lock, downloaded from crates.io by cargo; rustup's
//! prebuilt standard library for each MSVC target), for x86_64 and aarch64,
//! free and checked. Only the build scripts of the wdk crates are swapped,
//! in copies under `target/check-windows/crates/`, for the shims in
//! `xtask/shims/`: they emit what wdk-build would, and the wdk-sys one runs
//! wdk-sys's own bindgen settings over mingw-w64's DDK headers (plus a small
//! overlay: see [`overlay_headers`]). docs/windows-fidelity.md lists every
//! difference from a real WDK build.
//!
//! Then, per architecture:
//!
//! 1. `cargo clippy -- -D warnings` of the driver, free and checked (clippy
//!    type-checks everything `cargo check` does, so there is no separate check);
//! 2. the layout cross-check (`crates/wdk-layout`): compile-time assertions
//!    that the bindings agree with the `windows-sys` crate's `Wdk` modules
//!    (the WDK's own metadata), and with the WDK headers where that metadata
//!    is known to be wrong;
//! 3. a link with lld-link and wdk-build's WDM arguments, against stub
//!    import libraries of the exports the driver needs ([`Arch::imports`])
//!    and static stubs of the WDK's static libraries, in the dev and release
//!    profiles, free and checked; each image is then checked: native
//!    subsystem, entry point `DriverEntry`, imports from ntoskrnl.exe and
//!    hal.dll only, each of them a listed export (and the union of what
//!    the variants import is reported against the lists);
//! 4. kspin's video port family, linked as a video miniport uses it, against
//!    videoprt.sys's spin-lock exports ([`crate::videoport_image`]).
//!
//! Everything generated lives under `target/check-windows/`; the real
//! Cargo.lock is never touched (cargo runs in a shadow workspace there, whose
//! manifest adds the `[patch.crates-io]` entries).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use object::{
    LittleEndian as LE,
    pe::{
        IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
        IMAGE_DLLCHARACTERISTICS_NX_COMPAT, IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_ARM64,
        IMAGE_SUBSYSTEM_NATIVE, ImageNtHeaders64,
    },
    read::pe::{ImageNtHeaders, ImageOptionalHeader, Import, PeFile64},
};

use crate::{
    cross, deps, fail,
    process::{Result, display, run_bounded, run_captured},
    videoport_image,
};

/// The windows-drivers-rs crates the driver depends on (wdk-build is a
/// build-dependency of the driver and of these; it never builds here).
pub const WDK_CRATES: [&str; 4] = ["wdk", "wdk-alloc", "wdk-panic", "wdk-sys"];

/// The layout cross-check's package.
pub const LAYOUT_PACKAGE: &str = "dpclock-wdk-layout";

/// How long one cargo or rustup command may take before it is killed.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a tool that should take seconds (clang, llvm-*) may take.
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The shims, carried inside xtask.
const SHIM_WDK_SYS: &str = include_str!("../shims/wdk-sys-build.rs");
const SHIM_WDK_LIBRARY: &str = include_str!("../shims/wdk-library-build.rs");
const SUPPLEMENT_HEADER: (&str, &str) = (
    "dpclock-wdk-supplement.h",
    include_str!("../shims/dpclock-wdk-supplement.h"),
);
const ARM64_WDM_HEADER: (&str, &str) = (
    "dpclock-arm64-wdm.h",
    include_str!("../shims/dpclock-arm64-wdm.h"),
);

/// mingw-w64's headers and import libraries (Debian `mingw-w64-x86-64-dev`);
/// `DPCLOCK_MINGW_ROOT` and `DPCLOCK_MINGW_LIB` override them, as for the
/// Linux flavor's bindings (and the wdk-sys shim reads the same variable).
pub(crate) fn mingw_include() -> PathBuf {
    PathBuf::from(
        std::env::var_os("DPCLOCK_MINGW_ROOT").unwrap_or_else(|| "/usr/share/mingw-w64".into()),
    )
    .join("include")
}

fn mingw_lib() -> PathBuf {
    PathBuf::from(
        std::env::var_os("DPCLOCK_MINGW_LIB")
            .unwrap_or_else(|| "/usr/x86_64-w64-mingw32/lib".into()),
    )
}

/// docs/windows-fidelity.md: its table "Every import of the built image"
/// is the list of exports the driver may import, each with its page on
/// learn.microsoft.com. The stub import libraries export exactly these
/// names, so the link fails on any other (lld-link: `undefined symbol`),
/// and [`check_image`] refuses an image that imports anything else.
const FIDELITY_DOC: &str = include_str!("../../docs/windows-fidelity.md");

/// The heading of the imports table in [`FIDELITY_DOC`].
const IMPORTS_HEADING: &str = "## Every import of the built image";

/// One row of the imports table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentedImport {
    /// The export's name.
    pub name: &'static str,
    /// `ntoskrnl.exe` or `hal.dll`.
    pub dll: &'static str,
    /// The architectures whose image imports it.
    pub arches: &'static str,
    /// Its documentation page.
    pub page: &'static str,
}

/// Every row of the imports table in docs/windows-fidelity.md.
///
/// # Panics
///
/// If the table is missing or a row is malformed (a name without
/// backticks, an unknown DLL or architecture, a page that is not on
/// learn.microsoft.com): the document is the list, so it must parse.
#[must_use]
pub fn documented_imports() -> Vec<DocumentedImport> {
    let start = FIDELITY_DOC
        .find(IMPORTS_HEADING)
        .expect("docs/windows-fidelity.md has the imports table");
    let rows = FIDELITY_DOC[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2);
    rows.map(|row| {
        let cells: Vec<&'static str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0]
            .strip_prefix('`')
            .and_then(|n| n.strip_suffix('`'))
            .unwrap_or_else(|| panic!("imports table: a name in backticks: {row}"));
        let dll = cells[1];
        assert!(
            dll == "ntoskrnl.exe" || dll == "hal.dll",
            "imports table: {dll}"
        );
        let arches = cells[2];
        assert!(
            arches == "x86_64, aarch64" || arches == "aarch64" || arches == "x86_64",
            "imports table: {arches}"
        );
        let page = cells[3]
            .strip_prefix('<')
            .and_then(|p| p.strip_suffix('>'))
            .filter(|p| p.starts_with("https://learn.microsoft.com/"))
            .unwrap_or_else(|| panic!("imports table: a learn.microsoft.com page: {row}"));
        DocumentedImport {
            name,
            dll,
            arches,
            page,
        }
    })
    .collect()
}

/// Listed exports that mingw-w64 10's x64 import libraries do not have,
/// and why they are real exports anyway.
const NEWER_THAN_MINGW: &[(&str, &str)] = &[
    (
        "ExAllocatePool2",
        "Microsoft's reference page: wdm.h, NtosKrnl.exe, Windows 10 version 2004 and later",
    ),
    (
        "IoOpenDriverRegistryKey",
        "Microsoft's reference page: wdm.h, NtosKrnl.exe, Windows 10 version 1803 and later",
    ),
];

/// The WDK's static libraries wdk-build links, as static stubs (`symbol` is
/// what the stub defines); the driver calls a routine of none of them.
/// (wdmsec.lib left with `IoCreateDeviceSecure`: the FDO is created with
/// `IoCreateDevice`, its security set by the INF.)
const STATIC_STUBS: &[(&str, &str)] = &[
    (
        "BufferOverflowFastFailK",
        "int dpclock_stub_BufferOverflowFastFailK;\n",
    ),
    ("wmilib", "int dpclock_stub_wmilib;\n"),
];
/// wdk-build links `arm64rt` on aarch64 only.
const ARM64_STATIC_STUBS: &[(&str, &str)] = &[("arm64rt", "int dpclock_stub_arm64rt;\n")];

/// A target architecture windows-drivers-rs supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64-pc-windows-msvc`.
    X86_64,
    /// `aarch64-pc-windows-msvc`.
    Aarch64,
}

impl Arch {
    /// Both, in the order they are checked.
    pub const ALL: [Self; 2] = [Self::X86_64, Self::Aarch64];

    /// Rust's target triple.
    #[must_use]
    pub const fn triple(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-pc-windows-msvc",
            Self::Aarch64 => "aarch64-pc-windows-msvc",
        }
    }

    /// `CARGO_CFG_TARGET_ARCH`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    pub(crate) const fn machine(self) -> u16 {
        match self {
            Self::X86_64 => IMAGE_FILE_MACHINE_AMD64,
            Self::Aarch64 => IMAGE_FILE_MACHINE_ARM64,
        }
    }

    pub(crate) const fn dlltool_machine(self) -> &'static str {
        match self {
            Self::X86_64 => "i386:x86-64",
            Self::Aarch64 => "arm64",
        }
    }

    /// The `<TRIPLE>` of cargo's `CARGO_TARGET_<TRIPLE>_*` variables.
    fn cargo_env_key(self) -> String {
        self.triple().to_uppercase().replace('-', "_")
    }

    /// The exports the driver may import, per DLL: the rows of
    /// docs/windows-fidelity.md's imports table for this architecture.
    #[must_use]
    pub fn imports(self) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
        let mut lists: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
        for import in documented_imports() {
            if import.arches.contains(self.name()) {
                lists.entry(import.dll).or_default().insert(import.name);
            }
        }
        lists
    }

    fn static_stubs(self) -> Vec<(&'static str, &'static str)> {
        let mut stubs = STATIC_STUBS.to_vec();
        if self == Self::Aarch64 {
            stubs.extend_from_slice(ARM64_STATIC_STUBS);
        }
        stubs
    }
}

/// One build variant of the driver.
#[derive(Clone, Copy, Debug)]
struct Variant {
    checked: bool,
    release: bool,
}

impl Variant {
    fn args(self) -> Vec<&'static str> {
        let mut args = Vec::new();
        if self.release {
            args.push("--release");
        }
        if self.checked {
            args.extend(["--features", "checked"]);
        }
        args
    }

    fn label(self) -> String {
        format!(
            "{} {}",
            if self.release { "release" } else { "dev" },
            if self.checked { "checked" } else { "free" }
        )
    }
}

/// `target/check-windows/`.
#[must_use]
pub fn generated_dir() -> PathBuf {
    cross::target_dir().join("check-windows")
}

/// The timed steps of one run, for the summary.
pub type StepTimes = Vec<(String, Duration)>;

fn timed(times: &mut StepTimes, name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("\n== check-windows: {name}");
    let start = Instant::now();
    body().map_err(|e| fail!("check-windows, {name}: {e}"))?;
    times.push((name.to_owned(), start.elapsed()));
    Ok(())
}

/// Runs the whole check. Returns the time of each step.
///
/// # Errors
///
/// On the first failing step, saying what failed and what to do.
pub fn run() -> Result<StepTimes> {
    let mut times = StepTimes::new();
    let generated = generated_dir();
    timed(&mut times, "prerequisites", prerequisites)?;
    timed(
        &mut times,
        "generate the shimmed crates, headers and stubs",
        || prepare(&generated),
    )?;
    for arch in Arch::ALL {
        let cargo = |args: &[&str]| cargo(&generated, arch, args);
        for checked in [false, true] {
            let variant = Variant {
                checked,
                release: false,
            };
            let features = variant.args();
            timed(
                &mut times,
                &format!(
                    "{}: cargo clippy -D warnings ({})",
                    arch.name(),
                    variant.label()
                ),
                || {
                    let mut args = vec!["clippy", "-p", "dpclock"];
                    args.extend(&features);
                    args.extend(["--", "-D", "warnings"]);
                    run_bounded(&mut cargo(&args), STEP_TIMEOUT)
                },
            )?;
        }
        timed(
            &mut times,
            &format!("{}: layout cross-check (clippy -D warnings)", arch.name()),
            || {
                run_bounded(
                    &mut cargo(&["clippy", "-p", LAYOUT_PACKAGE, "--", "-D", "warnings"]),
                    STEP_TIMEOUT,
                )
            },
        )?;
        let mut imported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for release in [false, true] {
            for checked in [false, true] {
                let variant = Variant { checked, release };
                timed(
                    &mut times,
                    &format!("{}: link with lld-link ({})", arch.name(), variant.label()),
                    || {
                        let image = link(&generated, arch, variant)?;
                        for (dll, names) in check_image(&image, arch)? {
                            imported.entry(dll).or_default().extend(names);
                        }
                        Ok(())
                    },
                )?;
            }
        }
        report_unimported(arch, &imported);
        timed(
            &mut times,
            &format!(
                "{}: kspin's video port family linked as a miniport (imports exactly videoprt.sys's spin-lock routines)",
                arch.name()
            ),
            || videoport_image::link_and_check(&generated, arch),
        )?;
    }
    timed(
        &mut times,
        "i686: kspin's video port declarations against video.h's NTAPI (decorated names)",
        || videoport_image::check_x86_convention(&generated),
    )?;
    Ok(times)
}

// ---------------------------------------------------------------------------
// Prerequisites

fn prerequisites() -> Result<()> {
    deps::ensure()?;
    ensure_rustup_targets()?;
    let clippy = run_captured(
        Command::new(cargo_program()).args(["clippy", "--version"]),
        TOOL_TIMEOUT,
    )?;
    if !clippy.success() {
        return Err(fail!(
            "`cargo clippy` is not available for rustup's toolchain: run `rustup component add clippy`\n{clippy}"
        ));
    }
    let manifest = fs::read_to_string(cross::workspace().join("Cargo.toml"))
        .map_err(|e| fail!("cannot read Cargo.toml: {e}"))?;
    match driver_type(&manifest) {
        Some("WDM") => Ok(()),
        other => Err(fail!(
            "the shims model wdk-build for a WDM driver only; Cargo.toml's \
             [package.metadata.wdk.driver-model] driver-type is {other:?}"
        )),
    }
}

/// rustup's cargo (the one running xtask).
pub(crate) fn cargo_program() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn ensure_rustup_targets() -> Result<()> {
    let listed = run_captured(
        Command::new("rustup").args(["target", "list", "--installed"]),
        TOOL_TIMEOUT,
    )
    .map_err(|e| {
        fail!("{e}\n  check-windows needs rustup (https://rustup.rs) and its stable toolchain")
    })?;
    if !listed.success() {
        return Err(fail!("`rustup target list --installed` failed:\n{listed}"));
    }
    let installed: BTreeSet<&str> = listed.stdout.lines().map(str::trim).collect();
    let missing: Vec<&str> = Arch::ALL
        .iter()
        .map(|arch| arch.triple())
        .filter(|triple| !installed.contains(triple))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: adding rustup's standard library for {} (what a Windows developer builds with)",
        missing.join(", ")
    );
    let mut add = Command::new("rustup");
    add.args(["target", "add"]).args(&missing);
    run_bounded(&mut add, STEP_TIMEOUT).map_err(|e| {
        fail!(
            "{e}\n  install them yourself with: rustup target add {}",
            missing.join(" ")
        )
    })
}

/// `driver-type` of `[package.metadata.wdk.driver-model]`.
fn driver_type(manifest: &str) -> Option<&str> {
    let mut in_table = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == "[package.metadata.wdk.driver-model]";
        } else if in_table && let Some(value) = line.strip_prefix("driver-type") {
            return Some(
                value
                    .trim_start()
                    .strip_prefix('=')?
                    .trim()
                    .trim_matches('"'),
            );
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Generated material

fn prepare(generated: &Path) -> Result<()> {
    let sources = wdk_sources()?;
    for (name, (version, dir)) in &sources {
        patch_crate(generated, name, version, dir)?;
    }
    for arch in Arch::ALL {
        overlay_headers(generated, arch)?;
        stub_libraries(generated, arch)?;
    }
    shadow_workspace(generated, &sources)
}

/// Name to (version, registry source folder) of each wdk crate, as cargo
/// resolves them for the Windows target from Cargo.lock (downloading them
/// if needed).
fn wdk_sources() -> Result<BTreeMap<String, (String, PathBuf)>> {
    let mut command = Command::new(cargo_program());
    command.current_dir(cross::workspace()).args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--filter-platform",
        Arch::X86_64.triple(),
    ]);
    let output = run_captured(&mut command, STEP_TIMEOUT)?;
    if !output.success() {
        return Err(fail!(
            "`cargo metadata` failed (is crates.io reachable?):\n{output}"
        ));
    }
    let metadata: serde_json::Value = serde_json::from_str(&output.stdout)
        .map_err(|e| fail!("cannot parse `cargo metadata`: {e}"))?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or_else(|| fail!("`cargo metadata` lists no packages"))?;
    let mut found = BTreeMap::new();
    for name in WDK_CRATES {
        let matches: Vec<&serde_json::Value> = packages
            .iter()
            .filter(|p| {
                p["name"] == name
                    && p["source"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("registry+"))
            })
            .collect();
        let [package] = matches.as_slice() else {
            return Err(fail!(
                "expected one crates.io package `{name}` in Cargo.lock, found {}",
                matches.len()
            ));
        };
        let version = package["version"].as_str().unwrap_or_default().to_owned();
        let dir = package["manifest_path"]
            .as_str()
            .and_then(|path| Path::new(path).parent())
            .ok_or_else(|| fail!("`cargo metadata` gives no manifest path for {name}"))?
            .to_path_buf();
        found.insert(name.to_owned(), (version, dir));
    }
    Ok(found)
}

/// Writes `contents` to `path` unless it already holds exactly that, so that
/// unchanged inputs keep their modification times (and cargo its caches).
/// Returns whether it wrote.
pub(crate) fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| fail!("cannot create {}: {e}", display(parent)))?;
    }
    fs::write(path, contents).map_err(|e| fail!("cannot write {}: {e}", display(path)))?;
    Ok(true)
}

/// The registry copy of a wdk crate with its build script swapped for the
/// shim, in `target/check-windows/crates/<name>-<version>/`.
fn patch_crate(generated: &Path, name: &str, version: &str, source: &Path) -> Result<()> {
    let dest = generated.join("crates").join(format!("{name}-{version}"));
    let manifest_path = source.join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path)
        .map_err(|e| fail!("cannot read {}: {e}", display(&manifest_path)))?;
    let manifest = shim_manifest(name, &manifest)?;
    let shim = if name == "wdk-sys" {
        SHIM_WDK_SYS
    } else {
        SHIM_WDK_LIBRARY
    };
    copy_tree(
        source,
        &dest,
        &["build.rs", "Cargo.toml", "Cargo.toml.orig"],
    )?;
    write_if_changed(&dest.join("Cargo.toml"), manifest.as_bytes())?;
    write_if_changed(&dest.join("build.rs"), shim.as_bytes())?;
    write_if_changed(
        &dest.join("DPCLOCK-GENERATED.txt"),
        format!(
            "Generated by `cargo xtask check-windows` from {}:\n\
             the registry's {name} {version} with its build script replaced by dpclock's shim\n\
             (xtask/shims/) and its build-dependencies with the shim's. Do not edit.\n",
            display(source)
        )
        .as_bytes(),
    )?;
    Ok(())
}

/// Copies a crate's files (not `skip`), writing only what changed.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| fail!("cannot read {}: {e}", display(from)))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail!("cannot read {}: {e}", display(from)))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name), &[])?;
        } else {
            let bytes =
                fs::read(&path).map_err(|e| fail!("cannot read {}: {e}", display(&path)))?;
            write_if_changed(&to.join(&name), &bytes)?;
        }
    }
    Ok(())
}

/// The crate's normalized Cargo.toml without its build-dependencies (the
/// shim's replace them: bindgen, at wdk-sys's own version, for wdk-sys;
/// nothing for the others) and as a workspace of its own.
fn shim_manifest(name: &str, manifest: &str) -> Result<String> {
    let mut out = String::new();
    let mut bindgen_version = None;
    let mut table = String::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            table = line.trim().to_owned();
        }
        if table.starts_with("[build-dependencies") {
            if table == "[build-dependencies.bindgen]"
                && let Some(version) = line.trim().strip_prefix("version = ")
            {
                bindgen_version = Some(version.trim_matches('"').to_owned());
            }
            continue;
        }
        // Features that forward to a build-dependency (wdk-sys's `nightly`).
        if line.trim().starts_with("\"wdk-build/") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if name == "wdk-sys" {
        let version = bindgen_version
            .ok_or_else(|| fail!("wdk-sys's Cargo.toml has no [build-dependencies.bindgen]"))?;
        out.push_str(&format!(
            "\n[build-dependencies.bindgen]\nversion = \"{version}\"\n"
        ));
    }
    out.push_str("\n[workspace]\n");
    if out.contains("wdk-build") {
        return Err(fail!(
            "{name}'s Cargo.toml still names wdk-build after the shim's edits; \
             xtask/src/check_windows.rs (shim_manifest) needs updating for this version"
        ));
    }
    Ok(out)
}

/// Replaces the one occurrence of `old` in `text`, or fails naming `what`.
fn replace_once(text: &str, old: &str, new: &str, what: &str) -> Result<String> {
    replace_exactly(text, old, new, 1, what)
}

/// Replaces all `count` occurrences of `old` in `text`, or fails naming
/// `what` if there are not exactly `count`.
fn replace_exactly(text: &str, old: &str, new: &str, count: usize, what: &str) -> Result<String> {
    match text.matches(old).count() {
        n if n == count => Ok(text.replace(old, new)),
        n => Err(fail!(
            "mingw-w64's {what} was expected {count} time(s) in its header, found {n}: \
             the mingw-w64 headers changed; review the overlay in xtask/src/check_windows.rs"
        )),
    }
}

/// The include overlay of one architecture, `target/check-windows/include/<arch>/`,
/// searched before mingw-w64's own folders:
///
/// * `dpclock-wdk-supplement.h`: declarations mingw-w64 10 lacks (POOL_FLAGS,
///   ExAllocatePool2);
/// * `wdm.h`: mingw-w64's, with `DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)`
///   on `_DEVICE_OBJECT` and `_IRP`, as the WDK declares them (mingw-w64
///   drops it);
/// * on aarch64: an ARM64 branch in wdm.h's and ntddk.h's per-architecture
///   chains (mingw-w64 has none: `#error Unknown Architecture`), whose wdm.h
///   part is `dpclock-arm64-wdm.h`; ARM64 excluded from wdm.h's five
///   32-bit-only `!defined(_AMD64_) && !defined(_IA64_)` blocks (one packs
///   IO_STACK_LOCATION to 4 bytes: the layout cross-check caught it); and a
///   member for wdm.h's `XSTATE_SAVE`, which is otherwise empty on ARM64.
fn overlay_headers(generated: &Path, arch: Arch) -> Result<()> {
    let dir = generated.join("include").join(arch.name());
    let mingw = mingw_include().join("ddk");
    let read = |name: &str| {
        let path = mingw.join(name);
        fs::read_to_string(&path).map_err(|e| {
            fail!(
                "cannot read {}: {e}\n  install mingw-w64-x86-64-dev (`cargo xtask deps`)",
                display(&path)
            )
        })
    };
    write_if_changed(
        &dir.join(SUPPLEMENT_HEADER.0),
        SUPPLEMENT_HEADER.1.as_bytes(),
    )?;
    let mut wdm = read("wdm.h")?;
    for name in ["_DEVICE_OBJECT", "_IRP"] {
        wdm = replace_once(
            &wdm,
            &format!("typedef struct {name} {{"),
            &format!("typedef struct DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT) {name} {{"),
            &format!("{name} definition"),
        )?;
    }
    if arch == Arch::Aarch64 {
        write_if_changed(&dir.join(ARM64_WDM_HEADER.0), ARM64_WDM_HEADER.1.as_bytes())?;
        let chain_end =
            "#elif defined(_M_ARM)\n#include <armddk.h>\n#else\n#error Unknown Architecture";
        wdm = replace_once(
            &wdm,
            chain_end,
            &format!(
                "#elif defined(_M_ARM64)\n#include \"{}\"\n{chain_end}",
                ARM64_WDM_HEADER.0
            ),
            "end of wdm.h's architecture chain",
        )?;
        // mingw-w64 marks 32-bit-only constructs "neither AMD64 nor IA64",
        // which takes in ARM64: `pshpack4.h` around IO_STACK_LOCATION (its
        // layout would be x86's), the obsolete lookaside-list locks, and a
        // 32-bit helper. ARM64 is 64-bit: exclude it like the other two.
        wdm = replace_exactly(
            &wdm,
            "#if !defined(_AMD64_) && !defined(_IA64_)\n",
            "#if !defined(_AMD64_) && !defined(_IA64_) && !defined(_ARM64_)\n",
            5,
            "32-bit-only condition `!defined(_AMD64_) && !defined(_IA64_)`",
        )?;
        let xstate = "#elif defined(_IA64_)\n  ULONG Dummy;\n#elif defined(_X86_)";
        wdm = replace_once(
            &wdm,
            xstate,
            &xstate.replacen("defined(_IA64_)", "defined(_IA64_) || defined(_ARM64_)", 1),
            "XSTATE_SAVE's _IA64_ member",
        )?;
        let ntddk = read("ntddk.h")?;
        let chain_end = "#elif defined(_M_ARM)\n#else\n#error Unknown Architecture";
        let ntddk = replace_once(
            &ntddk,
            chain_end,
            &format!("#elif defined(_M_ARM64)\n{chain_end}"),
            "end of ntddk.h's architecture chain",
        )?;
        write_if_changed(&dir.join("ntddk.h"), ntddk.as_bytes())?;
    }
    write_if_changed(&dir.join("wdm.h"), wdm.as_bytes())?;
    Ok(())
}

/// Runs a tool that should take seconds; fails with its output.
pub(crate) fn tool(command: &mut Command) -> Result<()> {
    let output = run_captured(command, TOOL_TIMEOUT)?;
    if output.success() {
        Ok(())
    } else {
        Err(fail!(
            "`{}` failed:\n{output}",
            crate::process::describe(command)
        ))
    }
}

/// `target/check-windows/lib/<arch>/`: import libraries for ntoskrnl.exe
/// and hal.dll with exactly [`Arch::imports`] (llvm-dlltool), and static
/// stubs of the WDK's static libraries (clang, llvm-lib). When any of them
/// changes, the linked images are removed, so that cargo links again.
fn stub_libraries(generated: &Path, arch: Arch) -> Result<()> {
    if arch == Arch::X86_64 {
        check_exports_against_mingw(arch)?;
    }
    let dir = generated.join("lib").join(arch.name());
    let scratch = dir.join("src");
    let mut changed = false;
    for (dll, names) in arch.imports() {
        let stem = dll.split('.').next().unwrap_or(dll);
        let mut def = format!("LIBRARY {dll}\nEXPORTS\n");
        for name in names {
            def.push_str(&format!("    {name}\n"));
        }
        let def_path = scratch.join(format!("{stem}.def"));
        let lib_path = dir.join(format!("{stem}.lib"));
        if write_if_changed(&def_path, def.as_bytes())? || !lib_path.is_file() {
            changed = true;
            tool(
                Command::new("llvm-dlltool")
                    .args(["-m", arch.dlltool_machine(), "-d"])
                    .arg(&def_path)
                    .arg("-l")
                    .arg(&lib_path),
            )?;
        }
    }
    for (name, source) in arch.static_stubs() {
        let c_path = scratch.join(format!("{name}.c"));
        let obj_path = scratch.join(format!("{name}.obj"));
        let lib_path = dir.join(format!("{name}.lib"));
        let text =
            format!("/* dpclock check-windows: static stub of the WDK's {name}.lib */\n{source}");
        if write_if_changed(&c_path, text.as_bytes())? || !lib_path.is_file() {
            changed = true;
            tool(
                Command::new("clang")
                    .arg(format!("--target={}", arch.triple()))
                    .args(["-O2", "-c"])
                    .arg(&c_path)
                    .arg("-o")
                    .arg(&obj_path),
            )?;
            let _ = fs::remove_file(&lib_path);
            tool(
                Command::new("llvm-lib")
                    .arg(format!("/out:{}", display(&lib_path)))
                    .arg(&obj_path),
            )?;
        }
    }
    if changed {
        for profile in ["debug", "release"] {
            let image = image_path(generated, arch, profile);
            let _ = fs::remove_file(image);
        }
    }
    Ok(())
}

/// Every listed x86_64 export must be one of mingw-w64's import libraries
/// for that DLL (which are generated from the real DLLs' export tables), or
/// a documented newer export.
fn check_exports_against_mingw(arch: Arch) -> Result<()> {
    for (dll, names) in arch.imports() {
        let stem = dll.split('.').next().unwrap_or(dll);
        let lib = mingw_lib().join(format!("lib{stem}.a"));
        let listing = run_captured(
            Command::new("llvm-nm")
                .args(["--defined-only", "--format=just-symbols"])
                .arg(&lib),
            TOOL_TIMEOUT,
        )?;
        if !listing.success() {
            return Err(fail!("cannot list {}:\n{listing}", display(&lib)));
        }
        let exported: BTreeSet<&str> = listing.stdout.lines().map(str::trim).collect();
        let unknown: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !exported.contains(name))
            .filter(|name| !NEWER_THAN_MINGW.iter().any(|(newer, _)| newer == name))
            .collect();
        if !unknown.is_empty() {
            return Err(fail!(
                "not exports of {dll} according to mingw-w64's {}: {}\n  \
                 the list in xtask/src/check_windows.rs must name real exports of the right DLL",
                display(&lib),
                unknown.join(", ")
            ));
        }
    }
    Ok(())
}

/// `target/check-windows/workspace/`: the workspace's manifest plus
/// `[patch.crates-io]` entries for the shimmed crates, a copy of Cargo.lock
/// that cargo may rewrite, and links to the sources. Cargo runs here, so
/// diagnostics name the usual paths (`src/wdm.rs`).
fn shadow_workspace(generated: &Path, sources: &BTreeMap<String, (String, PathBuf)>) -> Result<()> {
    let root = cross::workspace();
    let dir = generated.join("workspace");
    let read = |name: &str| {
        fs::read_to_string(root.join(name)).map_err(|e| fail!("cannot read {name}: {e}"))
    };
    let mut manifest = read("Cargo.toml")?;
    manifest.push_str("\n# Added by `cargo xtask check-windows`.\n[patch.crates-io]\n");
    for (name, (version, _)) in sources {
        let path = generated.join("crates").join(format!("{name}-{version}"));
        manifest.push_str(&format!("{name} = {{ path = \"{}\" }}\n", display(&path)));
    }
    write_if_changed(&dir.join("Cargo.toml"), manifest.as_bytes())?;
    write_if_changed(&dir.join("Cargo.lock"), read("Cargo.lock")?.as_bytes())?;
    for name in ["build.rs", "src", "crates", "xtask", "README.md"] {
        let link = dir.join(name);
        let target = root.join(name);
        if fs::read_link(&link).is_ok_and(|old| old == target) {
            continue;
        }
        let _ = fs::remove_file(&link);
        symlink(&target, &link).map_err(|e| {
            fail!(
                "cannot link {} to {}: {e}",
                display(&link),
                display(&target)
            )
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Building, linking and the image

fn cargo(generated: &Path, arch: Arch, args: &[&str]) -> Command {
    let key = arch.cargo_env_key();
    let lib = generated.join("lib").join(arch.name());
    // Arguments after `--` go to clippy-driver; cargo's own come first.
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut command = Command::new(cargo_program());
    command
        .current_dir(generated.join("workspace"))
        .env("DPCLOCK_WDK_SHIM_DIR", generated)
        .env("CARGO_TARGET_DIR", generated.join("target"))
        .env(format!("CARGO_TARGET_{key}_LINKER"), "lld-link")
        // Merged with .cargo/config.toml's `+crt-static` for MSVC targets.
        .env(
            format!("CARGO_TARGET_{key}_RUSTFLAGS"),
            format!("-L native={}", display(&lib)),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC")
        .args(&args[..split])
        .args(["--target", arch.triple()])
        .args(&args[split..]);
    command
}

fn image_path(generated: &Path, arch: Arch, profile: &str) -> PathBuf {
    generated
        .join("target")
        .join(arch.triple())
        .join(profile)
        .join("dpclock.dll")
}

/// Builds (and so links) one variant; returns the image.
fn link(generated: &Path, arch: Arch, variant: Variant) -> Result<PathBuf> {
    let image = image_path(
        generated,
        arch,
        if variant.release { "release" } else { "debug" },
    );
    // A variant links into the same file as its sibling: make cargo link it
    // again rather than keep the other variant's image.
    let _ = fs::remove_file(&image);
    let mut args = vec!["build", "-p", "dpclock"];
    args.extend(variant.args());
    run_bounded(&mut cargo(generated, arch, &args), STEP_TIMEOUT).map_err(|e| {
        fail!(
            "{e}\n  the link failed: an `undefined symbol` above is a routine the driver calls \
             that neither the stub import libraries ({}) nor the static stubs provide \
             (`__declspec(dllimport) X` means rustc expected X from a DLL)",
            display(&generated.join("lib").join(arch.name()))
        )
    })?;
    Ok(image)
}

/// The image's imports, per DLL (names lowercased for DLLs).
pub(crate) type Imports = BTreeMap<String, BTreeSet<String>>;

/// Checks a linked driver image; returns its imports.
///
/// # Errors
///
/// Naming each property that does not hold.
pub fn check_image(image: &Path, arch: Arch) -> Result<Imports> {
    let data = fs::read(image).map_err(|e| fail!("cannot read {}: {e}", display(image)))?;
    let pe = PeFile64::parse(&*data)
        .map_err(|e| fail!("{} is not a PE32+ image: {e}", display(image)))?;
    let mut problems = Vec::new();
    let headers = pe.nt_headers();
    let machine = headers.file_header().machine.get(LE);
    if machine != arch.machine() {
        problems.push(format!(
            "machine {machine:#06x}, expected {:#06x}",
            arch.machine()
        ));
    }
    let optional = headers.optional_header();
    if optional.subsystem() != IMAGE_SUBSYSTEM_NATIVE {
        problems.push(format!(
            "subsystem {}, expected {IMAGE_SUBSYSTEM_NATIVE} (native)",
            optional.subsystem()
        ));
    }
    let characteristics = optional.dll_characteristics();
    for (flag, name) in [
        (
            IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE,
            "DYNAMIC_BASE (/DYNAMICBASE)",
        ),
        (IMAGE_DLLCHARACTERISTICS_NX_COMPAT, "NX_COMPAT (/NXCOMPAT)"),
        (
            IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
            "FORCE_INTEGRITY (/INTEGRITYCHECK)",
        ),
    ] {
        if characteristics & flag == 0 {
            problems.push(format!("DllCharacteristics lacks {name}"));
        }
    }
    let entry = u64::from(optional.address_of_entry_point()) + optional.image_base();
    let exports = pe
        .export_table()
        .ok()
        .flatten()
        .and_then(|table| table.exports().ok())
        .unwrap_or_default();
    match exports
        .iter()
        .find(|e| e.name == Some(b"DriverEntry".as_slice()))
    {
        None => problems.push("no DriverEntry export".to_owned()),
        Some(export) => {
            let rva = match export.target {
                object::read::pe::ExportTarget::Address(rva) => Some(rva),
                _ => None,
            };
            if rva.map(|rva| u64::from(rva) + optional.image_base()) != Some(entry) {
                problems.push(format!(
                    "the entry point ({entry:#x}) is not DriverEntry ({rva:x?})"
                ));
            }
        }
    }
    let imports = image_imports(&pe)?;
    let allowed = arch.imports();
    for (dll, names) in &imports {
        match allowed.get(dll.as_str()) {
            None => problems.push(format!(
                "imports from {dll} ({}); a WDM driver here may import from ntoskrnl.exe and hal.dll only",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            Some(listed) => {
                let unlisted: Vec<&str> = names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !listed.contains(n))
                    .collect();
                if !unlisted.is_empty() {
                    problems.push(format!(
                        "imports from {dll} that docs/windows-fidelity.md does not list (every import needs a row, with its documentation page): {}",
                        unlisted.join(", ")
                    ));
                }
            }
        }
    }
    if !imports.contains_key("ntoskrnl.exe") {
        problems.push("imports nothing from ntoskrnl.exe".to_owned());
    }
    if problems.is_empty() {
        eprintln!(
            "  ok: {}: {} image, native subsystem, entry DriverEntry, imports {}",
            display(image),
            arch.name(),
            imports
                .iter()
                .map(|(dll, names)| format!("{} from {dll}", names.len()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(imports)
    } else {
        Err(fail!(
            "{} fails its checks:\n  - {}",
            display(image),
            problems.join("\n  - ")
        ))
    }
}

/// A PE32+ image's imports, per DLL.
pub(crate) fn image_imports(pe: &PeFile64) -> Result<Imports> {
    let error = |e: object::Error| fail!("bad import table: {e}");
    let mut found = Imports::new();
    let Some(table) = pe.import_table().map_err(error)? else {
        return Ok(found);
    };
    let mut descriptors = table.descriptors().map_err(error)?;
    while let Some(descriptor) = descriptors.next().map_err(error)? {
        let dll = String::from_utf8_lossy(table.name(descriptor.name.get(LE)).map_err(error)?)
            .to_lowercase();
        let mut thunks = table
            .thunks(descriptor.original_first_thunk.get(LE))
            .map_err(error)?;
        while let Some(thunk) = thunks.next::<ImageNtHeaders64>().map_err(error)? {
            let name = match table.import::<ImageNtHeaders64>(thunk).map_err(error)? {
                Import::Name(_, name) => String::from_utf8_lossy(name).into_owned(),
                Import::Ordinal(n) => format!("#{n}"),
            };
            found.entry(dll.clone()).or_default().insert(name);
        }
    }
    Ok(found)
}

/// Reports the listed exports no image imports. lld-link resolves every
/// symbol the linked objects reference before `/OPT:REF` drops unused code,
/// so a name can be needed to link and still not be imported (wdk-alloc's
/// ExAllocatePool2 and ExFreePool: the driver allocates nothing). A name
/// listed here that is not even needed to link is harmless in the import
/// library; remove it from the lists when it shows up after a change.
fn report_unimported(arch: Arch, imported: &Imports) {
    let mut unimported = Vec::new();
    for (dll, names) in arch.imports() {
        for name in names {
            if !imported.get(dll).is_some_and(|found| found.contains(name)) {
                unimported.push(format!("{name} ({dll})"));
            }
        }
    }
    if !unimported.is_empty() {
        eprintln!(
            "  note: {}: listed, referenced by linked code, but dropped by /OPT:REF in every variant: {}",
            arch.name(),
            unimported.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_driver_type() {
        let manifest = "[package]\nname = \"x\"\n\n[package.metadata.wdk.driver-model]\ndriver-type = \"WDM\"\n";
        assert_eq!(driver_type(manifest), Some("WDM"));
        assert_eq!(driver_type("[package]\n"), None);
    }

    #[test]
    fn shim_manifest_drops_build_dependencies() {
        let manifest = "[package]\nname = \"wdk-sys\"\n\n[features]\nnightly = [\n    \"wdk-build/nightly\",\n    \"wdk-macros/nightly\",\n]\n\n[dependencies.rustversion]\nversion = \"1\"\n\n[build-dependencies.bindgen]\nversion = \"0.73.2\"\n\n[build-dependencies.wdk-build]\nversion = \"0.6.0\"\n";
        let out = shim_manifest("wdk-sys", manifest).expect("rewritten");
        assert!(!out.contains("wdk-build"));
        assert!(out.contains("\"wdk-macros/nightly\""));
        assert!(out.contains("[dependencies.rustversion]"));
        assert!(out.contains("[build-dependencies.bindgen]\nversion = \"0.73.2\""));
        assert!(out.ends_with("[workspace]\n"));
        // A build-dependency the edits do not know about must not slip through.
        let odd = "[package]\nname = \"wdk\"\n\n[dependencies.wdk-build]\nversion = \"0.6.0\"\n";
        assert!(shim_manifest("wdk", odd).is_err());
    }

    #[test]
    fn replace_once_refuses_missing_or_repeated_text() {
        assert_eq!(replace_once("a b", "a", "c", "x").expect("once"), "c b");
        assert!(replace_once("a a", "a", "c", "x").is_err());
        assert!(replace_once("b", "a", "c", "x").is_err());
    }

    #[test]
    fn the_documented_imports_are_one_list_without_overlap() {
        let rows = documented_imports();
        let names: BTreeSet<&str> = rows.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), rows.len(), "a name listed twice");
        for arch in Arch::ALL {
            let lists = arch.imports();
            let ntoskrnl = &lists["ntoskrnl.exe"];
            assert!(lists["hal.dll"].iter().all(|name| !ntoskrnl.contains(name)));
            assert!(ntoskrnl.contains("KeInsertQueueDpc"));
        }
        // Documented DDIs only: the undocumented routines are not listed.
        for undocumented in [
            "KeGenericCallDpc",
            "KeSignalCallDpcDone",
            "KeSignalCallDpcSynchronize",
        ] {
            assert!(!names.contains(undocumented), "{undocumented}");
        }
        // ARM64's IRQL routines are HAL exports; x64 inlines them.
        assert!(Arch::Aarch64.imports()["hal.dll"].contains("KfRaiseIrql"));
        assert!(!Arch::X86_64.imports()["hal.dll"].contains("KfRaiseIrql"));
    }
}
