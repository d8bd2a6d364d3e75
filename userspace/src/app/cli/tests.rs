use super::*;
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("pinhole").chain(args.iter().copied()))
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// The settings `pinhole run ARGS` resolves to without a file.
fn settings(args: &[&str]) -> crate::config::RunSettings {
    let cli = parse(args).unwrap();
    let CliCommand::Run(r) = &cli.command else {
        panic!()
    };
    crate::config::resolve(None, r.options(cli.control.as_deref())).unwrap()
}

#[test]
fn run_defaults_match_the_contract() {
    let cli = parse(&["run", "--iface", "eth0"]).unwrap();
    assert_eq!(cli.control, None);
    assert_eq!(cli.control_path(), PathBuf::from(DEFAULT_CONTROL));
    let CliCommand::Run(r) = &cli.command else {
        panic!()
    };
    // Nothing but the interface is set by the flags …
    let o = r.options(None);
    assert_eq!(
        o,
        RunOptions {
            interfaces: Some(vec!["eth0".into()]),
            ..RunOptions::default()
        }
    );
    // … and the defaults come from the settings.
    let r = settings(&["run", "--iface", "eth0"]);
    assert_eq!(r.control, PathBuf::from(DEFAULT_CONTROL));
    assert_eq!(r.interfaces, vec!["eth0"]);
    assert_eq!(r.xdp_mode, XdpMode::Native);
    assert_eq!(
        r.media_ports,
        vec![PortRange {
            lo: 10000,
            hi: 20000
        }]
    );
    assert_eq!(r.max_pinholes, 262_144);
    assert_eq!(r.fragments, Fragments::Pass);
    assert!(r.media_prefixes.is_empty());
    assert_eq!(r.default_idle, 300);
    // Signaling (issue 3 contract).
    assert_eq!(r.signaling, SignalingMode::Inline);
    assert_eq!(r.sip_ports, vec![5060]);
    assert_eq!(r.rtsp_ports, vec![554, 7070, 8554]);
    assert_eq!(r.queue_num, 4242);
    assert!(r.trusted_signaling.is_empty() && r.media_relay.is_empty());
    assert_eq!(
        (r.bye_grace, r.max_call_lifetime, r.call_idle),
        (2, 14400, 60)
    );
    assert_eq!((r.max_pinholes_per_call, r.max_calls_per_peer), (16, 256));
    // Operations (issue 4): listeners off, text logs.
    assert_eq!((r.ng_listen, r.metrics_listen), (None, None));
    assert_eq!(r.log_format, LogFormat::Text);
}

#[test]
fn operations_options_parse() {
    let r = settings(&[
        "run",
        "--iface",
        "a",
        "--ng-listen",
        "127.0.0.1:2223",
        "--ng-allow",
        "192.0.2.0/24,::1",
        "--metrics-listen",
        "[::1]:9464",
        "--log-format",
        "json",
        "--control",
        "/tmp/c.sock",
    ]);
    assert_eq!(r.ng_listen, Some("127.0.0.1:2223".parse().unwrap()));
    let allow: Vec<String> = r.ng_allow.iter().map(ToString::to_string).collect();
    assert_eq!(allow, ["192.0.2.0/24", "::1/128"]);
    assert_eq!(r.metrics_listen, Some("[::1]:9464".parse().unwrap()));
    assert_eq!(r.log_format, LogFormat::Json);
    assert_eq!(r.control, PathBuf::from("/tmp/c.sock"));
    let cli = parse(&["run", "--config", "/etc/pinhole/pinhole.toml"]).unwrap();
    let CliCommand::Run(r) = cli.command else {
        panic!()
    };
    assert_eq!(
        r.config.as_deref(),
        Some(Path::new("/etc/pinhole/pinhole.toml"))
    );
    assert!(matches!(
        parse(&["calls", "--json"]).unwrap().command,
        CliCommand::Calls(OutputArgs { json: true })
    ));
    let CliCommand::CheckConfig(c) = parse(&["check-config", "x.toml"]).unwrap().command else {
        panic!()
    };
    assert_eq!(c.file, PathBuf::from("x.toml"));
}

#[test]
fn pinned_state_options_parse() {
    let r = settings(&["run", "--iface", "a"]);
    assert_eq!(r.pin_dir, PathBuf::from("/sys/fs/bpf/pinhole"));
    assert_eq!(r.state_file, PathBuf::from("/run/pinhole/state.json"));
    assert!(!r.keep_pinned);
    let r = settings(&[
        "run",
        "--iface",
        "a",
        "--pin-dir",
        "/sys/fs/bpf/ph-1",
        "--keep-pinned",
        "--state-file",
        "/tmp/s.json",
    ]);
    assert_eq!(r.pin_dir, PathBuf::from("/sys/fs/bpf/ph-1"));
    assert_eq!(r.state_file, PathBuf::from("/tmp/s.json"));
    assert!(r.keep_pinned);
    let CliCommand::Detach(d) = parse(&["detach", "--pin-dir", "/sys/fs/bpf/x"])
        .unwrap()
        .command
    else {
        panic!()
    };
    assert_eq!(d.pin_dir, Some(PathBuf::from("/sys/fs/bpf/x")));
    assert_eq!((d.state_file, d.config), (None, None));
    assert!(parse(&["run", "--iface", "a", "--keep-pinned=no"]).is_err());
}

#[test]
fn signaling_options_parse() {
    let cli = parse(&[
        "run",
        "--iface",
        "a",
        "--signaling",
        "off",
        "--sip-ports",
        "5060,5080",
        "--sip-ports",
        "5090",
        "--rtsp-ports",
        "554",
        "--queue-num",
        "7",
        "--trusted-signaling",
        "192.0.2.0/24",
        "2001:db8::/32",
        "--trusted-signaling",
        "203.0.113.7,198.51.100.9/24",
        "--media-relay",
        "203.0.113.0/28",
        "--bye-grace",
        "0",
        "--max-call-lifetime",
        "0",
        "--call-idle",
        "5",
        "--max-pinholes-per-call",
        "4",
        "--max-calls-per-peer",
        "1",
    ])
    .unwrap();
    let CliCommand::Run(r) = cli.command else {
        panic!()
    };
    assert_eq!(r.signaling, Some(SignalingMode::Off));
    assert_eq!(r.sip_ports, vec![5060, 5080, 5090]);
    assert_eq!(r.rtsp_ports, vec![554]);
    assert_eq!(r.queue_num, Some(7));
    let nets: Vec<String> = r
        .trusted_signaling
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        nets,
        [
            "192.0.2.0/24",
            "2001:db8::/32",
            "203.0.113.7/32",
            "198.51.100.0/24"
        ]
    );
    assert_eq!(r.media_relay[0].to_string(), "203.0.113.0/28");
    assert_eq!(
        (r.bye_grace, r.max_call_lifetime, r.call_idle),
        (Some(0), Some(0), Some(5))
    );
    assert_eq!(
        (r.max_pinholes_per_call, r.max_calls_per_peer),
        (Some(4), Some(1))
    );
}

#[test]
fn run_options_parse() {
    let cli = parse(&[
        "run",
        "--iface",
        "a",
        "--iface",
        "b",
        "--xdp-mode",
        "skb",
        "--media-ports",
        "10000-20000,6970-7170",
        "--media-ports",
        "5004",
        "--control",
        "/tmp/x.sock",
        "--max-pinholes",
        "2",
        "--fragments",
        "drop",
        "--default-idle",
        "0",
        "--media-prefix",
        "198.51.100.0/24,2001:db8:1::/48",
        "--media-prefix",
        "192.0.2.9",
    ])
    .unwrap();
    assert_eq!(cli.control, Some(PathBuf::from("/tmp/x.sock")));
    let CliCommand::Run(r) = cli.command else {
        panic!()
    };
    assert_eq!(r.ifaces, vec!["a", "b"]);
    assert_eq!(r.media_ports.len(), 3);
    assert_eq!((r.max_pinholes, r.default_idle), (Some(2), Some(0)));
    assert_eq!(r.fragments, Some(Fragments::Drop));
    assert_eq!(r.xdp_mode, Some(XdpMode::Skb));
    let nets: Vec<String> = r.media_prefixes.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["198.51.100.0/24", "2001:db8:1::/48", "192.0.2.9/32"]);
}

#[test]
fn client_commands_parse_with_control_anywhere() {
    for args in [
        &[
            "--control",
            "/tmp/p",
            "open",
            "192.0.2.1:4000",
            "198.51.100.2:10000",
        ][..],
        &[
            "open",
            "192.0.2.1:4000",
            "198.51.100.2:10000",
            "--control",
            "/tmp/p",
        ][..],
    ] {
        let cli = parse(args).unwrap();
        assert_eq!(cli.control_path(), PathBuf::from("/tmp/p"));
    }
    let cli = parse(&[
        "open",
        "[2001:db8::1]:5",
        "[2001:db8::2]:6",
        "--idle",
        "30",
        "--with-rtcp",
    ])
    .unwrap();
    let CliCommand::Open(o) = cli.command else {
        panic!()
    };
    assert_eq!((o.idle, o.with_rtcp), (Some(30), true));
    assert!(matches!(
        parse(&["list", "--json"]).unwrap().command,
        CliCommand::List(OutputArgs { json: true })
    ));
    assert!(matches!(
        parse(&["stats"]).unwrap().command,
        CliCommand::Stats(OutputArgs { json: false })
    ));
}

#[test]
fn usage_errors_render_on_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["open", "192.0.2.1:70000", "198.51.100.2:1"],
            "port 70000 out of range (1-65535)",
        ),
        (
            &["open", "192.0.2.1:1"],
            "required arguments were not provided",
        ),
        (
            &["run", "--iface", "x", "--max-pinholes", "1"],
            "--max-pinholes",
        ),
        (
            &["run", "--iface", "x", "--media-ports", "20-10"],
            "invalid port range `20-10`",
        ),
        (&["run", "--iface", "x", "--xdp-mode", "hw"], "--xdp-mode"),
        (
            &["open", "192.0.2.1:1", "198.51.100.2:1", "--idle", "-1"],
            "'-1'",
        ),
        (
            &["open", "192.0.2.1:1", "198.51.100.2:1", "--idle", "x"],
            "--idle",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
        (
            &["run", "--iface", "x", "--trusted-signaling", "192.0.2.0/33"],
            "invalid network `192.0.2.0/33`",
        ),
        (
            &["run", "--iface", "x", "--media-relay", "example.com"],
            "invalid network `example.com`",
        ),
        (
            &[
                "run",
                "--iface",
                "x",
                "--trusted-signaling",
                "192.0.2.0/24,",
            ],
            "invalid network ``",
        ),
        (
            &["run", "--iface", "x", "--sip-ports", "0"],
            "invalid port `0`",
        ),
        (
            &["run", "--iface", "x", "--rtsp-ports", "554,x"],
            "invalid port `x`",
        ),
        (
            &["run", "--iface", "x", "--queue-num", "65536"],
            "--queue-num",
        ),
        (
            &["run", "--iface", "x", "--signaling", "sniff"],
            "--signaling",
        ),
        (
            &["run", "--iface", "x", "--max-pinholes-per-call", "0"],
            "--max-pinholes-per-call",
        ),
    ];
    for (args, want) in cases {
        let err = parse(args).unwrap_err();
        let line = one_line_clap_error(&err);
        assert!(line.starts_with("error: "), "{line}");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(want), "{args:?}: {line}");
    }
}
