//! The function device object: AddDevice, Plug and Play, power, and the
//! device extension that holds everything the paths share.

use core::{
    cell::UnsafeCell,
    ptr,
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
};

use dpclock_ioctl::{GUID_DEVINTERFACE_DPCLOCK, TimerWork};
use kspin::kernel::{DispatchLevel, dpc::DeferredRoutine};
use wdk_sys::{
    _EVENT_TYPE::NotificationEvent,
    _KWAIT_REASON::Executive,
    _MODE::KernelMode,
    ALL_PROCESSOR_GROUPS, DEVICE_OBJECT, DO_BUFFERED_IO, DO_DEVICE_INITIALIZING, DO_POWER_PAGABLE,
    FILE_DEVICE_SECURE_OPEN, FILE_DEVICE_UNKNOWN, IO_NO_INCREMENT, IRP,
    IRP_MN_CANCEL_REMOVE_DEVICE, IRP_MN_CANCEL_STOP_DEVICE, IRP_MN_QUERY_REMOVE_DEVICE,
    IRP_MN_QUERY_STOP_DEVICE, IRP_MN_REMOVE_DEVICE, IRP_MN_START_DEVICE, IRP_MN_STOP_DEVICE,
    IRP_MN_SURPRISE_REMOVAL, KDPC, KEVENT, NTSTATUS, PDEVICE_OBJECT, PDRIVER_OBJECT, PVOID,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_NO_SUCH_DEVICE, STATUS_PENDING, STATUS_SUCCESS,
    UNICODE_STRING,
    ntddk::{
        IoAttachDeviceToDeviceStack, IoDeleteDevice, IoDetachDevice, IoRegisterDeviceInterface,
        IoSetDeviceInterfaceState, KeFlushQueuedDpcs, KeInitializeEvent,
        KeQueryActiveProcessorCountEx, KeSetEvent, KeWaitForSingleObject, PoCallDriver,
        RtlFreeUnicodeString,
    },
};

use crate::{
    burst::Burst,
    health::{self, IrpInFlight},
    ledger::{Ledgers, now_ns},
    timer::PeriodicTimer,
    wdm::{self, RemoveLock},
};

/// Everything the device's paths share. It lives in the device object's
/// extension (non-paged, at a fixed address) from AddDevice to
/// `IRP_MN_REMOVE_DEVICE`.
pub struct DeviceExtension {
    pub fdo: PDEVICE_OBJECT,
    /// The next-lower device (the root bus's PDO): where PnP and power IRPs go.
    pub lower: PDEVICE_OBJECT,
    /// Held by every IRP in the driver; REMOVE_DEVICE waits for it to drain.
    pub remove_lock: RemoveLock,
    /// The interface's symbolic link name, set by IoRegisterDeviceInterface
    /// in AddDevice and freed in REMOVE_DEVICE, when nothing else runs.
    interface: UnsafeCell<UNICODE_STRING>,
    /// The interface is enabled: set by the first START_DEVICE, cleared by
    /// the one place that disables it (SURPRISE_REMOVAL, or REMOVE_DEVICE
    /// without one), so that it is enabled and disabled once each.
    interface_enabled: AtomicBool,
    pub processors: u32,
    pub ledgers: Ledgers,
    pub timer: PeriodicTimer,
    /// `DPC_BURST`'s KDPCs, one per processor.
    pub burst: Burst,
    /// Burst DPC routines run since the last reset.
    pub burst_runs: AtomicU64,
    /// The longest DPC routine run (burst or timer) since the last reset, ns.
    pub max_dpc_ns: AtomicU64,
    /// The longest section an IOCTL raised to DISPATCH_LEVEL since the last
    /// reset, ns.
    pub max_raised_ns: AtomicU64,
    /// Set once removal begins (SURPRISE_REMOVAL or REMOVE_DEVICE): long
    /// requests stop at their next chunk, new ones are refused.
    removing: AtomicBool,
}

impl DeviceExtension {
    /// Whether removal has begun.
    pub fn is_removing(&self) -> bool {
        self.removing.load(Relaxed)
    }

    /// Starts the periodic timer, or changes its settings; refuses with
    /// `STATUS_DELETE_PENDING` once removal has closed it.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`: it waits for the timer's mutex and its DPC
    /// ([`PeriodicTimer::start`]).
    pub unsafe fn start_timer(&self, settings: TimerWork) -> Result<(), NTSTATUS> {
        // SAFETY: PASSIVE_LEVEL (caller).
        unsafe { self.timer.start(settings) }
    }

    /// Stops the periodic timer and waits for its DPC.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`, as for [`DeviceExtension::start_timer`].
    pub unsafe fn stop_timer(&self) {
        // SAFETY: PASSIVE_LEVEL (caller).
        unsafe { self.timer.stop() };
    }

    /// Removal has begun: stops the timer for good (`TIMER_START` fails
    /// from now on, even one already past the dispatch routine's check).
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL`, as for [`DeviceExtension::start_timer`].
    unsafe fn close_timer(&self) {
        // SAFETY: PASSIVE_LEVEL (caller).
        unsafe { self.timer.close() };
    }

    /// Disables the device interface if it is enabled (once per removal:
    /// the IoSetDeviceInterfaceState page says to disable it in
    /// SURPRISE_REMOVAL, or in REMOVE_DEVICE when none came, not in both).
    /// `PASSIVE_LEVEL`, from the PnP IRPs only.
    fn disable_interface(&self) {
        if self.interface_enabled.swap(false, Relaxed) {
            // SAFETY: registered in AddDevice and not yet freed (only
            // REMOVE_DEVICE frees it, after this).
            let _ = unsafe { IoSetDeviceInterfaceState(self.interface.get(), 0) };
        }
    }
}

// SAFETY: the extension is shared, on any processor at once, by every
// dispatch routine (IRP_MJ_CREATE, CLEANUP, CLOSE, DEVICE_CONTROL, PNP, POWER
// and SYSTEM_CONTROL, each of which may run concurrently with the others and
// with itself), by the burst DPCs and by the timer DPC. Its fields are
// immutable after AddDevice (`fdo`, `lower`, `processors`), atomic, guarded
// by kspin locks (the ledgers), kernel objects that synchronize themselves
// (the remove lock and the timer, in `UnsafeCell`s, with the timer's KMUTEX),
// or (the interface name) touched only in AddDevice, START_DEVICE,
// SURPRISE_REMOVAL and REMOVE_DEVICE, which the PnP manager serializes.
unsafe impl Sync for DeviceExtension {}

/// The extension as the burst DPCs' context: one type per DPC routine, so
/// that the timer's and the burst's `run` can differ.
#[repr(transparent)]
pub struct BurstRoutine(DeviceExtension);

impl DeferredRoutine for BurstRoutine {
    /// One burst DPC: this processor's share of the round in flight.
    fn run(&self, at: &DispatchLevel) {
        self.0.burst.run(&self.0.ledgers, at);
    }
}

impl DeferredRoutine for DeviceExtension {
    /// The periodic timer's DPC.
    fn run(&self, at: &DispatchLevel) {
        let start = now_ns();
        self.timer.tick(&self.ledgers, at);
        self.max_dpc_ns
            .fetch_max(now_ns().saturating_sub(start), Relaxed);
    }
}

/// Where the burst's KDPCs start in the device extension: just past the
/// `DeviceExtension` struct, aligned for a KDPC.
const fn burst_dpcs_offset() -> usize {
    size_of::<DeviceExtension>().next_multiple_of(align_of::<KDPC>())
}

/// The device extension's size: the struct, then one KDPC per processor.
const fn extension_size(processors: u32) -> usize {
    burst_dpcs_offset() + processors as usize * size_of::<KDPC>()
}

/// The extension of one of this driver's device objects.
///
/// # Safety
///
/// `device` is a device object this driver created in [`add_device`], not
/// yet deleted, and the reference is used only while it is not: the
/// lifetime is the caller's to bound. Every dispatch routine uses it only
/// before it completes or passes on its IRP (the device cannot be deleted
/// while the IRP holds the remove lock); [`remove_device`], the one place
/// that deletes the device, confines it to a block that ends first.
pub unsafe fn extension<'a>(device: PDEVICE_OBJECT) -> &'a DeviceExtension {
    // SAFETY: AddDevice initialized the extension (caller's contract).
    unsafe { &*(*device).DeviceExtension.cast::<DeviceExtension>() }
}

/// AddDevice: creates the unnamed FDO, attaches it
/// above the root-enumerated PDO and registers (but does not yet enable) the
/// device interface. `PASSIVE_LEVEL`.
pub unsafe extern "C" fn add_device(driver: PDRIVER_OBJECT, pdo: PDEVICE_OBJECT) -> NTSTATUS {
    // SAFETY: called by the PnP manager with this driver and a valid PDO.
    match unsafe { create_fdo(driver, pdo) } {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => {
            wdk::println!("dpclock: AddDevice failed: {status:#010x}");
            status
        }
    }
}

unsafe fn create_fdo(driver: PDRIVER_OBJECT, pdo: PDEVICE_OBJECT) -> Result<(), NTSTATUS> {
    // Unnamed: the interface is the only way in. FILE_DEVICE_SECURE_OPEN
    // makes the I/O manager apply the device's DACL to opens of names below
    // the device's too; the DACL itself, SYSTEM and Administrators only,
    // comes from the INF, which the PnP manager applies to the whole stack.
    // Read once: the burst has one KDPC per processor active now. A
    // processor hot-added later takes no part until the device is added
    // again; DPC_BURST's total (`iterations × processors`) counts these,
    // and its reply's `dpc_runs` says how many ran (docs/protocol.md).
    // SAFETY: callable at PASSIVE_LEVEL.
    let processors = unsafe { KeQueryActiveProcessorCountEx(ALL_PROCESSOR_GROUPS as u16) };
    // SAFETY: at PASSIVE_LEVEL with this driver's object.
    let fdo = unsafe {
        wdm::create_unnamed_device(
            driver,
            extension_size(processors),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
        )?
    };
    // SAFETY: the extension is fresh storage of the right size, not yet
    // shared; the kernel objects are initialized in place and never move.
    let ext = unsafe {
        let ext = (*fdo).DeviceExtension.cast::<DeviceExtension>();
        ext.write(DeviceExtension {
            fdo,
            lower: ptr::null_mut(),
            remove_lock: RemoveLock::uninitialized(),
            interface: UnsafeCell::new(UNICODE_STRING {
                Length: 0,
                MaximumLength: 0,
                Buffer: ptr::null_mut(),
            }),
            interface_enabled: AtomicBool::new(false),
            processors,
            ledgers: Ledgers::new(),
            timer: PeriodicTimer::uninitialized(),
            burst: Burst::uninitialized(),
            burst_runs: AtomicU64::new(0),
            max_dpc_ns: AtomicU64::new(0),
            max_raised_ns: AtomicU64::new(0),
            removing: AtomicBool::new(false),
        });
        RemoveLock::initialize(&raw mut (*ext).remove_lock);
        PeriodicTimer::initialize(&raw mut (*ext).timer, ext);
        ext
    };
    // The burst DPCs' context is the extension too, seen as a BurstRoutine
    // (the same bytes: `repr(transparent)`), whose `run` is the burst's.
    // SAFETY: fixed storage, not yet shared, with room for `processors`
    // KDPCs past the struct (extension_size); the extension outlives every
    // burst DPC (REMOVE_DEVICE drains the remove lock, then flushes DPCs).
    if let Err(status) = unsafe {
        Burst::initialize(
            &raw mut (*ext).burst,
            ext.cast::<u8>().add(burst_dpcs_offset()).cast::<KDPC>(),
            ext.cast_const().cast::<BurstRoutine>(),
            processors,
        )
    } {
        // SAFETY: our own device, never exposed.
        unsafe { IoDeleteDevice(fdo) };
        return Err(status);
    }
    // SAFETY: attaching our new device above the PDO the PnP manager gave us.
    let lower = unsafe { IoAttachDeviceToDeviceStack(fdo, pdo) };
    if lower.is_null() {
        // SAFETY: our own device, never exposed.
        unsafe { IoDeleteDevice(fdo) };
        return Err(STATUS_NO_SUCH_DEVICE);
    }
    // SAFETY: still the only user of the extension and the device.
    unsafe {
        (*ext).lower = lower;
        let status = IoRegisterDeviceInterface(
            pdo,
            &wdm::guid(&GUID_DEVINTERFACE_DPCLOCK),
            ptr::null_mut(),
            (*ext).interface.get(),
        );
        if status < 0 {
            IoDetachDevice(lower);
            IoDeleteDevice(fdo);
            return Err(status);
        }
        (*fdo).Flags |= DO_BUFFERED_IO | ((*lower).Flags & DO_POWER_PAGABLE);
        (*fdo).Flags &= !DO_DEVICE_INITIALIZING;
    }
    health::device(true);
    // SAFETY: initialized above.
    let processors = unsafe { (*ext).processors };
    wdk::println!("dpclock: AddDevice: device created ({processors} processors)");
    Ok(())
}

/// `IRP_MJ_PNP`. `PASSIVE_LEVEL`.
pub unsafe extern "C" fn dispatch_pnp(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let _counted = IrpInFlight::enter();
    // SAFETY: our IRP's current location.
    let minor = u32::from(unsafe { (*wdm::current_stack_location(irp)).MinorFunction });
    if minor == IRP_MN_REMOVE_DEVICE {
        // SAFETY: one of our devices, with the IRP that removes it.
        return unsafe { remove_device(device, irp) };
    }
    // SAFETY: one of our devices, not yet deleted (only REMOVE_DEVICE,
    // handled above, deletes it).
    let ext = unsafe { extension(device) };
    let hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        // SAFETY: the IRP is ours to complete.
        Err(status) => return unsafe { wdm::complete(irp, status, 0) },
    };
    match minor {
        IRP_MN_START_DEVICE => {
            // Start the lower device first; ours has nothing of its own to start.
            // SAFETY: our IRP, at PASSIVE_LEVEL.
            let mut status = unsafe { forward_and_wait(ext.lower, irp) };
            // A START after a STOP finds the interface enabled already: enabling
            // it again would only return the informational
            // STATUS_OBJECT_NAME_EXISTS, which is not a start's status.
            if status >= 0 && !ext.interface_enabled.load(Relaxed) {
                // SAFETY: registered in AddDevice; only REMOVE_DEVICE frees it.
                status = unsafe { IoSetDeviceInterfaceState(ext.interface.get(), 1) };
                ext.interface_enabled.store(status >= 0, Relaxed);
                wdk::println!("dpclock: started; interface enabled: {status:#010x}");
            }
            // SAFETY: the lower driver handed the IRP back to us.
            let status = unsafe { wdm::complete(irp, status, 0) };
            drop(hold);
            status
        }
        IRP_MN_SURPRISE_REMOVAL => {
            // New requests are refused from now on (STATUS_DELETE_PENDING),
            // long ones stop at their next chunk, and the timer stops; the
            // interface is disabled here, once (REMOVE_DEVICE follows and
            // leaves it alone).
            ext.removing.store(true, Relaxed);
            // SAFETY: PASSIVE_LEVEL: a PnP dispatch routine.
            unsafe { ext.close_timer() };
            ext.disable_interface();
            // SAFETY: our IRP, passed down with success.
            unsafe { pass_down_with_success(ext, irp) }
        }
        IRP_MN_QUERY_REMOVE_DEVICE
        | IRP_MN_CANCEL_REMOVE_DEVICE
        | IRP_MN_QUERY_STOP_DEVICE
        | IRP_MN_CANCEL_STOP_DEVICE
        | IRP_MN_STOP_DEVICE => {
            // Nothing of our own to stop or restore: agree, and let the lower
            // driver decide.
            //
            // A deliberate exception to the WDM stop rules: a driver that
            // succeeds QUERY_STOP is expected to hold new I/O that needs
            // the device's hardware resources, and to pause the device at
            // STOP, until START or CANCEL_STOP. The PnP manager stops a
            // device to rebalance those resources; dpclock's
            // root-enumerated software device has none (its INF asks for
            // none), so no request of it needs any, and there is nothing
            // to pause: it keeps serving requests and its timer runs on
            // through a stop (docs/protocol.md, "Handles"). Removal is
            // what stops it: SURPRISE_REMOVAL or REMOVE_DEVICE.
            // SAFETY: our IRP, passed down.
            unsafe { pass_down_with_success(ext, irp) }
        }
        // SAFETY: our IRP, passed down untouched.
        _ => unsafe { pass_down(ext, irp) },
    }
}

/// `IRP_MN_REMOVE_DEVICE`: waits until no IRP and no DPC is in the driver,
/// passes the IRP down, then detaches and deletes the device. The extension
/// is borrowed only inside the block that ends before `IoDeleteDevice`
/// frees it. `PASSIVE_LEVEL`.
///
/// # Safety
///
/// `device` is one of ours and `irp` the REMOVE_DEVICE IRP the PnP manager
/// sent it; nothing uses the device after this returns.
unsafe fn remove_device(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let (lower, fdo, status) = {
        // SAFETY: one of our devices, deleted only below, after this block.
        let ext = unsafe { extension(device) };
        // Long requests stop at their next chunk ...
        ext.removing.store(true, Relaxed);
        let hold = match ext.remove_lock.acquire(irp) {
            Ok(hold) => hold,
            // SAFETY: the IRP is ours to complete. (The remove lock refuses
            // only after a first REMOVE_DEVICE, which the PnP manager never
            // sends twice.)
            Err(status) => return unsafe { wdm::complete(irp, status, 0) },
        };
        // ... no IRP may be inside the driver past this point (so no burst
        // DPC is queued or running) ...
        hold.release_and_wait();
        // ... the timer is cancelled, for good ...
        // SAFETY: PASSIVE_LEVEL: REMOVE_DEVICE runs there.
        unsafe { ext.close_timer() };
        // ... and with every DPC source stopped, a DPC already queued or
        // running on another processor is waited for, whatever ran before.
        // SAFETY: PASSIVE_LEVEL.
        unsafe { KeFlushQueuedDpcs() };
        // Disabled here only when no SURPRISE_REMOVAL did it before.
        ext.disable_interface();
        // SAFETY: the interface was registered in AddDevice; nothing else
        // runs now. Then the IRP goes down.
        unsafe {
            RtlFreeUnicodeString(ext.interface.get());
            (*irp).IoStatus.__bindgen_anon_1.Status = STATUS_SUCCESS;
            wdm::skip_current_stack_location(irp);
            (ext.lower, ext.fdo, wdm::call_driver(ext.lower, irp))
        }
    };
    // SAFETY: our device, attached in AddDevice; nothing refers to its
    // extension any more.
    unsafe {
        IoDetachDevice(lower);
        IoDeleteDevice(fdo);
    }
    health::device(false);
    // Every counter is back at zero here, but for this IRP.
    let h = health::snapshot();
    wdk::println!(
        "dpclock: device removed: health: other_irps_in_flight={} remove_lock_references={} timers_armed={} devices={} allocations_live={}",
        h.irps_in_flight.wrapping_sub(1),
        h.remove_lock_references,
        h.timers_armed,
        h.devices,
        h.allocations_live
    );
    status
}

unsafe fn pass_down_with_success(ext: &DeviceExtension, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: our IRP (caller).
    unsafe {
        (*irp).IoStatus.__bindgen_anon_1.Status = STATUS_SUCCESS;
        pass_down(ext, irp)
    }
}

/// Passes the IRP to the lower driver as it is. The caller's remove-lock
/// hold is released once the IRP is no longer ours.
unsafe fn pass_down(ext: &DeviceExtension, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: our IRP (caller), given up to the lower driver.
    unsafe {
        wdm::skip_current_stack_location(irp);
        wdm::call_driver(ext.lower, irp)
    }
}

/// Sends the IRP down and waits until the lower driver completes it, keeping
/// it ours afterwards (`STATUS_MORE_PROCESSING_REQUIRED`). `PASSIVE_LEVEL`.
unsafe fn forward_and_wait(lower: PDEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: a KEVENT is plain data until KeInitializeEvent.
    let mut event: KEVENT = unsafe { core::mem::zeroed() };
    // SAFETY: the event outlives the wait below, which outlives the lower
    // driver's use of it; the IRP is ours (caller).
    unsafe {
        KeInitializeEvent(&raw mut event, NotificationEvent, 0);
        wdm::copy_to_next_with_completion(irp, Some(signal_event), (&raw mut event).cast());
        let mut status = wdm::call_driver(lower, irp);
        if status == STATUS_PENDING {
            let _ = KeWaitForSingleObject(
                (&raw mut event).cast(),
                Executive,
                KernelMode as i8,
                0,
                ptr::null_mut(),
            );
            status = (*irp).IoStatus.__bindgen_anon_1.Status;
        }
        status
    }
}

unsafe extern "C" fn signal_event(
    _device: PDEVICE_OBJECT,
    _irp: *mut IRP,
    event: PVOID,
) -> NTSTATUS {
    // SAFETY: `event` is forward_and_wait's KEVENT, alive while it waits.
    unsafe { KeSetEvent(event.cast(), IO_NO_INCREMENT as i32, 0) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// `IRP_MJ_POWER`: the device has no power state of its own; the lower
/// driver handles power. (`PoStartNextPowerIrp` is unnecessary since Vista.)
///
/// As the FDO, dpclock is its stack's power policy owner, and a policy
/// owner requests device power IRPs (`PoRequestPowerIrp`) when the system
/// power state changes. dpclock requests none, on purpose: its device is a
/// root-enumerated software device with no hardware and no context to save,
/// so D0 and D3 are the same to it; the root bus driver below completes
/// system power IRPs for it. Its timer and DPCs need nothing from a device
/// power state: a sleeping system runs no DPCs, and the timer resumes after.
pub unsafe extern "C" fn dispatch_power(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let _counted = IrpInFlight::enter();
    // SAFETY: one of our devices.
    let ext = unsafe { extension(device) };
    let _hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        // SAFETY: ours to complete.
        Err(status) => return unsafe { wdm::complete(irp, status, 0) },
    };
    // SAFETY: our IRP, given to the lower driver.
    unsafe {
        wdm::skip_current_stack_location(irp);
        PoCallDriver(ext.lower, irp)
    }
}

/// `IRP_MJ_SYSTEM_CONTROL`: not a WMI provider, so pass it down.
pub unsafe extern "C" fn dispatch_system_control(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let _counted = IrpInFlight::enter();
    // SAFETY: one of our devices.
    let ext = unsafe { extension(device) };
    let _hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        // SAFETY: ours to complete.
        Err(status) => return unsafe { wdm::complete(irp, status, 0) },
    };
    // SAFETY: our IRP, given to the lower driver.
    unsafe { pass_down(ext, irp) }
}
