//! check-windows, the video port family: kspin's `VideoPort` backend linked
//! the way a video miniport uses it (`crates/kspin/videoport-image`).
//!
//! The dpclock driver is a WDM function driver and never calls videoprt.sys,
//! so nothing else ever links kspin's video port bindings. This check does,
//! for each architecture windows-drivers-rs supports, against an import
//! library with exactly videoprt.sys's six documented spin-lock exports, and
//! checks that the image imports exactly those six names from videoprt.sys
//! and nothing from anywhere else.
//!
//! On x86_64 and ARM64 a routine's import name does not show its calling
//! convention (there is one). On x86 it does: `NTAPI` (`__stdcall`) decorates
//! `VideoPortAcquireSpinLock` as `_VideoPortAcquireSpinLock@12`, the `12`
//! being the bytes of arguments the callee pops. So the check also compiles
//! the image's code for i686 and holds the symbols it references to the
//! ones a C caller compiled against mingw-w64's `video.h` references: the
//! same names, the same convention, the same argument bytes.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use object::{
    LittleEndian as LE, Object, ObjectSymbol,
    pe::IMAGE_SUBSYSTEM_NATIVE,
    read::{
        archive::ArchiveFile,
        pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64},
    },
};

use crate::{
    check_windows::{
        Arch, STEP_TIMEOUT, cargo_program, image_imports, mingw_include, tool, write_if_changed,
    },
    cross, fail,
    process::{Result, display, run_bounded},
};

/// videoprt.sys's documented spin-lock routines (video.h), the exports the
/// image may import and must import.
pub const VIDEOPRT_SPIN_LOCK_EXPORTS: [&str; 6] = [
    "VideoPortAcquireSpinLock",
    "VideoPortAcquireSpinLockAtDpcLevel",
    "VideoPortCreateSpinLock",
    "VideoPortDeleteSpinLock",
    "VideoPortReleaseSpinLock",
    "VideoPortReleaseSpinLockFromDpcLevel",
];

const DLL: &str = "videoprt.sys";

/// What a kernel-mode image is linked with (wdk-build's WDM arguments that
/// lld-link takes; see the driver's build.rs).
const LINK_ARGS: [&str; 8] = [
    "/DRIVER",
    "/NODEFAULTLIB",
    "/SUBSYSTEM:NATIVE",
    "/ENTRY:DriverEntry",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/OPT:REF,ICF",
    "/MANIFEST:NO",
];

fn crate_dir() -> PathBuf {
    cross::workspace().join("crates/kspin/videoport-image")
}

/// Links the image for `arch` and checks its imports.
///
/// # Errors
///
/// If it does not link, or imports anything but exactly the six routines.
pub fn link_and_check(generated: &Path, arch: Arch) -> Result<()> {
    let lib_dir = generated.join("videoport").join(arch.name());
    let def = lib_dir.join("videoprt.def");
    let lib = lib_dir.join("videoprt.lib");
    let mut text = format!("LIBRARY {DLL}\nEXPORTS\n");
    for name in VIDEOPRT_SPIN_LOCK_EXPORTS {
        text.push_str(&format!("    {name}\n"));
    }
    if write_if_changed(&def, text.as_bytes())? || !lib.is_file() {
        tool(
            Command::new("llvm-dlltool")
                .args(["-m", arch.dlltool_machine(), "-d"])
                .arg(&def)
                .arg("-l")
                .arg(&lib),
        )?;
    }
    let target_dir = generated.join("videoport").join("target");
    let image = target_dir
        .join(arch.triple())
        .join("release")
        .join("kspin_videoport_image.dll");
    let _ = fs::remove_file(&image);
    let key = arch.triple().to_uppercase().replace('-', "_");
    let mut flags = vec![format!("-L native={}", display(&lib_dir))];
    flags.extend(LINK_ARGS.iter().map(|arg| format!("-C link-arg={arg}")));
    let cargo = |args: &[&str]| {
        let mut cargo = Command::new(cargo_program());
        cargo
            .current_dir(crate_dir())
            .env("CARGO_TARGET_DIR", &target_dir)
            .env(format!("CARGO_TARGET_{key}_LINKER"), "lld-link")
            .env(format!("CARGO_TARGET_{key}_RUSTFLAGS"), flags.join(" "))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC")
            .args(args)
            .args(["--release", "--locked", "--target", arch.triple()]);
        cargo
    };
    run_bounded(
        cargo(&["clippy"]).args(["--", "-D", "warnings"]),
        STEP_TIMEOUT,
    )?;
    run_bounded(&mut cargo(&["build"]), STEP_TIMEOUT)?;
    check_image(&image, arch)
}

fn check_image(image: &Path, arch: Arch) -> Result<()> {
    let data = fs::read(image).map_err(|e| fail!("cannot read {}: {e}", display(image)))?;
    let pe = PeFile64::parse(&*data)
        .map_err(|e| fail!("{} is not a PE32+ image: {e}", display(image)))?;
    let mut problems = Vec::new();
    let machine = pe.nt_headers().file_header().machine.get(LE);
    if machine != arch.machine() {
        problems.push(format!(
            "machine {machine:#06x}, expected {:#06x}",
            arch.machine()
        ));
    }
    if pe.nt_headers().optional_header().subsystem() != IMAGE_SUBSYSTEM_NATIVE {
        problems.push("not a native-subsystem image".to_owned());
    }
    let imports = image_imports(&pe)?;
    let expected: BTreeSet<String> = VIDEOPRT_SPIN_LOCK_EXPORTS
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    for (dll, names) in &imports {
        if dll != DLL {
            problems.push(format!(
                "imports from {dll} ({}): a miniport's locks need videoprt.sys only",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let found = imports.get(DLL).cloned().unwrap_or_default();
    if found != expected {
        problems.push(format!(
            "imports {{{}}} from {DLL}; expected exactly {{{}}}",
            found.iter().cloned().collect::<Vec<_>>().join(", "),
            VIDEOPRT_SPIN_LOCK_EXPORTS.join(", ")
        ));
    }
    if problems.is_empty() {
        eprintln!(
            "  ok: {}: {} image imports exactly the {} spin-lock routines from {DLL}",
            display(image),
            arch.name(),
            found.len()
        );
        Ok(())
    } else {
        Err(fail!(
            "{} fails its checks:\n  - {}",
            display(image),
            problems.join("\n  - ")
        ))
    }
}

/// The calling convention on x86, where it shows: the symbols the image's
/// code references, compiled for i686 with Debian's rustc (rustup has no
/// i686 MSVC standard library here; windows-drivers-rs has no x86), against
/// what a C caller compiled against mingw-w64's `miniport.h` and `video.h`
/// references.
///
/// # Errors
///
/// If the two differ, or either cannot be built.
pub fn check_x86_convention(generated: &Path) -> Result<()> {
    let dir = generated.join("videoport").join("i686");
    let header_refs = header_references(&dir)?;
    let target_dir = dir.join("target");
    let mut cargo = cross::debian_cargo(&target_dir);
    cargo.current_dir(crate_dir()).args([
        "rustc",
        "--release",
        "--locked",
        "--lib",
        "--crate-type",
        "staticlib",
        "--target",
        "i686-pc-windows-msvc",
        "-Zbuild-std=core,compiler_builtins",
        "-Zbuild-std-features=compiler-builtins-mem",
    ]);
    run_bounded(&mut cargo, STEP_TIMEOUT)?;
    let staticlib = target_dir.join("i686-pc-windows-msvc/release/kspin_videoport_image.lib");
    // The image's own code imports them (`__imp_` + the decorated name).
    let rust_refs: BTreeSet<String> = undefined_symbols(&staticlib)?
        .into_iter()
        .filter_map(|s| s.strip_prefix("__imp_").map(str::to_owned))
        .filter(|s| s.contains("VideoPort"))
        .collect();
    if rust_refs == header_refs {
        eprintln!(
            "  ok: i686: kspin references {} as video.h declares them",
            rust_refs.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        Ok(())
    } else {
        Err(fail!(
            "i686: kspin's video port declarations do not match video.h:\n  kspin: {}\n  video.h: {}\n  \
             (a missing `@N` is a C-convention declaration where the header says NTAPI; \
             another N is a different argument list)",
            rust_refs.iter().cloned().collect::<Vec<_>>().join(", "),
            header_refs.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// The decorated names a C caller of the six routines references on i686.
fn header_references(dir: &Path) -> Result<BTreeSet<String>> {
    let source = dir.join("videoport-callers.c");
    let object = dir.join("videoport-callers.o");
    let mut text = String::from(
        "/* dpclock check-windows: the video port spin-lock routines as video.h declares them */\n\
         #include <ntdef.h>\n#include <miniport.h>\n#include <video.h>\nvoid *dpclock_videoport_routines[] = {\n",
    );
    for name in VIDEOPRT_SPIN_LOCK_EXPORTS {
        text.push_str(&format!("    (void *){name},\n"));
    }
    text.push_str("};\n");
    write_if_changed(&source, text.as_bytes())?;
    let include = mingw_include();
    tool(
        Command::new("clang")
            .args(["--target=i686-w64-mingw32", "-w", "-c"])
            .arg(format!("-I{}", display(&include)))
            .arg(format!("-I{}", display(&include.join("ddk"))))
            .arg(&source)
            .arg("-o")
            .arg(&object),
    )?;
    // i686 C symbols carry a leading underscore; `__imp_` adds its own.
    Ok(undefined_symbols(&object)?.into_iter().collect())
}

/// The undefined symbols of an object file or of every member of an
/// archive (read with the object crate: Debian's llvm-nm is older than the
/// bitcode rustc leaves in `compiler_builtins`' members).
fn undefined_symbols(file: &Path) -> Result<Vec<String>> {
    let data = fs::read(file).map_err(|e| fail!("cannot read {}: {e}", display(file)))?;
    let bad = |e: object::Error| fail!("cannot read {}: {e}", display(file));
    let mut members = Vec::new();
    if let Ok(archive) = ArchiveFile::parse(&*data) {
        for member in archive.members() {
            members.push(member.map_err(bad)?.data(&*data).map_err(bad)?);
        }
    } else {
        members.push(&*data);
    }
    let mut found = Vec::new();
    for member in members {
        // Bitcode and import members are not object files: skip them.
        let Ok(object) = object::File::parse(member) else {
            continue;
        };
        found.extend(
            object
                .symbols()
                .filter(ObjectSymbol::is_undefined)
                .filter_map(|symbol| symbol.name().ok().map(str::to_owned)),
        );
    }
    Ok(found)
}
