//! Where the WDK metadata (and so `windows-sys`) is known to be wrong, the
//! bindings are checked against values from the WDK headers instead. Each
//! exception asserts three things: the header value (hard-coded, with its
//! evidence), ours equal to it, and the metadata's different value, so that
//! a fixed metadata (or a changed header) fails the check until this list is
//! updated. The values are the same on x86_64 and aarch64: both are LLP64,
//! with `POINTER_ALIGNMENT` = `DECLSPEC_ALIGN(8)` and
//! `MEMORY_ALLOCATION_ALIGNMENT` = 16 under `_WIN64`.

use core::mem::{align_of, offset_of, size_of};

use windows_sys::Wdk::Foundation as wdk_foundation;

/// `IO_STACK_LOCATION.Parameters.DeviceIoControl`: the offsets of
/// `OutputBufferLength`, `InputBufferLength`, `IoControlCode` and
/// `Type3InputBuffer` inside it.
///
/// Evidence: wdm.h declares the last three fields `ULONG POINTER_ALIGNMENT`
/// and `PVOID`, with `#define POINTER_ALIGNMENT DECLSPEC_ALIGN(8)` under
/// `_WIN64`; the declaration is on Microsoft's `IO_STACK_LOCATION` reference
/// page, and mingw-w64's and ReactOS's wdm.h carry the same. The metadata
/// drops `POINTER_ALIGNMENT`, giving 0, 4, 8, 16. The driver reads all three
/// lengths/codes of every IOCTL from here: with the metadata's offsets it
/// would read the wrong words.
pub const DEVICE_IO_CONTROL_OFFSETS: [usize; 4] = [0, 8, 16, 24];
/// What the metadata says instead.
pub const DEVICE_IO_CONTROL_OFFSETS_IN_METADATA: [usize; 4] = [0, 4, 8, 16];

/// The alignment of `DEVICE_OBJECT` and `IRP`.
///
/// Evidence: wdm.h declares both `typedef struct
/// DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT) _DEVICE_OBJECT` and `...
/// _IRP`, with `MEMORY_ALLOCATION_ALIGNMENT` 16 under `_WIN64` (ntdef.h), as
/// the WDK declarations reproduced in ReactOS's and many drivers' headers
/// show. The metadata drops the struct-level `DECLSPEC_ALIGN`, giving 8. So
/// does mingw-w64 10: `cargo xtask check-windows` adds it back in its header
/// overlay, which these assertions prove. The driver only reaches either
/// structure through pointers the I/O manager gives it.
pub const DEVICE_OBJECT_AND_IRP_ALIGN: usize = 16;
/// What the metadata says instead.
pub const DEVICE_OBJECT_AND_IRP_ALIGN_IN_METADATA: usize = 8;

/// The size of `DEVICE_OBJECT`: its members end at 0x148 on 64-bit
/// Windows, and the 16-byte alignment above rounds that up to 0x150 (336).
/// The metadata, without the alignment, gives 0x148 (328). (`IRP` ends at
/// 0xD0, already a multiple of 16: its sizes agree.)
pub const DEVICE_OBJECT_SIZE: usize = 0x150;
/// What the metadata says instead.
pub const DEVICE_OBJECT_SIZE_IN_METADATA: usize = 0x148;

macro_rules! device_io_control_offsets {
    ($ty:ty, [$($path:tt)+]) => {
        [
            offset_of!($ty, $($path)+.OutputBufferLength),
            offset_of!($ty, $($path)+.InputBufferLength),
            offset_of!($ty, $($path)+.IoControlCode),
            offset_of!($ty, $($path)+.Type3InputBuffer),
        ]
    };
}

const fn same(a: [usize; 4], b: [usize; 4]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
}

const OURS: [usize; 4] =
    device_io_control_offsets!(wdk_sys::IO_STACK_LOCATION, [Parameters.DeviceIoControl]);
const PARAMETERS: usize = offset_of!(wdk_sys::IO_STACK_LOCATION, Parameters);
const METADATA: [usize; 4] = device_io_control_offsets!(
    wdk_foundation::IO_STACK_LOCATION,
    [Parameters.DeviceIoControl]
);
const METADATA_PARAMETERS: usize = offset_of!(wdk_foundation::IO_STACK_LOCATION, Parameters);

const _: () = {
    let relative = [
        OURS[0] - PARAMETERS,
        OURS[1] - PARAMETERS,
        OURS[2] - PARAMETERS,
        OURS[3] - PARAMETERS,
    ];
    assert!(
        same(relative, DEVICE_IO_CONTROL_OFFSETS),
        "wdk_sys IO_STACK_LOCATION.Parameters.DeviceIoControl is not laid out as wdm.h's"
    );
    let metadata = [
        METADATA[0] - METADATA_PARAMETERS,
        METADATA[1] - METADATA_PARAMETERS,
        METADATA[2] - METADATA_PARAMETERS,
        METADATA[3] - METADATA_PARAMETERS,
    ];
    assert!(
        same(metadata, DEVICE_IO_CONTROL_OFFSETS_IN_METADATA),
        "windows-sys's DeviceIoControl offsets changed: if they now match wdm.h's, remove this exception"
    );
};

const _: () = {
    assert!(align_of::<wdk_sys::DEVICE_OBJECT>() == DEVICE_OBJECT_AND_IRP_ALIGN);
    assert!(align_of::<wdk_sys::IRP>() == DEVICE_OBJECT_AND_IRP_ALIGN);
    assert!(
        align_of::<wdk_foundation::DEVICE_OBJECT>() == DEVICE_OBJECT_AND_IRP_ALIGN_IN_METADATA,
        "windows-sys's DEVICE_OBJECT alignment changed: if it is now 16, remove this exception"
    );
    assert!(
        align_of::<wdk_foundation::IRP>() == DEVICE_OBJECT_AND_IRP_ALIGN_IN_METADATA,
        "windows-sys's IRP alignment changed: if it is now 16, remove this exception"
    );
};

const _: () = {
    assert!(size_of::<wdk_sys::DEVICE_OBJECT>() == DEVICE_OBJECT_SIZE);
    assert!(
        size_of::<wdk_foundation::DEVICE_OBJECT>() == DEVICE_OBJECT_SIZE_IN_METADATA,
        "windows-sys's DEVICE_OBJECT size changed: if it is now 0x150, remove this exception"
    );
};
