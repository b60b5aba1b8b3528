//! `faxbox backup` and `faxbox restore` of a box with 10,000 faxes (issue
//! 23): the archive's size and how long each takes. Run with
//! `cargo bench --bench backup` (release profile).
//!
//! Each fax is a one-page letter as an office sends it: the PDF as
//! submitted and the fax TIFF drawn from it (the selftest's dense page,
//! text and drawings), both stored in the database as by intake, sealed
//! with the document key (README, "At rest").

#[path = "common/summary.rs"]
mod summary;

use std::time::Instant;

use faxbox::documents::faxtiff::encode_fax_tiff;
use faxbox::lines::selftest::test_pages;
use faxbox::model::{DocumentKind, JobStatus, NewDocument, NewFax};
use faxbox::store::Store;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// Faxes written per transaction while filling the box.
const BATCH: usize = 100;

fn letter_pdf() -> Vec<u8> {
    let mut pdf = Pdf::new();
    let (catalog, tree, page_id, font, content_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    page.media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
        .parent(tree)
        .contents(content_id);
    page.resources().fonts().pair(Name(b"F1"), font);
    page.finish();
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let mut c = Content::new();
    c.begin_text()
        .set_font(Name(b"F1"), 11.0)
        .next_line(72.0, 720.0);
    for line in 0..40 {
        c.show(Str(format!(
            "Line {line} of a referral letter to the clinic."
        )
        .as_bytes()))
            .next_line(0.0, -14.0);
    }
    c.end_text();
    pdf.stream(content_id, &c.finish());
    pdf.finish()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // in a debug build without it: then a small box, as a check that the
    // benchmark still works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let faxes = if measuring { 10_000 } else { 200 };
    let dir = tempfile::tempdir().expect("a scratch folder");
    let data = dir.path().join("data");
    let store = Store::open_data_dir(&data).expect("a store");
    let account = store.create_account("Clinic", None).expect("an account").id;
    let documents = vec![
        NewDocument {
            kind: DocumentKind::Original,
            content_type: "application/pdf".into(),
            filename: "referral.pdf".into(),
            pages: Some(1),
            bytes: letter_pdf(),
        },
        NewDocument {
            kind: DocumentKind::FaxTiff,
            content_type: "image/tiff".into(),
            filename: "fax_file.tiff".into(),
            pages: Some(1),
            bytes: encode_fax_tiff(&test_pages(1)).expect("the test page encodes"),
        },
    ];
    let per_fax: usize = documents.iter().map(|d| d.bytes.len()).sum();
    for first in (0..faxes).step_by(BATCH) {
        let jobs = (first..(first + BATCH).min(faxes))
            .map(|n| NewFax {
                account_id: account.clone(),
                to_number: format!("555{n:07}"),
                to_number_normalized: format!("+1555{n:07}"),
                retries: 3,
                ..Default::default()
            })
            .collect();
        store
            .create_jobs(jobs, documents.clone(), JobStatus::Pending)
            .expect("the faxes are stored");
    }
    drop(store);
    let database = std::fs::metadata(data.join("faxbox.sqlite")).map_or(0, |m| m.len());

    let archive = dir.path().join("box.tar");
    let started = Instant::now();
    let done = faxbox::backup::backup(&data, &archive).expect("the backup is written");
    let backup_s = started.elapsed().as_secs_f64();
    assert_eq!(done.manifest.faxes, faxes as u64);

    let restored = dir.path().join("restored");
    let started = Instant::now();
    // The documents are sealed; the key is kept apart and given back.
    let key = data.join(faxbox::store::KEY_FILE);
    let back =
        faxbox::backup::restore(&archive, &restored, Some(&key)).expect("the backup restores");
    let restore_s = started.elapsed().as_secs_f64();
    assert_eq!(back.manifest.documents, 2 * faxes as u64);
    let copy = Store::open_existing(&restored).expect("the restored store");
    let fax = &copy.faxes(&Default::default()).expect("the faxes")[0];
    let tiff = copy.documents(&fax.id).expect("its documents");
    let tiff = tiff.iter().find(|d| d.kind == DocumentKind::FaxTiff);
    assert_eq!(
        copy.document_bytes(&tiff.expect("a TIFF").id)
            .expect("it opens"),
        documents[1].bytes
    );

    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "backup of {faxes} faxes ({} KB of documents each): database {:.1} MB, archive {:.1} MB",
        per_fax / 1000,
        mb(database),
        mb(done.bytes)
    );
    println!(
        "backup {backup_s:.2} s ({:.0} MB/s), restore {restore_s:.2} s ({:.0} MB/s)",
        mb(done.bytes) / backup_s,
        mb(done.bytes) / restore_s
    );
    // No target in the issue: the figure goes into the README and the table
    // shows it beside the archive's size.
    summary::record(
        "backup",
        &format!("backup of {faxes} faxes"),
        &format!("{backup_s:.2} s"),
        &format!("archive {:.1} MB", mb(done.bytes)),
        &format!("{:.0} MB/s", mb(done.bytes) / backup_s),
    );
}
