//! The `overreach` binary: parse flags, start logging, run a subcommand.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = overreach::cli::Cli::parse();
    overreach::cli::init_logging(&cli.log);
    match overreach::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", overreach::cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
