//! Generates the kernel bindings from mingw-w64's DDK headers.
//!
//! wdk-sys generates its bindings from an installed WDK on a Windows host;
//! neither exists on the Linux rig, so this crate runs bindgen over the DDK
//! headers of Debian's `mingw-w64-x86-64-dev` and lays the result out the way
//! wdk-sys does: types and constants at the crate root, functions in `ntddk`.
//! Like wdk-sys it does not generate inline functions or function-like macros
//! (`IoGetCurrentIrpStackLocation`, `CTL_CODE`, `KeGetCurrentIrql` on x64):
//! the driver writes those once, for both flavors.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

/// Where `mingw-w64-x86-64-dev` installs its headers and libraries.
const DEFAULT_MINGW_ROOT: &str = "/usr/share/mingw-w64";
const DEFAULT_MINGW_LIB: &str = "/usr/x86_64-w64-mingw32/lib";

/// ntoskrnl.exe exports that mingw-w64's libntoskrnl.a has no import for:
/// `IoOpenDriverRegistryKey` (Windows 10 version 1803, newer than mingw-w64
/// 10). When the list is empty, no supplement is built or linked.
const SUPPLEMENTAL_NTOSKRNL_EXPORTS: &[&str] = &["IoOpenDriverRegistryKey"];

/// Declarations the WDK's wdm.h has and mingw-w64 10's lacks, for what the
/// driver uses, written from Microsoft's reference pages
/// (`DRIVER_REGKEY_TYPE`, `IoOpenDriverRegistryKey`); the same as in
/// check-windows' `xtask/shims/dpclock-wdk-supplement.h`.
const WDM_SUPPLEMENT: &str = "
typedef enum _DRIVER_REGKEY_TYPE {
  DriverRegKeyParameters,
  DriverRegKeyPersistentState,
  DriverRegKeySharedPersistentState
} DRIVER_REGKEY_TYPE, *PDRIVER_REGKEY_TYPE;

NTKERNELAPI
NTSTATUS
NTAPI
IoOpenDriverRegistryKey(
  PDRIVER_OBJECT DriverObject,
  DRIVER_REGKEY_TYPE RegKeyType,
  ACCESS_MASK DesiredAccess,
  ULONG Flags,
  PHANDLE DriverRegKey);
";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DPCLOCK_MINGW_ROOT");
    println!("cargo::rerun-if-env-changed=DPCLOCK_MINGW_LIB");
    let root = PathBuf::from(env::var("DPCLOCK_MINGW_ROOT").unwrap_or(DEFAULT_MINGW_ROOT.into()));
    let include = root.join("include");
    if !include.join("ddk").join("ntddk.h").is_file() {
        fail(&format!(
            "mingw-w64's DDK headers were not found under {}.\n\
             Install them with `cargo xtask deps` (Debian package mingw-w64-x86-64-dev), \
             or point DPCLOCK_MINGW_ROOT at another mingw-w64 root.",
            include.display()
        ));
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let builtin = clang_builtin_headers();
    generate(&include, &builtin, &out);
    write_status_constants(&include.join("ntstatus.h"), &out.join("status.rs"));
    link_import_libraries(&out);
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// clang's own headers (stddef.h, intrinsics): the mingw headers include them,
/// and libclang does not add its resource directory when it is not asked to
/// detect include paths (detection would add the Linux host's /usr/include).
fn clang_builtin_headers() -> PathBuf {
    let output = Command::new("clang")
        .arg("-print-resource-dir")
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run clang (Debian package clang): {e}")));
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let include = PathBuf::from(dir).join("include");
    if !output.status.success() || !include.is_dir() {
        fail("`clang -print-resource-dir` gave no include directory; reinstall clang");
    }
    include
}

fn builder(include: &Path, builtin: &Path) -> bindgen::Builder {
    bindgen::Builder::default()
        .header_contents(
            "dpclock-wdk.h",
            &format!("#include <ntifs.h>\n#include <ntddk.h>\n{WDM_SUPPLEMENT}"),
        )
        .use_core()
        // The headers describe the LLP64 Windows ABI; route C types through a
        // module that spells it out, so the bindings mean the same thing when
        // this crate is compiled for a Linux host (unit tests, clippy).
        .ctypes_prefix("crate::ctypes")
        .derive_default(true)
        .generate_cstr(true)
        .detect_include_paths(false)
        .clang_args([
            "--target=x86_64-w64-mingw32",
            "-fno-builtin",
            "-D_AMD64_",
            "-DAMD64",
            "-D_WIN64",
            "-D_KERNEL_MODE",
            "-DNTDDI_VERSION=0x0A000000",
            "-D_WIN32_WINNT=0x0A00",
        ])
        .clang_arg(format!("-isystem{}", builtin.display()))
        .clang_arg(format!("-I{}", include.join("ddk").display()))
        .clang_arg(format!("-I{}", include.display()))
        .must_use_type("NTSTATUS")
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        // Opaque in the WDK too; their mingw definitions do not lay out.
        .opaque_type("_KGDTENTRY64")
        .opaque_type("_KIDTENTRY64")
}

fn generate(include: &Path, builtin: &Path, out: &Path) {
    use bindgen::CodegenConfig;

    builder(include, builtin)
        .with_codegen_config(CodegenConfig::TYPES | CodegenConfig::VARS)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on the DDK headers (types): {e}")))
        .write_to_file(out.join("types.rs"))
        .expect("OUT_DIR is writable");

    builder(include, builtin)
        .with_codegen_config(CodegenConfig::FUNCTIONS)
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bindgen failed on the DDK headers (functions): {e}"
            ))
        })
        .write_to_file(out.join("ntddk.rs"))
        .expect("OUT_DIR is writable");
}

/// `#define STATUS_X ((NTSTATUS)0x...)` is a cast macro, which bindgen skips;
/// wdk-sys hand-writes the same constants as typed `NTSTATUS` values.
fn write_status_constants(ntstatus_h: &Path, out: &Path) {
    let text = fs::read_to_string(ntstatus_h)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", ntstatus_h.display())));
    let mut rust = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("#define ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(hex) = value
            .strip_prefix("((NTSTATUS)0x")
            .and_then(|v| v.strip_suffix(')'))
            .map(|v| v.trim_end_matches(['L', ')']))
        else {
            continue;
        };
        if let Ok(bits) = u32::from_str_radix(hex, 16)
            && name.starts_with("STATUS_")
            && seen.insert(name.to_owned())
        {
            rust.push_str(&format!(
                "pub const {name}: NTSTATUS = 0x{bits:08X}_u32.cast_signed();\n"
            ));
        }
    }
    fs::write(out, rust).expect("OUT_DIR is writable");
}

/// mingw-w64's import libraries for ntoskrnl.exe and HAL.dll, plus a small
/// generated one for the exports they lack. They link with lld-link, the
/// linker the Linux flavor uses.
fn link_import_libraries(out: &Path) {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return; // Host builds (tests, clippy) never link kernel code.
    }
    let lib = PathBuf::from(env::var("DPCLOCK_MINGW_LIB").unwrap_or(DEFAULT_MINGW_LIB.into()));
    for name in ["libntoskrnl.a", "libhal.a"] {
        if !lib.join(name).is_file() {
            fail(&format!(
                "{} is missing: install mingw-w64-x86-64-dev (`cargo xtask deps`)",
                lib.join(name).display()
            ));
        }
    }
    if !SUPPLEMENTAL_NTOSKRNL_EXPORTS.is_empty() {
        let def = out.join("ntoskrnl-supplement.def");
        let mut text = String::from("LIBRARY ntoskrnl.exe\nEXPORTS\n");
        for export in SUPPLEMENTAL_NTOSKRNL_EXPORTS {
            text.push_str(&format!("    {export}\n"));
        }
        fs::write(&def, text).expect("OUT_DIR is writable");
        let supplement = out.join("ntoskrnl-supplement.lib");
        let status = Command::new("llvm-dlltool")
            .args(["-m", "i386:x86-64", "-d"])
            .arg(&def)
            .arg("-l")
            .arg(&supplement)
            .status()
            .unwrap_or_else(|e| {
                fail(&format!(
                    "cannot run llvm-dlltool (Debian package llvm): {e}"
                ))
            });
        if !status.success() {
            fail("llvm-dlltool failed to build ntoskrnl-supplement.lib");
        }
    }
    println!("cargo::rustc-link-search=native={}", lib.display());
    println!("cargo::rustc-link-search=native={}", out.display());
    // HAL first: both libraries carry KeQueryPerformanceCounter, and Wine
    // exports it only from HAL.dll (Microsoft documents it as Hal.dll too).
    println!("cargo::rustc-link-lib=dylib:+verbatim=libhal.a");
    println!("cargo::rustc-link-lib=dylib:+verbatim=libntoskrnl.a");
    if !SUPPLEMENTAL_NTOSKRNL_EXPORTS.is_empty() {
        println!("cargo::rustc-link-lib=dylib:+verbatim=ntoskrnl-supplement.lib");
    }
}
