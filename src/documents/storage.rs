//! Which forms of a fax document are kept at intake and which are made on
//! demand: Kazoo's `store_url_document`, `store_fax_tiff` and
//! `store_fax_pdf` flags (docs/kazoo.md 7.6), as a pure policy the store and the
//! intake edges follow. Nothing here touches storage.
//!
//! Faxbox keeps Kazoo's meaning with one deliberate choice: the PDF offered
//! for download is always made from the fax TIFF (`tiff_to_pdf`), so it shows
//! exactly the pages that were (or will be) sent, not the original.

/// The three flags, Kazoo's names and defaults (all `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageFlags {
    /// Fetch URL documents at submission and keep them (`original_file.<ext>`);
    /// when off, the URL is fetched again whenever a form is needed.
    pub store_url_document: bool,
    /// Keep the converted fax TIFF (`fax_file.tiff`).
    pub store_fax_tiff: bool,
    /// Keep the PDF (`pdf_file.pdf`); a failure to make it at intake is
    /// ignored (it can be made later).
    pub store_fax_pdf: bool,
}

impl Default for StorageFlags {
    fn default() -> Self {
        StorageFlags {
            store_url_document: true,
            store_fax_tiff: true,
            store_fax_pdf: true,
        }
    }
}

/// Where a fax's document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Bytes handed over (upload, email attachment, IPP job): the original
    /// has no other home, so it is always kept.
    Upload,
    /// A URL Faxbox fetches.
    Url,
}

/// What intake does, in order, before acknowledging the fax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakePlan {
    /// Fetch the URL now (needed to check and convert it at intake).
    pub fetch_now: bool,
    pub keep_original: bool,
    /// Convert now and keep the TIFF. When off the TIFF is still made once
    /// at intake to validate the document and count pages, then dropped.
    pub keep_tiff: bool,
    /// Make and keep the PDF now; failure does not fail the intake.
    pub keep_pdf: bool,
}

/// Decides what intake keeps.
pub fn plan_intake(flags: StorageFlags, source: Source) -> IntakePlan {
    IntakePlan {
        // A fax is only acknowledged once its document converts (see
        // docs/architecture.md, invariant 4), so a URL is always fetched at intake; the flag
        // decides whether that copy is kept.
        fetch_now: true,
        keep_original: source == Source::Upload || flags.store_url_document,
        keep_tiff: flags.store_fax_tiff,
        keep_pdf: flags.store_fax_pdf,
    }
}

/// The forms of a document someone may ask for later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The TIFF to send.
    FaxTiff,
    /// The PDF to download.
    FaxPdf,
}

/// How to get a form when it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// It is stored: read it.
    Stored,
    /// Convert the stored original (then keep the result if `keep`).
    ConvertOriginal { keep: bool },
    /// Fetch the URL again and convert it (then keep the result if `keep`).
    RefetchAndConvert { keep: bool },
    /// Make the PDF from the stored TIFF (then keep it if `keep`).
    PdfFromTiff { keep: bool },
}

/// How to produce `form` for a fax whose intake followed `plan_intake`.
pub fn recipe(flags: StorageFlags, source: Source, form: Form) -> Recipe {
    let plan = plan_intake(flags, source);
    let from_original = |keep| {
        if plan.keep_original {
            Recipe::ConvertOriginal { keep }
        } else {
            Recipe::RefetchAndConvert { keep }
        }
    };
    match form {
        Form::FaxTiff if plan.keep_tiff => Recipe::Stored,
        // "also saved after a lazy conversion" (docs/kazoo.md 7.6) applies only
        // when the flag asks for the TIFF to be kept, which it already is.
        Form::FaxTiff => from_original(false),
        Form::FaxPdf if plan.keep_pdf => Recipe::Stored,
        Form::FaxPdf if plan.keep_tiff => Recipe::PdfFromTiff { keep: false },
        Form::FaxPdf => from_original(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(url: bool, tiff: bool, pdf: bool) -> StorageFlags {
        StorageFlags {
            store_url_document: url,
            store_fax_tiff: tiff,
            store_fax_pdf: pdf,
        }
    }

    #[test]
    fn intake_table() {
        use Source::*;
        // (flags, source) -> (keep_original, keep_tiff, keep_pdf)
        let table = [
            (flags(true, true, true), Url, (true, true, true)),
            (flags(false, true, true), Url, (false, true, true)),
            (flags(false, true, true), Upload, (true, true, true)),
            (flags(true, false, false), Upload, (true, false, false)),
            (flags(false, false, false), Url, (false, false, false)),
        ];
        for (f, s, (o, t, p)) in table {
            let plan = plan_intake(f, s);
            assert!(plan.fetch_now);
            assert_eq!(
                (plan.keep_original, plan.keep_tiff, plan.keep_pdf),
                (o, t, p),
                "{f:?} {s:?}"
            );
        }
        assert_eq!(StorageFlags::default(), flags(true, true, true));
    }

    #[test]
    fn on_demand_table() {
        use Form::*;
        use Recipe::*;
        use Source::*;
        let table = [
            (flags(true, true, true), Upload, FaxTiff, Stored),
            (flags(true, true, true), Upload, FaxPdf, Stored),
            (
                flags(true, true, false),
                Upload,
                FaxPdf,
                PdfFromTiff { keep: false },
            ),
            (
                flags(true, false, false),
                Upload,
                FaxTiff,
                ConvertOriginal { keep: false },
            ),
            (
                flags(true, false, false),
                Upload,
                FaxPdf,
                ConvertOriginal { keep: false },
            ),
            // Kazoo: both off and the URL not kept -> fetched again each time.
            (
                flags(false, false, false),
                Url,
                FaxTiff,
                RefetchAndConvert { keep: false },
            ),
            (flags(false, false, true), Url, FaxPdf, Stored),
        ];
        for (f, s, form, want) in table {
            assert_eq!(recipe(f, s, form), want, "{f:?} {s:?} {form:?}");
        }
    }
}
