//! Running commands: echoed, checked, and (for anything that can hang, such
//! as Wine) bounded by a timeout that kills the whole process group.

use std::{
    ffi::OsStr,
    fmt,
    io::Read,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    /// Exit status (`None` if it was killed for running too long).
    pub status: Option<ExitStatus>,
    /// Standard output, with Wine's `\r` removed.
    pub stdout: String,
    /// Standard error, likewise.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Exited with status 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The exit code, if it exited.
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Killed by the timeout.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            None => writeln!(
                f,
                "(killed after {:.1} s: timed out)",
                self.elapsed.as_secs_f64()
            )?,
            Some(status) => writeln!(f, "({status} after {:.1} s)", self.elapsed.as_secs_f64())?,
        }
        if !self.stdout.trim().is_empty() {
            writeln!(f, "--- stdout\n{}", self.stdout.trim_end())?;
        }
        if !self.stderr.trim().is_empty() {
            writeln!(f, "--- stderr\n{}", self.stderr.trim_end())?;
        }
        Ok(())
    }
}

/// An error with what to do about it.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result of xtask steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error`] from a format string.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::process::Error(format!($($arg)*)) };
}

/// A command line, for messages.
#[must_use]
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` with inherited output; fails unless it exits with 0.
///
/// # Errors
///
/// If it cannot start or does not succeed.
pub fn run(command: &mut Command) -> Result<()> {
    eprintln!("  $ {}", describe(command));
    let status = command
        .status()
        .map_err(|e| fail!("cannot run `{}`: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail!("`{}` failed ({status})", describe(command)))
    }
}

/// Runs `command` like [`run`] (output inherited, exit status checked), in
/// its own process group, killing the group if it runs longer than
/// `timeout`.
///
/// # Errors
///
/// If it cannot start, does not succeed, or times out.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Result<()> {
    eprintln!("  $ {}", describe(command));
    let start = Instant::now();
    let mut child = command
        .process_group(0)
        .spawn()
        .map_err(|e| fail!("cannot run `{}`: {e}", describe(command)))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail!("`{}` failed ({status})", describe(command))),
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(fail!(
                    "`{}` did not finish within {} s and was killed",
                    describe(command),
                    timeout.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(fail!("waiting for `{}`: {e}", describe(command))),
        }
    }
}

/// Runs `command` in its own process group with captured output, killing the
/// group if it runs longer than `timeout`.
///
/// # Errors
///
/// If it cannot be started.
pub fn run_captured(command: &mut Command, timeout: Duration) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| fail!("cannot run `{}`: {e}", describe(command)))?;
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let out = thread::spawn(move || read_all(stdout.as_mut()));
    let err = thread::spawn(move || read_all(stderr.as_mut()));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(child.id());
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail!("waiting for `{}`: {e}", describe(command))),
        }
    };
    // A killed group may leave grandchildren holding the pipes; do not wait
    // for them forever.
    let collect = |handle: thread::JoinHandle<String>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !handle.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if handle.is_finished() {
            handle.join().unwrap_or_default()
        } else {
            String::from("(output abandoned)")
        }
    };
    Ok(Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
        elapsed: start.elapsed(),
    })
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).replace('\r', "")
}

/// Kills every process of the group `pgid`.
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(format!("-{pgid}"))
        .status();
}

/// Whether `program` is on the PATH.
#[must_use]
pub fn on_path(program: impl AsRef<OsStr>) -> bool {
    let program = program.as_ref();
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `path` as UTF-8, for commands and messages.
#[must_use]
pub fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A command running beside the caller's work, its output going to a log
/// file (so that it does not interleave with the foreground's), joined later
/// with a timeout.
pub struct Background {
    what: String,
    child: Option<std::process::Child>,
    log: std::path::PathBuf,
    started: Instant,
}

impl Background {
    /// Starts `command` in its own process group, stdout and stderr into
    /// `log`.
    ///
    /// # Errors
    ///
    /// If the log cannot be created or the command cannot start.
    pub fn start(what: &str, command: &mut Command, log: &Path) -> Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail!("cannot create {}: {e}", dir.display()))?;
        }
        let file = std::fs::File::create(log)
            .map_err(|e| fail!("cannot create {}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| fail!("cannot reopen {}: {e}", log.display()))?;
        eprintln!(
            "  started in the background: {what}\n    $ {}\n    log: {}",
            describe(command),
            log.display()
        );
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| fail!("cannot run `{}`: {e}", describe(command)))?;
        Ok(Self {
            what: what.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            started: Instant::now(),
        })
    }

    /// Waits for the command, killing its process group if it has run
    /// `timeout` in all. Returns how long it ran.
    ///
    /// # Errors
    ///
    /// If it failed or timed out; the error holds the end of its log.
    pub fn join(mut self, timeout: Duration) -> Result<Duration> {
        let Some(mut child) = self.child.take() else {
            return Err(fail!("{} was joined twice", self.what));
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if self.started.elapsed() >= timeout => {
                    kill_group(child.id());
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => thread::sleep(Duration::from_millis(100)),
                Err(e) => return Err(fail!("waiting for {}: {e}", self.what)),
            }
        };
        let elapsed = self.started.elapsed();
        if status.is_some_and(|s| s.success()) {
            return Ok(elapsed);
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let how = match status {
            None => format!(
                "did not finish within {} s and was killed",
                timeout.as_secs()
            ),
            Some(status) => format!("failed ({status}) after {:.1} s", elapsed.as_secs_f64()),
        };
        Err(fail!(
            "{} {how}; the end of its log ({}):\n{tail}",
            self.what,
            self.log.display()
        ))
    }
}

impl Drop for Background {
    /// A command never joined (the foreground failed first) is killed, so
    /// that nothing outlives xtask.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}
