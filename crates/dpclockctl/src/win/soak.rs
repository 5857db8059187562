//! The soak's platform on Windows (and Wine): the device through its
//! interface, installs through SetupAPI, and the handle and memory counts
//! of the harness and of the driver's host process.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use windows_sys::Win32::{
    Foundation::{GENERIC_READ, GENERIC_WRITE},
    Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE},
    System::Threading::GetCurrentProcessId,
};

use super::{
    device::{WinDevice, interface_paths},
    install::{self, Installed, Uninstalled},
    processes,
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
        let all = processes::all();
        // SAFETY: no preconditions.
        let me = unsafe { GetCurrentProcessId() };
        // The driver's host: the service's process, or (where the service
        // manager does not say) the newest winedevice.exe, which the
        // install just started.
        let host = install::service_process_id().or_else(|| {
            all.iter()
                .filter(|p| p.name.eq_ignore_ascii_case("winedevice.exe"))
                .map(|p| p.pid)
                .max()
        });
        all.iter()
            .filter_map(|p| {
                let name = if p.pid == me {
                    "harness"
                } else if Some(p.pid) == host {
                    "driver host"
                } else {
                    return None;
                };
                Some(ProcessSample {
                    name: name.to_owned(),
                    pid: p.pid,
                    handles: p.handles,
                    private_bytes: p.private_bytes,
                    working_set: p.working_set,
                })
            })
            .collect()
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
