//! Print jobs of the IPP FaxOut printers (`src/ipp/`). IPP names a job by a
//! small integer and may announce it (Create-Job) before its document comes
//! (Send-Document); a print job therefore lives here first, and becomes one
//! fax job per destination, committed with the link to its print job in
//! one transaction (docs/architecture.md, invariant 1), once the document is there.

use rusqlite::{OptionalExtension, params};

use super::jobs::{insert_job, new_outbox_fax};
use super::{ChangedRow, Result, Store, StoreError, select_all};
use crate::model::{Fax, FaxId, FaxboxId, JobStatus, NewDocument, NewFax, UnixTime, now};

/// A print job: what the printing computer asked for, and the faxes it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintJob {
    /// The IPP job-id.
    pub id: i64,
    pub faxbox_id: FaxboxId,
    pub name: String,
    /// Who printed it: the logged-in user, else the name the client gave.
    pub user: String,
    /// The numbers to fax to (E.164), in the order given.
    pub destinations: Vec<String>,
    /// Cancelled before its document came.
    pub cancelled: bool,
    /// Why its document was refused, when it was.
    pub error: Option<String>,
    pub created: UnixTime,
    /// The fax jobs it became (empty until the document came).
    pub faxes: Vec<FaxId>,
    /// The cover sheet it asked for (`cover-sheet-info`), if it did.
    pub cover: Option<PrintCover>,
}

/// What a print job's `cover-sheet-info` (PWG 5100.15) says; each member
/// it leaves out is the fax's own (its faxbox's name, the job's name...).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrintCover {
    pub to_name: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    /// The note.
    pub message: Option<String>,
}

const COLUMNS: &str = "id, faxbox_id, name, user, destinations, cancelled, error, created, cover";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PrintJob> {
    let destinations: String = r.get(4)?;
    Ok(PrintJob {
        id: r.get(0)?,
        faxbox_id: FaxboxId(r.get(1)?),
        name: r.get(2)?,
        user: r.get(3)?,
        destinations: serde_json::from_str(&destinations).unwrap_or_default(),
        cancelled: r.get(5)?,
        error: r.get(6)?,
        created: r.get(7)?,
        faxes: Vec::new(),
        cover: r
            .get::<_, Option<String>>(8)?
            .and_then(|c| serde_json::from_str(&c).ok()),
    })
}

fn faxes_of(conn: &rusqlite::Connection, job: &mut PrintJob) -> Result<()> {
    job.faxes = select_all(
        conn,
        "SELECT fax_id FROM ipp_job_faxes WHERE ipp_job = ?1 ORDER BY rowid",
        [job.id],
        |r| Ok(FaxId(r.get(0)?)),
    )?;
    Ok(())
}

impl Store {
    /// Records a print job whose document is still to come (Create-Job).
    pub fn create_print_job(
        &self,
        faxbox: &FaxboxId,
        name: &str,
        user: &str,
        destinations: &[String],
        cover: Option<&PrintCover>,
    ) -> Result<PrintJob> {
        let created = now();
        let destinations_json = serde_json::to_string(destinations).unwrap_or_default();
        let cover = cover.and_then(|c| serde_json::to_string(c).ok());
        let id = self.write(|tx| {
            tx.execute(
                "INSERT INTO ipp_jobs (faxbox_id, name, user, destinations, created, cover)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    faxbox.as_str(),
                    name,
                    user,
                    destinations_json,
                    created,
                    cover
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        self.print_job(id)
    }

    /// The document of a print job arrived: one fax job per destination,
    /// sharing the documents, linked to the print job and (several of them)
    /// in a batch, all in one transaction. Refused when the print job already has its faxes or
    /// was cancelled.
    pub fn print_job_faxes(
        &self,
        job: i64,
        faxes: Vec<NewFax>,
        documents: Vec<NewDocument>,
    ) -> Result<Vec<Fax>> {
        let t = now();
        let mut faxes: Vec<Fax> = faxes
            .into_iter()
            .map(|new| new_outbox_fax(new, JobStatus::Pending, t))
            .collect::<Result<_>>()?;
        let key = self.key()?;
        super::batches::group(&mut faxes);
        self.write(|tx| {
            let state: Option<(bool, i64)> = tx
                .query_row(
                    "SELECT cancelled, (SELECT COUNT(*) FROM ipp_job_faxes WHERE ipp_job = ?1)
                     FROM ipp_jobs WHERE id = ?1",
                    [job],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match state {
                None => {
                    return Err(StoreError::NotFound {
                        kind: "print job",
                        id: job.to_string(),
                    });
                }
                Some((true, _)) => {
                    return Err(StoreError::Conflict(format!(
                        "print job {job} was cancelled"
                    )));
                }
                Some((_, n)) if n > 0 => {
                    return Err(StoreError::Conflict(format!(
                        "print job {job} already has its document"
                    )));
                }
                _ => {}
            }
            super::batches::insert_batches(tx, &faxes)?;
            for fax in &faxes {
                insert_job(tx, &key, fax, &documents)?;
                tx.execute(
                    "INSERT INTO ipp_job_faxes (ipp_job, fax_id) VALUES (?1, ?2)",
                    params![job, fax.id.as_str()],
                )?;
            }
            Ok(())
        })?;
        Ok(faxes)
    }

    /// Ends a print job that has no faxes: cancelled, or refused with a reason.
    pub fn end_print_job(&self, job: i64, cancelled: bool, error: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE ipp_jobs SET cancelled = ?2, error = COALESCE(?3, error) WHERE id = ?1",
                params![job, cancelled, error],
            )
            .changed("print job", job)
        })
    }

    pub fn print_job(&self, id: i64) -> Result<PrintJob> {
        self.read(|conn| {
            let mut job = conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM ipp_jobs WHERE id = ?1"),
                    [id],
                    from_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "print job",
                    id: id.to_string(),
                })?;
            faxes_of(conn, &mut job)?;
            Ok(job)
        })
    }

    /// A faxbox's print jobs, newest first, at most `limit`.
    pub fn print_jobs(&self, faxbox: &FaxboxId, limit: u32) -> Result<Vec<PrintJob>> {
        self.read(|conn| {
            let mut jobs = select_all::<Vec<_>, _>(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM ipp_jobs WHERE faxbox_id = ?1 ORDER BY id DESC LIMIT ?2"
                ),
                params![faxbox.as_str(), limit],
                from_row,
            )?;
            for job in &mut jobs {
                faxes_of(conn, job)?;
            }
            Ok(jobs)
        })
    }
}
