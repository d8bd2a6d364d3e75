//! What each subcommand does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use serde::Serialize;

use crate::{
    addr::Pair,
    api::server::request,
    app::cli::{Cli, Command, DetachArgs, OutputArgs},
    app::output,
    config,
    controller::report::{
        CallsReply, CloseReply, ListReply, OpenParams, OpenReply, Request, StatsReply,
    },
    datapath::error::ConfigError,
};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let control = &cli.control_path();
    match cli.command {
        Command::Run(args) => {
            let settings = crate::app::daemon::settings(cli.control.as_deref(), &args)?;
            crate::app::daemon::run(settings).await
        }
        Command::CheckConfig(args) => {
            let summary = check_config(&args.file)
                .map_err(|lines| ConfigError::Invalid(lines.join("; ")))
                .with_context(|| format!("checking {}", args.file.display()))?;
            println!("{summary}");
            Ok(())
        }
        Command::Open(o) => {
            // Checked here too, so bad input fails without a daemon.
            Pair::new(o.a, o.b, o.with_rtcp)?;
            let params = OpenParams {
                a: o.a,
                b: o.b,
                rtcp: o.with_rtcp,
                idle_secs: o.idle,
                owner: None,
            };
            let r: OpenReply = request(control, &Request::Open(params)).await?;
            println!("{}", output::opened(&r));
            Ok(())
        }
        Command::Close(c) => {
            // The same endpoint checks as open: a pair that could never have
            // been opened (mixed families, A = B) is bad input, not "not found".
            Pair::new(c.a, c.b, false)?;
            let r: CloseReply = request(control, &Request::Close { a: c.a, b: c.b }).await?;
            println!("{}", output::closed(&r));
            Ok(())
        }
        Command::List(out) => show::<ListReply>(control, Request::List, &out, output::list).await,
        Command::Stats(out) => {
            show::<StatsReply>(control, Request::Stats, &out, output::stats).await
        }
        Command::Calls(out) => {
            show::<CallsReply>(control, Request::Calls, &out, output::calls).await
        }
        Command::Detach(args) => {
            let (pin_dir, state_file) = detach_paths(&args)?;
            let done = crate::datapath::pin::detach(&pin_dir, &state_file)?;
            println!("{done}");
            Ok(())
        }
    }
}

/// The pin directory and state file `pinhole detach` works on: the flags,
/// else the configuration file's `[state]`, else the defaults.
fn detach_paths(args: &DetachArgs) -> Result<(PathBuf, PathBuf), ConfigError> {
    let file = match &args.config {
        Some(path) => {
            config::load(path)
                .map_err(|errors| {
                    ConfigError::Invalid(config::render(path, &errors).replace('\n', "; "))
                })?
                .options
        }
        None => config::RunOptions::default(),
    };
    let d = config::RunSettings::default();
    Ok((
        args.pin_dir.clone().or(file.pin_dir).unwrap_or(d.pin_dir),
        args.state_file
            .clone()
            .or(file.state_file)
            .unwrap_or(d.state_file),
    ))
}

/// `pinhole check-config FILE`: the one-line summary of a valid file, or
/// every error as `FILE:LINE:COL: message`.
pub fn check_config(file: &Path) -> Result<String, Vec<String>> {
    match config::check(file) {
        Ok(settings) => Ok(config::summary(file, &settings)),
        Err(errors) => Err(config::render(file, &errors)
            .lines()
            .map(str::to_string)
            .collect()),
    }
}

async fn show<T: serde::de::DeserializeOwned + Serialize>(
    control: &Path,
    req: Request,
    out: &OutputArgs,
    human: fn(&T) -> String,
) -> anyhow::Result<()> {
    let reply: T = request(control, &req).await?;
    if out.json {
        println!("{}", serde_json::to_string(&reply)?);
    } else {
        print!("{}", human(&reply));
    }
    Ok(())
}
