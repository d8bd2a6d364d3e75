use std::{io::IsTerminal, process::ExitCode};

use clap::{error::ErrorKind, Parser};
use pinhole::{
    cli::{one_line_clap_error, Cli, Command},
    error::{exit_code, one_line, EXIT_BAD_INPUT},
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                eprintln!(
                    "error: a subcommand is required: run, open, close, list or stats (see pinhole --help)"
                );
                return ExitCode::from(EXIT_BAD_INPUT as u8);
            }
            _ => {
                eprintln!("{}", one_line_clap_error(&e));
                return ExitCode::from(EXIT_BAD_INPUT as u8);
            }
        },
    };

    // The daemon logs at info, the client commands only warnings.
    let default = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pinhole::commands::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}
