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

/// Long on purpose: one store walked through `init`, account, user and faxbox
/// creation and the changes of mail domain, because each generated address
/// depends on the domains set before it, and `readdress` moves the addresses
/// made earlier.
#[test]
fn account_user_faxbox_and_the_generated_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Only `init` (or `serve`) makes a store; admin commands need one.
    ok(&data, &["init"]);

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
    // An appliance's faxboxes live under its own mail name (smtp.hostname,
    // here the machine's), not under Kazoo's fax.kazoo.io.
    let box_name = faxbox::config::Config::embedded_default().smtp.hostname;
    assert!(
        address.ends_with(&format!(".fax.{box_name}")) && !address.contains("kazoo"),
        "the box's own domain: {address}"
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
    // The account's domain changed after the first two were made: readdress
    // moves them under it, keeping their 8 hex digits; the third is there.
    let moved = ok(&data, &["faxbox", "readdress", "--account", &account]);
    assert_eq!(moved.lines().count(), 2, "{moved}");
    let first_now: serde_json::Value =
        serde_json::from_str(&ok(&data, &["faxbox", "show", &first])).unwrap();
    let hex8 = address.split('.').next().unwrap();
    assert_eq!(
        first_now["smtp_email_address"].as_str().unwrap(),
        format!("{hex8}.acme-fax.example")
    );
    assert!(moved.contains(address), "{moved}");
    assert_eq!(
        ok(&data, &["faxbox", "readdress"]),
        "",
        "nothing left to move"
    );
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
    ok(&data, &["init"]);
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

#[test]
fn jobs_list_show_cancel_and_retry() {
    use faxbox::model::{DocumentKind, JobStatus, NewDocument, NewFax};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (waiting, sent) = {
        let store = faxbox::store::Store::open_data_dir(&data).unwrap();
        let account = store.create_account("Acme", None).unwrap().id;
        let job = |number: &str| NewFax {
            account_id: account.clone(),
            to_number: number.into(),
            to_number_normalized: format!("+1{number}"),
            retries: 3,
            ..Default::default()
        };
        let doc = NewDocument {
            kind: DocumentKind::Original,
            content_type: "application/pdf".into(),
            filename: "letter.pdf".into(),
            pages: None,
            bytes: b"%PDF-1.4 pretend".to_vec(),
        };
        let waiting = store
            .create_job(job("5550001"), vec![doc.clone()], JobStatus::Pending)
            .unwrap();
        let sent = store
            .create_job(job("5550002"), vec![doc], JobStatus::Pending)
            .unwrap();
        (waiting.id.to_string(), sent.id.to_string())
    };

    let listed = ok(&data, &["jobs", "list", "--status", "pending"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(fails(&data, &["jobs", "list", "--status", "locked"]).contains("not a job status"));

    ok(&data, &["jobs", "cancel", &sent]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&data, &["jobs", "show", &sent])).unwrap();
    assert_eq!(shown["status"], "cancelled");
    assert_eq!(shown["documents"][0]["filename"], "letter.pdf");
    // Cancelling twice is refused with the reason.
    assert!(fails(&data, &["jobs", "cancel", &sent]).contains("cancelled"));

    // A finished fax is sent again as a new job with its document.
    let again = ok(&data, &["jobs", "retry", &sent]);
    assert!(is_id(&again) && again != sent);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&data, &["jobs", "show", &again])).unwrap();
    assert_eq!(
        (
            shown["status"].as_str(),
            shown["attempts"].as_u64(),
            shown["history"].as_array().map(Vec::len)
        ),
        (Some("pending"), Some(0), Some(0))
    );
    assert_eq!(shown["documents"].as_array().unwrap().len(), 1);
    // A pending one is just made due now.
    assert_eq!(ok(&data, &["jobs", "retry", &waiting]), "");
    assert_eq!(
        ok(&data, &["jobs", "list", "--status", "pending"])
            .lines()
            .count(),
        2
    );
}

/// A reader that goes away (`faxbox account list | head -1`) is no panic:
/// the command stops quietly and exits 0, as `head` expects.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    for name in ["Acme", "Bravo", "Charlie"] {
        ok(&data, &["account", "create", name]);
    }
    for args in [
        &["account", "list"][..],
        &["--json", "account", "list"][..],
        &["line", "list"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(crate::harness::faxbox_bin())
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .current_dir(dir.path())
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}

/// Issue 21 item 10: every bad value is refused, naming the key, the value
/// and what is allowed, and changes nothing.
#[test]
fn every_bad_setting_is_refused_with_its_key_value_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let line = |body: &str| format!("[[line]]\nname = \"l\"\n{body}\n");
    let files: Vec<(&str, String, &[&str])> = vec![
        (
            "log level",
            "[log]\nlevel = \"verbose\"\n".into(),
            &["log.level", "\"verbose\"", "trace, debug, info"],
        ),
        (
            "two listeners, one port",
            "[http]\nlisten = \"127.0.0.1:18025\"\n[smtp]\nlisten = \"127.0.0.1:18025\"\n".into(),
            &["smtp.listen", "127.0.0.1:18025", "already used by http.listen"],
        ),
        (
            "a wildcard listener over a specific one",
            "[smtp]\nlisten = \"127.0.0.1:18631\"\n[ipp]\nenabled = true\nlisten = \"0.0.0.0:18631\"\n"
                .into(),
            &["ipp.listen", "0.0.0.0:18631", "already used by smtp.listen"],
        ),
        (
            "device on a loopback line",
            line("type = \"loopback\"\ndevice = \"/dev/ttyUSB0\""),
            &["line[0].device", "/dev/ttyUSB0", "modem lines", "a loopback line takes"],
        ),
        (
            "channels on a modem line",
            line("type = \"modem\"\ndevice = \"/dev/ttyUSB0\"\nchannels = 2"),
            &["line[0].channels", "= 2", "loopback lines", "a modem line takes"],
        ),
        (
            "dial_string on a loopback line",
            line("type = \"loopback\"\ndial_string = \"sofia/gateway/x/{number}\""),
            &["line[0].dial_string", "freeswitch lines"],
        ),
        (
            "a bare smtp.hostname",
            "[smtp]\nhostname = \"faxbox\"\n".into(),
            &["smtp.hostname", "\"faxbox\"", "fully qualified"],
        ),
    ];
    for (what, text, needles) in files {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let err = fails(&data, &["--config", path.to_str().unwrap(), "check-config"]);
        for needle in needles {
            assert!(err.contains(needle), "{what}: {needle:?} not in: {err}");
        }
    }
    assert!(!data.exists(), "check-config wrote nothing");

    ok(&data, &["init"]);
    let account = ok(&data, &["account", "create", "Acme"]);
    let faxbox_id = ok(&data, &["faxbox", "create", "--account", &account, "One"]);
    let settings: [(&str, &str, &str); 3] = [
        (
            "default_smtp_domain",
            "not_a_domain!",
            "a mail domain such as",
        ),
        ("image_min_size", "big", "700x10"),
        ("log_faxbox_errors", "maybe", "true or false"),
    ];
    for (key, value, allowed) in settings {
        let err = fails(&data, &["config", "set", "fax", key, value]);
        assert!(
            err.contains(key) && err.contains(value) && err.contains(allowed),
            "{key}: {err}"
        );
    }
    ok(&data, &["config", "set", "fax", "image_min_size", "300x40"]);
    let err = fails(
        &data,
        &[
            "faxbox",
            "update",
            &faxbox_id,
            "--fax-timezone",
            "Mars/Olympus",
        ],
    );
    assert!(
        err.contains("fax_timezone")
            && err.contains("Mars/Olympus")
            && err.contains("Europe/Berlin"),
        "{err}"
    );
    ok(
        &data,
        &[
            "faxbox",
            "update",
            &faxbox_id,
            "--fax-timezone",
            "Europe/Berlin",
        ],
    );
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&data, &["faxbox", "show", &faxbox_id])).unwrap();
    assert_eq!(shown["fax_timezone"], "Europe/Berlin");
    assert_eq!(
        ok(&data, &["config", "get", "fax", "image_min_size"]),
        "\"300x40\""
    );
}

/// Issue 21 item 14: every subcommand says what it does.
#[test]
fn every_subcommand_has_help_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let top = ok(&data, &["--help"]);
    let groups: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .filter(|c| c != "help")
        .collect();
    assert!(groups.len() >= 14, "{top}");
    let mut checked = 0;
    for group in &groups {
        let help = ok(&data, &[group, "--help"]);
        for line in help
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
        {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap();
            if name == "help" {
                continue;
            }
            assert!(
                words.next().is_some(),
                "`faxbox {group} {name}` has no help text:\n{help}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked} subcommands checked");
}

/// Issue 21 item 14: `faxbox send --retries`, and without a faxbox or
/// --retries the account's default_retry_count (it was 1 attempt).
#[test]
fn send_takes_retries_and_default_retry_count_applies_without_a_faxbox() {
    let dir = tempfile::tempdir().unwrap();
    // No line takes the faxes before they are looked at: the only line is
    // paused first.
    std::fs::write(
        dir.path().join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("faxbox.toml");
    let config = config.to_str().unwrap();
    ok(&data, &["--config", config, "init"]);
    ok(&data, &["--config", config, "line", "pause", "loopback"]);
    let mut served = std::process::Command::new(crate::harness::faxbox_bin())
        .args(["--config", config, "--data-dir"])
        .arg(&data)
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let banner = crate::harness::serve_banner(&mut served);
    let url = crate::harness::banner_api_url(&banner);
    let document = dir.path().join("letter.pdf");
    std::fs::write(&document, crate::harness::pdf_of_texts(&["Hello"])).unwrap();
    let send = |extra: &[&str]| {
        let mut args = vec!["--config", config, "send", "--url", &url, "--to", "5551234"];
        args.extend_from_slice(extra);
        args.push(document.to_str().unwrap());
        ok(&data, &args)
    };
    let retries_of = |id: &str| {
        let shown: serde_json::Value =
            serde_json::from_str(&ok(&data, &["jobs", "show", id])).unwrap();
        shown["retries"].as_u64().unwrap()
    };
    let three = send(&["--retries", "3"]);
    assert_eq!(retries_of(&three), 3);
    let err = fails(
        &data,
        &[
            "send",
            "--url",
            &url,
            "--to",
            "5551234",
            "--retries",
            "9",
            document.to_str().unwrap(),
        ],
    );
    assert!(err.contains("--retries") && err.contains('9'), "{err}");
    ok(&data, &["config", "set", "fax", "default_retry_count", "4"]);
    let four = send(&[]);
    assert_eq!(retries_of(&four), 4);
    // Issue 22: the cover page's fields.
    let covered = send(&[
        "--cover",
        "--cover-note",
        "Please call",
        "--subject",
        "Referral",
        "--to-name",
        "Dr. Ada Smith",
    ]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&data, &["jobs", "show", &covered])).unwrap();
    assert_eq!(shown["cover_page"], true);
    assert_eq!(shown["cover_note"], "Please call");
    assert_eq!(shown["subject"], "Referral");
    assert_eq!(shown["to_name"], "Dr. Ada Smith");
    let bare = send(&["--no-cover"]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&data, &["jobs", "show", &bare])).unwrap();
    assert_eq!(shown["cover_page"], false);
    let _ = served.kill();
    let _ = served.wait();
}

#[test]
fn a_faxbox_cover_page_is_set_from_the_command_line_and_a_bad_template_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    let account = ok(&data, &["account", "create", "Acme"]);
    let desk = ok(
        &data,
        &[
            "faxbox",
            "create",
            "--account",
            &account,
            "Desk",
            "--cover-page",
            "on",
        ],
    );
    let cover = || {
        let store = faxbox::store::Store::open_existing(&data).unwrap();
        store
            .faxbox(&faxbox::model::FaxboxId(desk.clone()))
            .unwrap()
            .cover_page
    };
    assert!(cover().enabled);
    assert_eq!(cover().template, None);

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "# Fax for {recipient}\n").unwrap();
    let err = fails(
        &data,
        &[
            "faxbox",
            "update",
            &desk,
            "--cover-template",
            bad.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("cover_page.template") && err.contains("{recipient} is not a field"),
        "{err}"
    );
    assert_eq!(cover().template, None, "a refused template changes nothing");

    let good = dir.path().join("good.txt");
    std::fs::write(&good, "# Fax for {to_name}\n{pages} pages\n").unwrap();
    ok(
        &data,
        &[
            "faxbox",
            "update",
            &desk,
            "--cover-template",
            good.to_str().unwrap(),
        ],
    );
    assert_eq!(
        cover().template.as_deref(),
        Some("# Fax for {to_name}\n{pages} pages\n")
    );
    // Turning it off keeps the template; "none" goes back to the built-in one.
    ok(&data, &["faxbox", "update", &desk, "--cover-page", "off"]);
    assert!(!cover().enabled);
    assert!(cover().template.is_some());
    ok(
        &data,
        &["faxbox", "update", &desk, "--cover-template", "none"],
    );
    assert_eq!(cover().template, None);
    let err = fails(&data, &["faxbox", "update", &desk, "--cover-page", "maybe"]);
    assert!(err.contains("maybe"), "{err}");
}
