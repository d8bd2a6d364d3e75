//! `pinhole run`: load and attach, serve the control socket, and on
//! SIGINT/SIGTERM detach and clean up.

use std::path::Path;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use crate::{
    cli::RunArgs,
    control::{ensure_not_running, ControlServer},
    controller::{self, ControllerConfig, KernelStore},
    loader::{build_config, resolve_interfaces, spawn_log_pump, Datapath, LoadOptions},
};

/// Runs the daemon until a signal; returns after a clean detach.
pub async fn run(args: RunArgs, control: &Path) -> anyhow::Result<()> {
    // Everything that can be checked without privileges first.
    let config = build_config(&args.media_ports, args.fragments.into())?;
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

    let (handle, mut controller_task) = controller::spawn(
        KernelStore { flows, counters },
        ControllerConfig::new(args.max_pinholes as usize, args.default_idle),
    );
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
    // The serve future is gone (no more connections); stop the controller,
    // then remove the socket and detach.
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
