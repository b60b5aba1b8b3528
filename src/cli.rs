//! The `faxbox` command line: argument parsing and one function per command.
//!
//! Output is scriptable: a `create` prints the new id alone on stdout,
//! `--json` prints whole objects, and errors go to stderr with a non-zero
//! exit status, phrased for the person at the keyboard.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "faxbox",
    version,
    about = "A virtual fax machine for small offices"
)]
pub struct Cli {
    /// The configuration file (default: ./faxbox.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Overrides `data_dir` from the configuration.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a configuration file and print what it resolves to.
    CheckConfig,
    /// Convert documents into a fax TIFF, or a fax TIFF into a PDF.
    Convert(crate::documents::cli::ConvertArgs),
}

/// Runs one command and turns its outcome into an exit status.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faxbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::discover(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    match cli.command {
        Command::CheckConfig => {
            println!("{}: ok", config.source);
            println!("data_dir = {}", config.data_dir.display());
            Ok(())
        }
        Command::Convert(args) => crate::documents::cli::run(args),
    }
}
