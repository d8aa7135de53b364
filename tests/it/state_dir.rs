//! The state directory is private to its user outside systemd too (issue 11, item 9).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::fixtures::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `pagehook -c CONFIG ARGS` under the usual shell umask of 022, whatever this process's is.
async fn under_umask_022(setup: &Setup, args: &str) -> Output {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask 022 && exec \"$0\" -c \"$1\" {args}"))
        .arg(binary())
        .arg(setup.config())
        .env_remove("PAGEHOOK_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
        .into()
}

/// Everything in the state directory, and its mode.
fn modes(state: &Path) -> Vec<(String, u32)> {
    let mut found = vec![(".".to_owned(), mode(state))];
    for entry in std::fs::read_dir(state).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        found.push((name.clone(), mode(&path)));
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                let inner = inner.unwrap().path();
                let inner_name = inner.file_name().unwrap().to_string_lossy().into_owned();
                found.push((format!("{name}/{inner_name}"), mode(&inner)));
            }
        }
    }
    found.sort();
    found
}

fn private(found: &[(String, u32)]) -> bool {
    found.iter().all(|(_, mode)| mode & 0o077 == 0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_dir_is_0700_and_its_files_0600_under_umask_022() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/p", product("P", "$1", 1));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "w", "/p", "every 5m"),
    );
    // The second run finds a store to recover, so sled writes a snapshot file too.
    for _ in 0..2 {
        let once = under_umask_022(&setup, "once").await;
        assert_eq!(once.code, 0, "{once:?}");
    }
    let found = modes(&setup.state_dir());
    assert!(found.iter().any(|(name, _)| name == "db"), "{found:?}");
    assert!(
        found.iter().any(|(name, _)| name.starts_with("snap.")),
        "{found:?}"
    );
    assert!(private(&found), "readable by others: {found:?}");
    assert_eq!(found[0], (".".to_owned(), 0o700));

    // A state directory from before (or loosened by hand) is tightened, and the log says so.
    std::fs::set_permissions(setup.state_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, _) in &found[1..] {
        let path = setup.state_dir().join(name);
        let loose = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let again = under_umask_022(&setup, "once").await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again
            .stderr
            .contains("state directory was open to other users"),
        "{again:?}"
    );
    let found = modes(&setup.state_dir());
    assert!(private(&found), "still readable by others: {found:?}");
}
