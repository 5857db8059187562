//! Wine sessions for running the driver.
//!
//! Each session gets its own prefix, copied from a template made once with
//! `wineboot --init`, so that nothing one run installs can leak into the
//! next. The session's first Wine process starts the service manager,
//! which, and every driver host process (winedevice.exe) it starts,
//! inherits that process's stderr and WINEDEBUG: that is how the driver's
//! DbgPrint output (channel `debugstr`, level warn) reaches the session log.
//! Every command is bounded by a timeout, and a session that ends kills all
//! of its processes.

use std::{
    ffi::OsStr,
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::{
    cross::target_dir,
    fail,
    process::{Output, Result, display, run_captured},
    rig::{self, Rig},
};

/// Channels in the session log: errors, the driver's DbgPrint, and imports
/// Wine cannot resolve (the cause of most aborting drivers).
const SESSION_WINEDEBUG: &str = "-all,err+all,warn+debugstr,warn+module";
/// Keeps Wine from offering to install Mono and Gecko.
const DLL_OVERRIDES: &str = "mscoree,mshtml=";

fn wine_env(command: &mut Command, prefix: &Path) {
    command
        .env("WINEPREFIX", prefix)
        .env("WINEARCH", "win64")
        .env("WINEDLLOVERRIDES", DLL_OVERRIDES)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
}

fn wineserver(prefix: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    let mut command = Command::new("wineserver");
    wine_env(&mut command, prefix);
    command.args(args);
    run_captured(&mut command, timeout)
}

/// The template prefix, made once (`wineboot --init` takes about 10 s).
fn template() -> Result<PathBuf> {
    let template = target_dir().join("wine").join("template");
    if template.join("system.reg").is_file() && template.join("drive_c").is_dir() {
        return Ok(template);
    }
    let staging = target_dir()
        .join("wine")
        .join(format!("template-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| fail!("cannot create {}: {e}", display(&staging)))?;
    let mut init = Command::new("wine");
    wine_env(&mut init, &staging);
    init.env("WINEDEBUG", "-all").args(["wineboot", "--init"]);
    let output = run_captured(&mut init, Duration::from_secs(180))?;
    let _ = wineserver(&staging, &["-w"], Duration::from_secs(60));
    if !output.success() || !staging.join("system.reg").is_file() {
        let _ = wineserver(&staging, &["-k"], Duration::from_secs(20));
        return Err(fail!("creating the Wine prefix failed:\n{output}"));
    }
    // Another run may have made it meanwhile; keep whichever landed first.
    if fs::rename(&staging, &template).is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    Ok(template)
}

static SESSIONS: AtomicU32 = AtomicU32::new(0);

/// A running Wine session with its own prefix.
pub struct Session {
    prefix: PathBuf,
    log: PathBuf,
    name: String,
    rig: Rig,
}

impl Session {
    /// Starts a session named `name` (its folder and log are named after it).
    ///
    /// # Errors
    ///
    /// If the prefix cannot be made or Wine does not come up.
    pub fn start(name: &str) -> Result<Self> {
        let rig = rig::selected()?;
        let template = template()?;
        let number = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{name}-{}-{number}", std::process::id());
        let root = target_dir().join("wine").join("sessions");
        let prefix = root.join(&name);
        let log = root.join(format!("{name}.log"));
        let _ = fs::remove_dir_all(&prefix);
        fs::create_dir_all(&root).map_err(|e| fail!("cannot create {}: {e}", display(&root)))?;
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&prefix)
            .status()
            .map_err(|e| fail!("cannot copy the Wine prefix: {e}"))?;
        if !copied.success() {
            return Err(fail!(
                "copying the Wine prefix to {} failed",
                display(&prefix)
            ));
        }
        rig::install(&rig, &prefix)?;
        let session = Self {
            prefix,
            log,
            name,
            rig,
        };
        // A server that outlives each client, until `wineserver -k`.
        let server = wineserver(&session.prefix, &["-p"], Duration::from_secs(30))?;
        if !server.success() {
            return Err(fail!("wineserver did not start:\n{server}"));
        }
        // The first Wine process: its stderr and WINEDEBUG are inherited by
        // the service manager and the driver host, so they go to the log.
        let boot = |append: bool| -> Result<std::process::ExitStatus> {
            let log_file = File::options()
                .create(true)
                .append(append)
                .write(true)
                .truncate(!append)
                .open(&session.log)
                .map_err(|e| fail!("cannot create {}: {e}", display(&session.log)))?;
            let mut boot = Command::new("wine");
            wine_env(&mut boot, &session.prefix);
            boot.env("WINEDEBUG", SESSION_WINEDEBUG)
                .arg("wineboot")
                .stdout(Stdio::null())
                .stderr(log_file)
                .stdin(Stdio::null());
            boot.status().map_err(|e| fail!("cannot run wine: {e}"))
        };
        let started = Instant::now();
        let mut status = boot(false)?;
        // Wine 8.0's loader sometimes finds the address of its shared user
        // data taken (STATUS_CONFLICTING_ADDRESSES, seen once in a CI run):
        // an address-space clash of that one process, not the driver's
        // doing. One more try, said out loud.
        if !status.success()
            && session
                .log_tail(40)
                .contains("failed to map the shared user data")
        {
            eprintln!(
                "  wine session {}: Wine could not map its shared user data (an address clash in Wine's loader); running wineboot once more",
                session.name
            );
            status = boot(true)?;
        }
        if !status.success() {
            return Err(fail!(
                "wineboot failed ({status}); log:\n{}",
                session.log_tail(40)
            ));
        }
        eprintln!(
            "  wine session {} ready in {:.1} s (log: {})",
            session.name,
            started.elapsed().as_secs_f64(),
            display(&session.log)
        );
        Ok(session)
    }

    /// The ntoskrnl.exe this session's driver hosts run.
    #[must_use]
    pub fn rig(&self) -> &Rig {
        &self.rig
    }

    /// Proves that the driver host runs the ntoskrnl.exe this session chose:
    /// the rig's marker line with the rig's key in the log, or, on stock
    /// Wine, no marker at all. Call it once a driver has been started.
    ///
    /// # Errors
    ///
    /// Naming what was loaded instead.
    pub fn check_rig(&self) -> Result<()> {
        let log = self.log_text();
        match self.rig.marker() {
            Some(marker) if log.contains(&marker) => Ok(()),
            Some(marker) => Err(fail!(
                "the driver host did not load the rig's ntoskrnl.exe: no `{marker}` line in {}; stock Wine must be chosen explicitly ({}=stock)",
                display(&self.log),
                rig::RIG_VARIABLE
            )),
            None if log.contains(rig::MARKER) => Err(fail!(
                "stock Wine was chosen, but the driver host loaded the rig's ntoskrnl.exe (log: {})",
                display(&self.log)
            )),
            None => Ok(()),
        }
    }

    /// The session's prefix.
    #[must_use]
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The session log (DbgPrint output of the driver among it).
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Runs `wine PROGRAM ARGS…` in `dir`, with client-side debug output off,
    /// killing it after `timeout`.
    ///
    /// # Errors
    ///
    /// If it cannot be started.
    pub fn wine<I, S>(
        &self,
        dir: &Path,
        program: impl AsRef<OsStr>,
        args: I,
        timeout: Duration,
    ) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_captured(&mut self.wine_command(dir, program, args), timeout)
    }

    /// `wine PROGRAM ARGS…` in `dir`, in this session's prefix, with
    /// client-side debug output off (the driver's goes to the session log).
    fn wine_command<I, S>(&self, dir: &Path, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("wine");
        wine_env(&mut command, &self.prefix);
        command
            .env("WINEDEBUG", "-all")
            .current_dir(dir)
            .arg(program)
            .args(args);
        command
    }

    /// Like [`Session::wine`], but with the output going straight to this
    /// process's stdout and stderr (for `cargo xtask stress`). Returns the
    /// exit code, or `None` if it had to be killed.
    ///
    /// # Errors
    ///
    /// If it cannot be started.
    pub fn wine_inherit<I, S>(
        &self,
        dir: &Path,
        program: impl AsRef<OsStr>,
        args: I,
        timeout: Duration,
    ) -> Result<Option<i32>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::os::unix::process::CommandExt;
        let mut child = self
            .wine_command(dir, program, args)
            .process_group(0)
            .spawn()
            .map_err(|e| fail!("cannot run wine: {e}"))?;
        let start = Instant::now();
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| fail!("waiting for wine: {e}"))?
            {
                return Ok(status.code());
            }
            if start.elapsed() >= timeout {
                crate::process::kill_group(child.id());
                let _ = child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole session log.
    #[must_use]
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .replace('\r', "")
    }

    /// The last `lines` lines of the session log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The driver's own DbgPrint lines (prefixed `dpclock:`).
    #[must_use]
    pub fn driver_lines(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter_map(|line| line.find("dpclock:").map(|at| line[at..].to_owned()))
            .collect()
    }

    /// Signs that the driver host died: an import Wine lacks was called, the
    /// driver panicked, or it bugchecked.
    #[must_use]
    pub fn driver_crash(&self) -> Option<String> {
        let log = self.log_text();
        // The rig's own line names the bugcheck and the check that raised it.
        if let Some(line) = log.lines().find(|l| l.contains("dpclock-rig: bugcheck")) {
            return Some(line.to_owned());
        }
        log.lines()
            .find(|line| {
                line.contains("unimplemented function")
                    || line.contains("Rust panic")
                    || line.contains("KeBugCheckEx")
                    || line.contains("Unhandled exception")
            })
            .map(str::to_owned)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ends every process of the session (the driver host included).
        let _ = wineserver(&self.prefix, &["-k"], Duration::from_secs(30));
        // Prefixes are large (about 700 MB); the log stays for inspection.
        let _ = fs::remove_dir_all(&self.prefix);
    }
}
