//! Every process's handle and memory counts in one call
//! (`NtQuerySystemInformation(SystemProcessInformation)`), as the OS (or
//! Wine) reports them.

use windows_sys::{
    Wdk::System::SystemInformation::{NtQuerySystemInformation, SystemProcessInformation},
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

/// Every process, or nothing if the query fails.
pub fn all() -> Vec<Process> {
    let mut storage = vec![0_u64; 64 * 1024];
    loop {
        let mut needed = 0;
        let bytes = (storage.len() * 8) as u32;
        // SAFETY: a buffer of `bytes` bytes, 8-byte aligned.
        let status = unsafe {
            NtQuerySystemInformation(
                SystemProcessInformation,
                storage.as_mut_ptr().cast(),
                bytes,
                &mut needed,
            )
        };
        if status == STATUS_INFO_LENGTH_MISMATCH && storage.len() < 16 * 1024 * 1024 {
            storage.resize(storage.len() * 2, 0);
            continue;
        }
        if status < 0 {
            return Vec::new();
        }
        break;
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
