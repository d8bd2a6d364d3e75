use pinhole_common::FragmentPolicy;

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/pinhole.toml");

/// Every problem as (line, column, its text without the position); (0, 0)
/// when it has no position.
fn found(problems: &[ConfigError]) -> Vec<(usize, usize, String)> {
    problems
        .iter()
        .map(|e| {
            let (line, col) = e.position();
            (line, col, e.problem.to_string())
        })
        .collect()
}

fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match parse(text) {
        Err(problems) => found(&problems),
        Ok(f) => found(
            resolve(Some(f), RunOptions::default())
                .expect_err("errors")
                .problems(),
        ),
    }
}

#[test]
fn the_example_resolves_to_the_defaults() {
    let file = parse(EXAMPLE).expect("the example parses");
    let s = resolve(Some(file), RunOptions::default()).expect("the example is valid");
    // The example sets every key; apart from the interfaces and the
    // listeners it enables, every value is the default.
    let want = RunSettings {
        interfaces: vec!["eth0".into()],
        ng_listen: Some("127.0.0.1:2223".parse().unwrap()),
        metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
        ..RunSettings::default()
    };
    assert_eq!(s, want);
    // And it mentions every key there is.
    for (section, key, _, _) in KEYS {
        let needle = format!("\n{key} =");
        let alt = format!("\n# {key} =");
        assert!(
            EXAMPLE.contains(&needle) || EXAMPLE.contains(&alt),
            "example lacks {section}.{key}"
        );
    }
}

#[test]
fn a_full_file_parses() {
    let text = r#"
control = "/tmp/p.sock"
log_format = "json"

[filter]
interfaces = ["veth0", "veth1"]
xdp_mode = "skb"
media_ports = ["10000-20000", 5004, "6970-7170"]
max_pinholes = 1024
fragments = "drop"
media_prefixes = ["198.51.100.0/24", "2001:db8:1::/48"]
default_idle = 0

[signaling]
mode = "off"
sip_ports = [5060, 5080]
rtsp_ports = [554]
queue_num = 7
trusted_signaling = ["192.0.2.0/24", "2001:db8::1", "198.51.100.9/24"]
media_relay = ["203.0.113.0/28"]
bye_grace = 0
max_call_lifetime = 0
call_idle = 5
hold_timeout = 900
max_pinholes_per_call = 4
max_calls_per_peer = 1

[ng]
listen = "[::1]:2223"
allow = ["::1/128", "192.0.2.7"]

[metrics]
listen = "0.0.0.0:9464"

[state]
pin_dir = "/sys/fs/bpf/ph-test"
keep_pinned = true
state_file = "/tmp/ph-state.json"
"#;
    let s = resolve(Some(parse(text).unwrap()), RunOptions::default()).unwrap();
    assert_eq!(s.control, PathBuf::from("/tmp/p.sock"));
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.interfaces, ["veth0", "veth1"]);
    assert_eq!(s.xdp_mode, XdpMode::Skb);
    assert_eq!(
        s.media_prefixes,
        [
            "198.51.100.0/24".parse::<IpNet>().unwrap(),
            "2001:db8:1::/48".parse().unwrap()
        ]
    );
    assert_eq!(
        s.media_ports,
        [
            PortRange {
                lo: 10000,
                hi: 20000
            },
            PortRange { lo: 5004, hi: 5004 },
            PortRange { lo: 6970, hi: 7170 }
        ]
    );
    assert_eq!((s.max_pinholes, s.default_idle), (1024, 0));
    assert_eq!(s.fragments, Fragments::Drop);
    assert_eq!(s.signaling, SignalingMode::Off);
    assert_eq!(
        (&s.sip_ports[..], &s.rtsp_ports[..]),
        (&[5060, 5080][..], &[554][..])
    );
    assert_eq!(s.queue_num, 7);
    let nets: Vec<String> = s
        .trusted_signaling
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["192.0.2.0/24", "2001:db8::1/128", "198.51.100.0/24"]);
    assert_eq!(s.media_relay[0].to_string(), "203.0.113.0/28");
    assert_eq!((s.bye_grace, s.max_call_lifetime, s.call_idle), (0, 0, 5));
    assert_eq!(s.hold_timeout, 900);
    assert_eq!((s.max_pinholes_per_call, s.max_calls_per_peer), (4, 1));
    assert_eq!(s.ng_listen, Some("[::1]:2223".parse().unwrap()));
    assert_eq!(s.ng_allow.len(), 2);
    assert_eq!(s.metrics_listen, Some("0.0.0.0:9464".parse().unwrap()));
    assert_eq!(s.pin_dir, PathBuf::from("/sys/fs/bpf/ph-test"));
    assert!(s.keep_pinned);
    assert_eq!(s.state_file, PathBuf::from("/tmp/ph-state.json"));
    // Conversions for the daemon.
    let calls = s.call_config();
    assert_eq!(calls.max_pairs_per_call, 4);
    assert_eq!(calls.idle_timeout, Duration::from_secs(5));
    assert_eq!(calls.trusted_signaling.len(), 3);
    assert_eq!(s.ng_config().allow, s.ng_allow);
    assert_eq!(
        aya::programs::XdpMode::from(s.xdp_mode),
        aya::programs::XdpMode::Skb
    );
    assert_eq!(FragmentPolicy::from(s.fragments), FragmentPolicy::Drop);
    // No trusted networks: any.
    let any = RunSettings::default().call_config();
    assert_eq!(
        any.trusted_signaling,
        CallConfig::default().trusted_signaling
    );
}

#[test]
fn flags_override_the_file() {
    let file = parse(
        "log_format = \"json\"\n[filter]\ninterfaces = [\"eth0\"]\nmedia_ports = [\"10000-20000\"]\nmax_pinholes = 0\n",
    )
    .unwrap();
    // The file's max_pinholes is invalid, but the flag replaces it.
    let flags = RunOptions {
        interfaces: Some(vec!["eth1".into(), "eth2".into()]),
        max_pinholes: Some(4096),
        keep_pinned: Some(true),
        ..RunOptions::default()
    };
    let s = resolve(Some(file.clone()), flags).unwrap();
    assert_eq!(s.interfaces, ["eth1", "eth2"]);
    assert_eq!(s.max_pinholes, 4096);
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(s.keep_pinned);
    // Without the flag the file's value stands, and is refused at its line.
    let e = resolve(Some(file), RunOptions::default()).unwrap_err();
    assert_eq!(
        found(e.problems()),
        [(
            5,
            16,
            "`max_pinholes` in [filter]: 0 out of range (2-16777216 flows)".to_string()
        )]
    );
    // Typed: the setting as the file names it, and why.
    assert!(matches!(
        &e.problems()[0].problem,
        Problem::Setting {
            setting: SettingName::Key(Key { section, name }),
            reason: BadSetting::Capacity(0),
        } if section == "filter" && name == "max_pinholes"
    ));
    // A parsed text has no path: the line names the key, no file.
    assert_eq!(
        e.to_string(),
        "invalid configuration: line 5, column 16: `max_pinholes` in [filter]: 0 out of range (2-16777216 flows)"
    );
    // A bad value from a flag names the flag, without a position.
    let e = resolve(
        None,
        RunOptions {
            interfaces: Some(vec!["eth0".into()]),
            sip_ports: Some(vec![10000]),
            ..RunOptions::default()
        },
    )
    .unwrap_err();
    let e = e.problems();
    assert_eq!(e[0].at, None);
    assert_eq!(
        e[0].problem.to_string(),
        "--sip-ports: SIP port 10000 lies in media port range 10000-20000; the filter would drop its UDP packets"
    );
    assert_eq!(e[0].to_string(), e[0].problem.to_string());
    assert!(matches!(
        e[0].problem,
        Problem::Setting {
            setting: SettingName::Flag("--sip-ports"),
            reason: BadSetting::SipPortInMedia { port: 10000, .. },
        }
    ));
}

#[test]
fn every_error_is_reported_with_its_line() {
    // (file, [(line, col, message fragment)])
    type Want = Vec<(usize, usize, &'static str)>;
    let cases: Vec<(&str, Want)> = vec![
        (
            "[filter]\ninterfaces = [\"eth0\"]\nmax_pinhole = 5\nxdp_mode = \"hw\"\n[signalling]\nmode = \"inline\"\n",
            vec![
                (3, 1, "unknown key `max_pinhole` in [filter]; expected one of interfaces, xdp_mode"),
                (4, 12, "`xdp_mode` in [filter]: unknown variant `hw`, expected `native` or `skb`"),
                (5, 2, "unknown section [signalling]; expected one of filter, forward, signaling, ng, metrics, state"),
            ],
        ),
        (
            "[filter]\ninterfaces = [\"eth0\"]\nmax_pinholes = -1\ndefault_idle = \"300\"\nmedia_ports = [\"20-10\", 70000]\n",
            vec![
                (3, 16, "`max_pinholes` in [filter]: invalid value: integer `-1`, expected u32"),
                (4, 16, "`default_idle` in [filter]: invalid type: string \"300\", expected u64"),
                (5, 16, "`media_ports` in [filter]: invalid port range `20-10`"),
            ],
        ),
        (
            "[filter]\ninterfaces = [\"eth0\"]\nmedia_ports = [70000]\n[signaling]\ntrusted_signaling = [\"192.0.2.0/33\"]\nsip_ports = [70000]\n",
            vec![
                (3, 16, "invalid port 70000; expected 1-65535"),
                (5, 21, "invalid network `192.0.2.0/33`"),
                (6, 14, "`sip_ports` in [signaling]: invalid value: integer `70000`, expected u16"),
            ],
        ),
        (
            // Syntax errors: all of them.
            "[filter]\ninterfaces = [\"eth0\"]\nxdp_mode = native\nmax_pinholes = 1__0\n[ng\n",
            vec![
                (3, 12, "invalid float"),
                (4, 17, "`_` may only go between digits"),
                (5, 4, "unclosed table"),
            ],
        ),
        (
            "filter = 3\n[ng]\nlisten = \"localhost:2223\"\n[metrics]\nlisten = \"127.0.0.1\"\n",
            vec![
                (1, 10, "[filter] must be a table"),
                (3, 10, "`listen` in [ng]: invalid socket address syntax"),
                (5, 10, "`listen` in [metrics]: invalid socket address syntax"),
            ],
        ),
        (
            // Semantic errors, each at its key's value.
            "control = \"run/p.sock\"\n[filter]\ninterfaces = [\"eth0\", \"eth0\", \"a/b\", \"averyveryverylongname\"]\nmedia_ports = [\"10000-20000\", \"15000-15001\", 1, 2, 3, 4, 5, 6, 7]\n[signaling]\nsip_ports = [5060, 5060]\nrtsp_ports = [5060, 0]\nmax_pinholes_per_call = 0\nmax_calls_per_peer = 0\n[ng]\nlisten = \"127.0.0.1:0\"\nallow = []\n[state]\npin_dir = \"bpf\"\n",
            vec![
                (1, 11, "`control`: `run/p.sock` is not an absolute path"),
                (3, 14, "interface `eth0` listed twice"),
                (3, 14, "invalid interface name `a/b`"),
                (3, 14, "invalid interface name `averyveryverylongname`"),
                (4, 15, "9 ranges; the filter holds at most 8"),
                (4, 15, "ranges 10000-20000 and 15000-15001 overlap"),
                (6, 13, "port 5060 listed twice"),
                (7, 14, "invalid port 0"),
                (7, 14, "port 5060 is both a SIP and an RTSP port"),
                (8, 25, "`max_pinholes_per_call` in [signaling]: must be at least 1"),
                (9, 22, "must be at least 1"),
                (11, 10, "`listen` in [ng]: port 0"),
                (12, 9, "`allow` in [ng]: empty: no client could use the ng listener"),
                (14, 11, "`pin_dir` in [state]: `bpf` is not an absolute path"),
            ],
        ),
        (
            // --nat values: malformed, and overlapping inside networks.
            "[filter]\ninterfaces = [\"eth0\"]\n[signaling]\nnat = [\"192.0.2.1\"]\n",
            vec![(4, 7, "expected PUBLIC=INSIDE_CIDR")],
        ),
        (
            "[filter]\ninterfaces = [\"eth0\"]\n[signaling]\nnat = [\"192.0.2.1=198.51.100.0/24\", \"192.0.2.2=198.51.100.9\"]\n",
            vec![(4, 7, "`nat` in [signaling]: 192.0.2.2=198.51.100.9/32 and 192.0.2.1=198.51.100.0/24 overlap")],
        ),
        (
            "[filter]\nxdp_mode = \"skb\"\n",
            vec![(
                0,
                0,
                "--iface or `interfaces` in [filter]: no interface to filter",
            )],
        ),
    ];
    for (text, want) in cases {
        let got = errors(text);
        assert_eq!(got.len(), want.len(), "{text}\n{got:#?}");
        for ((line, col, msg), (wl, wc, wm)) in got.iter().zip(&want) {
            assert_eq!((line, col), (wl, wc), "{msg}");
            assert!(msg.contains(wm), "`{msg}` lacks `{wm}`");
        }
    }
}

#[test]
fn locations_and_rendering() {
    let cases = [
        ("abc", 0, (1, 1)),
        ("abc", 2, (1, 3)),
        ("a\nbc", 2, (2, 1)),
        ("a\nbc", 3, (2, 2)),
        ("é\nx", 1, (1, 1)),
        ("é\nx", 2, (1, 2)),
        ("ab", 99, (1, 3)),
    ];
    for (text, offset, (line, col)) in cases {
        assert_eq!(
            Location::of(text, offset),
            Location { line, col },
            "{text:?} {offset}"
        );
    }
    let errs = [
        ConfigError::at(
            Some(Location { line: 3, col: 7 }),
            Problem::NotATable {
                section: "ng".into(),
            },
        ),
        ConfigError::at(None, Problem::NotAFile),
    ];
    assert_eq!(
        render(Path::new("/etc/p.toml"), &errs),
        "/etc/p.toml:3:7: [ng] must be a table\n/etc/p.toml: not a regular file"
    );
    assert_eq!(
        errs[0].to_string(),
        "line 3, column 7: [ng] must be a table"
    );
}

#[test]
fn check_reads_files() {
    let dir = std::env::temp_dir().join(format!("pinhole-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, EXAMPLE).unwrap();
    let s = check(&good).unwrap();
    assert_eq!(s.interfaces, ["eth0"]);
    assert_eq!(
        summary(&good, &s),
        format!(
            "{}: ok: interfaces eth0; media ports 10000-20000; 262144 flows; signaling inline \
             (SIP 5060, RTSP 554,7070,8554); ng 127.0.0.1:2223; metrics 127.0.0.1:9464; \
             control /run/pinhole/control.sock",
            good.display()
        )
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, b"[filter]\ninterfaces = [\"e\xff\"]\n").unwrap();
    let e = check(&bad).unwrap_err();
    assert_eq!(
        found(e.problems()),
        [(2, 17, "not valid UTF-8".to_string())]
    );
    assert_eq!(
        e.lines(),
        [format!("{}:2:17: not valid UTF-8", bad.display())]
    );
    let missing = dir.join("missing.toml");
    let e = check(&missing).unwrap_err();
    let p = &e.problems()[0].problem;
    assert!(p.to_string().starts_with("cannot read: "), "{e:?}");
    // The I/O error stays the cause, not a string.
    let io = std::error::Error::source(p).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
    assert_eq!(
        e.to_string(),
        format!("invalid configuration: {}: {p}", missing.display())
    );
    let e = check(&dir).unwrap_err();
    assert!(
        matches!(e.problems()[0].problem, Problem::NotAFile),
        "{e:?}"
    );
    assert_eq!(e.problems()[0].problem.to_string(), "not a regular file");
    // Problems of the settings: check-config names the file on every line,
    // even those not in it; `run` shows those bare.
    let unset = dir.join("unset.toml");
    std::fs::write(&unset, "[filter]\nmax_pinholes = 1\n").unwrap();
    let e = check(&unset).unwrap_err();
    let u = unset.display();
    assert_eq!(
        e.lines(),
        [
            format!("{u}:2:16: `max_pinholes` in [filter]: 1 out of range (2-16777216 flows)"),
            format!("{u}: --iface or `interfaces` in [filter]: no interface to filter"),
        ]
    );
    assert_eq!(
        e.to_string(),
        format!(
            "invalid configuration: {u}:2:16: `max_pinholes` in [filter]: 1 out of range \
             (2-16777216 flows); --iface or `interfaces` in [filter]: no interface to filter"
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
