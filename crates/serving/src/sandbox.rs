//! Confinement of the code the server runs on a deployer's behalf: `score.py` entry scripts
//! and the pip that installs their requirements. Security-critical.
//!
//! The server never confines itself. It starts
//! `mlgate sandbox-exec [--read P].. [--write P].. [--memory N] --workdir D -- PROGRAM ARGS..`
//! with a cleared environment. That process, single-threaded and before any runtime starts:
//! sets the address-space limit, enters the working directory, restricts itself with Landlock
//! (the filesystem: only the listed paths, read-only or read-write; scopes: no signals to and
//! no abstract Unix sockets of processes outside the sandbox; Landlock also denies ptrace of
//! outside processes and any mount), drops every capability (bounding, effective, permitted,
//! inheritable and ambient sets), sets `no_new_privs`, and only then execs PROGRAM. The
//! worker program closes every inherited descriptor above 2 before user code runs.
//!
//! What the kernel cannot enforce is refused: the launcher exits with [`EXIT_REFUSED`] and
//! the reason on stderr, so a deployment fails rather than running unconfined. Running
//! unconfined needs the operator's explicit opt-out ([`Sandbox::unconfined`]).
//!
//! [`Policy`] builds what a confined Python may touch: the system's shared libraries and a
//! short list of `/etc` files, the interpreter's own prefix (and a virtualenv's base), its
//! own `/proc` entry, the paths the caller adds; never a path that overlaps one of the
//! protected paths (the data directory, the TLS key files).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The launcher's exit status when it will not run the program (nothing was executed).
pub const EXIT_REFUSED: i32 = 121;
/// The Landlock ABI whose rights the sandbox asks for: filesystem access including truncate
/// and device ioctls, and the signal / abstract-socket scopes.
const TARGET_ABI: ABI = ABI::V6;

/// What a confined process may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Read and execute, recursively.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove, recursively.
    pub write: Vec<PathBuf>,
    /// RLIMIT_AS, in bytes.
    pub memory_bytes: Option<u64>,
    pub workdir: PathBuf,
}

/// System locations every Python needs, read-only. `/etc` is listed file by file: it may
/// hold the operator's TLS key or other secrets.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/pki/tls/certs",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
    "/etc/passwd",
    "/etc/group",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/lsb-release",
    "/etc/redhat-release",
    "/etc/system-release",
    "/etc/alpine-release",
    "/etc/alternatives",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
];
const SYSTEM_WRITE: &[&str] = &["/dev/null", "/dev/full"];

/// Whether `a` and `b` overlap: one is the other or lies inside it.
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `{prefix}/bin/python3` -> `{prefix}`.
fn prefix_of(interpreter: &Path) -> Option<PathBuf> {
    let bin = interpreter.parent()?;
    let prefix = bin.parent()?;
    (prefix.parent().is_some()).then(|| prefix.to_path_buf())
}

/// The folders a Python interpreter runs from: its prefix as named and as resolved through
/// symlinks, and for a virtualenv the base installation named by `pyvenv.cfg`'s `home`.
pub fn interpreter_roots(interpreter: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let mut add = |p: Option<PathBuf>| {
        if let Some(p) = p {
            let p = canonical(&p);
            if !roots.contains(&p) {
                roots.push(p);
            }
        }
    };
    add(prefix_of(interpreter));
    add(prefix_of(&canonical(interpreter)));
    if let Some(venv) = prefix_of(interpreter)
        && let Ok(cfg) = std::fs::read_to_string(venv.join("pyvenv.cfg"))
    {
        for line in cfg.lines() {
            if let Some((k, v)) = line.split_once('=')
                && k.trim() == "home"
            {
                add(Path::new(v.trim()).parent().map(Path::to_path_buf));
            }
        }
    }
    roots
}

/// Resolves a bare program name through `PATH`, as a shell would.
pub fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

impl Policy {
    /// A policy for running `interpreter` with the system's files, the interpreter's roots,
    /// and `read` / `write` added by the caller. Fails if any derived path overlaps one of
    /// `protected`; the caller's own paths are checked against `protected` too, except the
    /// ones it lists in `allowed_inside` (a service's own model folder, say).
    pub fn for_python(
        interpreter: &Path,
        read: &[PathBuf],
        write: &[PathBuf],
        workdir: &Path,
        protected: &[PathBuf],
        allowed_inside: &[PathBuf],
    ) -> Result<Self, String> {
        let mut policy = Policy { workdir: workdir.to_path_buf(), ..Default::default() };
        let protected: Vec<PathBuf> = protected.iter().map(|p| canonical(p)).collect();
        let allowed: Vec<PathBuf> = allowed_inside.iter().map(|p| canonical(p)).collect();
        let check = |p: &Path, what: &str| -> Result<(), String> {
            if p.parent().is_none() {
                return Err(format!("{what} {} would expose the whole filesystem", p.display()));
            }
            let exempt = allowed.iter().any(|a| p.starts_with(a));
            match protected.iter().find(|q| overlaps(p, q)) {
                Some(q) if !exempt => Err(format!(
                    "{what} {} overlaps {}, which entry scripts may not read",
                    p.display(),
                    q.display()
                )),
                _ => Ok(()),
            }
        };
        let roots = interpreter_roots(interpreter);
        if roots.is_empty() {
            return Err(format!(
                "the interpreter {} is not inside a prefix (PREFIX/bin/python)",
                interpreter.display()
            ));
        }
        for root in roots {
            check(&root, "the interpreter's folder")?;
            policy.read.push(root);
        }
        for s in SYSTEM_READ {
            let p = Path::new(s);
            if p.exists() {
                check(&canonical(p), "the system folder")?;
                policy.read.push(p.to_path_buf());
            }
        }
        // Debian keeps sitecustomize and friends in /etc/python3.X.
        if let Ok(entries) = std::fs::read_dir("/etc") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("python3") {
                    policy.read.push(e.path());
                }
            }
        }
        for p in read {
            check(&canonical(p), "the folder")?;
            policy.read.push(p.clone());
        }
        for s in SYSTEM_WRITE {
            if Path::new(s).exists() {
                policy.write.push(PathBuf::from(s));
            }
        }
        for p in write {
            check(&canonical(p), "the folder")?;
            policy.write.push(p.clone());
        }
        Ok(policy)
    }

    fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["sandbox-exec".into()];
        for p in &self.read {
            args.push("--read".into());
            args.push(p.into());
        }
        for p in &self.write {
            args.push("--write".into());
            args.push(p.into());
        }
        if let Some(m) = self.memory_bytes {
            args.push("--memory".into());
            args.push(m.to_string().into());
        }
        args.push("--workdir".into());
        args.push(self.workdir.as_os_str().into());
        args.push("--".into());
        args
    }

    fn parse(args: &[OsString]) -> Result<(Self, Vec<OsString>), String> {
        let mut policy = Policy::default();
        let mut i = 0;
        let value = |i: usize| args.get(i + 1).cloned().ok_or("a flag lacks its value");
        while i < args.len() {
            match args[i].to_str() {
                Some("--read") => policy.read.push(value(i)?.into()),
                Some("--write") => policy.write.push(value(i)?.into()),
                Some("--workdir") => policy.workdir = value(i)?.into(),
                Some("--memory") => {
                    let v = value(i)?;
                    let n = v.to_str().and_then(|s| s.parse().ok()).ok_or("--memory: bytes")?;
                    policy.memory_bytes = Some(n);
                }
                Some("--") => {
                    let rest = args[i + 1..].to_vec();
                    if rest.is_empty() {
                        return Err("no program after --".into());
                    }
                    return Ok((policy, rest));
                }
                _ => return Err(format!("unexpected argument {:?}", args[i])),
            }
            i += 2;
        }
        Err("no program after --".into())
    }
}

/// How the server starts confined programs.
#[derive(Debug, Clone)]
pub enum Sandbox {
    /// Through the `mlgate` binary at this path (`mlgate sandbox-exec ...`).
    Confined { launcher: PathBuf },
    /// Unconfined: the operator opted out (`--allow-unconfined-entry-scripts`); the
    /// environment is still cleared and the memory limit still applies through the worker.
    Unconfined,
    /// Entry scripts cannot run: no launcher, or a kernel without Landlock, and no opt-out.
    Unavailable { reason: String },
}

impl Sandbox {
    /// Checks that `launcher` can confine a process on this kernel (it runs a confined
    /// `true`). Without it, or without Landlock, the answer depends on `allow_unconfined`.
    pub async fn probe(launcher: Option<&Path>, allow_unconfined: bool) -> Self {
        let reason = match launcher {
            None => "no sandbox launcher is configured".to_string(),
            Some(l) => match probe_launcher(l).await {
                Ok(()) => return Sandbox::Confined { launcher: l.to_path_buf() },
                Err(e) => e,
            },
        };
        if allow_unconfined {
            Sandbox::Unconfined
        } else {
            Sandbox::Unavailable {
                reason: format!(
                    "entry scripts run only confined, and confinement is unavailable: {reason}. \
                     The operator may start the server with --allow-unconfined-entry-scripts to \
                     run them unconfined (not recommended: a script could then read the server's \
                     keys)"
                ),
            }
        }
    }

    pub fn is_confined(&self) -> bool {
        matches!(self, Sandbox::Confined { .. })
    }

    /// A command that runs `program args` under `policy`, with exactly `env` as its
    /// environment. Standard input and output are piped, standard error too.
    pub fn command(
        &self,
        policy: &Policy,
        program: &Path,
        args: &[OsString],
        env: &[(String, String)],
    ) -> Result<tokio::process::Command, String> {
        let mut cmd = match self {
            Sandbox::Confined { launcher } => {
                let mut c = tokio::process::Command::new(launcher);
                c.args(policy.to_args()).arg(program).args(args);
                c
            }
            Sandbox::Unconfined => {
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                c
            }
            Sandbox::Unavailable { reason } => return Err(reason.clone()),
        };
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&policy.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
    }
}

async fn probe_launcher(launcher: &Path) -> Result<(), String> {
    let tmp = std::env::temp_dir();
    let policy = Policy { read: Vec::new(), write: Vec::new(), memory_bytes: None, workdir: tmp };
    let out = tokio::process::Command::new(launcher)
        .args(policy.to_args())
        .arg("--probe")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", launcher.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `mlgate sandbox-exec`: confine this process, then exec the program. Never returns on
/// success; the process exits with [`EXIT_REFUSED`] when confinement fails. Must run before
/// any other thread starts: Landlock and capabilities apply to the calling thread.
pub fn main(args: &[OsString]) -> i32 {
    match confine_and_exec(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mlgate sandbox-exec: {e}");
            EXIT_REFUSED
        }
    }
}

fn confine_and_exec(args: &[OsString]) -> Result<(), String> {
    let (policy, program) = Policy::parse(args)?;
    if let Some(limit) = policy.memory_bytes {
        let lim = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
        rustix::process::setrlimit(rustix::process::Resource::As, lim)
            .map_err(|e| format!("cannot set the memory limit: {e}"))?;
    }
    let no_core = rustix::process::Rlimit { current: Some(0), maximum: Some(0) };
    rustix::process::setrlimit(rustix::process::Resource::Core, no_core)
        .map_err(|e| format!("cannot disable core dumps: {e}"))?;
    std::env::set_current_dir(&policy.workdir)
        .map_err(|e| format!("cannot enter {}: {e}", policy.workdir.display()))?;
    restrict(&policy)?;
    drop_capabilities()?;
    if program.first().is_some_and(|p| p == "--probe") {
        // The probe's proof: confined, and the data it was not given is out of reach.
        return match std::fs::read_dir("/") {
            Err(_) => Ok(()),
            Ok(_) => Err("Landlock did not restrict the filesystem".into()),
        };
    }
    let err = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(&program[0]).args(&program[1..]),
    );
    Err(format!("cannot run {:?}: {err}", program[0]))
}

fn restrict(policy: &Policy) -> Result<(), String> {
    let fail = |e: landlock::RulesetError| format!("Landlock: {e}");
    let read = AccessFs::from_read(TARGET_ABI);
    let all = AccessFs::from_all(TARGET_ABI);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(fail)?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(fail)?
        .create()
        .map_err(fail)?;
    // A process's own /proc entry (the pid stays the same across exec).
    let own_proc = PathBuf::from(format!("/proc/{}", std::process::id()));
    let rules = policy
        .read
        .iter()
        .map(|p| (p, read))
        .chain(std::iter::once((&own_proc, read)))
        .chain(policy.write.iter().map(|p| (p, all)));
    for (path, access) in rules {
        let Ok(fd) = PathFd::new(path) else {
            // A path that does not exist grants nothing.
            continue;
        };
        let access = if std::fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
            access & AccessFs::from_file(TARGET_ABI)
        } else {
            access
        };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(fail)?;
    }
    let status = ruleset.restrict_self().map_err(fail)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced if status.no_new_privs => {
            Ok(())
        }
        RulesetStatus::NotEnforced => {
            Err("this kernel does not enforce Landlock (Linux 5.13 or later, with landlock \
                 in the lsm= boot list, is needed)"
                .into())
        }
        _ => Err("no_new_privs could not be set".into()),
    }
}

/// Drops every capability: out of the bounding set first (so an exec cannot regain them,
/// even as root), then the thread's own sets and the ambient set.
fn drop_capabilities() -> Result<(), String> {
    use rustix::thread::{CapabilitySet, CapabilitySets};
    let fail = |what: &str, e: rustix::io::Errno| format!("cannot drop {what}: {e}");
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if rustix::thread::capability_is_in_bounding_set(cap).unwrap_or(false) {
            match rustix::thread::remove_capability_from_bounding_set(cap) {
                Ok(()) => {}
                // A server that is not root (the systemd unit's `mlgate` user, or anyone's
                // shell) lacks CAP_SETPCAP and cannot shrink the bounding set. It has no need
                // to: the set only bounds what an exec may gain, and a non-root process under
                // no_new_privs (set by `restrict`, before the exec) gains nothing from setuid
                // or file capabilities. Root can always drop it, so root never takes this path.
                Err(rustix::io::Errno::PERM) if !rustix::process::geteuid().is_root() => break,
                Err(e) => return Err(fail("the capability bounding set", e)),
            }
        }
    }
    rustix::thread::clear_ambient_capability_set().map_err(|e| fail("ambient capabilities", e))?;
    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    rustix::thread::set_capabilities(None, none).map_err(|e| fail("capabilities", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let p = Policy {
            read: vec!["/usr".into(), "/opt/py".into()],
            write: vec!["/tmp/x".into()],
            memory_bytes: Some(1 << 30),
            workdir: "/tmp/x".into(),
        };
        let mut args = p.to_args();
        assert_eq!(args.remove(0), "sandbox-exec");
        args.push("python3".into());
        args.push("-u".into());
        let (back, program) = Policy::parse(&args).unwrap();
        assert_eq!(back, p);
        assert_eq!(program, vec![OsString::from("python3"), OsString::from("-u")]);
        assert!(Policy::parse(&["--read".into()]).is_err());
        assert!(Policy::parse(&["--workdir".into(), "/".into(), "--".into()]).is_err());
    }

    #[test]
    fn refuses_paths_that_overlap_the_protected_ones() {
        let data = std::env::temp_dir().join(format!("mlgate-sbx-{}", std::process::id()));
        let model = data.join("services/a/model");
        std::fs::create_dir_all(&model).unwrap();
        let py = Path::new("/usr/bin/python3");
        let protected = [data.clone()];
        // The service's own folder is allowed inside the data directory...
        let ok = Policy::for_python(
            py,
            std::slice::from_ref(&model),
            &[],
            Path::new("/tmp"),
            &protected,
            std::slice::from_ref(&model),
        );
        assert!(ok.is_ok(), "{ok:?}");
        // ...the data directory itself, a parent of it, or a sibling inside it are not.
        for bad in [data.clone(), data.parent().unwrap().to_path_buf(), data.join("services/b")] {
            let r = Policy::for_python(
                py,
                std::slice::from_ref(&bad),
                &[],
                Path::new("/tmp"),
                &protected,
                std::slice::from_ref(&model),
            );
            assert!(r.is_err(), "{} was accepted", bad.display());
        }
        // An interpreter living in the data directory is refused too.
        let inside = data.join("bin/python3");
        let r = Policy::for_python(&inside, &[], &[], Path::new("/tmp"), &protected, &[]);
        assert!(r.unwrap_err().contains("interpreter"));
        // And an interpreter at the root would grant the whole filesystem.
        let r = Policy::for_python(Path::new("/python3"), &[], &[], Path::new("/tmp"), &[], &[]);
        assert!(r.is_err());
        std::fs::remove_dir_all(&data).unwrap();
    }
}
