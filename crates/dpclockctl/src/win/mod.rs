//! The Win32 side: finding and opening the device, installing the driver,
//! and facts about the machine. Compiled on Windows (and for Wine) only.

pub mod conform;
pub mod device;
pub mod env;
pub mod install;
pub mod processes;
pub mod soak;

/// A UTF-16, NUL-terminated copy of `text`.
pub(crate) fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

/// A Win32 error with its system message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Win32Error {
    /// What was being done.
    pub step: &'static str,
    /// `GetLastError()`.
    pub code: u32,
}

impl Win32Error {
    /// The calling thread's last error, for `step`.
    pub(crate) fn last(step: &'static str) -> Self {
        // SAFETY: GetLastError has no preconditions.
        let code = unsafe { windows_sys::Win32::Foundation::GetLastError() };
        Self { step, code }
    }
}

impl std::fmt::Display for Win32Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use windows_sys::Win32::System::Diagnostics::Debug::{
            FORMAT_MESSAGE_FROM_SYSTEM, FORMAT_MESSAGE_IGNORE_INSERTS, FormatMessageW,
        };
        let mut buffer = [0_u16; 512];
        // SAFETY: a buffer of the length passed; system messages take no inserts.
        let len = unsafe {
            FormatMessageW(
                FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                std::ptr::null(),
                self.code,
                0,
                buffer.as_mut_ptr(),
                buffer.len() as u32,
                std::ptr::null(),
            )
        };
        let message = String::from_utf16_lossy(&buffer[..len as usize]);
        write!(
            f,
            "{}: Win32 error {} ({})",
            self.step,
            self.code,
            message.trim()
        )
    }
}

impl std::error::Error for Win32Error {}
