//! dnsreg: a cloud DNS registration agent.
//!
//! Thin: parse the command line, set up logging, run the command, and map its
//! outcome to the exit codes (docs/design.md, "Exit codes": 0 success, 1
//! runtime failure, 2 usage or configuration error, 3 `plan`: something would
//! change) with one printing
//! convention, `dnsreg: <what failed>: <why>` on stderr.

use std::process::ExitCode;

use clap::Parser;

use dnsreg::cli::Cli;
use dnsreg::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => commands::failed(&e),
    }
}
