//! What each subcommand does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use serde::Serialize;

use crate::{
    addr::Pair,
    api::{client::request, wire::Request},
    app::{
        cli::{Cli, CliCommand, DetachArgs, HaCommand, OutputArgs},
        output,
    },
    config::{self, SettingsError},
    controller::{
        foreign::HaReply,
        report::{CallsReply, CloseReply, ListReply, OpenParams, OpenReply, StatsReply},
        state_file::{self, StateError},
    },
    datapath::{
        load::XdpMode,
        pin::{mode_name, PinDir, PinDirError, Pinned},
    },
};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let control = &cli.control_path();
    match cli.command {
        CliCommand::Run(args) => {
            let settings = crate::app::daemon::settings(cli.control.as_deref(), &args)?;
            crate::app::daemon::run(settings).await
        }
        CliCommand::CheckConfig(args) => {
            let summary = check_config(&args.file)
                .with_context(|| format!("checking {}", args.file.display()))?;
            println!("{summary}");
            Ok(())
        }
        CliCommand::Open(o) => {
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
        CliCommand::Close(c) => {
            // The same endpoint checks as open: a pair that could never have
            // been opened (mixed families, A = B) is bad input, not "not found".
            Pair::new(c.a, c.b, false)?;
            let r: CloseReply = request(control, &Request::Close { a: c.a, b: c.b }).await?;
            println!("{}", output::closed(&r));
            Ok(())
        }
        CliCommand::List(out) => {
            show::<ListReply>(control, Request::List, &out, output::list).await
        }
        CliCommand::Stats(out) => {
            show::<StatsReply>(control, Request::Stats, &out, output::stats).await
        }
        CliCommand::Calls(out) => {
            show::<CallsReply>(control, Request::Calls, &out, output::calls).await
        }
        CliCommand::Ha(args) => match args.command {
            HaCommand::Promote(out) => {
                show::<HaReply>(control, Request::HaPromote, &out, output::promoted).await
            }
        },
        CliCommand::Detach(args) => {
            let (pin_dir, state_file) = detach_paths(&args)?;
            let done = detach(&pin_dir, &state_file)?;
            println!("{done}");
            Ok(())
        }
    }
}

/// The pin directory and state file `pinhole detach` works on: the flags,
/// else the configuration file's `[state]`, else the defaults.
fn detach_paths(args: &DetachArgs) -> Result<(PathBuf, PathBuf), SettingsError> {
    let file = match &args.config {
        Some(path) => config::load(path)?.options,
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
/// every problem ([`SettingsError::lines`] prints them as
/// `FILE:LINE:COL: message`).
pub fn check_config(file: &Path) -> Result<String, SettingsError> {
    config::check(file).map(|settings| config::summary(file, &settings))
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

/// Failures of `pinhole detach`.
#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    #[error(transparent)]
    PinDir(#[from] PinDirError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// What `pinhole detach` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detached {
    pub pin_dir: PathBuf,
    /// Interfaces the filter was detached from, with the mode.
    pub links: Vec<(String, XdpMode)>,
    pub prog: bool,
    pub maps: usize,
    /// The state file, when there was one.
    pub state_file: Option<PathBuf>,
}

impl std::fmt::Display for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.links.is_empty() {
            let links: Vec<String> = self
                .links
                .iter()
                .map(|(i, m)| format!("{i} ({})", mode_name(*m)))
                .collect();
            parts.push(format!("detached from {}", links.join(", ")));
        }
        if self.prog || self.maps > 0 {
            let prog = if self.prog { "the program and " } else { "" };
            let s = if self.maps == 1 { "" } else { "s" };
            parts.push(format!(
                "unpinned {prog}{} map{s} from {}",
                self.maps,
                self.pin_dir.display()
            ));
        }
        if parts.is_empty() {
            parts.push(format!("nothing pinned in {}", self.pin_dir.display()));
        }
        if let Some(state) = &self.state_file {
            parts.push(format!("removed the state file {}", state.display()));
        }
        f.write_str(&parts.join("; "))
    }
}

/// `pinhole detach`: removes a pinned filter (detaching it from its
/// interfaces) and the state file, with no daemon running.
pub fn detach(pin_dir: &Path, state_file: &Path) -> Result<Detached, DetachError> {
    let mut out = Detached {
        pin_dir: pin_dir.into(),
        ..Detached::default()
    };
    if let Some(pins) = PinDir::open(pin_dir)? {
        for p in pins.clear()? {
            match p {
                Pinned::Link { mode, iface } => out.links.push((iface, mode)),
                Pinned::Prog => out.prog = true,
                Pinned::Map { .. } => out.maps += 1,
                Pinned::Other { .. } => {}
            }
        }
    }
    if state_file::remove(state_file)? {
        out.state_file = Some(state_file.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_reports_what_it_removed() {
        let d = Detached {
            pin_dir: "/sys/fs/bpf/pinhole".into(),
            links: vec![
                ("r-in".into(), XdpMode::Native),
                ("r-out".into(), XdpMode::Skb),
            ],
            prog: true,
            maps: 3,
            state_file: Some("/run/pinhole/state.json".into()),
        };
        assert_eq!(
            d.to_string(),
            "detached from r-in (native), r-out (skb); unpinned the program and 3 maps from \
             /sys/fs/bpf/pinhole; removed the state file /run/pinhole/state.json"
        );
        let nothing = Detached {
            pin_dir: "/sys/fs/bpf/pinhole".into(),
            ..Detached::default()
        };
        assert_eq!(nothing.to_string(), "nothing pinned in /sys/fs/bpf/pinhole");
        // No pin directory and no state file: nothing to do, not an error.
        let tmp = std::env::temp_dir().join(format!("pinhole-detach-{}", std::process::id()));
        let r = detach(&tmp.join("pins"), &tmp.join("state.json")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("nothing pinned in {}", tmp.join("pins").display())
        );
    }
}
