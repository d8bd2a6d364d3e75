use std::{io::IsTerminal, process::ExitCode};

use clap::{error::ErrorKind, Parser};
use pinhole::{
    app::cli::{one_line_clap_error, Cli, CliCommand},
    app::exit::{exit_code, one_line, EXIT_BAD_INPUT},
    config::{LogFormat, RunSettings},
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
                    "error: a subcommand is required: run, open, close, list, stats, calls, \
                     check-config or detach (see pinhole --help)"
                );
                return ExitCode::from(EXIT_BAD_INPUT as u8);
            }
            _ => {
                eprintln!("{}", one_line_clap_error(&e));
                return ExitCode::from(EXIT_BAD_INPUT as u8);
            }
        },
    };

    // `check-config` touches nothing and logs nothing.
    if let CliCommand::CheckConfig(args) = &cli.command {
        return match pinhole::app::commands::check_config(&args.file) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                for line in e.lines() {
                    eprintln!("error: {line}");
                }
                ExitCode::from(EXIT_BAD_INPUT as u8)
            }
        };
    }

    // The daemon's settings (file and flags) decide its log format, so they
    // are resolved before logging starts.
    let settings = match &cli.command {
        CliCommand::Run(args) => match pinhole::app::daemon::settings(cli.control.as_deref(), args)
        {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT as u8);
            }
        },
        _ => None,
    };
    init_logging(settings.as_ref());

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
    let result = match settings {
        Some(settings) => runtime.block_on(pinhole::app::daemon::run(settings)),
        None => runtime.block_on(pinhole::app::commands::dispatch(cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}

/// Logs to stderr through `tracing`: the daemon at info, the client commands
/// only warnings (`RUST_LOG` overrides); text, or JSON lines for the daemon
/// with `--log-format json`.
fn init_logging(settings: Option<&RunSettings>) {
    let default = if settings.is_some() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match settings.map(|s| s.log_format) {
        Some(LogFormat::Json) => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        _ => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
