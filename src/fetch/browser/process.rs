//! Finding, starting and stopping a local Chromium.
//!
//! Nothing here may leave a browser behind, even when pagehook is killed with SIGKILL and no
//! code of ours runs again. `PR_SET_PDEATHSIG` would need code between fork and exec, which is
//! `unsafe`; instead the browser is spoken to over `--remote-debugging-pipe`, whose other end
//! only pagehook holds. When pagehook dies for any reason the kernel closes that end, and
//! Chromium quits on the end of its pipe (measured: about 0.15 s, every helper process with it).
//! While pagehook lives, the browser runs in a process group of its own, so stopping it takes
//! down the zygote, renderers and utility processes too.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::cdp::Connection;

/// The executables looked for on `PATH`, in order.
pub(crate) const EXECUTABLES: [&str; 4] = [
    "chromium-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome",
];

/// The first of [`EXECUTABLES`] on `PATH`.
pub fn discover() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    discover_in(&path)
}

fn discover_in(path: &std::ffi::OsStr) -> Option<PathBuf> {
    EXECUTABLES.iter().find_map(|name| {
        std::env::split_paths(path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

pub(super) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Switches that make Chromium a quiet, lean page renderer. Popups are refused here, for every
/// page at once (`--block-new-web-contents`); downloads and the rest per browser context.
fn arguments(profile: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--headless",
        "--remote-debugging-pipe",
        "--block-new-web-contents",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--disable-breakpad",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater,DialMediaRouteProvider,InterestFeedContentSuggestions,PaintHolding",
        // Pages render in tabs nobody looks at; their timers must not be throttled.
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        "--disable-renderer-backgrounding",
        "--metrics-recording-only",
        "--mute-audio",
        "--no-pings",
        "--password-store=basic",
        "--use-mock-keychain",
        "--hide-scrollbars",
        // A page that allocates without end hits this and crashes, instead of taking the
        // machine's memory until its timeout.
        "--js-flags=--max-old-space-size=512",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    if !own_sandbox_possible() {
        args.push("--no-sandbox".into());
    }
    let mut profile_arg = OsString::from("--user-data-dir=");
    profile_arg.push(profile);
    args.push(profile_arg);
    args.push("about:blank".into());
    args
}

/// Whether Chromium can sandbox its renderers itself. It refuses to as root; and under
/// no_new_privs (systemd's NoNewPrivileges=, which the shipped unit sets along with
/// RestrictNamespaces=) neither its setuid helper nor, there, user namespaces are to be had,
/// so the browser would not start: it runs unsandboxed inside the service's own sandbox.
fn own_sandbox_possible() -> bool {
    let no_new_privs = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"]))
    });
    !rustix::process::geteuid().is_root() && !no_new_privs
}

/// Browser profiles are `pagehook-browser-<pid of pagehook>-<random>` in the temporary
/// directory.
const PROFILE_PREFIX: &str = "pagehook-browser-";

/// Remove the profiles of pagehook processes that are gone: one killed with SIGKILL had no
/// chance to remove its own.
fn remove_stale_profiles(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PROFILE_PREFIX)) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split_once('-').map(|(pid, _)| pid.parse::<u32>()) else {
            continue;
        };
        // A live process of that id may be another program that reused it: leave its profile.
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Lines of the browser's stderr kept to explain a failed start.
const STDERR_LINES: usize = 5;

/// A Chromium that pagehook started, and its connection.
pub(super) struct Process {
    child: Child,
    /// The browser's profile, removed when the browser is.
    _profile: tempfile::TempDir,
    /// The last lines the browser wrote to stderr, and the task that reads them.
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_task: tokio::task::JoinHandle<()>,
}

impl Process {
    /// Start `executable` and connect to it. The caller bounds the wait.
    pub(super) fn spawn(executable: &Path) -> Result<(Process, Connection), String> {
        if !is_executable(executable) {
            return Err(format!(
                "cannot start {}: no such executable file",
                executable.display()
            ));
        }
        remove_stale_profiles(&std::env::temp_dir());
        let profile = tempfile::Builder::new()
            .prefix(&format!("{PROFILE_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|err| format!("cannot create the browser's profile directory: {err}"))?;
        // Chromium reads commands from fd 3 and writes to fd 4. The standard library hands a
        // child only fds 0-2 without `unsafe`, so a shell moves the pipes there and becomes
        // the browser (`exec`: the same process, the same group).
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(executable)
            .args(arguments(profile.path()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // What Chromium keeps beside the profile (NSS's certificate store, caches) goes into
        // the profile too, and with it: a service user has no home to write to.
        for var in ["HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"] {
            command.env(var, profile.path());
        }
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", executable.display()))?;
        let to_browser = child.stdin.take().expect("piped");
        let from_browser = child.stdout.take().expect("piped");
        let connection = Connection::over_pipe(to_browser, from_browser);
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let kept = stderr.clone();
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let stderr_task = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(line = %line, "browser stderr");
                let mut kept = kept.lock().expect("not poisoned");
                if kept.len() == STDERR_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let process = Process {
            child,
            _profile: profile,
            stderr,
            stderr_task,
        };
        Ok((process, connection))
    }

    /// The browser's process group, which its helper processes share.
    pub(super) fn group(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kill the browser and every process of its group, and reap it. Returns the last thing
    /// it said on stderr, which explains a browser that would not start.
    pub(super) async fn kill(mut self) -> Option<String> {
        self.kill_group();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(pid = ?self.child.id(), "the browser did not exit after SIGKILL");
        }
        // Its helpers may hold stderr a moment longer.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.stderr_task).await;
        let kept = self.stderr.lock().expect("not poisoned");
        kept.iter().rev().find(|l| !l.trim().is_empty()).cloned()
    }

    fn kill_group(&mut self) {
        // While the leader is not reaped its id cannot be reused, so the group is still ours.
        if let Some(pid) = self.child.id().and_then(|id| Pid::from_raw(id as i32)) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // `kill_on_drop` ends only the leader; its helpers go with the group. Tokio reaps the
        // leader in the background.
        self.kill_group();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_profiles_of_processes_that_are_gone_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Far above any pid_max: no such process.
        let gone = dir.path().join(format!("{PROFILE_PREFIX}999999999-abc"));
        let mine = dir
            .path()
            .join(format!("{PROFILE_PREFIX}{}-abc", std::process::id()));
        let other = dir.path().join("pagehook-browser-notes");
        for d in [&gone, &mine, &other] {
            std::fs::create_dir_all(d.join("Default")).unwrap();
        }
        remove_stale_profiles(dir.path());
        assert!(!gone.exists());
        assert!(mine.exists());
        assert!(other.exists());
    }

    #[test]
    fn discovery_takes_the_first_name_in_order_on_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&first, &second] {
            std::fs::create_dir(d).unwrap();
        }
        let make = |dir: &Path, name: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.join(name);
            std::fs::write(&file, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            file
        };
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(discover_in(&path), None);
        // Not executable: not a candidate.
        make(&first, "chromium-headless-shell", 0o644);
        assert_eq!(discover_in(&path), None);
        let chromium = make(&first, "chromium", 0o755);
        assert_eq!(discover_in(&path), Some(chromium));
        // An earlier name wins over an earlier directory.
        let shell = make(&second, "chromium-headless-shell", 0o755);
        assert_eq!(discover_in(&path), Some(shell));
    }
}
