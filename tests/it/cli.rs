//! The `faxbox` command as an administrator uses it: the real binary on a
//! real data dir.

use crate::harness::faxbox;

fn ok(data: &std::path::Path, args: &[&str]) -> String {
    let out = faxbox(data, args);
    assert!(
        out.status.success(),
        "faxbox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs a command that must fail; returns its stderr.
fn fails(data: &std::path::Path, args: &[&str]) -> String {
    let out = faxbox(data, args);
    assert!(!out.status.success(), "faxbox {args:?} should have failed");
    assert!(
        out.stdout.is_empty(),
        "a failed command prints nothing on stdout"
    );
    String::from_utf8(out.stderr).unwrap()
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn account_user_faxbox_and_the_generated_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let account = ok(
        &data,
        &[
            "account",
            "create",
            "Acme Dental",
            "--realm",
            "acme.example",
        ],
    );
    assert!(is_id(&account), "{account:?}");
    let user = ok(
        &data,
        &[
            "user",
            "create",
            "--account",
            &account,
            "Bob@Acme.example",
            "--name",
            "Bob",
        ],
    );
    assert!(is_id(&user));

    let out = faxbox(
        &data,
        &[
            "faxbox",
            "create",
            "--account",
            &account,
            "Front desk",
            "--owner",
            &user,
        ],
    );
    assert!(out.status.success());
    let first = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(is_id(&first), "only the id goes to stdout: {first:?}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&data, &["faxbox", "show", &first])).unwrap();
    let address = shown["smtp_email_address"].as_str().unwrap();
    assert!(
        address.ends_with(".fax.kazoo.io"),
        "Kazoo's default domain: {address}"
    );
    // The generated address is printed for people too.
    assert!(String::from_utf8_lossy(&out.stderr).contains(address));

    // The box-wide domain, then the account's, decide the next address.
    ok(
        &data,
        &[
            "config",
            "set",
            "fax",
            "default_smtp_domain",
            "fax.box.example",
        ],
    );
    let second: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &[
            "--json",
            "faxbox",
            "create",
            "--account",
            &account,
            "Back office",
        ],
    ))
    .unwrap();
    assert!(
        second["smtp_email_address"]
            .as_str()
            .unwrap()
            .ends_with(".fax.box.example")
    );
    ok(
        &data,
        &[
            "config",
            "set",
            "--account",
            &account,
            "fax",
            "default_smtp_domain",
            "acme-fax.example",
        ],
    );
    assert_eq!(
        ok(
            &data,
            &[
                "config",
                "get",
                "--account",
                &account,
                "fax",
                "default_smtp_domain"
            ]
        ),
        "\"acme-fax.example\""
    );
    let third: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["--json", "faxbox", "create", "--account", &account, "Lab"],
    ))
    .unwrap();
    assert!(
        third["smtp_email_address"]
            .as_str()
            .unwrap()
            .ends_with(".acme-fax.example")
    );
    // Another account still follows the box-wide value.
    let other = ok(&data, &["account", "create", "Other"]);
    assert_eq!(
        ok(
            &data,
            &[
                "config",
                "get",
                "--account",
                &other,
                "fax",
                "default_smtp_domain"
            ]
        ),
        "\"fax.box.example\""
    );

    let listed = ok(&data, &["faxbox", "list", "--account", &account]);
    assert_eq!(listed.lines().count(), 3);
    let key = ok(
        &data,
        &[
            "apikey",
            "create",
            "--account",
            &account,
            "--label",
            "billing",
        ],
    );
    assert_eq!(key.len(), 64);
    assert!(ok(&data, &["apikey", "list", "--account", &account]).contains("billing"));
}

#[test]
fn bad_input_is_named_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let account = ok(&data, &["account", "create", "Acme"]);
    let mut create = vec!["faxbox", "create", "--account", &account, "One"];
    create.extend(["--custom-smtp-email-address", "fax.acme.example"]);
    ok(&data, &create);

    let err = fails(
        &data,
        &[
            "faxbox",
            "create",
            "--account",
            &account,
            "Two",
            "--custom-smtp-email-address",
            "FAX.acme.example",
        ],
    );
    assert!(err.contains("must be unique"), "{err}");
    let err = fails(&data, &["faxbox", "create", "--account", &account, ""]);
    assert!(err.contains("name"), "{err}");
    let err = fails(
        &data,
        &[
            "faxbox",
            "create",
            "--account",
            "0123456789abcdef0123456789abcdef",
            "Three",
        ],
    );
    assert!(
        err.contains("no account with id 0123456789abcdef0123456789abcdef"),
        "{err}"
    );
    let err = fails(&data, &["config", "set", "fax", "max_outbound", "lots"]);
    assert!(
        err.contains("max_outbound") && err.contains("lots"),
        "{err}"
    );
    let err = fails(&data, &["config", "set", "fax", "max_outbund", "3"]);
    assert!(err.contains("not a fax setting"), "{err}");
    let err = fails(&data, &["jobs", "show", "nope"]);
    assert!(err.contains("no fax with id nope"), "{err}");

    assert_eq!(
        ok(&data, &["faxbox", "list", "--account", &account])
            .lines()
            .count(),
        1
    );
    assert_eq!(ok(&data, &["config", "get", "fax", "max_outbound"]), "10");
}

#[test]
fn configuration_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/faxbox.example.toml");
    assert!(ok(&data, &["--config", example, "check-config"]).contains("ok"));

    let cases = [
        ("unknown.toml", "colour = \"blue\"\n", "colour"),
        ("malformed.toml", "[http\nlisten = 1\n", "malformed.toml"),
        (
            "badvalue.toml",
            "[http]\nlisten = \"everywhere\"\n",
            "http.listen",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = fails(&data, &["--config", path.to_str().unwrap(), "check-config"]);
        assert!(err.contains(needle), "{name}: {err}");
        // A bad file stops `serve` before it touches the data dir.
        fails(&data, &["--config", path.to_str().unwrap(), "serve"]);
        assert!(!data.exists(), "{name}: nothing may be written");
    }
}
