//! `faxbox serve` as a person starts it: first-start bootstrap, a clean stop
//! on SIGTERM, and no second bootstrap on the next start.

use std::process::{Command, Stdio};

use faxbox::store::Store;

use crate::harness::faxbox_bin;

/// Starts `faxbox serve`, waits for its banner, stops it with SIGTERM and
/// returns what it printed.
fn serve_once(data: &std::path::Path) -> String {
    // Found as ./faxbox.toml; port 0 so that parallel tests never collide.
    std::fs::write(
        data.parent().unwrap().join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = Command::new(faxbox_bin())
        .args(["--data-dir", data.to_str().unwrap(), "serve"])
        .current_dir(data.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = crate::harness::serve_banner(&mut child);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "serve stops cleanly on SIGTERM: {status:?}"
    );
    banner
}

#[test]
fn first_start_creates_an_account_key_and_faxbox_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let banner = serve_once(&data);
    assert!(banner.contains("First start"), "{banner}");
    let key = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("API key:"))
        .expect("the API key is printed")
        .trim()
        .to_owned();

    let store = Store::open_data_dir(&data).unwrap();
    let account = store
        .account_for_api_key(&key)
        .unwrap()
        .expect("the printed key works");
    assert!(account.is_admin);
    let faxboxes = store.faxboxes(&account.id).unwrap();
    assert_eq!(faxboxes.len(), 1);
    assert!(banner.contains(&faxboxes[0].smtp_email_address));
    drop(store);

    let again = serve_once(&data);
    assert!(!again.contains("First start"), "{again}");
    let store = Store::open_data_dir(&data).unwrap();
    assert_eq!(store.accounts().unwrap().len(), 1);
}
