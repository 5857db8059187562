//! dpclock's stand-in for the build script of `wdk-sys`, used only by
//! `cargo xtask check-windows`.
//!
//! The real build script asks wdk-build for a `Config` (driver model from the
//! driver's `[package.metadata.wdk]`, include paths of an installed WDK) and
//! runs bindgen three times with `bindgen::Builder::wdk_default(config)`:
//! `constants.rs` (VARS), `types.rs` (TYPES) and `ntddk.rs` (everything else,
//! plus the `#[link]` lines of the WDM libraries). Neither a WDK nor a Windows
//! host exists here, so this script does the same three runs with the same
//! builder settings (written out below, in wdk-build 0.6.0's order) over
//! mingw-w64's DDK headers instead. Every way it differs from a real WDK build
//! is listed in docs/windows-fidelity.md ("What check-windows proves").
//!
//! Inputs, set by `cargo xtask check-windows`:
//!
//! * `DPCLOCK_WDK_SHIM_DIR`: the generated directory; its `include/<arch>/`
//!   comes first on the include path (the supplement header, and on aarch64
//!   mingw-w64's `wdm.h`/`ntddk.h` with an ARM64 section added);
//! * `DPCLOCK_MINGW_ROOT` (optional): mingw-w64's root, `/usr/share/mingw-w64`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    thread,
};

use bindgen::{Builder, CodegenConfig, EnumVariation, Formatter, RustEdition, RustTarget};

/// wdk-build's `Config::headers(ApiSubset::Base)` for WDM and KMDF.
const BASE_HEADERS: [&str; 3] = ["ntifs.h", "ntddk.h", "ntstrsafe.h"];
/// Declarations that the WDK has and mingw-w64 10 lacks (xtask/shims/).
const SUPPLEMENT_HEADER: &str = "dpclock-wdk-supplement.h";

/// wdk-build's `Config::wdk_bindgen_compiler_flags()`, minus
/// `-fms-compatibility`: with it, clang 14 rejects its own `mmintrin.h` as
/// mingw-w64's headers include it.
const COMPILER_FLAGS: &[&str] = &[
    "-fms-extensions",
    "-fdelayed-template-parsing",
    "--warn-=no-nonportable-include-path",
    "--warn-=no-pragma-pack",
    "--warn-=no-ignored-attributes",
    "--warn-=no-ignored-pragma-intrinsic",
    "--warn-=no-visibility",
    "--warn-=no-switch",
    "--warn-=no-comment",
    "--warn-=no-deprecated-declarations",
    "--warn-=no-invalid-token-paste",
    "--warn-=no-microsoft",
];

/// `bindgen::Builder::wdk_default`'s blocklist (deprecated and internal
/// items, and types bindgen cannot lay out).
const BLOCKLIST: &[&str] = &[
    "ExAllocatePoolWithTag",
    "ExAllocatePoolWithQuotaTag",
    "ExAllocatePoolWithTagPriority",
    "ExAllocatePool",
    "USBD_CalculateUsbBandwidth",
    "USBD_CreateConfigurationRequest",
    "USBD_Debug_LogEntry",
    "USBD_GetUSBDIVersion",
    "USBD_ParseConfigurationDescriptor",
    "USBD_QueryBusTime",
    "USBD_RegisterHcFilter",
    "IOCTL_USB_DIAG_IGNORE_HUBS_OFF",
    "IOCTL_USB_DIAG_IGNORE_HUBS_ON",
    "IOCTL_USB_DIAGNOSTIC_MODE_OFF",
    "IOCTL_USB_DIAGNOSTIC_MODE_ON",
    "IOCTL_USB_GET_HUB_CAPABILITIES",
    "IOCTL_USB_HCD_DISABLE_PORT",
    "IOCTL_USB_HCD_ENABLE_PORT",
    "IOCTL_USB_HCD_GET_STATS_1",
    "IOCTL_USB_HCD_GET_STATS_2",
    "IOCTL_USB_RESET_HUB",
];
const OPAQUE: &[&str] = &["_KGDTENTRY64", "_KIDTENTRY64"];
const BLOCKLIST_PATTERNS: &[&str] = &[
    ".*MCG_CAP(?:__bindgen.*)?",
    ".*WHEA_XPF_MCA_SECTION",
    ".*WHEA_ARM_BUS_ERROR(?:__bindgen.*)?",
    ".*WHEA_ARM_PROCESSOR_ERROR",
    ".*WHEA_ARM_CACHE_ERROR",
    ".*ADDRESS0_OWNERSHIP_ACQUIRE",
    ".*USBDEVICE_ABORTIO",
    ".*USBDEVICE_STARTIO",
    ".*USBDEVICE_TREE_PURGEIO",
];

/// The architecture, as wdk-build's `CpuArchitecture` (x86 is rejected there
/// too: "The target architecture, x86, is currently not supported.").
#[derive(Clone, Copy)]
enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    fn from_cargo() -> Self {
        match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
            Ok("x86_64") => Self::Amd64,
            Ok("aarch64") => Self::Arm64,
            other => fail(&format!(
                "the target architecture {other:?} is not supported by windows-drivers-rs \
                 (wdk-build accepts x86_64 and aarch64 only)"
            )),
        }
    }

    /// The folder of the generated include overlay.
    const fn dir(self) -> &'static str {
        match self {
            Self::Amd64 => "x86_64",
            Self::Arm64 => "aarch64",
        }
    }

    /// wdk-build's `Config::preprocessor_definitions()` for a WDM driver.
    const fn definitions(self) -> &'static [&'static str] {
        match self {
            Self::Amd64 => &["_WIN64", "_AMD64_", "AMD64", "_KERNEL_MODE"],
            Self::Arm64 => &[
                "_ARM64_",
                "ARM64",
                "_USE_DECLSPECS_FOR_SAL=1",
                "STD_CALL",
                "_KERNEL_MODE",
            ],
        }
    }

    /// clang's target. bindgen would pass the Rust target's MSVC triple;
    /// mingw-w64's headers parse only under the mingw triple (same LLP64 data
    /// model; `-mms-bitfields` below restores MSVC's bitfield layout).
    const fn clang_target(self) -> &'static str {
        match self {
            Self::Amd64 => "--target=x86_64-w64-mingw32",
            Self::Arm64 => "--target=aarch64-w64-mingw32",
        }
    }

    /// wdk-build's `Config::base_libraries()` for WDM.
    const fn libraries(self) -> &'static [&'static str] {
        match self {
            Self::Amd64 => &["BufferOverflowFastFailK", "ntoskrnl", "hal", "wmilib"],
            Self::Arm64 => &[
                "BufferOverflowFastFailK",
                "ntoskrnl",
                "hal",
                "wmilib",
                "arm64rt",
            ],
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: wdk-sys (dpclock check-windows shim): {message}");
    std::process::exit(1);
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DPCLOCK_WDK_SHIM_DIR");
    println!("cargo::rerun-if-env-changed=DPCLOCK_MINGW_ROOT");
    // What wdk-build's `configure_library_build` emits for a WDM driver.
    println!(
        "cargo::rustc-check-cfg=cfg(driver_model__driver_type, values(\"WDM\", \"KMDF\", \"UMDF\"))"
    );
    println!("cargo::rustc-cfg=driver_model__driver_type=\"WDM\"");

    let Some(shim_dir) = env::var_os("DPCLOCK_WDK_SHIM_DIR").map(PathBuf::from) else {
        fail(
            "this build script is dpclock's stand-in for wdk-sys's; only \
             `cargo xtask check-windows` uses it (DPCLOCK_WDK_SHIM_DIR is not set)",
        );
    };
    let arch = Arch::from_cargo();
    let mingw = PathBuf::from(
        env::var_os("DPCLOCK_MINGW_ROOT").unwrap_or_else(|| "/usr/share/mingw-w64".into()),
    )
    .join("include");
    let overlay = shim_dir.join("include").join(arch.dir());
    for required in [
        overlay.join(SUPPLEMENT_HEADER),
        mingw.join("ddk").join("ntddk.h"),
    ] {
        if !required.is_file() {
            fail(&format!(
                "{} is missing: run `cargo xtask check-windows` (it installs \
                 mingw-w64-x86-64-dev and generates the overlay)",
                required.display()
            ));
        }
    }
    let include_paths = [overlay, mingw.join("ddk"), mingw];
    let builtin = clang_builtin_headers();
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR is not set")));

    let mut header = String::new();
    for name in BASE_HEADERS.iter().chain([&SUPPLEMENT_HEADER]) {
        header.push_str(&format!("#include \"{name}\"\n"));
    }
    let link_lines: String = arch.libraries().iter().map(|name| link_directive(name)).collect();

    // wdk-sys generates its files on parallel threads; so does this script.
    let jobs: [(&str, CodegenConfig, Option<&str>); 3] = [
        ("constants", CodegenConfig::VARS, None),
        ("types", CodegenConfig::TYPES, None),
        (
            "ntddk",
            (CodegenConfig::TYPES | CodegenConfig::VARS).complement(),
            Some(link_lines.as_str()),
        ),
    ];
    thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(name, codegen, raw_line)| {
                let (include_paths, builtin, header, out) = (&include_paths, &builtin, &header, &out);
                // A bindgen Builder is not Send: each thread makes its own.
                scope.spawn(move || {
                    let builder = wdk_default(arch, include_paths, builtin)
                        .with_codegen_config(codegen)
                        .header_contents(&format!("{name}-input.h"), header);
                    let builder = match raw_line {
                        Some(line) => builder.raw_line(line),
                        None => builder,
                    };
                    generate(name, builder, &out.join(format!("{name}.rs")));
                })
            })
            .collect();
        for handle in handles {
            if handle.join().is_err() {
                fail("a bindgen thread panicked");
            }
        }
    });
}

fn generate(name: &str, builder: Builder, path: &Path) {
    let bindings = builder.generate().unwrap_or_else(|e| {
        fail(&format!(
            "bindgen failed on the DDK headers ({name}.rs): {e}"
        ))
    });
    bindings
        .write_to_file(path)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
}

/// wdk-build's `LinkDirective::render` for one library.
fn link_directive(name: &str) -> String {
    format!(
        "#[cfg(not(any(test, feature = \"suppress-wdk-linking\")))]\n\
         #[link(name = \"{name}\", kind = \"static\", modifiers = \"-bundle\")]\n\
         unsafe extern \"C\" {{}}\n"
    )
}

/// clang's own headers: with `detect_include_paths(false)`, as wdk-build sets
/// it, libclang does not find them by itself here.
fn clang_builtin_headers() -> PathBuf {
    let output = Command::new("clang")
        .arg("-print-resource-dir")
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run clang (Debian package clang): {e}")));
    let include = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("include");
    if !output.status.success() || !include.is_dir() {
        fail("`clang -print-resource-dir` gave no include directory; reinstall clang");
    }
    include
}

/// `bindgen::Builder::wdk_default(config)` of wdk-build 0.6.0 for a WDM
/// config, setting for setting and in its order, with this script's include
/// paths and clang target. Its WDF-only parse callback (which renames the
/// `WdfFunctions` table) does nothing for WDM and is left out.
fn wdk_default(arch: Arch, include_paths: &[PathBuf], builtin: &Path) -> Builder {
    let mut builder = Builder::default()
        .use_core()
        .derive_default(true)
        .generate_cstr(true)
        .detect_include_paths(false)
        .clang_arg("-fno-builtin")
        .clang_args(
            include_paths
                .iter()
                .map(|path| format!("--include-directory={}", path.display())),
        )
        .clang_args(
            arch.definitions()
                .iter()
                .map(|definition| format!("--define-macro={definition}"))
                .chain(COMPILER_FLAGS.iter().map(|flag| (*flag).to_owned())),
        )
        // Not in wdk_default: see `Arch::clang_target` and
        // `clang_builtin_headers`.
        .clang_arg(arch.clang_target())
        .clang_arg("-mms-bitfields")
        .clang_arg(format!("-isystem{}", builtin.display()));
    for item in BLOCKLIST {
        builder = builder.blocklist_item(*item);
    }
    for item in OPAQUE {
        builder = builder.opaque_type(*item);
    }
    for pattern in BLOCKLIST_PATTERNS {
        builder = builder.blocklist_item(*pattern);
    }
    // Not in wdk_default: clang's amxintrin.h, which its immintrin.h includes
    // when _MSC_VER is not defined (the mingw triple), declares a packed and
    // aligned type that Rust cannot express. An MSVC-triple parse never sees it.
    builder = builder.blocklist_type("__tile1024i.*");
    builder
        .no_default(".*tagMONITORINFOEXA")
        .must_use_type("NTSTATUS")
        .must_use_type("HRESULT")
        .default_enum_style(EnumVariation::ModuleConsts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .formatter(Formatter::Prettyplease)
        // wdk-build passes its own rust-version (1.91.0) and edition (2024).
        .rust_target(RustTarget::stable(91, 0).unwrap_or_else(|e| {
            fail(&format!("bindgen does not know Rust 1.91: {e}"))
        }))
        .rust_edition(RustEdition::Edition2024)
}
