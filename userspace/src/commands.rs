//! What each subcommand does.

use std::path::Path;

use serde::Serialize;

use crate::{
    addr::Pair,
    cli::{Cli, Command, OutputArgs},
    control::request,
    output,
    proto::{CloseReply, ListReply, OpenParams, OpenReply, Request, StatsReply},
};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let control = cli.control.as_path();
    match cli.command {
        Command::Run(args) => crate::daemon::run(args, control).await,
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
