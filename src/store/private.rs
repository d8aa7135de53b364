//! The state directory is private to the user pagehook runs as: it holds every watcher's
//! values, the queued webhook bodies and the control socket. The systemd unit sees to that
//! with `StateDirectoryMode=0700` and `UMask=0077`; anywhere else the store does it itself.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use rustix::fs::Mode;
use tracing::warn;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Make `dir` ready for the store: created 0700 if it is missing (its parents as usual), or, if
/// it exists, tightened to 0700 with sled's files in it to 0600, saying so in the log. The
/// process's umask is narrowed to 077 as well, since sled creates its files (snapshots, large
/// values) whenever it likes with the default mode, which only the umask shapes. pagehook
/// creates nothing that others should read, so narrowing it for the whole process is safe.
pub(super) fn prepare(dir: &Path) -> io::Result<()> {
    let old = rustix::process::umask(Mode::from(0o077));
    rustix::process::umask(old | Mode::from(0o077));
    match fs::metadata(dir) {
        Ok(_) => {
            tighten(dir);
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)?;
            }
            match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
                Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(err),
                _ => Ok(()),
            }
        }
        Err(err) => Err(err),
    }
}

/// What sled keeps in its directory: the log, its settings, snapshots, large values.
fn is_sleds(name: &str) -> bool {
    matches!(name, "db" | "conf" | "blobs") || name.starts_with("snap.")
}

/// Take group and other access away from `dir` and sled's files in it. Only warns when it
/// cannot (a directory owned by someone else): the store works either way.
fn tighten(dir: &Path) {
    let mut tightened = 0;
    let mut was = None;
    let result = (|| -> io::Result<()> {
        let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
        if restrict(dir, DIR_MODE)? {
            was = Some(mode);
        }
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !is_sleds(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                tightened += usize::from(restrict(&path, DIR_MODE)?);
                for blob in fs::read_dir(&path)? {
                    tightened += usize::from(restrict(&blob?.path(), FILE_MODE)?);
                }
            } else {
                tightened += usize::from(restrict(&path, FILE_MODE)?);
            }
        }
        Ok(())
    })();
    if let Err(err) = result {
        warn!(state_dir = %dir.display(), error = %err, "cannot make the state directory private to this user");
    }
    if was.is_some() || tightened > 0 {
        warn!(
            state_dir = %dir.display(),
            was = %format!("{:04o}", was.unwrap_or(DIR_MODE)),
            files = tightened,
            "the state directory was open to other users; it is now 0700 and its files 0600"
        );
    }
}

/// Clear the bits of `path`'s mode outside `allowed`; true if there were any. Symbolic links
/// are left alone (their own mode means nothing).
fn restrict(path: &Path, allowed: u32) -> io::Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(false);
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & !allowed == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode & allowed))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_state_dir_is_0700_and_an_open_one_is_tightened_with_its_files() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/state");
        prepare(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);

        let open = root.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["db", "conf", "snap.0000000000000A1F", "notes.txt"] {
            fs::write(open.join(name), "x").unwrap();
            fs::set_permissions(open.join(name), fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::create_dir(open.join("blobs")).unwrap();
        fs::set_permissions(open.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(open.join("blobs/17"), "x").unwrap();
        fs::set_permissions(open.join("blobs/17"), fs::Permissions::from_mode(0o664)).unwrap();
        prepare(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        for name in ["db", "conf", "snap.0000000000000A1F", "blobs/17"] {
            assert_eq!(mode(&open.join(name)), 0o600, "{name}");
        }
        assert_eq!(mode(&open.join("blobs")), 0o700);
        assert_eq!(
            mode(&open.join("notes.txt")),
            0o644,
            "files that are not sled's are left alone"
        );

        // The umask is now at least 077: files created from here on are private.
        let later = root.path().join("later");
        fs::write(&later, "x").unwrap();
        assert_eq!(mode(&later) & 0o077, 0);
    }
}
