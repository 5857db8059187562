//! `install` and `uninstall`: what `devcon install dpclock.inf Root\DpcLock`
//! and `devcon remove Root\DpcLock` do, through SetupAPI and newdev.
//!
//! Install creates a root-enumerated devnode with hardware ID `Root\DpcLock`
//! (`SetupDiCreateDeviceInfo` + `DIF_REGISTERDEVICE`) and installs the INF's
//! driver on it (`UpdateDriverForPlugAndPlayDevices`). Uninstall removes
//! every such devnode (`DIF_REMOVE`). Both are idempotent: installing when
//! the device exists, or uninstalling when it does not, changes nothing and
//! says so.
//!
//! Two steps exist for Wine only, each harmless on Windows:
//!
//! * [`start_service_for_wine`]: Wine 8.0's SetupAPI installs the service
//!   but fails to start it, so the device never starts. On Windows,
//!   `UpdateDriverForPlugAndPlayDevices` has already started it.
//! * [`stop_service_for_wine`]: Wine keeps the driver loaded after its last
//!   device is removed; Windows unloads it then. Stopping it makes the next
//!   install load it afresh (and re-read its registry parameters).

use std::{
    path::{Path, PathBuf},
    ptr, thread,
    time::{Duration, Instant},
};

use windows_sys::{
    Win32::{
        Devices::DeviceAndDriverInstallation::{
            DICD_GENERATE_ID, DIF_REGISTERDEVICE, DIF_REMOVE, DIGCF_ALLCLASSES, HDEVINFO,
            INSTALLFLAG_FORCE, SP_DEVINFO_DATA, SPDRP_HARDWAREID, SetupDiCallClassInstaller,
            SetupDiCreateDeviceInfoList, SetupDiCreateDeviceInfoW, SetupDiDestroyDeviceInfoList,
            SetupDiEnumDeviceInfo, SetupDiGetClassDevsW, SetupDiGetDeviceInstanceIdW,
            SetupDiGetDeviceRegistryPropertyW, SetupDiGetINFClassW,
            SetupDiSetDeviceRegistryPropertyW, UpdateDriverForPlugAndPlayDevicesW,
        },
        Foundation::{
            ERROR_SERVICE_ALREADY_RUNNING, ERROR_SERVICE_DATABASE_LOCKED,
            ERROR_SERVICE_DOES_NOT_EXIST, INVALID_HANDLE_VALUE,
        },
        System::{
            Registry::{
                HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE, REG_DWORD, REG_OPTION_NON_VOLATILE,
                RegCloseKey, RegCreateKeyExW, RegSetValueExW,
            },
            Services::{
                CloseServiceHandle, ControlService, OpenSCManagerW, OpenServiceW,
                QueryServiceStatus, QueryServiceStatusEx, SC_HANDLE, SC_MANAGER_CONNECT,
                SERVICE_CONTROL_STOP, SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_START,
                SERVICE_STATUS, SERVICE_STOP, SERVICE_STOPPED, StartServiceW,
            },
        },
    },
    core::GUID,
};

use super::{Win32Error, device::interface_paths, env::is_elevated, wide};

/// The hardware ID of dpclock's root-enumerated devnode.
pub const HARDWARE_ID: &str = r"Root\DpcLock";
/// The service the INF installs.
pub const SERVICE: &str = "dpclock";

/// Why install or uninstall failed.
#[derive(Debug)]
pub enum Error {
    /// Not run from an elevated (administrator) prompt.
    NotElevated,
    /// The INF is not where it was looked for.
    InfMissing(PathBuf),
    /// dpclock.sys is not beside the INF.
    SysMissing(PathBuf),
    /// A Win32 call failed.
    Win32(Win32Error),
    /// The driver was installed but its device never came up.
    DriverDidNotStart {
        /// The service's state, as `QueryServiceStatus` sees it.
        service: String,
        /// The last error of the start attempt, if any.
        start_error: Option<Win32Error>,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotElevated => write!(
                f,
                "installing a driver needs administrator rights: run dpclockctl from an elevated prompt"
            ),
            Self::InfMissing(inf) => write!(
                f,
                "INF not found: {} (build the driver package with `cargo make` and pass --inf PATH\\dpclock.inf)",
                inf.display()
            ),
            Self::SysMissing(sys) => {
                write!(f, "dpclock.sys not found beside the INF: {}", sys.display())
            }
            Self::Win32(error) => write!(f, "{error}"),
            Self::DriverDidNotStart {
                service,
                start_error,
            } => {
                write!(
                    f,
                    "the driver was installed but its device did not start; service dpclock is {service}"
                )?;
                if let Some(error) = start_error {
                    write!(f, "; starting it failed: {error}")?;
                }
                write!(
                    f,
                    " (look for dpclock's DriverEntry/AddDevice messages in the kernel debugger or DebugView)"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Win32Error> for Error {
    fn from(error: Win32Error) -> Self {
        Self::Win32(error)
    }
}

/// What `install` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// Created and started the device; its instance ID.
    Now(String),
    /// Found it installed already; nothing changed.
    Already(Vec<String>),
}

/// What `uninstall` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Uninstalled {
    /// Removed these devnodes.
    Removed(Vec<String>),
    /// There was nothing to remove.
    NotInstalled,
}

/// A device information set, destroyed on drop.
struct DeviceInfoSet(HDEVINFO);

impl Drop for DeviceInfoSet {
    fn drop(&mut self) {
        // SAFETY: a set from SetupDiCreateDeviceInfoList / SetupDiGetClassDevsW.
        unsafe { SetupDiDestroyDeviceInfoList(self.0) };
    }
}

fn zeroed_devinfo() -> SP_DEVINFO_DATA {
    // SAFETY: plain data; cbSize set as the API requires.
    let mut data: SP_DEVINFO_DATA = unsafe { std::mem::zeroed() };
    data.cbSize = size_of::<SP_DEVINFO_DATA>() as u32;
    data
}

/// Every devnode (present or not) whose hardware IDs include `Root\DpcLock`,
/// with the set that holds them.
fn dpclock_devnodes() -> Result<(DeviceInfoSet, Vec<(SP_DEVINFO_DATA, String)>), Win32Error> {
    // SAFETY: all classes, all devnodes; destroyed by the guard.
    let set = unsafe {
        SetupDiGetClassDevsW(ptr::null(), ptr::null(), ptr::null_mut(), DIGCF_ALLCLASSES)
    };
    if set == INVALID_HANDLE_VALUE as isize {
        return Err(Win32Error::last("SetupDiGetClassDevs"));
    }
    let set = DeviceInfoSet(set);
    let mut found = Vec::new();
    for index in 0.. {
        let mut data = zeroed_devinfo();
        // SAFETY: a live set and a sized out-structure.
        if unsafe { SetupDiEnumDeviceInfo(set.0, index, &mut data) } == 0 {
            break;
        }
        let mut ids = [0_u16; 1024];
        // SAFETY: a buffer of the size passed (in bytes).
        let ok = unsafe {
            SetupDiGetDeviceRegistryPropertyW(
                set.0,
                &data,
                SPDRP_HARDWAREID,
                ptr::null_mut(),
                ids.as_mut_ptr().cast(),
                (ids.len() * 2) as u32,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            continue;
        }
        let multi_sz = String::from_utf16_lossy(&ids);
        if multi_sz
            .split('\0')
            .any(|id| id.eq_ignore_ascii_case(HARDWARE_ID))
        {
            found.push((data, instance_id(&set, &data)));
        }
    }
    Ok((set, found))
}

fn instance_id(set: &DeviceInfoSet, data: &SP_DEVINFO_DATA) -> String {
    let mut id = [0_u16; 512];
    // SAFETY: a buffer of the length passed (in characters).
    let ok = unsafe {
        SetupDiGetDeviceInstanceIdW(
            set.0,
            data,
            id.as_mut_ptr(),
            id.len() as u32,
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        return "(unknown instance)".to_owned();
    }
    let len = id.iter().position(|&c| c == 0).unwrap_or(id.len());
    String::from_utf16_lossy(&id[..len])
}

/// Writes `Parameters\AllowUnlockedControl` under the service key, before the
/// driver first loads (it reads the value in DriverEntry). Always written,
/// so that an earlier `--allow-unlocked` does not linger.
fn write_unlocked_control(allow: bool) -> Result<(), Win32Error> {
    let path = wide(&format!(
        r"SYSTEM\CurrentControlSet\Services\{SERVICE}\Parameters"
    ));
    let mut key: HKEY = ptr::null_mut();
    // SAFETY: valid strings and out-parameter; the key is closed below.
    let status = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            0,
            ptr::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            ptr::null(),
            &mut key,
            ptr::null_mut(),
        )
    };
    if status != 0 {
        return Err(Win32Error {
            step: "creating the service's Parameters key",
            code: status,
        });
    }
    let value = u32::from(allow).to_le_bytes();
    let name = wide("AllowUnlockedControl");
    // SAFETY: a DWORD value of 4 bytes.
    let status = unsafe { RegSetValueExW(key, name.as_ptr(), 0, REG_DWORD, value.as_ptr(), 4) };
    // SAFETY: the key opened above.
    unsafe { RegCloseKey(key) };
    if status != 0 {
        return Err(Win32Error {
            step: "setting AllowUnlockedControl",
            code: status,
        });
    }
    Ok(())
}

/// Installs the driver from `inf` on a new `Root\DpcLock` devnode, as
/// `devcon install` does, and waits up to `timeout` for its interface.
///
/// # Errors
///
/// [`Error`], with what to do about it.
pub fn install(inf: &Path, allow_unlocked: bool, timeout: Duration) -> Result<Installed, Error> {
    if !is_elevated() {
        return Err(Error::NotElevated);
    }
    let inf = std::path::absolute(inf).map_err(|_| Error::InfMissing(inf.to_owned()))?;
    if !inf.is_file() {
        return Err(Error::InfMissing(inf));
    }
    let sys = inf.with_file_name("dpclock.sys");
    if !sys.is_file() {
        return Err(Error::SysMissing(sys));
    }
    let (_set, existing) = dpclock_devnodes()?;
    if !existing.is_empty() {
        return Ok(Installed::Already(
            existing.into_iter().map(|(_, id)| id).collect(),
        ));
    }
    write_unlocked_control(allow_unlocked)?;

    let inf_wide = wide(&inf.to_string_lossy());
    // SAFETY: plain data for SetupDiGetINFClass to fill.
    let mut class: GUID = unsafe { std::mem::zeroed() };
    let mut class_name = [0_u16; 64];
    // SAFETY: buffers of the sizes passed.
    if unsafe {
        SetupDiGetINFClassW(
            inf_wide.as_ptr(),
            &mut class,
            class_name.as_mut_ptr(),
            class_name.len() as u32,
            ptr::null_mut(),
        )
    } == 0
    {
        return Err(Win32Error::last("SetupDiGetINFClass (is the INF valid?)").into());
    }
    // SAFETY: a new, empty set of the INF's class.
    let set = unsafe { SetupDiCreateDeviceInfoList(&class, ptr::null_mut()) };
    if set == INVALID_HANDLE_VALUE as isize {
        return Err(Win32Error::last("SetupDiCreateDeviceInfoList").into());
    }
    let set = DeviceInfoSet(set);
    let mut data = zeroed_devinfo();
    // SAFETY: devcon's recipe: a generated instance ID under ROOT\<class>.
    if unsafe {
        SetupDiCreateDeviceInfoW(
            set.0,
            class_name.as_ptr(),
            &class,
            ptr::null(),
            ptr::null_mut(),
            DICD_GENERATE_ID,
            &mut data,
        )
    } == 0
    {
        return Err(Win32Error::last("SetupDiCreateDeviceInfo").into());
    }
    let hardware_ids: Vec<u16> = HARDWARE_ID.encode_utf16().chain([0, 0]).collect();
    // SAFETY: a REG_MULTI_SZ of the size passed.
    if unsafe {
        SetupDiSetDeviceRegistryPropertyW(
            set.0,
            &mut data,
            SPDRP_HARDWAREID,
            hardware_ids.as_ptr().cast(),
            (hardware_ids.len() * 2) as u32,
        )
    } == 0
    {
        return Err(Win32Error::last("setting the hardware ID").into());
    }
    // SAFETY: registers the devnode described above.
    if unsafe { SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set.0, &data) } == 0 {
        return Err(Win32Error::last("DIF_REGISTERDEVICE").into());
    }
    let instance = instance_id(&set, &data);

    let hardware_id = wide(HARDWARE_ID);
    let mut reboot = 0;
    // SAFETY: NUL-terminated strings; no parent window.
    let updated = unsafe {
        UpdateDriverForPlugAndPlayDevicesW(
            ptr::null_mut(),
            hardware_id.as_ptr(),
            inf_wide.as_ptr(),
            INSTALLFLAG_FORCE,
            &mut reboot,
        )
    };
    if updated == 0 {
        let error = Win32Error::last("UpdateDriverForPlugAndPlayDevices");
        // Leave nothing half-installed behind.
        // SAFETY: the devnode registered above.
        unsafe { SetupDiCallClassInstaller(DIF_REMOVE, set.0, &data) };
        return Err(error.into());
    }
    let start_error = start_service_for_wine(timeout)?;
    wait_for_interface(timeout).map_err(|()| Error::DriverDidNotStart {
        service: service_state(),
        start_error,
    })?;
    Ok(Installed::Now(instance))
}

/// Wine 8.0 only: its SetupAPI creates the service but cannot open it to
/// start it ("Failed to open service"), so the driver never loads and the
/// device never starts. Starting the service makes Wine's PnP manager call
/// AddDevice and IRP_MN_START_DEVICE. On Windows the service is already
/// running by now, and this does nothing.
fn start_service_for_wine(timeout: Duration) -> Result<Option<Win32Error>, Error> {
    let deadline = Instant::now() + timeout;
    let service = Service::open(SERVICE_START | SERVICE_QUERY_STATUS)?;
    loop {
        // SAFETY: an open service handle; no arguments.
        if unsafe { StartServiceW(service.0, 0, ptr::null()) } != 0 {
            return Ok(None);
        }
        let error = Win32Error::last("StartService(dpclock)");
        match error.code {
            ERROR_SERVICE_ALREADY_RUNNING => return Ok(None),
            // Right after an install the service database can be busy.
            ERROR_SERVICE_DATABASE_LOCKED if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(250))
            }
            _ => return Ok(Some(error)),
        }
    }
}

fn wait_for_interface(timeout: Duration) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while interface_paths().is_empty() {
        if Instant::now() >= deadline {
            return Err(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A service handle with its manager, closed on drop.
struct Service(SC_HANDLE, SC_HANDLE);

impl Service {
    fn open(access: u32) -> Result<Self, Win32Error> {
        // SAFETY: the local service manager.
        let manager = unsafe { OpenSCManagerW(ptr::null(), ptr::null(), SC_MANAGER_CONNECT) };
        if manager.is_null() {
            return Err(Win32Error::last("OpenSCManager"));
        }
        let name = wide(SERVICE);
        // SAFETY: an open manager and a NUL-terminated name.
        let service = unsafe { OpenServiceW(manager, name.as_ptr(), access) };
        if service.is_null() {
            let error = Win32Error::last("OpenService(dpclock)");
            // SAFETY: opened above.
            unsafe { CloseServiceHandle(manager) };
            return Err(error);
        }
        Ok(Self(service, manager))
    }

    fn status(&self) -> Option<SERVICE_STATUS> {
        // SAFETY: plain data for QueryServiceStatus to fill.
        let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
        // SAFETY: an open handle with SERVICE_QUERY_STATUS.
        (unsafe { QueryServiceStatus(self.0, &mut status) } != 0).then_some(status)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: handles opened in `open`, closed once.
        unsafe {
            CloseServiceHandle(self.0);
            CloseServiceHandle(self.1);
        }
    }
}

/// The process that hosts the driver (the service's process), if it runs.
#[must_use]
pub fn service_process_id() -> Option<u32> {
    use windows_sys::Win32::System::Services::{SC_STATUS_PROCESS_INFO, SERVICE_STATUS_PROCESS};
    let service = Service::open(SERVICE_QUERY_STATUS).ok()?;
    // SAFETY: plain data for QueryServiceStatusEx to fill.
    let mut status: SERVICE_STATUS_PROCESS = unsafe { std::mem::zeroed() };
    let mut needed = 0;
    // SAFETY: an open handle with SERVICE_QUERY_STATUS and a buffer of the
    // size passed.
    let ok = unsafe {
        QueryServiceStatusEx(
            service.0,
            SC_STATUS_PROCESS_INFO,
            (&raw mut status).cast(),
            size_of::<SERVICE_STATUS_PROCESS>() as u32,
            &mut needed,
        )
    };
    (ok != 0 && status.dwProcessId != 0).then_some(status.dwProcessId)
}

/// The service's state, for error messages.
fn service_state() -> String {
    match Service::open(SERVICE_QUERY_STATUS) {
        Err(error) if error.code == ERROR_SERVICE_DOES_NOT_EXIST => "not installed".to_owned(),
        Err(error) => format!("unknown ({error})"),
        Ok(service) => match service.status() {
            None => "unknown".to_owned(),
            Some(s) if s.dwCurrentState == SERVICE_RUNNING => "running".to_owned(),
            Some(s) if s.dwCurrentState == SERVICE_STOPPED => {
                format!(
                    "stopped (exit code {}, service exit code {:#x})",
                    s.dwWin32ExitCode, s.dwServiceSpecificExitCode
                )
            }
            Some(s) => format!("in state {}", s.dwCurrentState),
        },
    }
}

/// Removes every `Root\DpcLock` devnode, as `devcon remove Root\DpcLock`
/// does (`DIF_REMOVE`), and waits up to `timeout` for the interface to go.
///
/// # Errors
///
/// [`Error`], with what to do about it.
pub fn uninstall(timeout: Duration) -> Result<Uninstalled, Error> {
    if !is_elevated() {
        return Err(Error::NotElevated);
    }
    let (set, devnodes) = dpclock_devnodes()?;
    if devnodes.is_empty() {
        return Ok(Uninstalled::NotInstalled);
    }
    let mut removed = Vec::new();
    for (data, id) in devnodes {
        // SAFETY: a devnode of the live set.
        if unsafe { SetupDiCallClassInstaller(DIF_REMOVE, set.0, &data) } == 0 {
            return Err(Win32Error::last("DIF_REMOVE").into());
        }
        removed.push(id);
    }
    let deadline = Instant::now() + timeout;
    while !interface_paths().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    stop_service_for_wine(deadline)?;
    Ok(Uninstalled::Removed(removed))
}

/// Wine only: stops the driver's service once its devices are gone, as
/// Windows does by itself (there, the service is already stopped and this
/// does nothing). Waits until `deadline` for DriverUnload to finish.
fn stop_service_for_wine(deadline: Instant) -> Result<(), Error> {
    let service = match Service::open(SERVICE_STOP | SERVICE_QUERY_STATUS) {
        Ok(service) => service,
        Err(error) if error.code == ERROR_SERVICE_DOES_NOT_EXIST => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if service
        .status()
        .is_some_and(|s| s.dwCurrentState == SERVICE_STOPPED)
    {
        return Ok(());
    }
    // SAFETY: plain data for ControlService to fill.
    let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: an open handle with SERVICE_STOP. Failure (for instance
    // ERROR_SERVICE_NOT_ACTIVE, when Windows already unloaded the driver)
    // leaves the state check below to decide.
    unsafe { ControlService(service.0, SERVICE_CONTROL_STOP, &mut status) };
    while Instant::now() < deadline {
        if service
            .status()
            .is_none_or(|s| s.dwCurrentState == SERVICE_STOPPED)
        {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Win32(Win32Error {
        step: "stopping the dpclock service (still running)",
        code: 1053,
    }))
}
