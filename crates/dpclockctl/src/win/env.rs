//! Facts about where the harness runs.

use windows_sys::{
    Wdk::System::SystemServices::RtlGetVersion,
    Win32::{
        Foundation::{CloseHandle, HANDLE},
        Security::{GetTokenInformation, TOKEN_ELEVATION, TOKEN_QUERY, TokenElevation},
        System::{
            LibraryLoader::{GetModuleHandleW, GetProcAddress},
            SystemInformation::OSVERSIONINFOW,
            Threading::{GetCurrentProcess, OpenProcessToken},
        },
    },
};

use super::wide;

/// Wine's version, if the harness runs under Wine (ntdll exports
/// `wine_get_version` there and nowhere else).
pub fn wine_version() -> Option<String> {
    let ntdll = wide("ntdll.dll");
    // SAFETY: ntdll is loaded in every process; the name is NUL-terminated.
    let proc = unsafe {
        GetProcAddress(
            GetModuleHandleW(ntdll.as_ptr()),
            c"wine_get_version".as_ptr().cast(),
        )
    }?;
    // SAFETY: wine_get_version takes nothing and returns a static C string.
    let version = unsafe {
        let get: unsafe extern "C" fn() -> *const std::ffi::c_char = std::mem::transmute(proc);
        std::ffi::CStr::from_ptr(get())
    };
    Some(version.to_string_lossy().into_owned())
}

/// "Windows 10.0.19045" or "Wine 8.0 (Debian 8.0~repack-4)".
pub fn os_description() -> String {
    if let Some(wine) = wine_version() {
        return format!("Wine {wine}");
    }
    // SAFETY: plain data with its size set, as RtlGetVersion requires.
    let mut info: OSVERSIONINFOW = unsafe { std::mem::zeroed() };
    info.dwOSVersionInfoSize = size_of::<OSVERSIONINFOW>() as u32;
    // SAFETY: a sized out-structure.
    unsafe { RtlGetVersion(&mut info) };
    format!(
        "Windows {}.{}.{}",
        info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber
    )
}

/// Whether the process runs elevated (installing needs it).
pub fn is_elevated() -> bool {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the current process's pseudo-handle; the token is closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return false;
    }
    let mut elevation = TOKEN_ELEVATION { TokenIsElevated: 0 };
    let mut returned = 0;
    // SAFETY: a sized out-structure for TokenElevation.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenElevation,
            (&raw mut elevation).cast(),
            size_of::<TOKEN_ELEVATION>() as u32,
            &mut returned,
        )
    };
    // SAFETY: the token opened above.
    unsafe { CloseHandle(token) };
    ok != 0 && elevation.TokenIsElevated != 0
}
