//! The soak's platform on Windows (and Wine): the device through its
//! interface, installs through SetupAPI, and the handle and memory counts
//! of the harness and of the driver's host process.

use std::path::{Path, PathBuf};

use windows_sys::Win32::{
    Foundation::{GENERIC_READ, GENERIC_WRITE},
    Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE},
    System::Threading::GetCurrentProcessId,
};

use super::{
    device::{WinDevice, interface_paths},
    install, processes,
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

/// Runs `dpclockctl ARGS` as a child process and checks that it succeeded
/// and said `expect`. Installs and removals run in a process of their own,
/// as devcon's would: Wine 8.0's SetupAPI leaks one registry key handle per
/// install (the soak found it: a handle left by SetupDiCreateDeviceInfo,
/// SetupDiSetDeviceRegistryProperty or DIF_REGISTERDEVICE that
/// SetupDiDestroyDeviceInfoList does not close), and the harness's own
/// handles must not grow.
fn child(args: &[&str], expect: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("the harness's own path: {e}"))?;
    // Wine 8.0 now and then fails to start a process under load
    // (`ERROR_INTERNAL_ERROR`, seen once in a 2-minute soak at the fifth
    // install). Starting is retried, visibly; what the child does is not.
    let mut attempt = 1;
    let output = loop {
        match std::process::Command::new(&exe)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(output) => break output,
            Err(e) if attempt < 3 => {
                eprintln!(
                    "soak: could not start `dpclockctl {}` ({e}); trying again",
                    args[0]
                );
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            Err(e) => {
                return Err(format!(
                    "cannot run dpclockctl {} ({attempt} attempts): {e}",
                    args[0]
                ));
            }
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.contains(expect) {
        Ok(())
    } else {
        Err(format!(
            "dpclockctl {} exited with {}: {}{}",
            args.join(" "),
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
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
        let inf = inf.to_string_lossy();
        child(
            &["install", "--inf", &inf, "--timeout", "30"],
            "installed and started",
        )
    }

    fn uninstall(&self) -> Result<(), String> {
        child(&["uninstall", "--timeout", "30"], "dpclock removed")
    }

    fn present(&self) -> bool {
        !interface_paths().is_empty()
    }

    fn processes(&self) -> Vec<ProcessSample> {
        let all = processes::all();
        let type_names = processes::own_type_names();
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
                // Wine reports the size of the handle table as the count;
                // the system's handle list gives the handles themselves.
                let handle_types: std::collections::BTreeMap<String, u64> =
                    processes::open_handles(p.pid)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(kind, n)| {
                            let name = type_names
                                .get(&kind)
                                .cloned()
                                .unwrap_or_else(|| format!("type {kind}"));
                            (name, n)
                        })
                        .collect();
                let handles = if handle_types.is_empty() {
                    p.handles
                } else {
                    handle_types.values().sum()
                };
                Some(ProcessSample {
                    name: name.to_owned(),
                    pid: p.pid,
                    handles,
                    private_bytes: p.private_bytes,
                    working_set: p.working_set,
                    handle_types,
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
