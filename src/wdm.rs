//! The WDM routines that wdm.h provides as macros or inline functions, and so
//! that neither wdk-sys nor the Linux flavor's bindings contain, written once
//! here for both. Each one says which header definition it mirrors.

use core::{cell::UnsafeCell, ffi::c_void, marker::PhantomData, ptr};

use kspin::{Irql, IrqlModel, Platform, kernel::Kernel};

use wdk_sys::{
    CCHAR, DEVICE_OBJECT, GUID, IO_NO_INCREMENT, IO_REMOVE_LOCK, IO_STACK_LOCATION, IRP, NTSTATUS,
    PDEVICE_OBJECT, PDRIVER_OBJECT, PIO_COMPLETION_ROUTINE, SL_INVOKE_ON_CANCEL,
    SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, ULONG, UNICODE_STRING,
    ntddk::{
        IoAcquireRemoveLockEx, IoCreateDevice, IoInitializeRemoveLockEx,
        IoReleaseRemoveLockAndWaitEx, IoReleaseRemoveLockEx, IofCallDriver, IofCompleteRequest,
    },
};

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
///
/// `irp` is a valid IRP owned by the caller's device.
pub unsafe fn current_stack_location(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: reading the IRP's current-location union member, which the
    // I/O manager keeps pointing at this driver's stack location.
    unsafe {
        (*irp)
            .Tail
            .Overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation
    }
}

/// `IoSkipCurrentIrpStackLocation`: the next driver gets this one's location.
///
/// # Safety
///
/// `irp` is a valid IRP about to be passed down with [`call_driver`].
pub unsafe fn skip_current_stack_location(irp: *mut IRP) {
    // SAFETY: the IRP is valid (caller); this is the header's arithmetic.
    unsafe {
        (*irp).CurrentLocation += 1;
        let location = &mut (*irp)
            .Tail
            .Overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation;
        *location = location.add(1);
    }
}

/// `IoCopyCurrentIrpStackLocationToNext` followed by `IoSetCompletionRoutine`
/// (invoke on success, error and cancel).
///
/// # Safety
///
/// `irp` is valid and has a next stack location; `context` outlives the
/// completion routine's call.
pub unsafe fn copy_to_next_with_completion(
    irp: *mut IRP,
    routine: PIO_COMPLETION_ROUTINE,
    context: *mut c_void,
) {
    // SAFETY: the IRP is valid and has a next location (caller).
    unsafe {
        let current = current_stack_location(irp);
        let next = current.sub(1);
        // Copy everything up to (not including) CompletionRoutine, as the
        // header's RtlCopyMemory over FIELD_OFFSET(…, CompletionRoutine) does.
        ptr::copy_nonoverlapping(
            current.cast::<u8>(),
            next.cast::<u8>(),
            core::mem::offset_of!(IO_STACK_LOCATION, CompletionRoutine),
        );
        (*next).Control = 0;
        (*next).CompletionRoutine = routine;
        (*next).Context = context;
        (*next).Control = (SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL) as u8;
    }
}

/// `IoCallDriver`.
///
/// # Safety
///
/// `device` is the next-lower device and `irp` is set up for it.
pub unsafe fn call_driver(device: PDEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: forwarded contract.
    unsafe { IofCallDriver(device, irp) }
}

/// Sets the IRP's final status and information, then `IoCompleteRequest(Irp,
/// IO_NO_INCREMENT)`. Returns `status`, for the dispatch routine to return.
///
/// # Safety
///
/// `irp` is valid, owned by the caller, and not pending.
pub unsafe fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) -> NTSTATUS {
    // SAFETY: the caller owns the IRP until it is completed here.
    unsafe {
        (*irp).IoStatus.__bindgen_anon_1.Status = status;
        (*irp).IoStatus.Information = information as _;
        IofCompleteRequest(irp, IO_NO_INCREMENT as CCHAR);
    }
    status
}

/// The driver's pool tag, `DpcL`, also used as the remove lock's tag.
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"DpcL");

/// An `IO_REMOVE_LOCK`: every IRP holds it while the driver works on it, and
/// `IRP_MN_REMOVE_DEVICE` waits until none does. The kernel writes the lock
/// on every acquire and release, through the pointer [`RemoveLock::raw`]
/// hands it, while the driver holds only shared references to it: hence the
/// `UnsafeCell`, which makes those writes legal (and keeps the compiler from
/// assuming the bytes never change).
#[repr(transparent)]
pub struct RemoveLock(UnsafeCell<IO_REMOVE_LOCK>);

impl RemoveLock {
    /// Storage for [`RemoveLock::initialize`].
    pub const fn uninitialized() -> Self {
        // SAFETY: IO_REMOVE_LOCK is plain data, valid when zeroed until
        // IoInitializeRemoveLock fills it in.
        Self(UnsafeCell::new(unsafe { core::mem::zeroed() }))
    }

    /// `IoInitializeRemoveLock(Lock, Tag, 0, 0)`.
    ///
    /// # Safety
    ///
    /// `lock` points to storage that stays put for the lock's life.
    pub unsafe fn initialize(lock: *mut Self) {
        // SAFETY: valid storage (caller); the header macro passes sizeof.
        unsafe {
            IoInitializeRemoveLockEx(
                UnsafeCell::raw_get(&raw const (*lock).0),
                POOL_TAG,
                0,
                0,
                core::mem::size_of::<IO_REMOVE_LOCK>() as ULONG,
            );
        }
    }

    fn raw(&self) -> *mut IO_REMOVE_LOCK {
        self.0.get()
    }

    /// `IoAcquireRemoveLock(Lock, irp)`: fails with `STATUS_DELETE_PENDING`
    /// once removal has started.
    pub fn acquire(&self, irp: *mut IRP) -> Result<RemoveLockGuard<'_>, NTSTATUS> {
        // SAFETY: an initialized remove lock; the tag is only compared.
        let status = unsafe {
            IoAcquireRemoveLockEx(
                self.raw(),
                irp.cast(),
                c"dpclock".as_ptr(),
                1,
                core::mem::size_of::<IO_REMOVE_LOCK>() as ULONG,
            )
        };
        if status < 0 {
            Err(status)
        } else {
            crate::health::remove_lock_acquired();
            Ok(RemoveLockGuard {
                lock: self,
                tag: irp.cast(),
                _not_send: PhantomData,
            })
        }
    }
}

/// A held remove lock; dropping it is `IoReleaseRemoveLock`.
#[must_use = "the remove lock is released as soon as this is dropped"]
pub struct RemoveLockGuard<'a> {
    lock: &'a RemoveLock,
    tag: *mut c_void,
    _not_send: PhantomData<*mut ()>,
}

impl RemoveLockGuard<'_> {
    /// `IoReleaseRemoveLockAndWait`: releases this hold, then waits until
    /// every other IRP has released its own (`IRP_MN_REMOVE_DEVICE` only).
    pub fn release_and_wait(self) {
        let this = core::mem::ManuallyDrop::new(self);
        crate::health::remove_lock_released();
        // SAFETY: this acquisition's tag; called once, at PASSIVE_LEVEL
        // (REMOVE_DEVICE runs there).
        unsafe {
            IoReleaseRemoveLockAndWaitEx(
                this.lock.raw(),
                this.tag,
                core::mem::size_of::<IO_REMOVE_LOCK>() as ULONG,
            );
        }
    }
}

impl Drop for RemoveLockGuard<'_> {
    fn drop(&mut self) {
        crate::health::remove_lock_released();
        // SAFETY: releases the acquisition made with this tag.
        unsafe {
            IoReleaseRemoveLockEx(
                self.lock.raw(),
                self.tag,
                core::mem::size_of::<IO_REMOVE_LOCK>() as ULONG,
            );
        }
    }
}

/// ASCII to UTF-16 at compile time, for `UNICODE_STRING` constants.
pub const fn ascii_to_utf16<const N: usize>(ascii: &str) -> [u16; N] {
    let bytes = ascii.as_bytes();
    let mut out = [0_u16; N];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// A `&'static [u16]` from an ASCII literal (no terminating NUL).
macro_rules! wide {
    ($ascii:literal) => {{
        const WIDE: [u16; $ascii.len()] = $crate::wdm::ascii_to_utf16($ascii);
        &WIDE
    }};
}
pub(crate) use wide;

/// A `UNICODE_STRING` over static UTF-16 text. The kernel only reads it.
pub fn unicode_string(text: &'static [u16]) -> UNICODE_STRING {
    let bytes = (text.len() * 2) as u16;
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: text.as_ptr().cast_mut(),
    }
}

/// `GUID` from the protocol crate's plain representation.
pub fn guid(g: &dpclock_ioctl::Guid) -> GUID {
    GUID {
        Data1: g.data1,
        Data2: g.data2,
        Data3: g.data3,
        Data4: g.data4,
    }
}

/// `IoCreateDevice` for an unnamed device object: "WDM filter and function
/// drivers do not name their device objects" (Microsoft's IoCreateDevice
/// page). Clients reach the device only through its interface, which the
/// PnP manager links to the PDO; the INF's security section sets the DACL of
/// the whole stack.
///
/// # Safety
///
/// `driver` is this driver's object; call at `PASSIVE_LEVEL`.
pub unsafe fn create_unnamed_device(
    driver: PDRIVER_OBJECT,
    extension_size: usize,
    device_type: u32,
    characteristics: u32,
) -> Result<*mut DEVICE_OBJECT, NTSTATUS> {
    let mut device = ptr::null_mut();
    // SAFETY: valid arguments (caller): no name, not exclusive.
    let status = unsafe {
        IoCreateDevice(
            driver,
            extension_size as ULONG,
            ptr::null_mut(),
            device_type,
            characteristics,
            0,
            &raw mut device,
        )
    };
    if status < 0 { Err(status) } else { Ok(device) }
}

/// A `KMUTEX`, for PASSIVE_LEVEL work that may wait (unlike a spin lock's).
#[repr(transparent)]
pub struct KernelMutex(core::cell::UnsafeCell<wdk_sys::KMUTEX>);

impl KernelMutex {
    /// Storage for `KeInitializeMutex`; the kernel fills it in.
    pub const fn uninitialized() -> Self {
        // SAFETY: KMUTEX is plain data, valid when zeroed until initialized.
        Self(core::cell::UnsafeCell::new(unsafe { core::mem::zeroed() }))
    }

    /// `KeInitializeMutex(Mutex, 0)`.
    ///
    /// # Safety
    ///
    /// `this` points to storage that stays put for the mutex's life.
    pub unsafe fn initialize(this: *mut Self) {
        // SAFETY: valid storage (caller).
        unsafe { wdk_sys::ntddk::KeInitializeMutex((*this).0.get(), 0) }
    }

    /// Waits for the mutex.
    ///
    /// # Safety
    ///
    /// `PASSIVE_LEVEL` (at most `APC_LEVEL`, the KeWaitForSingleObject page
    /// says, for a wait with no timeout). Above it, inside a spin lock's
    /// scope, `at_dispatch_level` or a DPC routine, the wait is a bugcheck
    /// (0xA, or Verifier's 0xC4), and one that waits for a mutex the
    /// interrupted thread owns never ends.
    pub unsafe fn lock(&self) -> KernelMutexGuard<'_> {
        debug_assert_irql_at_most(Irql::APC);
        // SAFETY: an initialized mutex; a non-alertable kernel-mode wait with
        // no timeout, at most at APC_LEVEL (caller), returns STATUS_SUCCESS
        // once the mutex is owned.
        let _ = unsafe {
            wdk_sys::ntddk::KeWaitForSingleObject(
                self.0.get().cast(),
                wdk_sys::_KWAIT_REASON::Executive,
                wdk_sys::_MODE::KernelMode as i8,
                0,
                ptr::null_mut(),
            )
        };
        KernelMutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }
}

/// An owned [`KernelMutex`]; dropping it is `KeReleaseMutex`.
#[must_use = "the mutex is released as soon as this is dropped"]
pub struct KernelMutexGuard<'a> {
    mutex: &'a KernelMutex,
    _not_send: PhantomData<*mut ()>,
}

impl Drop for KernelMutexGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: owned by this thread (the guard is !Send).
        unsafe { wdk_sys::ntddk::KeReleaseMutex(self.mutex.0.get(), 0) };
    }
}

/// Debug builds, where the IRQL is modelled: asserts that the caller runs at
/// `PASSIVE_LEVEL`, as the `unsafe fn`s that wait or flush DPCs require.
/// kspin's kernel backend reads the IRQL (`cr8` on x64, `KeGetCurrentIrql`
/// elsewhere); release builds read nothing.
#[inline]
pub fn debug_assert_passive_level() {
    debug_assert_irql_at_most(Irql::PASSIVE);
}

/// Debug builds, where the IRQL is modelled: asserts that the IRQL is at
/// most `most`.
#[inline]
pub fn debug_assert_irql_at_most(most: Irql) {
    if cfg!(debug_assertions) && Kernel::irql_model() == IrqlModel::Modelled {
        let irql = Kernel::current_irql();
        debug_assert!(
            irql <= most,
            "IRQL {} where at most {} is allowed",
            irql.0,
            most.0
        );
    }
}
