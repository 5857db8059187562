//! Every process's handle and memory counts in one call
//! (`NtQuerySystemInformation(SystemProcessInformation)`), as the OS (or
//! Wine) reports them.

use windows_sys::{
    Wdk::System::SystemInformation::{
        NtQuerySystemInformation, SYSTEM_INFORMATION_CLASS, SystemProcessInformation,
    },
    Win32::System::WindowsProgramming::SYSTEM_PROCESS_INFORMATION,
};

/// One process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its ID.
    pub pid: u32,
    /// Its image name (`winedevice.exe`).
    pub name: String,
    /// Open handles.
    pub handles: u64,
    /// Private bytes (`PagefileUsage`).
    pub private_bytes: u64,
    /// Working set.
    pub working_set: u64,
}

const STATUS_INFO_LENGTH_MISMATCH: i32 = 0xC000_0004_u32.cast_signed();

/// `NtQuerySystemInformation(class)`'s answer in 8-byte-aligned storage,
/// grown until it fits; empty if the query fails.
fn query(class: SYSTEM_INFORMATION_CLASS) -> Vec<u64> {
    let mut storage = vec![0_u64; 64 * 1024];
    loop {
        let mut needed = 0;
        let bytes = (storage.len() * 8) as u32;
        // SAFETY: a buffer of `bytes` bytes, 8-byte aligned.
        let status = unsafe {
            NtQuerySystemInformation(class, storage.as_mut_ptr().cast(), bytes, &mut needed)
        };
        if status == STATUS_INFO_LENGTH_MISMATCH && storage.len() < 16 * 1024 * 1024 {
            storage.resize(storage.len() * 2, 0);
            continue;
        }
        if status < 0 {
            return Vec::new();
        }
        return storage;
    }
}

/// Every process, or nothing if the query fails.
pub fn all() -> Vec<Process> {
    let storage = query(SystemProcessInformation);
    if storage.is_empty() {
        return Vec::new();
    }
    let base = storage.as_ptr().cast::<u8>();
    let end = storage.len() * 8;
    let mut processes = Vec::new();
    let mut offset = 0_usize;
    while offset + size_of::<SYSTEM_PROCESS_INFORMATION>() <= end {
        // SAFETY: the entry lies inside the buffer the call filled; entries
        // are pointer-aligned, and read unaligned anyway.
        let entry = unsafe {
            base.add(offset)
                .cast::<SYSTEM_PROCESS_INFORMATION>()
                .read_unaligned()
        };
        let name = if entry.ImageName.Buffer.is_null() {
            String::new()
        } else {
            // SAFETY: the name points into the same buffer, Length bytes.
            let units = unsafe {
                std::slice::from_raw_parts(
                    entry.ImageName.Buffer,
                    usize::from(entry.ImageName.Length) / 2,
                )
            };
            String::from_utf16_lossy(units)
        };
        processes.push(Process {
            pid: entry.UniqueProcessId as usize as u32,
            name,
            handles: u64::from(entry.HandleCount),
            private_bytes: entry.PagefileUsage as u64,
            working_set: entry.WorkingSetSize as u64,
        });
        if entry.NextEntryOffset == 0 {
            break;
        }
        offset += entry.NextEntryOffset as usize;
    }
    processes
}

/// `SystemHandleInformation`: every open handle of the system.
const SYSTEM_HANDLE_INFORMATION: i32 = 16;
/// The size of one `SYSTEM_HANDLE_TABLE_ENTRY_INFO` on x64, and where its
/// fields are: `UniqueProcessId` (u16) at 0, `ObjectTypeIndex` (u8) at 4.
const HANDLE_ENTRY: usize = 24;

/// The handles `pid` has open, counted one by one, per object type index
/// (`SystemHandleInformation`); `None` if the query fails.
pub fn open_handles(pid: u32) -> Option<std::collections::BTreeMap<u8, u64>> {
    let storage = query(SYSTEM_HANDLE_INFORMATION);
    if storage.is_empty() {
        return None;
    }
    // SAFETY: plain bytes of the buffer the call filled.
    let bytes =
        unsafe { std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), storage.len() * 8) };
    let count = u32::from_le_bytes(bytes[..4].try_into().ok()?) as usize;
    let mut by_type = std::collections::BTreeMap::new();
    for i in 0..count {
        let entry = bytes.get(8 + i * HANDLE_ENTRY..8 + (i + 1) * HANDLE_ENTRY)?;
        if u32::from(u16::from_le_bytes([entry[0], entry[1]])) == pid & 0xFFFF {
            *by_type.entry(entry[4]).or_insert(0) += 1;
        }
    }
    Some(by_type)
}

/// The names of the object types of this process's own handles, by type
/// index (`NtQueryObject(ObjectTypeInformation)` on one handle of each
/// type), so that a leak can be named.
pub fn own_type_names() -> std::collections::BTreeMap<u8, String> {
    use windows_sys::{
        Wdk::Foundation::{NtQueryObject, ObjectTypeInformation},
        Win32::System::Threading::GetCurrentProcessId,
    };
    // SAFETY: no preconditions.
    let me = unsafe { GetCurrentProcessId() };
    let mut names = std::collections::BTreeMap::new();
    for (kind, handle) in own_handles(me) {
        if names.contains_key(&kind) {
            continue;
        }
        // Room for the struct and its name.
        let mut storage = [0_u64; 128];
        let mut returned = 0;
        // SAFETY: one of this process's own handles (it may have been
        // closed meanwhile: then the call fails); a buffer of the size passed.
        let status = unsafe {
            NtQueryObject(
                handle as usize as windows_sys::Win32::Foundation::HANDLE,
                ObjectTypeInformation,
                storage.as_mut_ptr().cast(),
                (storage.len() * 8) as u32,
                &mut returned,
            )
        };
        if status < 0 {
            continue;
        }
        // SAFETY: the call filled a PUBLIC_OBJECT_TYPE_INFORMATION whose
        // name points into the same buffer.
        let name = unsafe {
            let info = storage
                .as_ptr()
                .cast::<windows_sys::Win32::System::WindowsProgramming::PUBLIC_OBJECT_TYPE_INFORMATION>()
                .read();
            if info.TypeName.Buffer.is_null() {
                continue;
            }
            String::from_utf16_lossy(std::slice::from_raw_parts(
                info.TypeName.Buffer,
                usize::from(info.TypeName.Length) / 2,
            ))
        };
        names.insert(kind, name);
    }
    names
}

/// This process's handles: (type index, handle value).
fn own_handles(pid: u32) -> Vec<(u8, u16)> {
    let storage = query(SYSTEM_HANDLE_INFORMATION);
    if storage.is_empty() {
        return Vec::new();
    }
    // SAFETY: plain bytes of the buffer the call filled.
    let bytes =
        unsafe { std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), storage.len() * 8) };
    let count = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    (0..count)
        .filter_map(|i| bytes.get(8 + i * HANDLE_ENTRY..8 + (i + 1) * HANDLE_ENTRY))
        .filter(|e| u32::from(u16::from_le_bytes([e[0], e[1]])) == pid & 0xFFFF)
        .map(|e| (e[4], u16::from_le_bytes([e[6], e[7]])))
        .collect()
}
