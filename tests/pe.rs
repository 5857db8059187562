//! PE checks of the built dpclock.sys (both variants), through a real PE
//! parser: a driver image Windows (and Wine) will load as a driver, importing
//! only what Wine's ntoskrnl.exe and HAL.dll really implement.

use std::{collections::BTreeSet, fs, path::Path};

use object::{
    LittleEndian as LE, Object, ObjectSymbol,
    pe::{
        IMAGE_DIRECTORY_ENTRY_BASERELOC, IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE,
        IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY, IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
        IMAGE_FILE_MACHINE_AMD64, IMAGE_SCN_MEM_EXECUTE, IMAGE_SCN_MEM_WRITE,
        IMAGE_SUBSYSTEM_NATIVE,
    },
    read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64},
};

/// Wine's builtin modules, as Debian's wine64 installs them.
const WINE_DLLS: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";

fn packages() -> &'static [xtask::cross::Package; 2] {
    xtask::packages().unwrap_or_else(|e| panic!("building the driver packages failed: {e}"))
}

/// (module, function) imports of an image.
fn imports(pe: &PeFile64) -> Vec<(String, String)> {
    let table = pe
        .import_table()
        .expect("import table")
        .expect("the driver imports something");
    let mut found = Vec::new();
    let mut descriptors = table.descriptors().expect("import descriptors");
    while let Some(descriptor) = descriptors.next().expect("descriptor") {
        let module =
            String::from_utf8_lossy(table.name(descriptor.name.get(LE)).expect("module name"))
                .into_owned();
        let mut thunks = table
            .thunks(descriptor.original_first_thunk.get(LE))
            .expect("thunks");
        while let Some(thunk) = thunks
            .next::<object::pe::ImageNtHeaders64>()
            .expect("thunk")
        {
            let name = match table
                .import::<object::pe::ImageNtHeaders64>(thunk)
                .expect("import")
            {
                object::read::pe::Import::Name(_, name) => {
                    String::from_utf8_lossy(name).into_owned()
                }
                object::read::pe::Import::Ordinal(n) => format!("#{n}"),
            };
            found.push((module.clone(), name));
        }
    }
    found
}

/// What a Wine module really implements: its exports minus the `@ stub`
/// entries, which Wine builds as `__wine_stub_<name>` functions that abort.
/// ntoskrnl.exe is the rig's build when the Wine tests run on the rig
/// (xtask's choice, `DPCLOCK_WINE_RIG`), which exports what the driver's
/// documented DDIs need and stock Wine lacks (`KeGetProcessorNumberFromIndex`).
fn wine_implemented(module: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let rig = match xtask::rig::selected().expect("the Wine rig") {
        xtask::rig::Rig::Modelled { ntoskrnl, .. } if module == "ntoskrnl.exe" => Some(ntoskrnl),
        _ => None,
    };
    let path = rig.unwrap_or_else(|| Path::new(WINE_DLLS).join(module.to_ascii_lowercase()));
    let bytes = fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (is wine64 installed?)", path.display()));
    let pe = PeFile64::parse(&*bytes).expect("Wine module is a PE");
    let exports: BTreeSet<String> = pe
        .export_table()
        .expect("export table")
        .expect("exports")
        .exports()
        .expect("export list")
        .into_iter()
        .filter_map(|e| e.name.map(|n| String::from_utf8_lossy(n).into_owned()))
        .collect();
    let stubs: BTreeSet<String> = pe
        .symbols()
        .filter_map(|s| {
            s.name()
                .ok()
                .and_then(|n| n.strip_prefix("__wine_stub_"))
                .map(str::to_owned)
        })
        .collect();
    (exports, stubs)
}

fn check(package: &xtask::cross::Package) {
    let bytes = fs::read(&package.sys).expect("dpclock.sys");
    let pe = PeFile64::parse(&*bytes).expect("dpclock.sys is a PE32+ image");
    let headers = pe.nt_headers();
    let optional = headers.optional_header();
    let name = package.dir.display();

    assert_eq!(
        headers.file_header().machine.get(LE),
        IMAGE_FILE_MACHINE_AMD64,
        "{name}: machine"
    );
    assert_eq!(
        optional.subsystem(),
        IMAGE_SUBSYSTEM_NATIVE,
        "{name}: subsystem"
    );
    let characteristics = optional.dll_characteristics();
    for (flag, what) in [
        (IMAGE_DLLCHARACTERISTICS_NX_COMPAT, "NX_COMPAT"),
        (IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, "DYNAMIC_BASE"),
        (IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY, "FORCE_INTEGRITY"),
    ] {
        assert!(
            characteristics & flag != 0,
            "{name}: {what} not set ({characteristics:#x})"
        );
    }

    let relocations = pe
        .data_directory(IMAGE_DIRECTORY_ENTRY_BASERELOC)
        .expect("a base relocation directory");
    assert!(
        relocations.size.get(LE) > 0,
        "{name}: no base relocations (the image could not be rebased)"
    );

    let exports = pe
        .export_table()
        .expect("export table")
        .expect("DriverEntry is exported");
    let entry = exports
        .exports()
        .expect("exports")
        .into_iter()
        .find(|e| e.name == Some(b"DriverEntry".as_slice()))
        .expect("an export named DriverEntry");
    let entry_rva = match entry.target {
        object::read::pe::ExportTarget::Address(rva) => rva,
        other => panic!("DriverEntry is not an address: {other:?}"),
    };
    assert_eq!(
        optional.address_of_entry_point(),
        entry_rva,
        "{name}: the entry point is not DriverEntry"
    );

    for section in pe.section_table().iter() {
        let flags = section.characteristics.get(LE);
        let section_name = String::from_utf8_lossy(section.raw_name());
        assert!(
            flags & IMAGE_SCN_MEM_WRITE == 0 || flags & IMAGE_SCN_MEM_EXECUTE == 0,
            "{name}: section {section_name} is both writable and executable"
        );
    }

    let imports = imports(&pe);
    let modules: BTreeSet<String> = imports
        .iter()
        .map(|(m, _)| m.to_ascii_lowercase())
        .collect();
    assert!(
        modules
            .iter()
            .all(|m| m == "ntoskrnl.exe" || m == "hal.dll"),
        "{name}: imports from other modules: {modules:?}"
    );
    for module in ["ntoskrnl.exe", "hal.dll"] {
        let (exported, stubs) = wine_implemented(module);
        if module == "ntoskrnl.exe" {
            // The two lists this check relies on are really there.
            assert!(
                exported.contains("KeAcquireSpinLockAtDpcLevel")
                    && stubs.contains("KiAcquireSpinLock")
            );
        }
        for (_, function) in imports
            .iter()
            .filter(|(m, _)| m.eq_ignore_ascii_case(module))
        {
            assert!(
                exported.contains(function),
                "{name}: imports {module}!{function}, which the Wine it runs in does not export"
            );
            assert!(
                !stubs.contains(function),
                "{name}: imports {module}!{function}, a Wine stub that aborts when called"
            );
        }
    }
}

#[test]
fn free_build_is_a_loadable_driver_image() {
    check(&packages()[0]);
}

#[test]
fn checked_build_is_a_loadable_driver_image() {
    check(&packages()[1]);
}

#[test]
fn the_checked_build_imports_the_validator_clock_from_hal() {
    // The validator's timestamps come from KeQueryPerformanceCounter, which
    // Wine exports only from HAL.dll: the link must bind it there.
    let bytes = fs::read(&packages()[1].sys).expect("dpclock.sys");
    let pe = PeFile64::parse(&*bytes).expect("PE");
    let imports = imports(&pe);
    assert!(
        imports
            .iter()
            .any(|(m, f)| m.eq_ignore_ascii_case("hal.dll") && f == "KeQueryPerformanceCounter"),
        "{imports:?}"
    );
}

/// `cargo xtask check-windows` checks the Windows flavor's images with
/// `check_image`. The Linux flavor's image, the one the Wine tests run, now
/// passes the same checks: it imports exactly listed exports (until the FDO
/// was created with `IoCreateDevice`, its `IoCreateDeviceSecure`, a
/// wdmsec.lib routine on Windows, set the two flavors apart). The checks can
/// fail: the same image checked as an ARM64 one is refused for its machine
/// type alone.
#[test]
fn check_windows_image_checks_hold_for_the_linux_flavor_and_can_fail() {
    for package in packages() {
        let imports =
            xtask::check_windows::check_image(&package.sys, xtask::check_windows::Arch::X86_64)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(imports["ntoskrnl.exe"].contains("IoCreateDevice"));
        let error =
            xtask::check_windows::check_image(&package.sys, xtask::check_windows::Arch::Aarch64)
                .expect_err("an x86_64 image is not an ARM64 one");
        assert!(error.0.contains("machine 0x8664"), "{error}");
        assert!(!error.0.contains("does not list"), "{error}");
        assert!(!error.0.contains("DriverEntry"), "{error}");
    }
}
