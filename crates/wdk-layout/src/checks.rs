//! The assertions: ours (`wdk_sys`, `kspin::kernel::ffi`, `dpclock_ioctl`)
//! against the WDK metadata (`windows_sys`), item by item, in the order of
//! docs/windows-fidelity.md's "Items the driver uses". The exceptions are in
//! [`crate::exceptions`].

use core::mem::{align_of, offset_of, size_of};

use kspin::kernel::ffi as kspin_ffi;
use windows_sys::{
    Wdk::{
        Foundation as wdk_foundation,
        Storage::FileSystem as wdk_fs,
        System::{Registry as wdk_registry, SystemServices as wdk_ss},
    },
    Win32::{
        Foundation as win32,
        System::{
            IO as win32_io, Ioctl as win32_ioctl, Kernel as win32_kernel,
            Registry as win32_registry, Threading as win32_threading,
        },
    },
    core::GUID,
};

/// Same size and alignment.
macro_rules! same_layout {
    ($ours:ty, $meta:ty) => {
        same_size!($ours, $meta);
        const _: () = assert!(
            align_of::<$ours>() == align_of::<$meta>(),
            concat!(
                "alignment of ",
                stringify!($ours),
                " != ",
                stringify!($meta)
            )
        );
    };
}

/// Same size (for the types whose alignment is an exception).
macro_rules! same_size {
    ($ours:ty, $meta:ty) => {
        const _: () = assert!(
            size_of::<$ours>() == size_of::<$meta>(),
            concat!("size of ", stringify!($ours), " != ", stringify!($meta))
        );
    };
}

/// Same offset of a field (path) in each.
macro_rules! same_offset {
    ($ours:ty { $($of:tt)+ }, $meta:ty { $($mf:tt)+ }) => {
        const _: () = assert!(
            offset_of!($ours, $($of)+) == offset_of!($meta, $($mf)+),
            concat!(
                "offset of ", stringify!($ours), ".", stringify!($($of)+), " != ",
                stringify!($meta), ".", stringify!($($mf)+)
            )
        );
    };
}

/// Same value (compared as i128: the bindings type `#define`s as `u32`,
/// windows-sys as their C types).
macro_rules! same_value {
    ($ours:expr, $meta:expr) => {
        const _: () = assert!(
            $ours as i128 == $meta as i128,
            concat!(stringify!($ours), " != ", stringify!($meta))
        );
    };
}

// --- Types ------------------------------------------------------------------

same_layout!(wdk_sys::DRIVER_OBJECT, wdk_foundation::DRIVER_OBJECT);
same_offset!(
    wdk_sys::DRIVER_OBJECT { DriverExtension },
    wdk_foundation::DRIVER_OBJECT { DriverExtension }
);
same_offset!(
    wdk_sys::DRIVER_OBJECT { DriverUnload },
    wdk_foundation::DRIVER_OBJECT { DriverUnload }
);
same_offset!(
    wdk_sys::DRIVER_OBJECT { MajorFunction },
    wdk_foundation::DRIVER_OBJECT { MajorFunction }
);
same_value!(
    wdk_sys::IRP_MJ_MAXIMUM_FUNCTION,
    wdk_ss::IRP_MJ_MAXIMUM_FUNCTION
);

same_layout!(wdk_sys::DRIVER_EXTENSION, wdk_foundation::DRIVER_EXTENSION);
same_offset!(
    wdk_sys::DRIVER_EXTENSION { AddDevice },
    wdk_foundation::DRIVER_EXTENSION { AddDevice }
);

// DEVICE_OBJECT: size and alignment are exceptions; IRP: alignment (see
// `exceptions`).
same_offset!(
    wdk_sys::DEVICE_OBJECT { Flags },
    wdk_foundation::DEVICE_OBJECT { Flags }
);
same_offset!(
    wdk_sys::DEVICE_OBJECT { Characteristics },
    wdk_foundation::DEVICE_OBJECT { Characteristics }
);
same_offset!(
    wdk_sys::DEVICE_OBJECT { DeviceExtension },
    wdk_foundation::DEVICE_OBJECT { DeviceExtension }
);
same_offset!(
    wdk_sys::DEVICE_OBJECT { StackSize },
    wdk_foundation::DEVICE_OBJECT { StackSize }
);

same_size!(wdk_sys::IRP, wdk_foundation::IRP);
same_offset!(wdk_sys::IRP { AssociatedIrp.SystemBuffer }, wdk_foundation::IRP { AssociatedIrp.SystemBuffer });
same_offset!(wdk_sys::IRP { IoStatus }, wdk_foundation::IRP { IoStatus });
same_offset!(
    wdk_sys::IRP { CurrentLocation },
    wdk_foundation::IRP { CurrentLocation }
);
same_offset!(
    wdk_sys::IRP { Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation },
    wdk_foundation::IRP { Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation }
);

same_layout!(wdk_sys::IO_STATUS_BLOCK, win32_io::IO_STATUS_BLOCK);
same_offset!(wdk_sys::IO_STATUS_BLOCK { __bindgen_anon_1.Status }, win32_io::IO_STATUS_BLOCK { Anonymous.Status });
same_offset!(
    wdk_sys::IO_STATUS_BLOCK { Information },
    win32_io::IO_STATUS_BLOCK { Information }
);

// IO_STACK_LOCATION: Parameters.DeviceIoControl is an exception.
same_layout!(
    wdk_sys::IO_STACK_LOCATION,
    wdk_foundation::IO_STACK_LOCATION
);
same_offset!(
    wdk_sys::IO_STACK_LOCATION { MajorFunction },
    wdk_foundation::IO_STACK_LOCATION { MajorFunction }
);
same_offset!(
    wdk_sys::IO_STACK_LOCATION { MinorFunction },
    wdk_foundation::IO_STACK_LOCATION { MinorFunction }
);
same_offset!(
    wdk_sys::IO_STACK_LOCATION { Control },
    wdk_foundation::IO_STACK_LOCATION { Control }
);
same_offset!(
    wdk_sys::IO_STACK_LOCATION { Parameters },
    wdk_foundation::IO_STACK_LOCATION { Parameters }
);
same_offset!(
    wdk_sys::IO_STACK_LOCATION { CompletionRoutine },
    wdk_foundation::IO_STACK_LOCATION { CompletionRoutine }
);
same_offset!(
    wdk_sys::IO_STACK_LOCATION { Context },
    wdk_foundation::IO_STACK_LOCATION { Context }
);

same_layout!(wdk_sys::IO_REMOVE_LOCK, wdk_ss::IO_REMOVE_LOCK);
same_layout!(wdk_sys::KEVENT, wdk_foundation::KEVENT);
same_layout!(wdk_sys::KTIMER, wdk_ss::KTIMER);
same_layout!(wdk_sys::KDPC, wdk_foundation::KDPC);
same_layout!(wdk_sys::KMUTEX, wdk_foundation::KMUTANT);
same_layout!(wdk_sys::LARGE_INTEGER, i64);

same_layout!(wdk_sys::UNICODE_STRING, win32::UNICODE_STRING);
same_offset!(
    wdk_sys::UNICODE_STRING { Length },
    win32::UNICODE_STRING { Length }
);
same_offset!(
    wdk_sys::UNICODE_STRING { MaximumLength },
    win32::UNICODE_STRING { MaximumLength }
);
same_offset!(
    wdk_sys::UNICODE_STRING { Buffer },
    win32::UNICODE_STRING { Buffer }
);

same_layout!(
    wdk_sys::OBJECT_ATTRIBUTES,
    wdk_foundation::OBJECT_ATTRIBUTES
);
same_offset!(
    wdk_sys::OBJECT_ATTRIBUTES { Length },
    wdk_foundation::OBJECT_ATTRIBUTES { Length }
);
same_offset!(
    wdk_sys::OBJECT_ATTRIBUTES { RootDirectory },
    wdk_foundation::OBJECT_ATTRIBUTES { RootDirectory }
);
same_offset!(
    wdk_sys::OBJECT_ATTRIBUTES { ObjectName },
    wdk_foundation::OBJECT_ATTRIBUTES { ObjectName }
);
same_offset!(
    wdk_sys::OBJECT_ATTRIBUTES { Attributes },
    wdk_foundation::OBJECT_ATTRIBUTES { Attributes }
);
same_offset!(
    wdk_sys::OBJECT_ATTRIBUTES { SecurityDescriptor },
    wdk_foundation::OBJECT_ATTRIBUTES { SecurityDescriptor }
);
same_offset!(
    wdk_sys::OBJECT_ATTRIBUTES {
        SecurityQualityOfService
    },
    wdk_foundation::OBJECT_ATTRIBUTES {
        SecurityQualityOfService
    }
);

same_layout!(
    wdk_sys::KEY_VALUE_PARTIAL_INFORMATION,
    wdk_ss::KEY_VALUE_PARTIAL_INFORMATION
);
same_offset!(
    wdk_sys::KEY_VALUE_PARTIAL_INFORMATION { Type },
    wdk_ss::KEY_VALUE_PARTIAL_INFORMATION { Type }
);
same_offset!(
    wdk_sys::KEY_VALUE_PARTIAL_INFORMATION { DataLength },
    wdk_ss::KEY_VALUE_PARTIAL_INFORMATION { DataLength }
);
same_offset!(
    wdk_sys::KEY_VALUE_PARTIAL_INFORMATION { Data },
    wdk_ss::KEY_VALUE_PARTIAL_INFORMATION { Data }
);

same_layout!(wdk_sys::GUID, GUID);
same_offset!(wdk_sys::GUID { Data1 }, GUID { data1 });
same_offset!(wdk_sys::GUID { Data2 }, GUID { data2 });
same_offset!(wdk_sys::GUID { Data3 }, GUID { data3 });
same_offset!(wdk_sys::GUID { Data4 }, GUID { data4 });
same_layout!(wdk_sys::GUID, dpclock_ioctl::Guid);

// kspin declares its own kernel types (it does not depend on wdk-sys): all
// three must agree.
same_layout!(wdk_sys::KSPIN_LOCK, usize);
same_layout!(kspin_ffi::KSPIN_LOCK, wdk_sys::KSPIN_LOCK);
same_layout!(wdk_sys::KIRQL, u8);
same_layout!(kspin_ffi::KIRQL, wdk_sys::KIRQL);
same_layout!(wdk_sys::KSPIN_LOCK_QUEUE, wdk_ss::KSPIN_LOCK_QUEUE);
same_layout!(kspin_ffi::KSPIN_LOCK_QUEUE, wdk_sys::KSPIN_LOCK_QUEUE);
same_offset!(
    wdk_sys::KSPIN_LOCK_QUEUE { Next },
    wdk_ss::KSPIN_LOCK_QUEUE { Next }
);
same_offset!(
    wdk_sys::KSPIN_LOCK_QUEUE { Lock },
    wdk_ss::KSPIN_LOCK_QUEUE { Lock }
);
same_offset!(
    kspin_ffi::KSPIN_LOCK_QUEUE { Next },
    wdk_sys::KSPIN_LOCK_QUEUE { Next }
);
same_offset!(
    kspin_ffi::KSPIN_LOCK_QUEUE { Lock },
    wdk_sys::KSPIN_LOCK_QUEUE { Lock }
);
same_layout!(wdk_sys::KLOCK_QUEUE_HANDLE, wdk_ss::KLOCK_QUEUE_HANDLE);
same_layout!(kspin_ffi::KLOCK_QUEUE_HANDLE, wdk_sys::KLOCK_QUEUE_HANDLE);
same_offset!(
    wdk_sys::KLOCK_QUEUE_HANDLE { LockQueue },
    wdk_ss::KLOCK_QUEUE_HANDLE { LockQueue }
);
same_offset!(
    wdk_sys::KLOCK_QUEUE_HANDLE { OldIrql },
    wdk_ss::KLOCK_QUEUE_HANDLE { OldIrql }
);
same_offset!(
    kspin_ffi::KLOCK_QUEUE_HANDLE { LockQueue },
    wdk_sys::KLOCK_QUEUE_HANDLE { LockQueue }
);
same_offset!(
    kspin_ffi::KLOCK_QUEUE_HANDLE { OldIrql },
    wdk_sys::KLOCK_QUEUE_HANDLE { OldIrql }
);

// --- Constants --------------------------------------------------------------

same_value!(wdk_sys::IRP_MJ_CREATE, wdk_ss::IRP_MJ_CREATE);
same_value!(wdk_sys::IRP_MJ_CLOSE, wdk_ss::IRP_MJ_CLOSE);
same_value!(wdk_sys::IRP_MJ_CLEANUP, wdk_ss::IRP_MJ_CLEANUP);
same_value!(
    wdk_sys::IRP_MJ_DEVICE_CONTROL,
    wdk_ss::IRP_MJ_DEVICE_CONTROL
);
same_value!(wdk_sys::IRP_MJ_PNP, wdk_ss::IRP_MJ_PNP);
same_value!(wdk_sys::IRP_MJ_POWER, wdk_ss::IRP_MJ_POWER);
same_value!(
    wdk_sys::IRP_MJ_SYSTEM_CONTROL,
    wdk_ss::IRP_MJ_SYSTEM_CONTROL
);
same_value!(wdk_sys::IRP_MN_START_DEVICE, wdk_ss::IRP_MN_START_DEVICE);
same_value!(wdk_sys::IRP_MN_REMOVE_DEVICE, wdk_ss::IRP_MN_REMOVE_DEVICE);
same_value!(
    wdk_sys::IRP_MN_SURPRISE_REMOVAL,
    wdk_ss::IRP_MN_SURPRISE_REMOVAL
);
same_value!(
    wdk_sys::IRP_MN_QUERY_REMOVE_DEVICE,
    wdk_ss::IRP_MN_QUERY_REMOVE_DEVICE
);
same_value!(
    wdk_sys::IRP_MN_CANCEL_REMOVE_DEVICE,
    wdk_ss::IRP_MN_CANCEL_REMOVE_DEVICE
);
same_value!(wdk_sys::IRP_MN_STOP_DEVICE, wdk_ss::IRP_MN_STOP_DEVICE);
same_value!(
    wdk_sys::IRP_MN_QUERY_STOP_DEVICE,
    wdk_ss::IRP_MN_QUERY_STOP_DEVICE
);
same_value!(
    wdk_sys::IRP_MN_CANCEL_STOP_DEVICE,
    wdk_ss::IRP_MN_CANCEL_STOP_DEVICE
);
same_value!(wdk_sys::DO_BUFFERED_IO, wdk_fs::DO_BUFFERED_IO);
same_value!(
    wdk_sys::DO_DEVICE_INITIALIZING,
    wdk_fs::DO_DEVICE_INITIALIZING
);
same_value!(wdk_sys::DO_POWER_PAGABLE, wdk_fs::DO_POWER_PAGABLE);
same_value!(
    wdk_sys::FILE_DEVICE_UNKNOWN,
    win32_ioctl::FILE_DEVICE_UNKNOWN
);
same_value!(
    wdk_sys::FILE_DEVICE_SECURE_OPEN,
    wdk_ss::FILE_DEVICE_SECURE_OPEN
);
same_value!(
    wdk_sys::FILE_AUTOGENERATED_DEVICE_NAME,
    wdk_ss::FILE_AUTOGENERATED_DEVICE_NAME
);
same_value!(wdk_sys::IO_NO_INCREMENT, wdk_fs::IO_NO_INCREMENT);
same_value!(wdk_sys::SL_INVOKE_ON_SUCCESS, wdk_ss::SL_INVOKE_ON_SUCCESS);
same_value!(wdk_sys::SL_INVOKE_ON_ERROR, wdk_ss::SL_INVOKE_ON_ERROR);
same_value!(wdk_sys::SL_INVOKE_ON_CANCEL, wdk_ss::SL_INVOKE_ON_CANCEL);
same_value!(wdk_sys::KEY_READ, win32_registry::KEY_READ);
same_value!(wdk_sys::OBJ_CASE_INSENSITIVE, win32::OBJ_CASE_INSENSITIVE);
same_value!(wdk_sys::OBJ_KERNEL_HANDLE, win32::OBJ_KERNEL_HANDLE);
same_value!(wdk_sys::REG_DWORD, win32_registry::REG_DWORD);
same_value!(
    wdk_sys::ALL_PROCESSOR_GROUPS,
    win32_threading::ALL_PROCESSOR_GROUPS
);
same_value!(wdk_sys::STATUS_SUCCESS, win32::STATUS_SUCCESS);
same_value!(wdk_sys::STATUS_PENDING, win32::STATUS_PENDING);
same_value!(wdk_sys::STATUS_NO_SUCH_DEVICE, win32::STATUS_NO_SUCH_DEVICE);
same_value!(
    wdk_sys::STATUS_MORE_PROCESSING_REQUIRED,
    win32::STATUS_MORE_PROCESSING_REQUIRED
);
same_value!(
    wdk_sys::_EVENT_TYPE::NotificationEvent,
    win32_kernel::NotificationEvent
);
same_value!(
    wdk_sys::_TIMER_TYPE::NotificationTimer,
    win32_kernel::NotificationTimer
);
same_value!(wdk_sys::_KWAIT_REASON::Executive, wdk_ss::Executive);
same_value!(wdk_sys::_MODE::KernelMode, wdk_ss::KernelMode);
same_value!(
    wdk_sys::_KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation,
    wdk_registry::KeyValuePartialInformation
);

// kspin's IRQL numbers.
same_value!(wdk_sys::PASSIVE_LEVEL, wdk_ss::PASSIVE_LEVEL);
same_value!(wdk_sys::APC_LEVEL, wdk_ss::APC_LEVEL);
same_value!(wdk_sys::DISPATCH_LEVEL, wdk_ss::DISPATCH_LEVEL);
same_value!(kspin::Irql::PASSIVE.0, wdk_sys::PASSIVE_LEVEL);
same_value!(kspin::Irql::APC.0, wdk_sys::APC_LEVEL);
same_value!(kspin::Irql::DISPATCH.0, wdk_sys::DISPATCH_LEVEL);

// The protocol crate's kernel constants (its CTL_CODE inputs and the
// statuses the driver completes IRPs with).
same_value!(dpclock_ioctl::METHOD_BUFFERED, win32_ioctl::METHOD_BUFFERED);
same_value!(dpclock_ioctl::FILE_ANY_ACCESS, win32_ioctl::FILE_ANY_ACCESS);
same_value!(
    dpclock_ioctl::FILE_READ_ACCESS,
    win32_ioctl::FILE_READ_ACCESS
);
same_value!(
    dpclock_ioctl::FILE_WRITE_ACCESS,
    win32_ioctl::FILE_WRITE_ACCESS
);
same_value!(dpclock_ioctl::STATUS_SUCCESS, win32::STATUS_SUCCESS);
same_value!(
    dpclock_ioctl::STATUS_BUFFER_TOO_SMALL,
    win32::STATUS_BUFFER_TOO_SMALL
);
same_value!(
    dpclock_ioctl::STATUS_INVALID_PARAMETER,
    win32::STATUS_INVALID_PARAMETER
);
same_value!(
    dpclock_ioctl::STATUS_INVALID_DEVICE_REQUEST,
    win32::STATUS_INVALID_DEVICE_REQUEST
);
same_value!(
    dpclock_ioctl::STATUS_NOT_SUPPORTED,
    win32::STATUS_NOT_SUPPORTED
);
same_value!(dpclock_ioctl::STATUS_DEVICE_BUSY, win32::STATUS_DEVICE_BUSY);
same_value!(
    dpclock_ioctl::STATUS_DELETE_PENDING,
    win32::STATUS_DELETE_PENDING
);
