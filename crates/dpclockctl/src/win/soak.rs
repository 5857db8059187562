//! The soak's platform on Windows (and Wine): the device through its
//! interface, installs through SetupAPI, and the handle and memory counts
//! of the harness and of the driver's host process.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use windows_sys::Win32::{
    Foundation::{CloseHandle, GENERIC_READ, GENERIC_WRITE, HANDLE},
    Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE},
    System::{
        ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS},
        Threading::{
            GetCurrentProcess, GetCurrentProcessId, GetProcessHandleCount, OpenProcess,
            PROCESS_QUERY_INFORMATION, PROCESS_VM_READ,
        },
    },
};

use super::{
    device::{WinDevice, interface_paths},
    install::{self, Installed, Uninstalled},
};
use crate::soak::{Build, Platform, ProcessSample, Report};

/// The packages to install, and where the report goes if the run must be
/// abandoned.
pub struct WinPlatform {
    /// The free build's INF.
    pub free_inf: PathBuf,
    /// The checked build's INF.
    pub checked_inf: PathBuf,
    /// The JSON report.
    pub json: Option<PathBuf>,
}

/// Writes the report as JSON.
///
/// # Errors
///
/// If it cannot be written.
pub fn write_json(path: &Path, report: &Report) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

fn sample(name: &str, pid: u32, process: HANDLE) -> Option<ProcessSample> {
    let mut handles = 0;
    // SAFETY: a process handle with query access and an out-parameter.
    let ok = unsafe { GetProcessHandleCount(process, &mut handles) };
    // SAFETY: plain data for K32GetProcessMemoryInfo to fill, with its size.
    let mut memory: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    memory.cb = size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    // SAFETY: as above.
    let ok_memory = unsafe { K32GetProcessMemoryInfo(process, &mut memory, memory.cb) };
    (ok != 0 && ok_memory != 0).then(|| ProcessSample {
        name: name.to_owned(),
        pid,
        handles: u64::from(handles),
        private_bytes: memory.PagefileUsage as u64,
        working_set: memory.WorkingSetSize as u64,
    })
}

impl Platform for WinPlatform {
    type Handle = WinDevice;

    fn open(&self) -> Result<WinDevice, String> {
        WinDevice::open_with(
            GENERIC_READ | GENERIC_WRITE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
        )
        .map_err(|e| e.to_string())
    }

    fn install(&self, build: Build) -> Result<(), String> {
        let inf = match build {
            Build::Free => &self.free_inf,
            Build::Checked => &self.checked_inf,
        };
        match install::install(inf, false, Duration::from_secs(30)) {
            Ok(Installed::Now(_)) => Ok(()),
            Ok(Installed::Already(ids)) => Err(format!("already installed: {ids:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn uninstall(&self) -> Result<(), String> {
        match install::uninstall(Duration::from_secs(30)) {
            Ok(Uninstalled::Removed(_)) => Ok(()),
            Ok(Uninstalled::NotInstalled) => Err("nothing was installed".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn present(&self) -> bool {
        !interface_paths().is_empty()
    }

    fn processes(&self) -> Vec<ProcessSample> {
        let mut samples = Vec::new();
        // SAFETY: the current process's pseudo-handle needs no closing.
        let (me, pid) = unsafe { (GetCurrentProcess(), GetCurrentProcessId()) };
        samples.extend(sample("harness", pid, me));
        if let Some(pid) = install::service_process_id() {
            // SAFETY: any process ID; the handle is closed below.
            let host = unsafe { OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ, 0, pid) };
            if !host.is_null() {
                samples.extend(sample("driver host", pid, host));
                // SAFETY: opened above.
                unsafe { CloseHandle(host) };
            }
        }
        samples
    }

    fn abandon(&self, report: Report) -> ! {
        print!("{}", crate::soak::summary(&report));
        if let Some(path) = &self.json {
            let _ = write_json(path, &report);
        }
        eprintln!("dpclockctl: requests hang inside the driver; the soak is abandoned");
        std::process::exit(1)
    }
}
