//! The one error type of `documents`: every way a conversion can fail, each
//! phrased for the person who sent the document (it ends up in an email or an
//! API reply), naming the file and what to do about it.

use std::borrow::Cow;
use std::time::Duration;

/// Why a document could not be turned into a fax (or a fax into a PDF).
/// Serializable because a render worker process sends it to the box.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum DocumentError {
    /// The file has no bytes at all.
    #[error("'{name}' is empty; attach the document again")]
    Empty { name: String },

    /// Neither the name, the content type nor the bytes say what this is, or
    /// it is a kind Faxbox does not fax.
    #[error(
        "'{name}' is not a kind of document Faxbox can fax ({what}); send a PDF, an image, a TIFF, a text file or an office document"
    )]
    Unsupported { name: String, what: String },

    /// The file says it is one kind but its bytes are another.
    #[error("'{name}' is named or labelled as {claimed} but its contents are {actual}")]
    WrongKind {
        name: String,
        claimed: String,
        actual: String,
    },

    /// The bytes are damaged or not what the format requires.
    #[error("'{name}' could not be read as {kind}: {reason}")]
    Corrupt {
        name: String,
        kind: Cow<'static, str>,
        reason: String,
    },

    /// A password-protected PDF sent without its password.
    #[error(
        "'{name}' is password-protected; send it again with its password (document_password in \
         the API, --document-password with faxbox send or convert, the account's email_pdf_password \
         setting for email) or save it without a password and send it again"
    )]
    Encrypted { name: String },

    /// The password given does not open the PDF.
    #[error(
        "the password given for '{name}' does not open it; check the password and send it again"
    )]
    WrongPassword { name: String },

    /// A well-formed document without a single page.
    #[error("'{name}' has no pages to fax")]
    NoPages { name: String },

    /// More pages than a fax may carry.
    #[error("'{name}' has {pages} pages; a fax may have at most {limit}")]
    TooManyPages {
        name: String,
        pages: usize,
        limit: usize,
    },

    /// An image or page whose pixel count would exhaust memory (a
    /// decompression bomb or a wildly oversized scan).
    #[error("'{name}' has a page or image too large to fax ({detail})")]
    TooLarge { name: String, detail: String },

    /// A text document with a line longer than any written to be read.
    #[error(
        "line {line} of '{name}' is {chars} characters long; a text fax takes lines of at most {limit} characters; break the text into lines or send it as a PDF"
    )]
    LineTooLong {
        name: String,
        line: usize,
        chars: usize,
        limit: usize,
    },

    /// The per-document time budget ran out.
    #[error("'{name}' took longer than {}s to convert; simplify it or split it and send it again", .limit.as_secs())]
    TimedOut { name: String, limit: Duration },

    /// Drawing one page (or opening the document, page 0) needed more
    /// memory than a render worker may take.
    #[error(
        "{} needs more than {limit_mb} MB of memory to {}; simplify it (or print it to a new PDF) and send it again", page_of(.name, *.page), if *.page == 0 { "open" } else { "draw" }
    )]
    OutOfMemory {
        name: String,
        page: usize,
        limit_mb: u64,
    },

    /// Office formats go through LibreOffice, which this box does not have.
    #[error(
        "'{name}' is an office document; office documents need LibreOffice, which is not installed on this fax box; save it as PDF and send it again"
    )]
    NeedsLibreOffice { name: String },

    /// LibreOffice ran and failed.
    #[error("LibreOffice could not convert '{name}': {reason}")]
    OfficeFailed { name: String, reason: String },

    /// The renderer gave up in a way it should not (a panic, caught).
    #[error(
        "'{name}' could not be rendered (the renderer failed on page {page}); save it again as PDF and resend"
    )]
    RendererFailed { name: String, page: usize },

    /// The render worker process could not be started (the box itself is
    /// short of processes or memory; not the document's fault).
    #[error(
        "'{name}' could not be converted now: the document renderer did not start ({reason}); try again later"
    )]
    WorkerUnavailable { name: String, reason: String },

    /// A fax TIFF that cannot be read.
    #[error("this fax image could not be read: {reason}")]
    BadFaxTiff { reason: String },

    /// A page handed to the fax TIFF writer that is not a valid bitmap (a
    /// programming error in the caller, still reported rather than panicking).
    #[error("a fax page is not valid: {reason}")]
    InvalidPage { reason: String },

    /// The conversion produced more data than a TIFF can address.
    #[error("the fax is too large to store as one TIFF file ({bytes} bytes)")]
    OutputTooLarge { bytes: u64 },
}

impl DocumentError {
    pub(crate) fn bad_tiff(reason: impl Into<String>) -> Self {
        DocumentError::BadFaxTiff {
            reason: reason.into(),
        }
    }
}

/// "page 3 of 'invoice.pdf'", or "'invoice.pdf'" for page 0 (before any page).
fn page_of(name: &str, page: usize) -> String {
    match page {
        0 => format!("'{name}'"),
        n => format!("page {n} of '{name}'"),
    }
}
