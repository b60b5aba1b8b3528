//! Print to fax through a real CUPS: a private `cupsd` on loopback
//! (`harness::PrivateCups`) with a queue on a running box's FaxOut printer,
//! printed to with `lp` as an office computer prints. CUPS's own ipp
//! backend turns the `phone` option into `destination-uris`, CUPS's filters
//! turn the PDF into what the queue's model sends, and the box behind it is
//! the whole appliance with its loopback line. Checked is what an office
//! sees (issue 21, items 1 and 3): the fax goes to the number typed, a print
//! without a number is cancelled rather than retried for ever, and the
//! queue keeps moving while a fax waits for a retry.

use std::path::PathBuf;
use std::time::Duration;

use faxbox::model::{Fax, JobStatus};
use faxbox::store::{JobFilter, Store};

use crate::harness::{PrivateCups, ServeProcess, acme_with_desk, pdf_of_texts, run_ok, wait_for};

/// The number the loopback line answers as busy (CONFIG).
const BUSY: &str = "5550001";

/// How long a CUPS job may take to reach its end: CUPS's ipp backend polls
/// the fax printer's job every few seconds until it ends.
const CUPS_JOB_END: Duration = Duration::from_secs(90);

/// The box: `faxbox serve` (the real binary, whose render workers are
/// itself) with its printers on and a loopback line.
const CONFIG: &str = r#"
[ipp]
enabled = true
listen = "127.0.0.1:0"
mdns = false

[[line]]
name = "loopback"
type = "loopback"
channels = 2

[line.numbers]
"5550001" = "busy"
"#;

/// A private CUPS in front of a running box with its printers on.
struct PrintToFax {
    cups: PrivateCups,
    _dir: tempfile::TempDir,
    faxbox: ServeProcess,
    /// The faxbox Desk's printer, `ipp://127.0.0.1:PORT/ipp/faxout/<id>`.
    printer: String,
}

impl PrintToFax {
    /// `None` (the reason printed) when CUPS is not installed.
    fn start() -> Option<PrintToFax> {
        let cups = PrivateCups::start()?;
        let dir = tempfile::tempdir().unwrap();
        let (_, desk) = acme_with_desk(&dir.path().join("data"));
        let faxbox = ServeProcess::start(dir.path(), CONFIG);
        // "ipp:   ipp://127.0.0.1:PORT/ipp/faxout/<faxbox id> (print to fax)"
        let listening = faxbox
            .banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("ipp:"))
            .and_then(|l| l.split("/ipp/faxout/").next())
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| {
                panic!("the banner says where the printers are:\n{}", faxbox.banner)
            });
        let printer = format!("{listening}/ipp/faxout/{}", desk.id);
        Some(PrintToFax {
            cups,
            _dir: dir,
            faxbox,
            printer,
        })
    }

    /// Adds an enabled queue on the faxbox's printer with `lpadmin`, as the
    /// README says: `model` is `driverless-fax:<uri>` (cups-filters' fax
    /// model, whose print dialog asks for the phone number) or `everywhere`.
    fn add_queue(&self, queue: &str, model: &str) {
        run_ok(self.cups.client("lpadmin").args([
            "-p",
            queue,
            "-E",
            "-v",
            &self.printer,
            "-m",
            model,
        ]));
    }

    /// A PDF of one line per page, as a user's file.
    fn document(&self, name: &str, pages: &[&str]) -> PathBuf {
        let path = self.faxbox.data_dir.with_file_name(name);
        std::fs::write(&path, pdf_of_texts(pages)).unwrap();
        path
    }

    /// The box's store, read beside the running box as an admin would.
    fn store(&self) -> Store {
        Store::open_existing(&self.faxbox.data_dir).unwrap()
    }

    fn faxes(&self) -> Vec<Fax> {
        self.store().faxes(&JobFilter::default()).unwrap()
    }

    /// The fax made for `number`, once there is one.
    fn fax_to(&self, number: &str) -> Option<Fax> {
        self.faxes().into_iter().find(|f| f.to_number == number)
    }

    /// Waits until the CUPS job has ended (completed, canceled or
    /// aborted); its `job-state`.
    fn wait_cups_job_end(&self, job: u32) -> String {
        let mut state = String::new();
        wait_for(&format!("CUPS job {job} to end"), CUPS_JOB_END, || {
            state = self.cups.job_attribute(job, "job-state");
            matches!(state.as_str(), "completed" | "canceled" | "aborted")
        });
        state
    }

    /// `lpstat -p QUEUE`: whether the queue is enabled (CUPS disables a
    /// queue whose backend fails a job under `ErrorPolicy stop-printer`).
    fn queue_status(&self, queue: &str) -> String {
        run_ok(self.cups.client("lpstat").args(["-p", queue]))
    }
}

#[test]
fn a_print_with_a_phone_number_is_faxed_to_that_number() {
    let Some(office) = PrintToFax::start() else {
        return;
    };
    office.add_queue("fax", &format!("driverless-fax:{}", office.printer));
    // The model cups-filters made from the printer's attributes has the
    // Phone Number field a print dialog shows.
    let ppd = office.cups.ppd("fax");
    assert!(ppd.contains("*OpenUI *phone/Phone Number"), "{ppd}");

    let quote = office.document("quote.pdf", &["Quote for Acme", "Page two"]);
    // Typed as people write numbers: CUPS's backend keeps the dashes in
    // the tel: URI (RFC 3966 visual separators) and the box drops them.
    let job = office
        .cups
        .print("fax", &["-o", "phone=+1-555-123-4567"], &quote);
    let state = office.wait_cups_job_end(job);
    assert_eq!(state, "completed", "{}", office.cups.job_log(job));

    let faxes = office.faxes();
    assert_eq!(faxes.len(), 1, "one print, one fax: {faxes:?}");
    let fax = &faxes[0];
    assert_eq!(fax.to_number, "+15551234567");
    // CUPS's backend waits for the printer's job to end, so the fax has
    // been sent over the loopback line by the time CUPS calls it done.
    assert_eq!(fax.status, Some(JobStatus::Completed), "{fax:?}");
    let attempts = office.store().attempts(&fax.id).unwrap();
    let last = attempts.last().expect("the fax was dialled");
    assert_eq!((last.report.pages_sent, last.report.pages_total), (2, 2));
    println!(
        "cups: `lp -o phone=+1-555-123-4567` on a driverless-fax queue: CUPS job {job} {state}, \
         fax {} to {} sent {} of {} pages in {} attempt(s)",
        fax.id,
        fax.to_number,
        last.report.pages_sent,
        last.report.pages_total,
        attempts.len()
    );
}

#[test]
fn a_print_without_a_number_is_cancelled_and_the_queue_goes_on() {
    let Some(office) = PrintToFax::start() else {
        return;
    };
    // The queue most users get (and a GUI print dialog without a phone
    // field): IPP Everywhere's generic model.
    office.add_queue("office", "everywhere");
    let letter = office.document("letter.pdf", &["Dear Sir"]);

    let no_number = office.cups.print("office", &[], &letter);
    // CUPS cancels the job: it neither retries it (every 10 s, for ever,
    // holding the queue) nor stops the queue.
    let state = office.wait_cups_job_end(no_number);
    assert_eq!(state, "canceled", "{}", office.cups.job_log(no_number));
    // cupsd logs the backend's last words as it reaps it, which can trail
    // the job's new state by a moment.
    wait_for(
        "CUPS to log why the job was cancelled",
        Duration::from_secs(10),
        || {
            office
                .cups
                .job_log(no_number)
                .contains("a fax needs a number")
        },
    );
    let status = office.queue_status("office");
    assert!(
        status.contains("enabled") && !status.contains("disabled"),
        "{status}"
    );
    assert!(office.faxes().is_empty(), "{:?}", office.faxes());

    // The next print, with a number, goes through on the same queue.
    let next = office
        .cups
        .print("office", &["-o", "phone=5552222"], &letter);
    assert_eq!(
        office.wait_cups_job_end(next),
        "completed",
        "{}",
        office.cups.job_log(next)
    );
    let fax = office.fax_to("5552222").expect("the next print is a fax");
    assert_eq!(fax.status, Some(JobStatus::Completed), "{fax:?}");
    assert_eq!(office.faxes().len(), 1);
    let status = office.queue_status("office");
    assert!(!status.contains("disabled"), "{status}");
    println!(
        "cups: a print without a number: CUPS job {no_number} {state}, queue enabled, no fax; \
         the next print (job {next}) was faxed"
    );
}

#[test]
fn a_fax_waiting_for_a_retry_does_not_hold_the_print_queue() {
    let Some(office) = PrintToFax::start() else {
        return;
    };
    office.add_queue("fax", &format!("driverless-fax:{}", office.printer));
    let memo = office.document("memo.pdf", &["Memo"]);

    let to_busy = office
        .cups
        .print("fax", &["-o", &format!("phone={BUSY}")], &memo);
    let after = office.cups.print("fax", &["-o", "phone=5553333"], &memo);
    // The second print is faxed while the first waits minutes for its
    // next try at the busy number.
    let after_state = office.wait_cups_job_end(after);
    assert_eq!(after_state, "completed", "{}", office.cups.job_log(after));
    let sent = office.fax_to("5553333").expect("the second print is a fax");
    assert_eq!(sent.status, Some(JobStatus::Completed), "{sent:?}");
    let waiting = office.fax_to(BUSY).expect("the first print is a fax");
    assert_eq!(waiting.status, Some(JobStatus::Pending), "{waiting:?}");
    assert_eq!(waiting.attempts, 1, "{waiting:?}");
    assert!(
        waiting.due_at > sent.modified,
        "the busy fax waits for a later attempt: {waiting:?}"
    );
    // CUPS let go of the first job when the box held it (README: "CUPS
    // then shows its own copy of the job as completed").
    let busy_state = office.cups.job_attribute(to_busy, "job-state");
    assert_eq!(busy_state, "completed", "{}", office.cups.job_log(to_busy));
    println!(
        "cups: a busy number (CUPS job {to_busy}: {busy_state}, fax pending for its retry) \
         did not hold the next print (job {after}: {after_state}, fax sent)"
    );
}
