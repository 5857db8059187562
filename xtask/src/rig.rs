//! The rig: dpclock's own build of Wine's ntoskrnl.exe, which models what
//! Windows enforces and Wine 8.0 does not (the per-thread IRQL, queued DPCs,
//! Driver Verifier's spin-lock checks; docs/linux-flavor.md).
//!
//! It is built from Debian's `wine` source package, the version installed,
//! with the project's own files and hooks (`rig/wine/`), by
//! `rig/wine/build.sh`. The result is cached under
//! `/var/cache/dpclock/wine-rig/<wine version>-<hash of rig/wine>`, so only
//! the first run on a machine pays for the build (about two minutes).
//!
//! `DPCLOCK_WINE_RIG=stock` selects Wine's own ntoskrnl.exe instead: the
//! driver then finds IRQL not modelled and every report says so. Nothing
//! falls back to stock Wine silently: a rig that cannot be built fails the
//! run, and every session proves which ntoskrnl.exe its driver host loaded.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{
    cross::workspace,
    fail,
    process::{Result, display, run_captured},
};

/// Where rig builds and the Wine sources are kept between runs.
const CACHE: &str = "/var/cache/dpclock";
/// The environment variable that selects the rig.
pub const RIG_VARIABLE: &str = "DPCLOCK_WINE_RIG";
/// The first words of the line the rig's ntoskrnl.exe prints when it loads.
pub const MARKER: &str = "dpclock-rig: ntoskrnl.exe ";

/// Which ntoskrnl.exe the driver host runs.
#[derive(Clone, Debug)]
pub enum Rig {
    /// The rig's build, with its cache key (printed in its marker line).
    Modelled {
        /// The cached build.
        ntoskrnl: PathBuf,
        /// Its cache key, which its marker line repeats.
        key: String,
    },
    /// Wine's own: no IRQL, no queued DPCs, no checks.
    Stock,
}

impl Rig {
    /// The marker line the driver host's log must hold, if any.
    #[must_use]
    pub fn marker(&self) -> Option<String> {
        match self {
            Self::Modelled { key, .. } => Some(format!("{MARKER}{key} loaded")),
            Self::Stock => None,
        }
    }
}

/// The rig this process uses, built (or found in the cache) once.
///
/// # Errors
///
/// If `DPCLOCK_WINE_RIG` has an unknown value, or the rig cannot be built.
pub fn selected() -> Result<Rig> {
    static RIG: OnceLock<std::result::Result<Rig, String>> = OnceLock::new();
    RIG.get_or_init(|| choose().map_err(|e| e.0))
        .clone()
        .map_err(crate::process::Error)
}

fn choose() -> Result<Rig> {
    match std::env::var(RIG_VARIABLE).as_deref() {
        Ok("stock") => {
            eprintln!("  wine rig: stock Wine ({RIG_VARIABLE}=stock): IRQL not modelled");
            Ok(Rig::Stock)
        }
        Ok("model") | Ok("") | Err(_) => ensure_built(),
        Ok(other) => Err(fail!(
            "{RIG_VARIABLE}={other}: the choices are `model` (the default) and `stock`"
        )),
    }
}

/// The files whose content makes up the rig (the cache key hashes them).
fn rig_files() -> Vec<PathBuf> {
    let dir = workspace().join("rig").join("wine");
    vec![
        dir.join("build.sh"),
        dir.join("hooks.patch"),
        dir.join("ntoskrnl").join("rig.c"),
        dir.join("ntoskrnl").join("rig.h"),
    ]
}

fn wine_version() -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "wine"])
        .output()
        .map_err(|e| fail!("cannot run dpkg-query: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version.is_empty() {
        return Err(fail!("Debian's wine package is not installed"));
    }
    Ok(version)
}

fn sha256(bytes: &[u8]) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| fail!("cannot run sha256sum: {e}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| fail!("sha256sum has no stdin"))?
        .write_all(bytes)
        .map_err(|e| fail!("writing to sha256sum: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| fail!("sha256sum: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// `<wine version>-<first 16 hex digits of the rig files' hash>`.
///
/// # Errors
///
/// If a rig file cannot be read or Wine is not installed.
pub fn cache_key() -> Result<String> {
    let mut all = Vec::new();
    for file in rig_files() {
        let bytes = fs::read(&file).map_err(|e| fail!("cannot read {}: {e}", display(&file)))?;
        all.extend_from_slice(file.file_name().unwrap_or_default().as_encoded_bytes());
        all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        all.extend_from_slice(&bytes);
    }
    let hash = sha256(&all)?;
    Ok(format!("{}-{}", wine_version()?, &hash[..16]))
}

fn ensure_built() -> Result<Rig> {
    let key = cache_key()?;
    let dir = Path::new(CACHE).join("wine-rig").join(&key);
    let ntoskrnl = dir.join("ntoskrnl.exe");
    if ntoskrnl.is_file() {
        eprintln!("  wine rig: {} (cached)", display(&ntoskrnl));
        return Ok(Rig::Modelled { ntoskrnl, key });
    }
    let started = Instant::now();
    eprintln!("  wine rig: building ntoskrnl.exe {key} (about 2 minutes, once per machine)");
    let (orig, debian) = wine_sources(&key)?;
    fs::create_dir_all(&dir).map_err(|e| fail!("cannot create {}: {e}", display(&dir)))?;
    let work = Path::new(CACHE)
        .join("wine-rig")
        .join(format!("build-{}", std::process::id()));
    let mut build = Command::new("sh");
    build
        .arg(workspace().join("rig").join("wine").join("build.sh"))
        .arg(&orig)
        .arg(&debian)
        .arg(&work)
        .arg(&ntoskrnl)
        .arg(&key);
    let output = run_captured(&mut build, Duration::from_secs(30 * 60))?;
    let _ = fs::remove_dir_all(&work);
    if !output.success() || !ntoskrnl.is_file() {
        return Err(fail!(
            "building the rig's ntoskrnl.exe failed (set {RIG_VARIABLE}=stock to run on stock Wine, where IRQL is not modelled):\n{output}"
        ));
    }
    eprintln!(
        "  wine rig: built {} in {:.0} s",
        display(&ntoskrnl),
        started.elapsed().as_secs_f64()
    );
    Ok(Rig::Modelled { ntoskrnl, key })
}

/// Debian's source package for the installed Wine, fetched once with a
/// private APT configuration (the system's /etc/apt is left as it is).
fn wine_sources(key: &str) -> Result<(PathBuf, PathBuf)> {
    let version = key.rsplit_once('-').map_or(key, |(v, _)| v).to_owned();
    let upstream = version.split_once('-').map_or(version.as_str(), |(u, _)| u);
    let dir = Path::new(CACHE).join("wine-src");
    let orig = dir.join(format!("wine_{upstream}.orig.tar.xz"));
    let debian = dir.join(format!("wine_{version}.debian.tar.xz"));
    if orig.is_file() && debian.is_file() {
        return Ok((orig, debian));
    }
    let lists = dir.join("lists");
    fs::create_dir_all(lists.join("partial"))
        .map_err(|e| fail!("cannot create {}: {e}", display(&lists)))?;
    let sources = dir.join("sources.list");
    fs::write(
        &sources,
        "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n",
    )
    .map_err(|e| fail!("cannot write {}: {e}", display(&sources)))?;
    let apt = |args: &[&str]| -> Result<()> {
        let mut command = Command::new("apt-get");
        command
            .current_dir(&dir)
            .arg("-q")
            .arg(format!("-oDir::Etc::sourcelist={}", display(&sources)))
            .arg("-oDir::Etc::sourceparts=-")
            .arg(format!("-oDir::State::Lists={}", display(&lists)))
            .arg("-oAPT::Get::List-Cleanup=0")
            .args(args);
        let output = run_captured(&mut command, Duration::from_secs(15 * 60))?;
        if output.success() {
            Ok(())
        } else {
            Err(fail!(
                "fetching Debian's wine source package failed:\n{output}"
            ))
        }
    };
    apt(&["update"])?;
    apt(&["--download-only", "source", &format!("wine={version}")])?;
    if orig.is_file() && debian.is_file() {
        Ok((orig, debian))
    } else {
        Err(fail!(
            "apt-get source wine={version} did not leave {} and {}",
            display(&orig),
            display(&debian)
        ))
    }
}

/// Puts the rig's ntoskrnl.exe into a prefix that no Wine process runs in
/// yet: a native module in system32, preferred by a DLL override.
///
/// # Errors
///
/// If the prefix cannot be written.
pub fn install(rig: &Rig, prefix: &Path) -> Result<()> {
    let Rig::Modelled { ntoskrnl, .. } = rig else {
        return Ok(());
    };
    let target = prefix
        .join("drive_c")
        .join("windows")
        .join("system32")
        .join("ntoskrnl.exe");
    fs::copy(ntoskrnl, &target).map_err(|e| fail!("cannot copy the rig into the prefix: {e}"))?;
    let user_reg = prefix.join("user.reg");
    let mut reg = fs::OpenOptions::new()
        .append(true)
        .open(&user_reg)
        .map_err(|e| fail!("cannot open {}: {e}", display(&user_reg)))?;
    reg.write_all(b"\n[Software\\\\Wine\\\\DllOverrides]\n\"ntoskrnl.exe\"=\"native\"\n")
        .map_err(|e| fail!("cannot write {}: {e}", display(&user_reg)))
}

/// The misuse driver and its client (`rig/misuse/`), the negative controls
/// of the rig's checks, built with mingw-w64 into `target/misuse/`.
///
/// # Errors
///
/// If a compile fails.
pub fn build_misuse() -> Result<(PathBuf, PathBuf)> {
    let source = workspace().join("rig").join("misuse");
    let out = crate::cross::target_dir().join("misuse");
    fs::create_dir_all(&out).map_err(|e| fail!("cannot create {}: {e}", display(&out)))?;
    let driver = out.join("misuse.sys");
    let client = out.join("misuse_client.exe");
    let mut build_driver = Command::new("x86_64-w64-mingw32-gcc");
    build_driver
        .args([
            "-O2",
            "-Wall",
            "-Werror",
            "-shared",
            "-nostdlib",
            "-nostartfiles",
        ])
        .args(["-Wl,--subsystem,native", "-Wl,--entry,DriverEntry"])
        .arg("-I/usr/share/mingw-w64/include/ddk")
        .arg("-o")
        .arg(&driver)
        .arg(source.join("misuse.c"))
        .args(["-lntoskrnl", "-lhal"]);
    let mut build_client = Command::new("x86_64-w64-mingw32-gcc");
    build_client
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&client)
        .arg(source.join("client.c"));
    for command in [&mut build_driver, &mut build_client] {
        let output = run_captured(command, Duration::from_secs(120))?;
        if !output.success() {
            return Err(fail!("building the misuse driver failed:\n{output}"));
        }
    }
    Ok((driver, client))
}
