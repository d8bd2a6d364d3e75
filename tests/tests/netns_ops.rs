//! The operational surface of the daemon: Prometheus metrics
//! (`--metrics-listen`) checked against traffic the test sends, the
//! configuration file (`--config`, flags over it, `pinhole check-config`
//! on the shipped example and on broken files) and JSON logs
//! (`--log-format json`).
//!
//! The daemon tests need root. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_ops`.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use pinhole_integration::{
    pinhole_command, run_bounded, traffic, wait_for, Daemon, Family, TempDir, Topology, XdpMode,
};

const TIMEOUT: Duration = Duration::from_secs(10);
const METRICS_PORT: u16 = 9464;
/// Datagrams per burst.
const N: u32 = 20;

type TestResult = anyhow::Result<()>;

/// `GET /metrics` from inside the router namespace: status line, headers
/// and the samples by `name{labels}`.
fn scrape(topo: &Topology) -> anyhow::Result<(String, BTreeMap<String, f64>)> {
    let addr: SocketAddr = ([127, 0, 0, 1], METRICS_PORT).into();
    let mut s = topo.router.tcp_connect(addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: pinhole\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP header end in {text}"))?;
    let mut samples = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad sample line `{line}`"))?;
        samples.insert(name.to_string(), value.parse()?);
    }
    Ok((head.to_string(), samples))
}

fn sample(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no sample `{name}` in {samples:#?}"))
}

#[test]
fn metrics_match_the_traffic_sent() -> TestResult {
    let topo = Topology::new()?;
    let listen = format!("127.0.0.1:{METRICS_PORT}");
    let daemon = topo.start_daemon(
        XdpMode::Native,
        &[
            "--signaling",
            "off",
            "--metrics-listen",
            &listen,
            "--max-pinholes",
            "1024",
        ],
    )?;
    let f = Family::V4;
    let a = SocketAddr::new(f.outside(), 12000);
    let b = SocketAddr::new(f.inside(), 10000);
    let (head, before) = scrape(&topo)?;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert_eq!(sample(&before, "pinhole_pinholes_open"), 0.0);
    assert_eq!(sample(&before, "pinhole_flows_capacity"), 1024.0);
    let hit = "pinhole_verdict_packets_total{reason=\"hit\",action=\"pass\"}";
    let miss = "pinhole_verdict_packets_total{reason=\"miss\",action=\"drop\"}";
    let hit0 = sample(&before, hit);
    let miss0 = sample(&before, miss);

    // N unsolicited datagrams are dropped (miss) …
    let tx = topo.outside.udp_socket(a)?;
    let rx = topo.inside.udp_socket(b)?;
    traffic::send(&tx, b, N)?;
    daemon.wait_counter("miss", miss0 as u64 + u64::from(N), TIMEOUT)?;
    // … then, through a pinhole, N pass (hit).
    daemon.open(a, b, &[])?;
    traffic::send(&tx, b, N)?;
    let got = traffic::receive(&rx, N, TIMEOUT)?;
    assert_eq!(got.data, N);
    daemon.wait_counter("hit", hit0 as u64 + u64::from(N), TIMEOUT)?;

    // The scrape is refreshed from the daemon: no waiting for a period.
    let (_, after) = scrape(&topo)?;
    assert_eq!(sample(&after, hit) - hit0, f64::from(N));
    assert_eq!(sample(&after, miss) - miss0, f64::from(N));
    let frame = f.udp_overhead() + traffic::PAYLOAD_LEN as u64;
    let hit_bytes = "pinhole_verdict_bytes_total{reason=\"hit\",action=\"pass\"}";
    assert_eq!(
        sample(&after, hit_bytes) - sample(&before, hit_bytes),
        (u64::from(N) * frame) as f64
    );
    assert_eq!(sample(&after, "pinhole_pinholes_open"), 1.0);
    assert_eq!(sample(&after, "pinhole_flows_used"), 2.0);
    assert_eq!(sample(&after, "pinhole_calls_active"), 0.0);
    // Every family the issue asks for is there.
    for name in [
        "pinhole_signaling_messages_total{kind=\"sip\",outcome=\"ok\"}",
        "pinhole_signaling_messages_total{kind=\"rtsp\",outcome=\"parse_error\"}",
        "pinhole_signaling_refusals_total{reason=\"map_full\"}",
        "pinhole_setup_latency_seconds_count",
        "pinhole_setup_latency_seconds_bucket{le=\"0.001\"}",
        "pinhole_rtsp_sessions_active",
    ] {
        sample(&after, name);
    }
    // The stats the CLI shows agree with the scrape.
    let stats = daemon.stats()?;
    assert_eq!(stats.packets("hit")? as f64, sample(&after, hit));
    daemon.close(a, b)?;
    let (_, closed) = scrape(&topo)?;
    assert_eq!(sample(&closed, "pinhole_pinholes_open"), 0.0);
    assert_eq!(sample(&closed, "pinhole_flows_used"), 0.0);
    Ok(())
}

#[test]
fn metrics_count_ng_signaling_and_its_setup_latency() -> TestResult {
    let topo = Topology::new()?;
    let metrics = format!("127.0.0.1:{METRICS_PORT}");
    let daemon = topo.start_daemon(
        XdpMode::Native,
        &[
            "--signaling",
            "off",
            "--metrics-listen",
            &metrics,
            "--ng-listen",
            "127.0.0.1:2223",
        ],
    )?;
    let sock = topo.router.udp_socket("127.0.0.1:0".parse().unwrap())?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    let request = |cookie: &str, body: String| -> anyhow::Result<String> {
        sock.send_to(format!("{cookie} {body}").as_bytes(), "127.0.0.1:2223")?;
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let sdp = |ip: &str, port: u16| {
        let s = format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n");
        format!("3:sdp{}:{s}", s.len())
    };
    // Each side's SDP came from its own host (received-from).
    let from = |ip: &str| format!("13:received-froml3:IP4{}:{ip}e", ip.len());
    let offer = format!(
        "d7:call-id2:m17:command5:offer8:from-tag1:a{}{}e",
        sdp("192.0.2.2", 12000),
        from("192.0.2.2")
    );
    let answer = format!(
        "d7:call-id2:m17:command6:answer8:from-tag1:a{}6:to-tag1:b{}e",
        sdp("198.51.100.2", 10000),
        from("198.51.100.2")
    );
    assert!(request("o1", offer)?.contains("6:result2:ok"));
    assert!(request("a1", answer)?.contains("6:result2:ok"));
    assert!(request("x1", "d7:command3:fooe".into())?.contains("5:error"));
    let (_, s) = scrape(&topo)?;
    assert_eq!(
        sample(
            &s,
            "pinhole_signaling_messages_total{kind=\"ng\",outcome=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &s,
            "pinhole_signaling_messages_total{kind=\"ng\",outcome=\"invalid\"}"
        ),
        1.0
    );
    assert_eq!(sample(&s, "pinhole_calls_active"), 1.0);
    assert_eq!(sample(&s, "pinhole_pinholes_open"), 2.0);
    assert_eq!(sample(&s, "pinhole_flows_used"), 4.0);
    // The answer opened the pairs: one latency sample, well under 100 ms.
    assert_eq!(sample(&s, "pinhole_setup_latency_seconds_count"), 1.0);
    assert_eq!(
        sample(&s, "pinhole_setup_latency_seconds_bucket{le=\"0.1\"}"),
        1.0
    );
    let calls = daemon.calls()?;
    assert_eq!(
        (calls.len(), calls[0].kind.as_str(), calls[0].streams.len()),
        (1, "ng", 2)
    );
    Ok(())
}

/// The repository's example configuration.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pinhole.toml")
}

#[test]
fn check_config_accepts_the_example_and_reports_every_error_with_its_line() -> TestResult {
    let out = run_bounded(
        &mut pinhole_command(&[Path::new("check-config"), &example()]),
        TIMEOUT,
    )?;
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(": ok: interfaces eth0;"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);

    let dir = TempDir::new()?;
    // (file, expected stderr lines after `error: FILE:`)
    let cases: [(&str, &[&str]); 4] = [
        (
            "[filter]\ninterfaces = [\"eth0\"]\nmax_pinhole = 5\nxdp_mode = \"hw\"\n",
            &[
                "3:1: unknown key `max_pinhole` in [filter]",
                "4:12: `xdp_mode` in [filter]: unknown variant `hw`",
            ],
        ),
        (
            "[filter]\ninterfaces = [\"eth0\"]\nmedia_ports = [\"10000-20000\", \"15000-15001\"]\n[signaling]\nsip_ports = [10000]\n[ng]\nlisten = \"127.0.0.1:0\"\n",
            &[
                "3:15: `media_ports` in [filter]: ranges 10000-20000 and 15000-15001 overlap",
                "5:13: `sip_ports` in [signaling]: SIP port 10000 lies in media port range 10000-20000",
                "7:10: `listen` in [ng]: port 0",
            ],
        ),
        ("[filter\ninterfaces = 1\n", &["1:8: "]),
        (
            "[signaling]\nmode = \"off\"\n",
            &[" --iface or `interfaces` in [filter]: no interface to filter"],
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text)?;
        let out = run_bounded(
            &mut pinhole_command(&[Path::new("check-config"), &file]),
            TIMEOUT,
        )?;
        assert_eq!(out.status.code(), Some(2), "{text}\n{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), want.len(), "{text}\n{}", out.stderr);
        let prefix = format!("error: {}:", file.display());
        for (line, w) in lines.iter().zip(want.iter()) {
            let rest = line
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"));
            assert!(
                rest.starts_with(w.trim_start()) || rest.starts_with(w),
                "`{rest}` vs `{w}`"
            );
        }
    }
    let missing = run_bounded(
        &mut pinhole_command(&["check-config", "/nonexistent/pinhole.toml"]),
        TIMEOUT,
    )?;
    assert_eq!(missing.status.code(), Some(2));
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
    Ok(())
}

#[test]
fn the_config_file_sets_the_daemon_and_flags_override_it() -> TestResult {
    let topo = Topology::new()?;
    let dir = TempDir::new()?;
    let file = dir.path().join("pinhole.toml");
    std::fs::write(
        &file,
        format!(
            "log_format = \"json\"\n\
             [filter]\ninterfaces = [\"{}\", \"{}\"]\nxdp_mode = \"skb\"\nmax_pinholes = 512\n\
             default_idle = 42\n\
             [signaling]\nmode = \"off\"\n\
             [metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n",
            Topology::ROUTER_OUTSIDE_IF,
            Topology::ROUTER_INSIDE_IF
        ),
    )?;
    let file_arg = file.to_str().unwrap();
    let daemon = Daemon::start(
        &topo.router,
        &["--config", file_arg, "--max-pinholes", "256"],
    )?;
    let stats = daemon.stats()?;
    assert_eq!(stats.flows.capacity, 256, "the flag overrides the file");
    let a = SocketAddr::new(Family::V4.outside(), 12000);
    let b = SocketAddr::new(Family::V4.inside(), 10000);
    daemon.open(a, b, &[])?;
    assert_eq!(
        daemon.list()?[0].idle_timeout_secs,
        42,
        "default_idle from the file"
    );
    let (_, s) = scrape(&topo)?;
    assert_eq!(sample(&s, "pinhole_flows_capacity"), 256.0);
    // The file asked for JSON logs: every line is a JSON object.
    let log = daemon.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.iter().any(|l| l.contains("\"ready\"")), "{log}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("log line is not JSON ({e}): {line}"))?;
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    daemon.stop()?;

    // A broken file stops `run` before it touches the kernel: one error line
    // naming the file and the line, exit 2.
    std::fs::write(
        &file,
        "[filter]\ninterfaces = [\"r-out\"]\nmax_pinholes = 1\n",
    )?;
    let mut cmd = topo.router.command(pinhole_integration::pinhole_bin());
    cmd.args(["run", "--control"])
        .arg(dir.path().join("c.sock"))
        .args(["--config", file_arg]);
    let out = run_bounded(&mut cmd, TIMEOUT)?;
    let line = out.expect_daemon_error().map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        line.contains(&format!(
            "{file_arg}:3:16: `max_pinholes` in [filter]: 1 out of range"
        )),
        "{line}"
    );
    wait_for("no XDP program left", TIMEOUT, || {
        let links = topo
            .router
            .ip(&["-d", "link", "show", Topology::ROUTER_OUTSIDE_IF])?;
        Ok((!links.contains("prog/xdp")).then_some(()))
    })?;
    Ok(())
}
