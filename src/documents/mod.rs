//! Documents: turning any accepted input into a fax-ready TIFF, and a fax
//! TIFF into a PDF. Pure functions over bytes; the only external process is
//! the optional LibreOffice helper for office formats (run in a private
//! temporary directory that is removed whatever happens). Knows nothing of
//! jobs, storage or lines (docs/architecture.md, "Who owns what").
//!
//! Conversions are CPU-bound and may take seconds: call them from a blocking
//! thread (`spawn_blocking`), never on an async worker. Each input runs on
//! its own thread under a time budget; a renderer panic or a pathological
//! file ends as a `DocumentError`, never as a crash. In the running box
//! (`Drawing::Worker`) the whole conversion runs in a render worker process
//! under a memory ceiling and a CPU limit (`worker`), so a document that
//! would exhaust memory kills only that worker, as CUPS filters and
//! HylaFAX's converters run apart from their servers.

mod ccitt;
pub mod cli;
pub mod cover;
mod detect;
mod error;
pub mod faxtiff;
mod images;
mod office;
mod pdf;
pub(crate) mod print_raster;
mod raster;
pub mod storage;
mod text;
mod topdf;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use detect::{Kind, detect};
pub use error::DocumentError;
pub use faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
pub use office::office_available;
pub use topdf::tiff_to_pdf;

use faxtiff::EncodedPage;
use raster::Geometry;

/// One document to fax: its bytes and what the sender called it.
#[derive(Debug, Clone)]
pub struct Input {
    pub bytes: Vec<u8>,
    /// The file name as sent (used for its extension and in messages).
    pub name: String,
    /// The MIME type as sent, if any (used when the name has no extension).
    pub content_type: Option<String>,
    /// The password that opens an encrypted PDF (ignored by an unencrypted
    /// one and by other kinds). Used while the fax is drawn at intake and
    /// never stored (see `prepare_for_intake`).
    pub password: Option<String>,
}

impl Input {
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Input {
            bytes,
            name: name.into(),
            content_type: None,
            password: None,
        }
    }
}

/// Gives every document of a job the password sent with it (an empty one is
/// none): it opens the encrypted PDFs among them and is ignored by the rest.
pub fn with_password(mut documents: Vec<Input>, password: Option<&str>) -> Vec<Input> {
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        for d in &mut documents {
            d.password = Some(password.to_owned());
        }
    }
    documents
}

/// Vertical resolution of the fax (T.30 "standard" or "fine").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Resolution {
    /// 204 x 196 dpi.
    #[default]
    Fine,
    /// 204 x 98 dpi: half the lines, half the time on the wire.
    Standard,
}

/// The page length of the fax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum PaperSize {
    /// 11 inches.
    #[default]
    Letter,
    /// 297 mm.
    A4,
}

/// How to convert, and the guards that keep one document from hurting the box.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub resolution: Resolution,
    pub paper: PaperSize,
    /// Most pages in one fax (all inputs together).
    pub max_pages: usize,
    /// Most pixels in one decoded image (decompression bombs stop here).
    pub max_image_pixels: u64,
    /// Longest one input may take to convert.
    pub time_budget: Duration,
    /// Worker threads for multi-page documents (at least 1).
    pub threads: usize,
    /// The LibreOffice program (`soffice`); `None` looks it up on PATH.
    pub libreoffice: Option<std::path::PathBuf>,
    /// Where documents are drawn: in this process, or in a render worker.
    pub drawing: Drawing,
}

/// Where a conversion runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Drawing {
    /// On a thread of this process, under the time budget only: for the
    /// library's own tests and callers that are themselves disposable.
    #[default]
    InProcess,
    /// In a child process (`program render-worker`) under the memory
    /// ceiling and CPU limit of `worker`: a bad document kills only the
    /// child. The running box draws this way.
    Worker { program: PathBuf },
}

impl Drawing {
    /// Render workers that are this very program (Linux's `/proc/self/exe`
    /// stays valid even when the binary is replaced by an upgrade while the
    /// box runs, so the worker always speaks this version's protocol).
    pub fn worker_of_this_program() -> Self {
        Drawing::Worker {
            program: PathBuf::from("/proc/self/exe"),
        }
    }
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            resolution: Resolution::Fine,
            paper: PaperSize::Letter,
            max_pages: 500,
            max_image_pixels: 100_000_000,
            time_budget: Duration::from_secs(120),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            libreoffice: None,
            drawing: Drawing::InProcess,
        }
    }
}

impl ConvertOptions {
    pub(crate) fn geometry(&self) -> Geometry {
        let (x, y) = match self.resolution {
            Resolution::Fine => faxtiff::FINE_DPI,
            Resolution::Standard => faxtiff::STANDARD_DPI,
        };
        let length = match self.paper {
            PaperSize::Letter => 11.0,
            PaperSize::A4 => 297.0 / 25.4,
        };
        Geometry::new(x, y, length)
    }
}

/// A converted fax: the TIFF Class F bytes and its page count.
#[derive(Debug, Clone)]
pub struct FaxDocument {
    pub tiff: Vec<u8>,
    pub pages: usize,
}

/// Conversions started by this process (`convert`), for `/metrics`
/// (`faxbox_documents_converted_total`): a batch to several numbers adds
/// one (issue 22).
static CONVERSIONS: AtomicU64 = AtomicU64::new(0);

/// How many documents this process has converted since it started.
pub fn conversions() -> u64 {
    CONVERSIONS.load(Ordering::Relaxed)
}

/// Converts the inputs, in order, into one fax document, where
/// `options.drawing` says.
pub fn convert(inputs: &[Input], options: &ConvertOptions) -> Result<FaxDocument, DocumentError> {
    CONVERSIONS.fetch_add(1, Ordering::Relaxed);
    let kinds = inputs
        .iter()
        .map(|i| detect(&i.bytes, &i.name, i.content_type.as_deref()))
        .collect::<Result<Vec<Kind>, _>>()?;
    match &options.drawing {
        Drawing::InProcess => {
            let unwatched: OnPage = Arc::new(|_| {});
            convert_here(inputs, &kinds, options, &unwatched)
        }
        Drawing::Worker { program } => worker::convert(program, inputs, &kinds, options),
    }
}

/// What happened to a page: reported to a render worker's parent so that a
/// worker that dies can be blamed on the page it was drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PageEvent {
    /// Which input (from 0).
    pub input: usize,
    /// Which page of it (from 1).
    pub page: usize,
    /// True when drawing starts, false when it is done.
    pub started: bool,
}

/// Called with each `PageEvent` of a conversion.
pub(crate) type OnPage = Arc<dyn Fn(PageEvent) + Send + Sync>;

/// Converts in this process: each input on its own thread under the time
/// budget, reporting pages to `on_page`.
pub(crate) fn convert_here(
    inputs: &[Input],
    kinds: &[Kind],
    options: &ConvertOptions,
    on_page: &OnPage,
) -> Result<FaxDocument, DocumentError> {
    let mut pages: Vec<EncodedPage> = Vec::new();
    for (index, (input, &kind)) in inputs.iter().zip(kinds).enumerate() {
        let remaining = options.max_pages.saturating_sub(pages.len());
        let watch = Watch {
            cancel: Arc::new(AtomicBool::new(false)),
            input: index,
            on_page: on_page.clone(),
        };
        let mut got = convert_with_budget(input, kind, options, remaining, watch)?;
        pages.append(&mut got);
    }
    if pages.is_empty() {
        return Err(DocumentError::NoPages {
            name: "the fax".into(),
        });
    }
    let tiff = faxtiff::write_tiff(&pages)?;
    Ok(FaxDocument {
        tiff,
        pages: pages.len(),
    })
}

/// What a converter checks and reports as it goes through one input's
/// pages: whether its time is up, and which page it is drawing.
#[derive(Clone)]
pub(crate) struct Watch {
    cancel: Arc<AtomicBool>,
    input: usize,
    on_page: OnPage,
}

impl Watch {
    /// A watch that is never cancelled and reports nowhere (tests, and the
    /// fuzz targets of `crate::fuzz`).
    pub(crate) fn idle() -> Self {
        Watch {
            cancel: Arc::new(AtomicBool::new(false)),
            input: 0,
            on_page: Arc::new(|_| {}),
        }
    }

    /// The time budget ran out: stop at the next page boundary.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Page `page` (from 1) is about to be drawn.
    pub(crate) fn started(&self, page: usize) {
        self.report(page, true);
    }

    /// Page `page` (from 1) is drawn.
    pub(crate) fn finished(&self, page: usize) {
        self.report(page, false);
    }

    fn report(&self, page: usize, started: bool) {
        (self.on_page)(PageEvent {
            input: self.input,
            page,
            started,
        });
    }
}

/// Runs one input's conversion on its own thread and waits at most the time
/// budget. On time-out the thread is told to stop at its next page boundary
/// (and LibreOffice is killed) and the caller gets `TimedOut` at once.
fn convert_with_budget(
    input: &Input,
    kind: Kind,
    options: &ConvertOptions,
    max_pages: usize,
    watch: Watch,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let bytes = Arc::new(input.bytes.clone());
    let name = input.name.clone();
    let password = input.password.clone();
    let opts = options.clone();
    let cancel = watch.cancel.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("faxbox-convert".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let source = pdf::Source {
                    bytes,
                    name: &name,
                    password: password.as_deref(),
                };
                convert_kind(source, kind, &opts, max_pages, &watch)
            }))
            .unwrap_or_else(|_| {
                Err(DocumentError::RendererFailed {
                    name: name.clone(),
                    page: 0,
                })
            });
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        return Err(DocumentError::RendererFailed {
            name: input.name.clone(),
            page: 0,
        });
    }
    match rx.recv_timeout(options.time_budget) {
        Ok(result) => result,
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            Err(DocumentError::TimedOut {
                name: input.name.clone(),
                limit: options.time_budget,
            })
        }
    }
}

fn convert_kind(
    source: pdf::Source<'_>,
    kind: Kind,
    opts: &ConvertOptions,
    max_pages: usize,
    watch: &Watch,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let geom = opts.geometry();
    let (bytes, name) = (source.bytes.clone(), source.name);
    match kind {
        Kind::Pdf => pdf::convert(
            source,
            &geom,
            (max_pages, opts.max_image_pixels),
            opts.threads,
            watch,
        ),
        Kind::Image => {
            watch.started(1);
            images::convert_image(&bytes, name, &geom, opts.max_image_pixels)
        }
        Kind::Tiff => {
            images::convert_tiff(&bytes, name, &geom, max_pages, opts.max_image_pixels, watch)
        }
        Kind::Text => text::convert(&bytes, name, &geom, max_pages),
        Kind::PwgRaster | Kind::AppleRaster => {
            let format = if kind == Kind::PwgRaster {
                print_raster::Format::Pwg
            } else {
                print_raster::Format::Apple
            };
            print_raster::convert(
                &bytes,
                name,
                format,
                &geom,
                max_pages,
                opts.max_image_pixels,
                watch,
            )
        }
        Kind::Office => {
            let pdf_bytes = office::to_pdf(
                &bytes,
                name,
                opts.libreoffice.as_deref(),
                opts.time_budget,
                &watch.cancel,
            )?;
            let made = pdf::Source {
                bytes: Arc::new(pdf_bytes),
                name,
                password: None,
            };
            pdf::convert(
                made,
                &geom,
                (max_pages, opts.max_image_pixels),
                opts.threads,
                watch,
            )
        }
    }
}

/// The number of pages a PDF has (without rendering), for intake checks.
pub fn pdf_page_count(bytes: &[u8], name: &str) -> Result<usize, DocumentError> {
    pdf::page_count(pdf::Source {
        bytes: Arc::new(bytes.to_vec()),
        name,
        password: None,
    })
}

/// What an intake (the API, email) stores for a new fax, checked before
/// anything is stored so that what cannot be faxed is refused at once with
/// the reason (docs/architecture.md, invariant 4): the originals as received and, unless every
/// one is a PDF, the fax image converted now. PDFs are opened and their
/// pages counted here and drawn when the fax is sent (the attempt keeps the
/// fax image), so a burst of intake is not held up by rendering.
pub fn prepare_for_intake(
    inputs: Vec<Input>,
    options: &ConvertOptions,
) -> Result<Vec<crate::model::NewDocument>, DocumentError> {
    prepare(inputs, options, Draw::WhenSent)
}

/// `prepare_for_intake` for a fax to several numbers (a batch, issue 22):
/// the fax image is drawn now, once, and every job of the batch keeps it,
/// instead of each job drawing the same PDF again when it is sent.
pub fn prepare_for_batch(
    inputs: Vec<Input>,
    options: &ConvertOptions,
) -> Result<Vec<crate::model::NewDocument>, DocumentError> {
    prepare(inputs, options, Draw::Now)
}

/// When an intake's PDFs are drawn into the fax image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    /// When the fax is sent (only PDFs; other documents are drawn now).
    WhenSent,
    /// Now, whatever the documents are.
    Now,
}

fn prepare(
    inputs: Vec<Input>,
    options: &ConvertOptions,
    draw: Draw,
) -> Result<Vec<crate::model::NewDocument>, DocumentError> {
    use crate::model::{DocumentKind, NewDocument};
    // A password opens its PDF once, here: the fax image is drawn now and
    // stored, so the password is never written anywhere and the attempt
    // needs none.
    let pdf_pages = match inputs.iter().any(|i| i.password.is_some()) || draw == Draw::Now {
        true => None,
        false => check_pdfs(&inputs, options)?,
    };
    let fax = match pdf_pages {
        Some(_) => None,
        None => Some(convert(&inputs, options)?),
    };
    let mut stored: Vec<NewDocument> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, d)| NewDocument {
            kind: DocumentKind::Original,
            content_type: d
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            filename: d.name,
            pages: pdf_pages.as_ref().map(|p| p[i]),
            bytes: d.bytes,
        })
        .collect();
    if let Some(fax) = fax {
        stored.push(NewDocument {
            kind: DocumentKind::FaxTiff,
            content_type: "image/tiff".into(),
            filename: "fax_file.tiff".into(),
            pages: Some(fax.pages as u32),
            bytes: fax.tiff,
        });
    }
    Ok(stored)
}

/// Intake's check when every document is a PDF: each one's page count, after checking that
/// it opens and has pages, and that the fax is not too long. Rendering
/// waits for the call, so a burst of uploads is not held up by it (the
/// renderer's own failures then fail the job with the reason). `None` when
/// some document is not a PDF: the fax is converted at once.
fn check_pdfs(
    documents: &[Input],
    options: &ConvertOptions,
) -> Result<Option<Vec<u32>>, DocumentError> {
    for d in documents {
        if detect(&d.bytes, &d.name, d.content_type.as_deref())? != Kind::Pdf {
            return Ok(None);
        }
    }
    // Opening a PDF whose structure is compressed inflates it, which only a
    // render worker may do (an object stream can inflate to gigabytes).
    let counted = match &options.drawing {
        Drawing::Worker { program }
            if !documents
                .iter()
                .all(|d| pdf::opens_without_inflating(&d.bytes)) =>
        {
            let all: Vec<&Input> = documents.iter().collect();
            worker::count_pdf_pages(program, &all, options)?
        }
        _ => documents
            .iter()
            .map(|d| pdf_page_count(&d.bytes, &d.name))
            .collect::<Result<Vec<usize>, _>>()?,
    };
    let mut pages = Vec::with_capacity(documents.len());
    for (d, n) in documents.iter().zip(counted) {
        match n {
            0 => {
                return Err(DocumentError::NoPages {
                    name: d.name.clone(),
                });
            }
            n => pages.push(n as u32),
        }
    }
    let total: usize = pages.iter().map(|&n| n as usize).sum();
    if total > options.max_pages {
        return Err(DocumentError::TooManyPages {
            name: "the fax".into(),
            pages: total,
            limit: options.max_pages,
        });
    }
    Ok(Some(pages))
}

pub use faxtiff::count_tiff_pages;
