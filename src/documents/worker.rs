//! The render worker: a conversion run in a child process (`faxbox
//! render-worker`, this same binary) that limits itself with `setrlimit`
//! (address space and CPU time) before it reads a byte of the document, so a
//! document that would exhaust memory or spin forever kills only its worker,
//! never the box and the calls it carries (issue 18; CUPS filters and
//! HylaFAX's converters run apart from their servers for the same reason).
//!
//! The parent (`convert`) writes one request on the worker's stdin: a JSON
//! line (`Request`) and then each input's bytes. The worker answers on its
//! stdout with JSON lines (`Reply`): a `Page` event as each page starts and
//! ends, then `Done` followed by the fax TIFF's bytes, or `Failed`. When the
//! worker dies instead, the parent names the page it was drawing and the
//! limit it hit. Office documents are turned into PDF by LibreOffice in the
//! parent first (LibreOffice is a process of its own, and needs far more
//! address space than a worker is given).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::{
    ConvertOptions, DocumentError, Drawing, FaxDocument, Input, Kind, OnPage, PageEvent, PaperSize,
    Resolution,
};

/// The address space (RLIMIT_AS) of a render worker. Drawing a fine
/// resolution page takes about 60 MB (a 1728 x 2200 RGBA canvas, the
/// renderer's strips and the 1-bit page) per drawing thread, and the
/// program itself maps about 50 MB; 256 MB leaves room for large embedded
/// images and fonts while a content stream that inflates to hundreds of MB
/// (issue 18 item 3: 15 bytes of memory per inflated byte) stops here.
pub const WORKER_MEMORY: u64 = 256 * 1024 * 1024;

/// CPU time a worker may use beyond its time budget times its threads
/// (starting, reading the input, writing the fax image). The parent kills a
/// worker at the wall-clock deadline anyway; this limit stops one whose
/// parent is gone.
const WORKER_CPU_SLACK_S: u64 = 10;

/// Wall-clock time a worker is given beyond the per-document budgets, for
/// starting and for passing the documents and the fax image through pipes.
const WORKER_START_SLACK: Duration = Duration::from_secs(10);

/// The longest request line a worker reads (file names and settings only).
const MAX_REQUEST_LINE: u64 = 64 * 1024;

/// What a worker's stderr is kept of, to tell why it died.
const MAX_STDERR: usize = 8 * 1024;

/// The glibc allocator's arenas each reserve 64 MB of address space per
/// thread that allocates; one arena keeps the worker's address space close
/// to what it really uses, so the limit measures the document.
const ARENAS: (&str, &str) = ("MALLOC_ARENA_MAX", "1");

/// One input as announced on the request line; its bytes follow.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct InputHeader {
    name: String,
    kind: Kind,
    len: u64,
    /// The PDF's password, passed on the worker's stdin, never on its
    /// command line where any user of the machine could read it.
    #[serde(default)]
    password: Option<String>,
}

/// What a worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Task {
    /// Convert the inputs into one fax image.
    Convert,
    /// Open each input, a PDF, and count its pages (intake's check).
    CountPdfPages,
}

/// The request line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Request {
    task: Task,
    inputs: Vec<InputHeader>,
    resolution: Resolution,
    paper: PaperSize,
    max_pages: usize,
    max_image_pixels: u64,
    time_budget: Duration,
    threads: usize,
    memory_limit: u64,
    cpu_seconds: u64,
}

/// One line of a worker's answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Reply {
    Page(PageEvent),
    /// The fax image's `tiff_len` bytes follow this line.
    Done {
        pages: usize,
        tiff_len: u64,
    },
    /// The page count of each input (`Task::CountPdfPages`).
    Counted(Vec<usize>),
    Failed(DocumentError),
}

/// What a worker answered.
enum Outcome {
    Converted(FaxDocument),
    Counted(Vec<usize>),
}

/// Counts the pages of PDFs in a render worker: intake's check of a PDF
/// that cannot be opened without decompressing part of it.
pub(crate) fn count_pdf_pages(
    program: &Path,
    inputs: &[&Input],
    options: &ConvertOptions,
) -> Result<Vec<usize>, DocumentError> {
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let bodies: Vec<&[u8]> = inputs.iter().map(|i| i.bytes.as_slice()).collect();
    let kinds = vec![Kind::Pdf; inputs.len()];
    let passwords: Vec<Option<&str>> = vec![None; inputs.len()];
    let request = request(
        Task::CountPdfPages,
        (&names, &passwords),
        &kinds,
        &bodies,
        options,
    );
    match run(program, &request, &names, &bodies, options.time_budget)? {
        Outcome::Counted(pages) if pages.len() == inputs.len() => Ok(pages),
        _ => Err(DocumentError::RendererFailed {
            name: names.first().map_or("the fax", |n| n).into(),
            page: 0,
        }),
    }
}

/// The request line: `labels` are each input's name and password.
fn request(
    task: Task,
    labels: (&[&str], &[Option<&str>]),
    kinds: &[Kind],
    bodies: &[&[u8]],
    options: &ConvertOptions,
) -> Request {
    let (names, passwords) = labels;
    let threads = options.threads.max(1);
    Request {
        task,
        inputs: names
            .iter()
            .zip(passwords)
            .zip(kinds)
            .zip(bodies)
            .map(|(((name, password), &kind), body)| InputHeader {
                name: (*name).into(),
                kind,
                len: body.len() as u64,
                password: password.map(str::to_owned),
            })
            .collect(),
        resolution: options.resolution,
        paper: options.paper,
        max_pages: options.max_pages,
        max_image_pixels: options.max_image_pixels,
        time_budget: options.time_budget,
        threads,
        memory_limit: WORKER_MEMORY,
        cpu_seconds: options.time_budget.as_secs().saturating_mul(threads as u64)
            * names.len().max(1) as u64
            + WORKER_CPU_SLACK_S,
    }
}

/// Converts `inputs` (whose kinds are already detected) in a render worker
/// started from `program`, waiting at most the time budget per input.
pub(crate) fn convert(
    program: &Path,
    inputs: &[Input],
    kinds: &[Kind],
    options: &ConvertOptions,
) -> Result<FaxDocument, DocumentError> {
    // LibreOffice runs from here; the worker draws the PDF it makes.
    let mut office_pdfs: Vec<Option<Vec<u8>>> = Vec::with_capacity(inputs.len());
    for (input, kind) in inputs.iter().zip(kinds) {
        office_pdfs.push(match kind {
            Kind::Office => Some(super::office::to_pdf(
                &input.bytes,
                &input.name,
                options.libreoffice.as_deref(),
                options.time_budget,
                &AtomicBool::new(false),
            )?),
            _ => None,
        });
    }
    let bodies: Vec<&[u8]> = inputs
        .iter()
        .zip(&office_pdfs)
        .map(|(input, pdf)| pdf.as_deref().unwrap_or(&input.bytes))
        .collect();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    // What LibreOffice made is a PDF.
    let kinds: Vec<Kind> = kinds
        .iter()
        .map(|&k| if k == Kind::Office { Kind::Pdf } else { k })
        .collect();
    let passwords: Vec<Option<&str>> = inputs.iter().map(|i| i.password.as_deref()).collect();
    let request = request(
        Task::Convert,
        (&names, &passwords),
        &kinds,
        &bodies,
        options,
    );
    match run(program, &request, &names, &bodies, options.time_budget)? {
        Outcome::Converted(doc) => Ok(doc),
        Outcome::Counted(_) => Err(DocumentError::RendererFailed {
            name: names.first().map_or("the fax", |n| n).into(),
            page: 0,
        }),
    }
}

/// Starts a worker, hands it the request and the documents, and waits for
/// its answer until the deadline: the time budget per input.
fn run(
    program: &Path,
    request: &Request,
    names: &[&str],
    bodies: &[&[u8]],
    budget: Duration,
) -> Result<Outcome, DocumentError> {
    let deadline = Instant::now()
        + budget * u32::try_from(names.len().max(1)).unwrap_or(u32::MAX)
        + WORKER_START_SLACK;
    let first_name = names.first().copied().unwrap_or("the fax");
    let name_of = |input: usize| names.get(input).copied().unwrap_or(first_name);
    let mut child = Command::new(program)
        .arg("render-worker")
        .env(ARENAS.0, ARENAS.1)
        // Its own process group: a Ctrl-C meant for the box does not fail
        // the document being drawn (the box stops in its own order).
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DocumentError::WorkerUnavailable {
            name: first_name.into(),
            reason: format!("cannot start {}: {e}", program.display()),
        })?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(DocumentError::WorkerUnavailable {
            name: first_name.into(),
            reason: "its pipes could not be opened".into(),
        });
    };
    let header = serde_json::to_vec(request).map_err(|e| DocumentError::WorkerUnavailable {
        name: first_name.into(),
        reason: e.to_string(),
    })?;

    std::thread::scope(|s| {
        // The documents go in from one thread while another reads the
        // answer, so neither pipe can fill up and stall both sides.
        s.spawn(move || {
            let mut send = || -> std::io::Result<()> {
                stdin.write_all(&header)?;
                stdin.write_all(b"\n")?;
                for body in bodies {
                    stdin.write_all(body)?;
                }
                stdin.flush()
            };
            // A worker that died stops reading: its reason is read below.
            let _ = send();
        });
        let why = s.spawn(move || {
            let mut kept = Vec::new();
            let _ = (&mut stderr).take(MAX_STDERR as u64).read_to_end(&mut kept);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&kept).into_owned()
        });
        let (tx, rx) = mpsc::channel();
        s.spawn(move || read_replies(stdout, &tx));

        let mut drawing: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut last_input = 0;
        let blame = |drawing: &BTreeSet<(usize, usize)>, last_input: usize| {
            drawing.first().copied().unwrap_or((last_input, 0))
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Answer::Page(event)) => {
                    last_input = last_input.max(event.input);
                    if event.started {
                        drawing.insert((event.input, event.page));
                    } else {
                        drawing.remove(&(event.input, event.page));
                    }
                }
                Ok(Answer::Done(outcome)) => {
                    let _ = child.wait();
                    return Ok(outcome);
                }
                Ok(Answer::Failed(e)) => {
                    end(&mut child);
                    return Err(e);
                }
                Ok(Answer::Ended) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait();
                    let stderr = why.join().unwrap_or_default();
                    let (input, page) = blame(&drawing, last_input);
                    return Err(death(name_of(input), page, status.ok(), &stderr, budget));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    end(&mut child);
                    let (input, _) = blame(&drawing, last_input);
                    return Err(DocumentError::TimedOut {
                        name: name_of(input).into(),
                        limit: budget,
                    });
                }
            }
        }
    })
}

/// What the reader thread passes on.
enum Answer {
    Page(PageEvent),
    Done(Outcome),
    Failed(DocumentError),
    /// The worker closed its stdout without an answer (it died).
    Ended,
}

fn read_replies(stdout: impl Read, tx: &mpsc::Sender<Answer>) {
    let mut stdout = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut stdout)
            .take(MAX_REQUEST_LINE)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let answer = match serde_json::from_slice::<Reply>(&line) {
            Ok(Reply::Page(event)) => Answer::Page(event),
            Ok(Reply::Failed(e)) => Answer::Failed(e),
            Ok(Reply::Counted(pages)) => Answer::Done(Outcome::Counted(pages)),
            Ok(Reply::Done { pages, tiff_len }) => {
                let mut tiff = Vec::new();
                match (&mut stdout).take(tiff_len).read_to_end(&mut tiff) {
                    Ok(n) if n as u64 == tiff_len => {
                        Answer::Done(Outcome::Converted(FaxDocument { tiff, pages }))
                    }
                    _ => break,
                }
            }
            Err(_) => break,
        };
        let last = !matches!(answer, Answer::Page(_));
        if tx.send(answer).is_err() || last {
            return;
        }
    }
    let _ = tx.send(Answer::Ended);
}

/// Kills a worker (our own child, by its pid) and reaps it.
fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Why a worker died, in the sender's words.
fn death(
    name: &str,
    page: usize,
    status: Option<ExitStatus>,
    stderr: &str,
    budget: Duration,
) -> DocumentError {
    const SIGXCPU: i32 = 24;
    let signal = status.and_then(|s| s.signal());
    // Rust reports an allocation the address-space limit refused as
    // "memory allocation of N bytes failed" and aborts.
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return DocumentError::OutOfMemory {
            name: name.into(),
            page,
            limit_mb: WORKER_MEMORY >> 20,
        };
    }
    if signal == Some(SIGXCPU) || signal == Some(9) {
        return DocumentError::TimedOut {
            name: name.into(),
            limit: budget,
        };
    }
    tracing::warn!(
        document = name,
        page,
        ?status,
        stderr = stderr.trim(),
        "a render worker died"
    );
    DocumentError::RendererFailed {
        name: name.into(),
        page,
    }
}

/// `faxbox render-worker`: limits itself, reads one request from stdin,
/// converts it and answers on stdout.
pub fn serve() -> ExitCode {
    // The worker dies with the thread that started it (a box killed
    // mid-conversion leaves no worker behind).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    match serve_one() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faxbox render-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_one() -> std::io::Result<()> {
    let mut stdin = BufReader::new(std::io::stdin().lock());
    let mut line = Vec::new();
    (&mut stdin)
        .take(MAX_REQUEST_LINE)
        .read_until(b'\n', &mut line)?;
    let request: Request = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
    limit_self(request.memory_limit, request.cpu_seconds)?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    let mut kinds = Vec::with_capacity(request.inputs.len());
    for header in &request.inputs {
        let mut bytes = Vec::new();
        (&mut stdin).take(header.len).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != header.len {
            return Err(std::io::Error::other("the request was cut short"));
        }
        let mut input = Input::new(header.name.clone(), bytes);
        input.password = header.password.clone();
        inputs.push(input);
        kinds.push(header.kind);
    }
    let options = ConvertOptions {
        resolution: request.resolution,
        paper: request.paper,
        max_pages: request.max_pages,
        max_image_pixels: request.max_image_pixels,
        time_budget: request.time_budget,
        threads: request.threads,
        libreoffice: None,
        drawing: Drawing::InProcess,
    };
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let on_page: OnPage = {
        let stdout = stdout.clone();
        Arc::new(move |event| {
            if let Ok(mut out) = stdout.lock() {
                let _ = send(&mut *out, &Reply::Page(event));
            }
        })
    };
    if request.task == Task::CountPdfPages {
        let counted: Result<Vec<usize>, DocumentError> = inputs
            .iter()
            .map(|i| super::pdf_page_count(&i.bytes, &i.name))
            .collect();
        let mut out = std::io::stdout();
        return match counted {
            Ok(pages) => send(&mut out, &Reply::Counted(pages)),
            Err(e) => send(&mut out, &Reply::Failed(e)),
        };
    }
    let result = super::convert_here(&inputs, &kinds, &options, &on_page);
    let mut out = stdout
        .lock()
        .map_err(|_| std::io::Error::other("stdout is poisoned"))?;
    match result {
        Ok(doc) => {
            send(
                &mut *out,
                &Reply::Done {
                    pages: doc.pages,
                    tiff_len: doc.tiff.len() as u64,
                },
            )?;
            out.write_all(&doc.tiff)?;
        }
        Err(e) => send(&mut *out, &Reply::Failed(e))?,
    }
    out.flush()
}

fn send(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// The worker's own ceilings: address space and CPU seconds (soft limit:
/// SIGXCPU; the hard limit a few seconds later: SIGKILL).
fn limit_self(memory: u64, cpu_seconds: u64) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(memory),
            maximum: Some(memory),
        },
    )?;
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(cpu_seconds),
            maximum: Some(cpu_seconds + 5),
        },
    )?;
    Ok(())
}
