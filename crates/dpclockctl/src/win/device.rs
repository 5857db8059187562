//! Finding the device through its interface and sending it IOCTLs.

use std::ptr;

use dpclock_ioctl::GUID_DEVINTERFACE_DPCLOCK;
use windows_sys::{
    Wdk::System::IO::NtDeviceIoControlFile,
    Win32::{
        Devices::DeviceAndDriverInstallation::{
            DIGCF_DEVICEINTERFACE, DIGCF_PRESENT, SP_DEVICE_INTERFACE_DATA,
            SP_DEVICE_INTERFACE_DETAIL_DATA_W, SetupDiDestroyDeviceInfoList,
            SetupDiEnumDeviceInterfaces, SetupDiGetClassDevsW, SetupDiGetDeviceInterfaceDetailW,
        },
        Foundation::{CloseHandle, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE},
        Storage::FileSystem::{CreateFileW, FILE_ATTRIBUTE_NORMAL, OPEN_EXISTING},
        System::IO::IO_STATUS_BLOCK,
    },
    core::GUID,
};

use super::{Win32Error, wide};
use crate::device::{Device, IoResult};

/// dpclock's device interface class, in windows-sys's representation.
pub fn interface_guid() -> GUID {
    let g = GUID_DEVINTERFACE_DPCLOCK;
    GUID {
        data1: g.data1,
        data2: g.data2,
        data3: g.data3,
        data4: g.data4,
    }
}

/// The paths of every present dpclock device interface.
pub fn interface_paths() -> Vec<String> {
    let guid = interface_guid();
    // SAFETY: a valid GUID; the set is destroyed below.
    let set = unsafe {
        SetupDiGetClassDevsW(
            &guid,
            ptr::null(),
            ptr::null_mut(),
            DIGCF_PRESENT | DIGCF_DEVICEINTERFACE,
        )
    };
    if set == INVALID_HANDLE_VALUE as isize {
        return Vec::new();
    }
    let mut paths = Vec::new();
    for index in 0.. {
        let mut interface = SP_DEVICE_INTERFACE_DATA {
            cbSize: size_of::<SP_DEVICE_INTERFACE_DATA>() as u32,
            ..unsafe_zeroed()
        };
        // SAFETY: a live set and a sized out-structure.
        if unsafe { SetupDiEnumDeviceInterfaces(set, ptr::null(), &guid, index, &mut interface) }
            == 0
        {
            break;
        }
        // The detail is a variable-length struct: cbSize is that of the fixed
        // part, the path follows. u32 storage keeps it aligned.
        let mut storage = vec![0_u32; 1024];
        let detail = storage
            .as_mut_ptr()
            .cast::<SP_DEVICE_INTERFACE_DETAIL_DATA_W>();
        // SAFETY: the storage is large enough for the header; cbSize is set
        // before the call as the API requires.
        let ok = unsafe {
            (*detail).cbSize = size_of::<SP_DEVICE_INTERFACE_DETAIL_DATA_W>() as u32;
            SetupDiGetDeviceInterfaceDetailW(
                set,
                &interface,
                detail,
                (storage.len() * 4) as u32,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if ok != 0 {
            // SAFETY: DevicePath is a NUL-terminated string inside the storage.
            let path = unsafe {
                let start = (&raw const (*detail).DevicePath).cast::<u16>();
                let len = (0..).take_while(|&i| *start.add(i) != 0).count();
                String::from_utf16_lossy(std::slice::from_raw_parts(start, len))
            };
            paths.push(path);
        }
    }
    // SAFETY: the set from SetupDiGetClassDevsW.
    unsafe { SetupDiDestroyDeviceInfoList(set) };
    paths
}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: used only for plain-data Win32 structs, valid when zeroed.
    unsafe { std::mem::zeroed() }
}

/// An open handle to the device.
pub struct WinDevice {
    handle: HANDLE,
    /// The interface path it was opened by.
    pub path: String,
}

// SAFETY: a file handle may be used by several threads at once; each
// NtDeviceIoControlFile call brings its own buffers and status block.
unsafe impl Send for WinDevice {}
// SAFETY: as above.
unsafe impl Sync for WinDevice {}

/// Why the device could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No dpclock interface is present: not installed, or not started.
    NotFound,
    /// CreateFile failed.
    Open(Win32Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => write!(
                f,
                "no dpclock device found (interface {{488E151D-6911-4DB2-80EB-B1D6EB102E4C}} is not present): \
                 install the driver with `dpclockctl install` (or `devcon install dpclock.inf Root\\DpcLock`)"
            ),
            Self::Open(error) => write!(
                f,
                "{error} (the device allows SYSTEM and Administrators only: run elevated)"
            ),
        }
    }
}

impl std::error::Error for OpenError {}

impl WinDevice {
    /// Opens the first present dpclock device.
    ///
    /// # Errors
    ///
    /// [`OpenError`].
    pub fn open() -> Result<Self, OpenError> {
        Self::open_with(GENERIC_READ | GENERIC_WRITE, 0)
    }

    /// Opens the first present dpclock device with this desired access and
    /// share mode (`CreateFile`'s second and third arguments).
    ///
    /// # Errors
    ///
    /// [`OpenError`].
    pub fn open_with(access: u32, share: u32) -> Result<Self, OpenError> {
        let path = interface_paths()
            .into_iter()
            .next()
            .ok_or(OpenError::NotFound)?;
        Self::open_path(path, access, share)
    }

    /// Opens `path` (an interface path, or a name below one) with this
    /// desired access and share mode.
    ///
    /// # Errors
    ///
    /// [`OpenError::Open`].
    pub fn open_path(path: String, access: u32, share: u32) -> Result<Self, OpenError> {
        let wide_path = wide(&path);
        // SAFETY: a NUL-terminated path; synchronous I/O (no OVERLAPPED).
        let handle = unsafe {
            CreateFileW(
                wide_path.as_ptr(),
                access,
                share,
                ptr::null(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                ptr::null_mut(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            return Err(OpenError::Open(Win32Error::last(
                "CreateFile on the dpclock interface",
            )));
        }
        Ok(Self { handle, path })
    }
}

impl Drop for WinDevice {
    fn drop(&mut self) {
        // SAFETY: the handle CreateFileW returned, closed once.
        unsafe { CloseHandle(self.handle) };
    }
}

impl Device for WinDevice {
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> IoResult {
        let input_ptr = if input.is_empty() {
            ptr::null()
        } else {
            input.as_ptr()
        };
        let output_ptr = if output.is_empty() {
            ptr::null_mut()
        } else {
            output.as_mut_ptr()
        };
        // SAFETY: slices valid for their lengths.
        unsafe {
            self.ioctl_raw(
                code,
                input_ptr,
                input.len() as u32,
                output_ptr,
                output.len() as u32,
            )
        }
    }

    unsafe fn ioctl_raw(
        &self,
        code: u32,
        input: *const u8,
        input_len: u32,
        output: *mut u8,
        output_len: u32,
    ) -> IoResult {
        // NtDeviceIoControlFile rather than DeviceIoControl: it returns the
        // NTSTATUS itself, not its translation to a Win32 error.
        let mut io_status: IO_STATUS_BLOCK = unsafe_zeroed();
        // SAFETY: an open synchronous handle (the call returns when the IRP
        // completes); buffers as the caller promises.
        let status = unsafe {
            NtDeviceIoControlFile(
                self.handle,
                ptr::null_mut(),
                None,
                ptr::null(),
                &mut io_status,
                code,
                input.cast(),
                input_len,
                output.cast(),
                output_len,
            )
        };
        IoResult {
            status,
            information: if status >= 0 {
                io_status.Information
            } else {
                0
            },
        }
    }
}
