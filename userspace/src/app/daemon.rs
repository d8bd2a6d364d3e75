//! `pinhole run`: load and attach (taking over a pinned filter and the
//! state file of an earlier daemon), serve the control socket (and, when
//! configured, the ng protocol and the metrics endpoint), and on
//! SIGINT/SIGTERM detach and clean up, or with `--keep-pinned` leave the
//! filter in place for the next daemon.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    net::{TcpListener, UdpSocket},
    signal::unix::{signal, SignalKind},
    task::JoinHandle,
};
use tracing::{error, info, warn};

use crate::{
    api::server::{ensure_not_running, ControlServer},
    app::cli::RunArgs,
    capture::{
        nat::{self as router_nat, NatView},
        nfqueue::{self, QueueOptions, RestartPolicy, DEFAULT_QUEUE_MAX_LEN},
        rules::RuleSpec,
        Capture,
    },
    config::SettingsError,
    config::{self, RunSettings, SignalingMode},
    controller::state_file::{self, State, StateWriter},
    controller::{self, Controller, ControllerConfig, ControllerHandle, KernelStore},
    datapath::forward::ForwardMode,
    datapath::latch,
    datapath::links::{LinkTask, Watcher},
    datapath::load::{build_config, resolve_interfaces, spawn_log_pump, Datapath, LoadOptions},
    datapath::media_scope::{apply_media_prefixes, warn_local_port_overlap},
    datapath::pin::{PinDir, Pinned},
    feed::FeedConfig,
    metrics::{self, Metrics},
    ng,
};

/// How long the final write of the state file may take on exit.
const FINAL_SAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Locks the pin directory and reads the state file, before anything is
/// loaded. A state file that cannot be used while a filter is pinned is an
/// error: that filter and its maps stay as they are. Without pins a state
/// file means nothing (a reboot, or `pinhole detach` of the pins only) and
/// is ignored.
fn take_over(s: &RunSettings) -> anyhow::Result<(PinDir, bool, Option<State>)> {
    let pins = PinDir::create(&s.pin_dir, s.keep_pinned)?;
    let pinned = pins
        .entries()?
        .iter()
        .any(|p| matches!(p, Pinned::Map { .. } | Pinned::Link { .. }));
    let state = match state_file::load(&s.state_file) {
        Ok(state) => state,
        Err(e) if pinned => return Err(e.into()),
        Err(e) => {
            warn!(
                "{e}; ignored, as nothing is pinned in {}",
                s.pin_dir.display()
            );
            None
        }
    };
    let state = match state {
        Some(_) if !pinned => {
            warn!(state_file = %s.state_file.display(), pin_dir = %s.pin_dir.display(),
                "the state file is ignored: nothing is pinned to go with it");
            None
        }
        other => other,
    };
    Ok((pins, pinned, state))
}

/// The settings `pinhole run` runs with: the `--config` file (if any) with
/// the flags over it, validated. Every problem is reported, on one line:
/// those in the file as `FILE:LINE:COL: message`, the others naming their
/// flag or key.
pub fn settings(control: Option<&Path>, args: &RunArgs) -> Result<RunSettings, SettingsError> {
    let file = args.config.as_deref().map(config::load).transpose()?;
    config::resolve(file, args.options(control))
}

/// The signaling feed's settings (ports deduplicated; conflicts were
/// refused when the settings were resolved).
pub fn feed_config(s: &RunSettings) -> FeedConfig {
    let dedup = |ports: &[u16]| {
        let mut v = ports.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    FeedConfig {
        sip_ports: dedup(&s.sip_ports),
        rtsp_ports: dedup(&s.rtsp_ports),
        calls: s.call_config(),
        nat: NatView::new(s.nat.clone()),
        ..FeedConfig::default()
    }
}

async fn bind_udp(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    UdpSocket::bind(addr)
        .await
        .with_context(|| format!("binding the ng listener on {addr} (--ng-listen)"))
}

async fn bind_tcp(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr} (--metrics-listen)"))
}

/// Serves the ng protocol on `socket` through the controller.
fn spawn_ng(socket: UdpSocket, handle: ControllerHandle) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(ng::serve_udp(socket, move |peer, datagram| {
        let handle = handle.clone();
        let received_at = crate::clock::monotonic_ns();
        async move {
            handle
                .ng(peer, datagram, received_at)
                .await
                .unwrap_or_default()
        }
    }))
}

/// Serves `/metrics`, refreshed by the controller before each scrape.
fn spawn_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    handle: ControllerHandle,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(metrics::serve(listener, metrics, move || {
        let handle = handle.clone();
        async move {
            // A stopped controller leaves the last numbers; the daemon is
            // shutting down then anyway.
            let _ = handle.refresh_metrics().await;
        }
    }))
}

/// Waits for an optional task; never returns without one.
async fn join(task: &mut Option<JoinHandle<std::io::Result<()>>>) -> String {
    match task {
        Some(t) => match t.await {
            Ok(Ok(())) => "stopped".into(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        },
        None => std::future::pending().await,
    }
}

/// `--forward xdp` sends open media past netfilter: NAT rules that could
/// touch the media range no longer apply to it. Warns with the rules found
/// (the detection is [`router_nat`]'s, conservative: a rule it cannot read
/// counts).
fn warn_forwarded_nat(s: &RunSettings) {
    let (listings, _) = router_nat::read_ruleset();
    let mut ifaces = s.interfaces.clone();
    ifaces.extend(s.forward_ifaces.iter().cloned());
    let found = router_nat::media_nat(&listings, &ifaces, &s.media_ports);
    if !found.is_empty() {
        let rules: Vec<String> = found.iter().map(|r| format!("`{}`", r.rule)).collect();
        warn!(
            "--forward xdp: NAT rules can touch the media range ({}); media of open pinholes is \
             forwarded by XDP and skips netfilter, so these rules do not apply to it. Use \
             --forward stack on a router that NATs media (see README \"XDP forwarding\")",
            rules.join(", ")
        );
    }
}

/// Runs the daemon until a signal; returns after a clean detach.
pub async fn run(s: RunSettings) -> anyhow::Result<()> {
    // Everything that can be checked without privileges first.
    let control = s.control.as_path();
    let mut config = build_config(&s.media_ports, s.fragments.into())?;
    apply_media_prefixes(&mut config, &s.media_prefixes)?;
    warn_local_port_overlap(&s.media_ports, !s.media_prefixes.is_empty());
    // Pre-answer latching uses the program's latch path too.
    config.latching = u32::from(s.latching > 0 || s.pre_answer);
    config.forward = u32::from(s.forward == ForwardMode::Xdp);
    let feed = feed_config(&s);
    let interfaces = resolve_interfaces(&s.interfaces)?;
    let forward_egress = match (s.forward, s.forward_ifaces.is_empty()) {
        (ForwardMode::Stack, _) => Vec::new(),
        (ForwardMode::Xdp, true) => interfaces.clone(),
        (ForwardMode::Xdp, false) => resolve_interfaces(&s.forward_ifaces)?,
    };
    ensure_not_running(control)?;
    // The listeners next, so a busy port fails before the filter is loaded.
    let ng_socket = match s.ng_listen {
        Some(addr) => Some(bind_udp(addr).await?),
        None => None,
    };
    let metrics_listener = match s.metrics_listen {
        Some(addr) => Some(bind_tcp(addr).await?),
        None => None,
    };

    // Before ready: a signal right after the socket appears must not kill us.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Interfaces that go away and come back (see links.rs).
    let link_watcher = Watcher::open().context("subscribing to link changes (rtnetlink)")?;
    let (iface_status, iface_status_rx) = tokio::sync::watch::channel(Vec::new());

    let (pins, pinned, saved) = take_over(&s)?;
    let writer =
        Arc::new(StateWriter::start(&s.state_file).context("starting the state file writer")?);
    let mut datapath = Datapath::load(
        &LoadOptions {
            interfaces,
            mode: s.xdp_mode,
            config,
            max_flows: s.max_pinholes,
        },
        Some(pins),
    )?;
    // Written from the daemon's own namespace, where the kernel resolves
    // the ifindexes. Always: a pinned map keeps no stale egress.
    datapath.set_forward_egress(&forward_egress)?;
    let log_pump = match datapath.take_logger() {
        Some(logger) => Some(spawn_log_pump(logger).context("reading eBPF logs")?),
        None => None,
    };
    let (flows, counters) = datapath.take_maps()?;
    // Half-open entries in latch maps adopted from an earlier daemon belong
    // to calls this one cannot complete (which calls asked for them is not
    // saved): remove them, latching on or off.
    let (mut latch_map, latch_ring) = datapath.take_latch_maps()?;
    let stale = latch_map.clear()?;
    if stale > 0 {
        info!(
            stale,
            "removed the half-open pinholes a previous daemon left in the latch maps"
        );
    }
    let (latches, latch_events) = if s.latching > 0 || s.pre_answer {
        (Some(latch_map), Some(latch_ring))
    } else {
        (None, None)
    };
    let ranges: Vec<String> = s
        .media_ports
        .iter()
        .map(|r| format!("{}-{}", r.lo, r.hi))
        .collect();
    info!(
        interfaces = ?datapath.interfaces().collect::<Vec<_>>(),
        media_ports = %ranges.join(","),
        fragments = ?s.fragments,
        media_prefixes = %if s.media_prefixes.is_empty() {
            "any".to_string()
        } else {
            s.media_prefixes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        },
        max_flows = s.max_pinholes,
        default_idle_secs = s.default_idle,
        forward = ?s.forward,
        "filter loaded"
    );
    if s.forward == ForwardMode::Xdp {
        warn_forwarded_nat(&s);
    }

    let inline = s.signaling == SignalingMode::Inline;
    let metrics = metrics_listener.as_ref().map(|_| Arc::new(Metrics::new()));
    let mut controller_config = ControllerConfig::new(s.max_pinholes as usize, s.default_idle);
    controller_config.feed = feed.clone();
    controller_config.signaling_inline = inline;
    controller_config.ng = ng_socket.as_ref().map(|_| s.ng_config());
    controller_config.metrics = metrics.clone();
    controller_config.state_writer = Some(writer.clone());
    controller_config.interfaces = Some(iface_status_rx);
    let ha = s.ha_config().map(|cfg| {
        let (link, chans) = crate::ha::replicator::link(&cfg.node, metrics.clone());
        (cfg, link, chans)
    });
    controller_config.ha = ha.as_ref().map(|(_, link, _)| link.clone());
    let queue_health = inline.then(|| nfqueue::Health::new(s.queue_num));
    controller_config.queue_health = queue_health.clone();
    let mut controller = Controller::new(
        KernelStore {
            flows,
            counters,
            latches,
        },
        controller_config,
    );
    let adoption = datapath.adoption().clone();
    // A pinned filter's state is taken over before its links get the new
    // program: the maps then already hold what the new program expects.
    if pinned && (saved.is_some() || adoption.adopted()) {
        let saved = saved.unwrap_or_else(|| {
            warn!(state_file = %s.state_file.display(),
                "pinned maps without a state file: their flows are removed (their pinholes are unknown)");
            State::new(1, Vec::new(), Default::default())
        });
        let r = controller.restore(saved);
        info!(
            pinholes = r.pinholes, refused = r.refused, calls = r.calls, rtsp_sessions = r.sessions,
            flows_reinserted = r.reinserted, orphan_flows_removed = r.orphans_removed, failed = r.failed,
            maps_adopted = ?adoption.maps, maps_replaced = ?adoption.replaced.iter().map(|m| &m.name).collect::<Vec<_>>(),
            "state taken over from the previous daemon"
        );
    }
    datapath.attach()?;
    let adoption = datapath.adoption().clone();
    if adoption.links.is_empty() && pinned {
        warn!("no pinned link was taken over: the interfaces were unfiltered until now");
    }
    let links = LinkTask::start(link_watcher, datapath, s.xdp_mode, iface_status);
    let (handle, mut controller_task) = controller::start(controller);
    // HA starts after the state is taken over: its first resync writes it.
    let _ha_task = ha.map(|(cfg, link, chans)| {
        info!(url = %cfg.redacted_url(), node = %cfg.node, ttl_secs = cfg.ttl.as_secs(), "HA replication on");
        crate::ha::replicator::spawn(cfg, link, chans, handle.clone())
    });
    let latch_reader = match latch_events {
        Some(ring) => {
            // One batch in flight: the reader waits while the controller
            // applies the previous one, as it did when it called it directly.
            let (events_tx, events_rx) = tokio::sync::mpsc::channel(1);
            handle.clone().forward_latched(events_rx);
            Some(latch::spawn_reader(ring, events_tx).context("reading latch events")?)
        }
        None => None,
    };

    // Signaling is queued to us before we are ready, so that a test (or an
    // operator) that sees the control socket also sees calls being followed.
    let capture = if inline {
        router_nat::check_router(
            &router_nat::Watched {
                interfaces: &s.interfaces,
                sip_ports: &feed.sip_ports,
                media_ports: &s.media_ports,
            },
            &s.nat,
        );
        let spec = RuleSpec {
            sip_ports: feed.sip_ports.clone(),
            rtsp_ports: feed.rtsp_ports.clone(),
            queue_num: s.queue_num,
        };
        let queue = QueueOptions {
            queue_num: s.queue_num,
            max_len: DEFAULT_QUEUE_MAX_LEN,
        };
        let health = queue_health.clone().expect("inline signaling has a queue");
        let capture = Capture::start(
            &spec,
            queue,
            handle.sink(),
            health,
            RestartPolicy::default(),
        )?;
        info!(
            sip_ports = ?feed.sip_ports, rtsp_ports = ?feed.rtsp_ports, queue = s.queue_num,
            trusted = ?feed.calls.trusted_signaling.iter().map(ToString::to_string).collect::<Vec<_>>(),
            media_relay = ?feed.calls.media_relay.iter().map(ToString::to_string).collect::<Vec<_>>(),
            call_idle_secs = s.call_idle, hold_timeout_secs = s.hold_timeout, bye_grace_secs = s.bye_grace, latching_secs = s.latching,
            "inline signaling on"
        );
        Some(capture)
    } else {
        info!("signaling off: only the control API and the ng protocol open pinholes");
        None
    };
    let mut ng_task = ng_socket.map(|socket| {
        let allow: Vec<String> = s.ng_allow.iter().map(ToString::to_string).collect();
        info!(listen = ?s.ng_listen, allow = ?allow, "ng protocol listening");
        spawn_ng(socket, handle.clone())
    });
    let mut metrics_task = match (metrics_listener, metrics) {
        (Some(listener), Some(metrics)) => {
            info!(listen = ?s.metrics_listen, "metrics at /metrics");
            Some(spawn_metrics(listener, metrics, handle.clone()))
        }
        _ => None,
    };
    let server = ControlServer::bind(control)?;
    info!(
        control = %control.display(),
        pin_dir = %s.pin_dir.display(),
        state_file = %s.state_file.display(),
        keep_pinned = s.keep_pinned,
        "ready"
    );

    // The reader restarts itself; once it gives up, so does the daemon
    // (non-zero exit, for systemd to restart it) rather than run blind.
    let mut capture = capture;
    let reader_failed = capture.as_mut().and_then(Capture::failed);
    let reader_failed = async move {
        match reader_failed {
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| "the signaling queue reader ended".into()),
            None => std::future::pending().await,
        }
    };
    let mut controller_done = false;
    let outcome = tokio::select! {
        why = reader_failed => Err(anyhow::anyhow!("{why}; exiting so that the service manager restarts pinhole")),
        _ = sigterm.recv() => { info!("SIGTERM received, shutting down"); Ok(()) }
        _ = sigint.recv() => { info!("SIGINT received, shutting down"); Ok(()) }
        () = server.serve(handle.clone()) => Err(anyhow::anyhow!("the control server stopped unexpectedly")),
        e = join(&mut ng_task) => Err(anyhow::anyhow!("the ng listener stopped: {e}")),
        e = join(&mut metrics_task) => Err(anyhow::anyhow!("the metrics listener stopped: {e}")),
        r = &mut controller_task => {
            controller_done = true;
            Err(anyhow::anyhow!("the controller stopped unexpectedly: {r:?}"))
        }
    };
    if let Err(e) = &outcome {
        error!("{e}");
    }
    // The serve future is gone (no more connections). Stop the listeners,
    // remove the signaling rules (nothing more is queued), stop the
    // controller, then remove the socket and detach.
    for task in [ng_task, metrics_task].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    drop(capture);
    // Kept pinned: the next daemon takes over from the state as of now.
    let keep = s.keep_pinned && outcome.is_ok();
    if keep && !controller_done {
        match handle.save_state().await {
            Ok(seq) => {
                let w = writer.clone();
                let saved =
                    tokio::task::spawn_blocking(move || w.wait(seq, FINAL_SAVE_TIMEOUT)).await;
                match saved {
                    Ok(Ok(())) => info!(state_file = %s.state_file.display(), "state saved"),
                    Ok(Err(e)) => error!("{e}"),
                    Err(e) => error!("saving the state: {e}"),
                }
            }
            Err(e) => error!("saving the state: {e}"),
        }
    }
    drop(handle);
    if !controller_done {
        controller_task.abort();
        let _ = controller_task.await;
    }
    if let Some(pump) = log_pump {
        pump.abort();
    }
    if let Some(reader) = latch_reader {
        reader.abort();
    }
    drop(server);
    // The writer thread ends after its last write, so a removed file stays
    // removed.
    drop(writer);
    let datapath = links.stop().await;
    // A failure keeps a filter that was taken over, with its state (see
    // Datapath); a clean exit keeps them only with --keep-pinned.
    let (released, remove_state) = match (&outcome, datapath) {
        (Err(_), datapath) => {
            drop(datapath);
            (Ok(()), !adoption.adopted())
        }
        (Ok(()), Some(datapath)) => (datapath.release(keep).map_err(Into::into), !keep),
        (Ok(()), None) => (
            Err(anyhow::anyhow!(
                "the link tracker failed; the filter was left as after a failure"
            )),
            !adoption.adopted(),
        ),
    };
    if remove_state {
        if let Err(e) = state_file::remove(&s.state_file) {
            error!("{e}");
        }
    }
    released?;
    info!("stopped");
    outcome
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{
        app::cli::{Cli, CliCommand},
        app::exit::{exit_code, EXIT_BAD_INPUT},
    };

    fn resolved(extra: &[&str]) -> Result<RunSettings, SettingsError> {
        let args = ["pinhole", "run", "--iface", "lo"].iter().chain(extra);
        let cli = Cli::try_parse_from(args).unwrap();
        match &cli.command {
            CliCommand::Run(r) => settings(cli.control.as_deref(), r),
            _ => unreachable!(),
        }
    }

    #[test]
    fn feed_config_maps_the_settings_into_the_call_policy() {
        let f = feed_config(
            &resolved(&[
                "--sip-ports",
                "5080,5060",
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
            ])
            .unwrap(),
        );
        assert_eq!(f.sip_ports, [5060, 5080]);
        assert_eq!(f.rtsp_ports, [554, 7070, 8554]);
        let c = &f.calls;
        assert_eq!(c.trusted_signaling, ["192.0.2.0/24".parse().unwrap()]);
        assert_eq!(c.media_relay, ["203.0.113.0/28".parse().unwrap()]);
        assert_eq!(c.idle_timeout.as_secs(), 7);
        assert_eq!((c.bye_grace.as_secs(), c.max_lifetime.as_secs()), (0, 60));
        assert_eq!((c.max_pairs_per_call, c.max_calls_per_peer), (3, 2));
        // No --trusted-signaling: any.
        let f = feed_config(&resolved(&[]).unwrap());
        assert!(f.calls.is_trusted(
            "198.51.100.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap()
        ));
    }

    #[test]
    fn nat_maps_reach_the_feed() {
        let f = feed_config(
            &resolved(&[
                "--nat",
                "192.0.2.1=198.51.100.0/24,2001:db8:1::1=2001:db8:2::/64",
            ])
            .unwrap(),
        );
        let inside: SocketAddr = "198.51.100.2:16000".parse().unwrap();
        assert_eq!(f.nat.outside(inside), "192.0.2.1:16000".parse().unwrap());
        let inside6: SocketAddr = "[2001:db8:2::2]:16000".parse().unwrap();
        assert_eq!(
            f.nat.outside(inside6),
            "[2001:db8:1::1]:16000".parse().unwrap()
        );
        assert!(feed_config(&resolved(&[]).unwrap()).nat.is_empty());
        assert!(Cli::try_parse_from([
            "pinhole",
            "run",
            "--iface",
            "lo",
            "--nat",
            "198.51.100.0/24"
        ])
        .is_err());
    }

    #[test]
    fn conflicting_settings_are_bad_input() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--sip-ports", "5060,554"],
                "invalid configuration: --rtsp-ports or `rtsp_ports` in [signaling]: port 554 is both a SIP and an RTSP port",
            ),
            (
                &["--sip-ports", "15060"],
                "invalid configuration: --sip-ports: SIP port 15060 lies in media port range 10000-20000",
            ),
            (
                &["--sip-ports", "5060,5060", "--ng-listen", "127.0.0.1:0"],
                "invalid configuration: --sip-ports: port 5060 listed twice; --ng-listen: port 0",
            ),
        ];
        for (extra, want) in cases {
            let err = anyhow::Error::from(resolved(extra).unwrap_err());
            assert!(err.to_string().starts_with(want), "{err}");
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
        }
    }

    #[test]
    fn the_file_is_read_and_flags_override_it() {
        let dir = std::env::temp_dir().join(format!("pinhole-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        std::fs::write(
            &file,
            "[filter]\ninterfaces = [\"eth9\"]\nmax_pinholes = 1024\n[ng]\nlisten = \"127.0.0.1:2223\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let s = resolved(&["--config", path, "--max-pinholes", "64"]).unwrap();
        // --iface lo (from the helper) replaces the file's interfaces.
        assert_eq!(s.interfaces, ["lo"]);
        assert_eq!(s.max_pinholes, 64);
        assert_eq!(s.ng_listen, Some("127.0.0.1:2223".parse().unwrap()));
        std::fs::write(&file, "[filter]\nmax_pinholes = 1\nfrobnicate = 2\n").unwrap();
        let err = resolved(&["--config", path]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "invalid configuration: {path}:3:1: unknown key `frobnicate` in [filter]; expected one of \
                 interfaces, xdp_mode, media_ports, max_pinholes, fragments, media_prefixes, default_idle"
            )
        );
        std::fs::write(&file, "[filter]\nmax_pinholes = 1\n").unwrap();
        let err = resolved(&["--config", path]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "invalid configuration: {path}:2:16: `max_pinholes` in [filter]: 1 out of range (2-16777216 flows)"
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
