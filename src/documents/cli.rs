//! `faxbox convert`: documents to a fax TIFF, or a fax TIFF to a PDF, from
//! the command line (the same conversion intake uses).

use std::path::PathBuf;

use anyhow::Context;

use super::{ConvertOptions, Input, PaperSize, Resolution};

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Documents to fax, in order (PDF, images, TIFF, text, office files,
    /// PWG Raster and Apple URF print files);
    /// or one fax TIFF when the output is a PDF.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// The output: OUT.tif (a fax TIFF) or OUT.pdf (from a fax TIFF).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Standard resolution (204x98) instead of fine (204x196).
    #[arg(long)]
    pub standard: bool,
    /// A4 pages instead of Letter.
    #[arg(long)]
    pub a4: bool,
    #[command(flatten)]
    pub document_password: DocumentPassword,
}

/// `--document-password`, as `faxbox send` and `faxbox convert` take it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DocumentPassword {
    /// The password that opens encrypted PDFs among the files (better given
    /// in the environment, where other users cannot see it, than here).
    #[arg(
        long = "document-password",
        env = "FAXBOX_DOCUMENT_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let to_pdf = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    let bytes = if to_pdf {
        let [input] = args.inputs.as_slice() else {
            anyhow::bail!("a PDF is made from exactly one fax TIFF");
        };
        let tiff =
            std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
        super::tiff_to_pdf(&tiff)?
    } else {
        let mut inputs = Vec::with_capacity(args.inputs.len());
        for path in &args.inputs {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            inputs.push(Input::new(name, bytes));
        }
        let inputs = super::with_password(inputs, args.document_password.password.as_deref());
        let options = ConvertOptions {
            resolution: if args.standard {
                Resolution::Standard
            } else {
                Resolution::Fine
            },
            paper: if args.a4 {
                PaperSize::A4
            } else {
                PaperSize::Letter
            },
            drawing: super::Drawing::worker_of_this_program(),
            ..ConvertOptions::default()
        };
        let doc = super::convert(&inputs, &options)?;
        eprintln!("{} page(s)", doc.pages);
        doc.tiff
    };
    // Written beside the target and renamed, so a failure leaves no partial file.
    let mut tmp_name = args.output.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".partial-{}", std::process::id()));
    let tmp = args.output.with_file_name(tmp_name);
    let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &args.output));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", args.output.display()));
    }
    Ok(())
}
