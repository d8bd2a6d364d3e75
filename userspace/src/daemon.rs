//! `pinhole run`: load and attach, serve the control socket, and on
//! SIGINT/SIGTERM detach and clean up.

use std::path::Path;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use crate::{
    calls::CallConfig,
    capture::{
        feed::FeedConfig,
        nfqueue::{QueueOptions, DEFAULT_QUEUE_MAX_LEN},
        rules::RuleSpec,
        Capture,
    },
    cli::{RunArgs, SignalingArg},
    control::{ensure_not_running, ControlServer},
    controller::{self, ControllerConfig, KernelStore},
    error::ConfigError,
    loader::{build_config, resolve_interfaces, spawn_log_pump, Datapath, LoadOptions},
};

/// The signaling feed's settings from the command line. Refuses a port in
/// both lists and a SIP port inside a media range (XDP would drop its UDP).
pub fn feed_config(args: &RunArgs) -> Result<FeedConfig, ConfigError> {
    let dedup = |ports: &[u16]| {
        let mut v = ports.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let sip_ports = dedup(&args.sip_ports);
    let rtsp_ports = dedup(&args.rtsp_ports);
    if let Some(p) = sip_ports.iter().find(|p| rtsp_ports.contains(p)) {
        return Err(ConfigError::SignalingPortTwice(*p));
    }
    for p in &sip_ports {
        if let Some(r) = args.media_ports.iter().find(|r| (r.lo..=r.hi).contains(p)) {
            return Err(ConfigError::SignalingPortInMedia {
                port: *p,
                range: format!("{}-{}", r.lo, r.hi),
            });
        }
    }
    let secs = std::time::Duration::from_secs;
    let defaults = CallConfig::default();
    let calls = CallConfig {
        trusted_signaling: if args.trusted_signaling.is_empty() {
            defaults.trusted_signaling.clone()
        } else {
            args.trusted_signaling.clone()
        },
        media_relay: args.media_relay.clone(),
        max_pairs_per_call: args.max_pinholes_per_call as usize,
        max_calls_per_peer: args.max_calls_per_peer as usize,
        bye_grace: secs(args.bye_grace),
        max_lifetime: secs(args.max_call_lifetime),
        idle_timeout: secs(args.call_idle),
        ..defaults
    };
    Ok(FeedConfig {
        sip_ports,
        rtsp_ports,
        calls,
        ..FeedConfig::default()
    })
}

/// Runs the daemon until a signal; returns after a clean detach.
pub async fn run(args: RunArgs, control: &Path) -> anyhow::Result<()> {
    // Everything that can be checked without privileges first.
    let config = build_config(&args.media_ports, args.fragments.into())?;
    let feed = feed_config(&args)?;
    let interfaces = resolve_interfaces(&args.ifaces)?;
    ensure_not_running(control)?;

    // Before ready: a signal right after the socket appears must not kill us.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let mut datapath = Datapath::load(&LoadOptions {
        interfaces,
        mode: args.xdp_mode.into(),
        config,
        max_flows: args.max_pinholes,
    })?;
    let log_pump = match datapath.take_logger() {
        Some(logger) => Some(spawn_log_pump(logger).context("reading eBPF logs")?),
        None => None,
    };
    let (flows, counters) = datapath.take_maps()?;
    let ranges: Vec<String> = args
        .media_ports
        .iter()
        .map(|r| format!("{}-{}", r.lo, r.hi))
        .collect();
    info!(
        interfaces = ?datapath.interfaces().collect::<Vec<_>>(),
        media_ports = %ranges.join(","),
        fragments = ?args.fragments,
        max_flows = args.max_pinholes,
        default_idle_secs = args.default_idle,
        "filter loaded"
    );

    let inline = args.signaling == SignalingArg::Inline;
    let mut controller_config =
        ControllerConfig::new(args.max_pinholes as usize, args.default_idle);
    controller_config.feed = feed.clone();
    controller_config.signaling_inline = inline;
    let (handle, mut controller_task) =
        controller::spawn(KernelStore { flows, counters }, controller_config);

    // Signaling is queued to us before we are ready, so that a test (or an
    // operator) that sees the control socket also sees calls being followed.
    let capture = if inline {
        let spec = RuleSpec {
            interfaces: datapath.interfaces().map(str::to_string).collect(),
            sip_ports: feed.sip_ports.clone(),
            rtsp_ports: feed.rtsp_ports.clone(),
            queue_num: args.queue_num,
        };
        let queue = QueueOptions {
            queue_num: args.queue_num,
            max_len: DEFAULT_QUEUE_MAX_LEN,
        };
        let capture = Capture::start(&spec, queue, handle.sink())?;
        info!(
            sip_ports = ?feed.sip_ports, rtsp_ports = ?feed.rtsp_ports, queue = args.queue_num,
            trusted = ?feed.calls.trusted_signaling.iter().map(ToString::to_string).collect::<Vec<_>>(),
            media_relay = ?feed.calls.media_relay.iter().map(ToString::to_string).collect::<Vec<_>>(),
            call_idle_secs = args.call_idle, bye_grace_secs = args.bye_grace,
            "inline signaling on"
        );
        Some(capture)
    } else {
        info!("signaling off: only the control API opens pinholes");
        None
    };
    let server = ControlServer::bind(control)?;
    info!(control = %control.display(), "ready");

    let mut controller_done = false;
    let outcome = tokio::select! {
        _ = sigterm.recv() => { info!("SIGTERM received, shutting down"); Ok(()) }
        _ = sigint.recv() => { info!("SIGINT received, shutting down"); Ok(()) }
        () = server.serve(handle) => Err(anyhow::anyhow!("the control server stopped unexpectedly")),
        r = &mut controller_task => {
            controller_done = true;
            Err(anyhow::anyhow!("the controller stopped unexpectedly: {r:?}"))
        }
    };
    if let Err(e) = &outcome {
        error!("{e}");
    }
    // The serve future is gone (no more connections). Remove the signaling
    // rules first (nothing more is queued), stop the controller, then remove
    // the socket and detach.
    drop(capture);
    if !controller_done {
        controller_task.abort();
        let _ = controller_task.await;
    }
    if let Some(pump) = log_pump {
        pump.abort();
    }
    drop(server);
    drop(datapath);
    info!("stopped");
    outcome
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{
        cli::{Cli, Command},
        error::{exit_code, EXIT_BAD_INPUT},
    };

    fn run_args(extra: &[&str]) -> RunArgs {
        let args = ["pinhole", "run", "--iface", "lo"].iter().chain(extra);
        match Cli::try_parse_from(args).unwrap().command {
            Command::Run(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn feed_config_maps_the_cli_into_the_call_policy() {
        let f = feed_config(&run_args(&[
            "--sip-ports",
            "5080,5060,5060",
            "--trusted-signaling",
            "192.0.2.0/24",
            "--media-relay",
            "203.0.113.0/28",
            "--call-idle",
            "7",
            "--bye-grace",
            "0",
            "--max-call-lifetime",
            "60",
            "--max-pinholes-per-call",
            "3",
            "--max-calls-per-peer",
            "2",
        ]))
        .unwrap();
        assert_eq!(f.sip_ports, [5060, 5080]);
        assert_eq!(f.rtsp_ports, [554, 7070, 8554]);
        let c = &f.calls;
        assert_eq!(c.trusted_signaling, ["192.0.2.0/24".parse().unwrap()]);
        assert_eq!(c.media_relay, ["203.0.113.0/28".parse().unwrap()]);
        assert_eq!(c.idle_timeout.as_secs(), 7);
        assert_eq!((c.bye_grace.as_secs(), c.max_lifetime.as_secs()), (0, 60));
        assert_eq!((c.max_pairs_per_call, c.max_calls_per_peer), (3, 2));
        // No --trusted-signaling: any.
        let f = feed_config(&run_args(&[])).unwrap();
        assert!(f.calls.is_trusted(
            "198.51.100.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap()
        ));
    }

    #[test]
    fn conflicting_ports_are_bad_input() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--sip-ports", "5060,554"],
                "port 554 is both a --sip-ports and an --rtsp-ports port",
            ),
            (
                &["--sip-ports", "15060"],
                "signaling port 15060 lies in media port range 10000-20000",
            ),
        ];
        for (extra, want) in cases {
            let err = anyhow::Error::from(feed_config(&run_args(extra)).unwrap_err());
            assert!(err.to_string().starts_with(want), "{err}");
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
        }
    }
}
