//! # dpclock: spin locks taken safely, from DPC routines and IOCTL paths
//!
//! A root-enumerated WDM function driver (hardware ID `Root\DpcLock`) whose
//! whole story is one shared ledger and who takes its lock from where:
//!
//! | Path | IRQL | How it takes the ledger's lock |
//! |---|---|---|
//! | `LOCK_PASSIVE` IOCTL | `PASSIVE_LEVEL` | `with(\|ledger\| …)`: raise and acquire … release and restore, in one scope |
//! | `LOCK_DISPATCH` IOCTL | raised to `DISPATCH_LEVEL` | `lock_at_dpc_level(at)`, with the proof from `at_dispatch_level` |
//! | `DPC_BURST` IOCTL | `DISPATCH_LEVEL`, one KDPC per processor, queued together | `lock_at_dpc_level(at)`, proof from the DPC trampoline |
//! | periodic timer DPC | `DISPATCH_LEVEL` | `lock_at_dpc_level(at)`, proof from the DPC trampoline |
//!
//! The locks come from [kspin](../kspin/index.html): a lock acquired by the
//! IRQL-raising routine is released by `KeReleaseSpinLock` before `with`
//! returns (never by `KeReleaseSpinLockFromDpcLevel`, never out of order),
//! and the `AtDpcLevel` acquire cannot be called without a proof of
//! `DISPATCH_LEVEL`. Each ledger exists three times: behind an executive
//! spin lock, behind an in-stack queued spin lock (the same paths through
//! `with` and `with_at_dpc_level`), and unprotected (a test aid that must
//! lose updates). IRPs are completed, and messages printed, only after
//! every lock is released.
//!
//! Modules: `ledger` (the ledger and the acquisition loop), `burst` (the
//! per-processor KDPCs of `DPC_BURST`), `ioctl`
//! (validated requests), `device` (AddDevice, PnP, power), `timer` (the
//! periodic DPC), `wdm` (the wdm.h macros and inline routines, written
//! once for both build flavors).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

// The Windows flavor uses windows-drivers-rs exactly as its sample-wdm-driver
// does. The Linux flavor (see docs/linux-flavor.md) builds the same source
// against stand-ins generated from mingw-w64's DDK headers, imported under the
// same crate names, so that nothing below depends on which flavor it is.
#[cfg(any(not(windows), dpclock_mingw))]
extern crate mingw_wdk as wdk;
#[cfg(any(not(windows), dpclock_mingw))]
extern crate mingw_wdk as wdk_alloc;
#[cfg(all(not(test), any(not(windows), dpclock_mingw)))]
extern crate mingw_wdk_panic as wdk_panic;
#[cfg(any(not(windows), dpclock_mingw))]
extern crate mingw_wdk_sys as wdk_sys;
#[cfg(all(not(test), windows, not(dpclock_mingw)))]
extern crate wdk_panic;

mod burst;
mod device;
mod health;
mod ioctl;
mod ledger;
mod timer;
mod wdm;

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use kspin::IrqlModel;
use wdk::println;
#[cfg(not(test))]
use wdk_alloc::WdkAllocator;
use wdk_sys::{
    _DRIVER_REGKEY_TYPE::DriverRegKeyParameters,
    _KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation,
    DRIVER_OBJECT, HANDLE, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL,
    IRP_MJ_PNP, IRP_MJ_POWER, IRP_MJ_SYSTEM_CONTROL, KEY_READ, KEY_VALUE_PARTIAL_INFORMATION,
    NTSTATUS, PCUNICODE_STRING, REG_DWORD, STATUS_SUCCESS,
    ntddk::{IoOpenDriverRegistryKey, ZwClose, ZwQueryValueKey},
};

// The driver allocates nothing itself (every structure lives in the device
// extension); the allocator is here, as in the windows-drivers-rs samples, so
// that code using `alloc` gets non-paged pool. It is counted (GET_HEALTH), so
// that a soak would see a leak.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: health::CountingAllocator<WdkAllocator> =
    health::CountingAllocator(WdkAllocator);

/// Whether the unlocked control may run: `AllowUnlockedControl` (REG_DWORD,
/// non-zero) under the service key's `Parameters`, read once at load.
static UNLOCKED_CONTROL_ALLOWED: AtomicBool = AtomicBool::new(false);

/// See [`UNLOCKED_CONTROL_ALLOWED`].
pub fn unlocked_control_allowed() -> bool {
    UNLOCKED_CONTROL_ALLOWED.load(Relaxed)
}

/// `DriverEntry`: fills in the dispatch table and AddDevice. Devices come
/// later, one per root-enumerated `Root\DpcLock` devnode. `PASSIVE_LEVEL`.
///
/// # Safety
///
/// Called by the I/O manager, once, with this driver's object and its
/// service key.
// SAFETY: "DriverEntry" is the entry point the WDM linker flags name; no other
// symbol in the driver has that name. (Gated as in the windows-drivers-rs
// samples, so that test builds do not export it.)
#[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
pub unsafe extern "system" fn driver_entry(
    driver: &mut DRIVER_OBJECT,
    _registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    // IRQL is real on Windows, and on the Linux rig's ntoskrnl.exe (per
    // thread). On stock Wine a raise reads back as PASSIVE_LEVEL: then IRQL
    // assertions are switched off and the checked build reports them as
    // unavailable, instead of failing.
    let irql = kspin::kernel::detect_irql_model();
    // SAFETY: this driver's object, at PASSIVE_LEVEL.
    let allowed = unsafe { read_allow_unlocked_control(driver) };
    UNLOCKED_CONTROL_ALLOWED.store(allowed, Relaxed);

    driver.MajorFunction[IRP_MJ_CREATE as usize] = Some(ioctl::dispatch_create_close);
    driver.MajorFunction[IRP_MJ_CLOSE as usize] = Some(ioctl::dispatch_create_close);
    driver.MajorFunction[IRP_MJ_CLEANUP as usize] = Some(ioctl::dispatch_create_close);
    driver.MajorFunction[IRP_MJ_DEVICE_CONTROL as usize] = Some(ioctl::dispatch_device_control);
    driver.MajorFunction[IRP_MJ_PNP as usize] = Some(device::dispatch_pnp);
    driver.MajorFunction[IRP_MJ_POWER as usize] = Some(device::dispatch_power);
    driver.MajorFunction[IRP_MJ_SYSTEM_CONTROL as usize] = Some(device::dispatch_system_control);
    driver.DriverUnload = Some(driver_unload);
    // SAFETY: the I/O manager gives every driver object a driver extension.
    unsafe { (*driver.DriverExtension).AddDevice = Some(device::add_device) };

    println!(
        "dpclock: DriverEntry: IRQL {}, unlocked control {}, {} build",
        if irql == IrqlModel::Modelled {
            "modelled"
        } else {
            "not modelled (checks off)"
        },
        if allowed { "enabled" } else { "disabled" },
        if cfg!(feature = "checked") {
            "checked"
        } else {
            "free"
        },
    );
    STATUS_SUCCESS
}

/// `DriverUnload`: every device is gone by now (REMOVE_DEVICE deleted it),
/// so there is nothing left to free. Prints the driver's counters, which
/// must all be back at zero. `PASSIVE_LEVEL`.
unsafe extern "C" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let h = health::snapshot();
    println!(
        "dpclock: DriverUnload: health: irps_in_flight={} remove_lock_references={} timers_armed={} devices={} allocations_live={} allocated_bytes_live={} allocations_total={} irps_total={}",
        h.irps_in_flight,
        h.remove_lock_references,
        h.timers_armed,
        h.devices,
        h.allocations_live,
        h.allocated_bytes_live,
        h.allocations_total,
        h.irps_total
    );
}

/// Reads `AllowUnlockedControl` from the driver's `Parameters` key. Missing
/// key or value, or any other type than a non-zero DWORD: not allowed.
///
/// The key is opened with `IoOpenDriverRegistryKey(DriverRegKeyParameters)`,
/// as driver package isolation asks, not by the service key's path: the
/// INF's service-install section provisions the value there (`AddReg`,
/// `HKR,Parameters,AllowUnlockedControl`), and `dpclockctl install
/// --allow-unlocked` sets it first (the INF's `AddReg` does not overwrite
/// a value already there). The routine exists from Windows 10 version 1803
/// (build 17134) on, so dpclock.inx's floor is 19041 (version 2004, as
/// wdk-alloc's `ExAllocatePool2` needs too, should the driver ever
/// allocate).
///
/// # Safety
///
/// `driver` is this driver's object, from DriverEntry; `PASSIVE_LEVEL`.
unsafe fn read_allow_unlocked_control(driver: &mut DRIVER_OBJECT) -> bool {
    let mut parameters: HANDLE = core::ptr::null_mut();
    // SAFETY: this driver's object and a plain out-parameter, at
    // PASSIVE_LEVEL; no flags (none are defined).
    let status = unsafe {
        IoOpenDriverRegistryKey(
            driver,
            DriverRegKeyParameters,
            KEY_READ,
            0,
            &raw mut parameters,
        )
    };
    if status < 0 {
        return false;
    }
    let close = |key: HANDLE| {
        // SAFETY: a handle this function opened.
        let _ = unsafe { ZwClose(key) };
    };

    #[repr(C)]
    struct DwordValue {
        info: KEY_VALUE_PARTIAL_INFORMATION,
        rest: [u8; 4],
    }
    /// Where the value's data begins in the buffer: `Data` is a one-byte
    /// array at the end of the header, and the DWORD runs on past it.
    const DATA: usize = core::mem::offset_of!(DwordValue, info.Data);
    const _: () = assert!(DATA + 4 <= size_of::<DwordValue>());
    // SAFETY: plain data, filled in by ZwQueryValueKey.
    let mut value: DwordValue = unsafe { core::mem::zeroed() };
    let mut length = 0;
    let mut value_name = wdm::unicode_string(wdm::wide!("AllowUnlockedControl"));
    // SAFETY: a buffer of `size_of::<DwordValue>()` bytes and valid names.
    let status = unsafe {
        ZwQueryValueKey(
            parameters,
            &raw mut value_name,
            KeyValuePartialInformation,
            (&raw mut value).cast(),
            size_of::<DwordValue>() as u32,
            &raw mut length,
        )
    };
    close(parameters);
    if status < 0 || value.info.Type != REG_DWORD || value.info.DataLength != 4 {
        return false;
    }
    // SAFETY: with DataLength 4, the value's data is the 4 bytes from
    // `DATA` (12) on: `Data[0]` and the bytes after it, which the assertion
    // above keeps inside the buffer that ZwQueryValueKey wrote. The pointer
    // is derived from the whole buffer, not from the one-byte `Data`
    // field, so it may read all 4; unaligned, as `Data` promises nothing.
    let data = unsafe {
        (&raw const value)
            .cast::<u8>()
            .add(DATA)
            .cast::<u32>()
            .read_unaligned()
    };
    data != 0
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use kspin::kernel::ffi;

    /// kspin declares the few kernel types it needs itself (it cannot depend
    /// on wdk-sys); they must match the bindings the driver is built with.
    #[test]
    fn kspin_kernel_types_match_the_bindings() {
        assert_eq!(
            size_of::<ffi::KSPIN_LOCK>(),
            size_of::<wdk_sys::KSPIN_LOCK>()
        );
        assert_eq!(size_of::<ffi::KIRQL>(), size_of::<wdk_sys::KIRQL>());
        assert_eq!(
            size_of::<ffi::KLOCK_QUEUE_HANDLE>(),
            size_of::<wdk_sys::KLOCK_QUEUE_HANDLE>()
        );
        assert_eq!(
            align_of::<ffi::KLOCK_QUEUE_HANDLE>(),
            align_of::<wdk_sys::KLOCK_QUEUE_HANDLE>()
        );
        assert_eq!(
            offset_of!(ffi::KLOCK_QUEUE_HANDLE, OldIrql),
            offset_of!(wdk_sys::KLOCK_QUEUE_HANDLE, OldIrql)
        );
        assert_eq!(
            offset_of!(ffi::KSPIN_LOCK_QUEUE, Lock),
            offset_of!(wdk_sys::KSPIN_LOCK_QUEUE, Lock)
        );
    }

    /// The protocol crate's GUIDs have the layout of the kernel's GUID.
    #[test]
    fn protocol_guids_convert_to_the_kernel_layout() {
        let guid = crate::wdm::guid(&dpclock_ioctl::GUID_DEVINTERFACE_DPCLOCK);
        assert_eq!(size_of::<wdk_sys::GUID>(), size_of::<dpclock_ioctl::Guid>());
        assert_eq!(
            (guid.Data1, guid.Data2, guid.Data3),
            (0x488e_151d, 0x6911, 0x4db2)
        );
        assert_eq!(guid.Data4, [0x80, 0xeb, 0xb1, 0xd6, 0xeb, 0x10, 0x2e, 0x4c]);
    }

    #[test]
    fn wide_strings_and_unicode_strings() {
        let text = crate::wdm::wide!("Parameters");
        assert_eq!(String::from_utf16(text).unwrap(), "Parameters");
        let string = crate::wdm::unicode_string(text);
        assert_eq!((string.Length, string.MaximumLength), (20, 20));
    }

    #[test]
    fn the_ledger_update_rule_is_the_one_the_protocol_documents() {
        crate::ledger::check_update_rule_against_protocol();
    }
}
