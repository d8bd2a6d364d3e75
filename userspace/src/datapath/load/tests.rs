use aya::programs::ProgramError;
use pinhole_common::{FragmentPolicy, PortRange};

use super::{object::ringbuf_size, *};
use crate::datapath::error::SetupError;

#[test]
fn the_pinned_maps_are_the_programs_own() {
    let specs = pinned_map_specs(crate::datapath::ebpf::OBJECT, &[(FLOWS_V4_MAP, 1024)]).unwrap();
    let v4 = specs.iter().find(|s| s.name == FLOWS_V4_MAP).unwrap();
    assert_eq!((v4.max_entries, v4.key_size), (1024, 12));
    assert!(specs.iter().any(|s| s.name == FLOWS_V6_MAP));
    assert!(specs.iter().any(|s| s.name == pinhole_common::COUNTERS_MAP));
    assert!(specs
        .iter()
        .any(|s| s.name == pinhole_common::FORWARD_TX_MAP));
    assert!(
        specs
            .iter()
            .all(|s| !pinhole_common::BENCH_ONLY_MAPS.contains(&s.name.as_str())),
        "no bench-only maps: {specs:?}"
    );
    assert!(
        specs.iter().all(|s| !s.name.starts_with('.')),
        "no globals: {specs:?}"
    );
    for (bytes, want) in [
        (0, 0),
        (1, 4096),
        (4096, 4096),
        (4097, 8192),
        (12288, 16384),
    ] {
        assert_eq!(ringbuf_size(bytes, 4096), want, "{bytes}");
    }
}

#[test]
fn port_range_parsing_table() {
    let ok = [
        ("10000-20000", (10000, 20000)),
        ("6970-7170", (6970, 7170)),
        ("5004", (5004, 5004)),
        ("1-65535", (1, 65535)),
        ("7-7", (7, 7)),
        (" 10 - 20 ", (10, 20)),
    ];
    for (s, (lo, hi)) in ok {
        assert_eq!(parse_port_range(s), Ok(PortRange { lo, hi }), "{s:?}");
    }
    let bad = [
        "",
        "-",
        "0-10",
        "10-0",
        "20-10",
        "1-65536",
        "70000",
        "a-b",
        "10-",
        "-10",
        "1-2-3",
        "+1-2",
        "1--2",
        "١-٢",
        "99999999999999999999-1",
    ];
    for s in bad {
        assert_eq!(
            parse_port_range(s),
            Err(SetupError::BadRange(s.to_string())),
            "{s:?}"
        );
    }
}

#[test]
fn config_building_table() {
    let r = |lo, hi| PortRange { lo, hi };
    let c = build_config(&[r(10000, 20000), r(6970, 7170)], FragmentPolicy::Drop).unwrap();
    assert_eq!(c.n_ranges, 2);
    assert_eq!(c.fragment_policy, FragmentPolicy::Drop as u32);
    assert!(c.is_media_port(7000) && c.is_media_port(20000) && !c.is_media_port(5060));

    let nine: Vec<PortRange> = (0..9).map(|i| r(100 * i + 1, 100 * i + 50)).collect();
    assert_eq!(
        build_config(&nine, FragmentPolicy::Pass),
        Err(SetupError::TooManyRanges { given: 9, max: 8 })
    );
    assert!(build_config(&nine[..8], FragmentPolicy::Pass).is_ok());
    assert_eq!(
        build_config(&[r(10, 20), r(20, 30)], FragmentPolicy::Pass),
        Err(SetupError::Overlap {
            a: "10-20".into(),
            b: "20-30".into()
        })
    );
    assert_eq!(
        build_config(&[r(10, 20), r(30, 40), r(1, 100)], FragmentPolicy::Pass),
        Err(SetupError::Overlap {
            a: "10-20".into(),
            b: "1-100".into()
        })
    );
    assert_eq!(
        build_config(&[r(0, 5)], FragmentPolicy::Pass),
        Err(SetupError::BadRange("0-5".into()))
    );
    assert_eq!(
        build_config(&[r(9, 5)], FragmentPolicy::Pass),
        Err(SetupError::BadRange("9-5".into()))
    );
    let empty = build_config(&[], FragmentPolicy::Pass).unwrap();
    assert_eq!(empty.n_ranges, 0);
}

#[test]
fn interface_resolution_rejects_bad_lists() {
    let err = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        resolve_interfaces(&names).unwrap_err().to_string()
    };
    assert_eq!(err(&[]), "no --iface given");
    assert_eq!(err(&["lo", "lo"]), "interface `lo` given twice");
    assert_eq!(err(&["a\0b"]), "invalid interface name `a\0b`");
    assert_eq!(err(&[""]), "invalid interface name ``");
    assert_eq!(err(&["ph-no-such-if"]), "no such interface: ph-no-such-if");
    assert_eq!(
        err(&["a-very-long-interface-name"]),
        "no such interface: a-very-long-interface-name"
    );
    let lo = resolve_interfaces(&["lo".to_string()]).unwrap();
    assert_eq!(lo[0].0, "lo");
    assert!(lo[0].1 > 0);
}

#[test]
fn errno_walks_the_chain() {
    let e = ProgramError::SyscallError(aya::sys::SyscallError {
        call: "bpf_link_create",
        io_error: io::Error::from_raw_os_error(libc::EBUSY),
    });
    assert_eq!(errno(&e), Some(libc::EBUSY));
    assert!(matches!(
        attach_error("ph0", AyaXdpMode::Driver, e),
        LoadError::AlreadyAttached(i) if i == "ph0"
    ));
    let e = ProgramError::SyscallError(aya::sys::SyscallError {
        call: "bpf_link_create",
        io_error: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
    });
    assert!(matches!(
        attach_error("ph0", AyaXdpMode::Driver, e),
        LoadError::NativeUnsupported(_)
    ));
    let e = ProgramError::SyscallError(aya::sys::SyscallError {
        call: "bpf_link_create",
        io_error: io::Error::from_raw_os_error(libc::EPERM),
    });
    assert!(is_permission(&e));
}
