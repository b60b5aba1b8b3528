//! The `faxbox` command. Thin on purpose (STYLE.md principle 1): parse the
//! arguments and hand over to the library, which tests can drive directly.

use clap::Parser;

fn main() -> std::process::ExitCode {
    faxbox::cli::main(faxbox::cli::Cli::parse())
}
