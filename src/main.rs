//! The `faxbox` command. Thin on purpose (docs/style.md, principle 1): parse the
//! arguments and hand over to the library, which tests can drive directly.

use clap::Parser;

fn main() -> std::process::ExitCode {
    faxbox::fax::configure_for_a_long_running_box();
    faxbox::cli::main(faxbox::cli::Cli::parse())
}
