//! dpclock: a WDM driver about spin locks.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(any(not(windows), dpclock_mingw))]
extern crate mingw_wdk as wdk;
#[cfg(any(not(windows), dpclock_mingw))]
extern crate mingw_wdk as wdk_alloc;
#[cfg(all(not(test), any(not(windows), dpclock_mingw)))]
extern crate mingw_wdk_panic as wdk_panic;
#[cfg(any(not(windows), dpclock_mingw))]
extern crate mingw_wdk_sys as wdk_sys;
#[cfg(all(not(test), not(dpclock_mingw), windows))]
extern crate wdk_panic;

use wdk::println;
use wdk_sys::{DRIVER_OBJECT, NTSTATUS, PCUNICODE_STRING, STATUS_SUCCESS};

/// DriverEntry.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
pub unsafe extern "system" fn driver_entry(
    driver: &mut DRIVER_OBJECT,
    _registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    driver.DriverUnload = Some(driver_unload);
    println!("dpclock: DriverEntry");
    STATUS_SUCCESS
}

unsafe extern "C" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    println!("dpclock: DriverUnload");
}
