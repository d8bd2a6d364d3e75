use super::*;
use crate::calls::{Media, SipMethod, SipStart};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn nat_maps_parse_and_refuse_hostile_values() {
    let ok: &[(&str, &str)] = &[
        ("192.0.2.1=198.51.100.0/24", "192.0.2.1=198.51.100.0/24"),
        (" 192.0.2.1 = 198.51.100.7/24 ", "192.0.2.1=198.51.100.0/24"),
        ("192.0.2.1=198.51.100.10", "192.0.2.1=198.51.100.10/32"),
        (
            "2001:db8:1::1=2001:db8:2::/64",
            "2001:db8:1::1=2001:db8:2::/64",
        ),
    ];
    for (s, want) in ok {
        assert_eq!(s.parse::<NatMap>().unwrap().to_string(), *want, "{s}");
    }
    type Check = fn(&NatMapError) -> bool;
    let bad: &[(&str, Check)] = &[
        ("", |e| matches!(e, NatMapError::Form(_))),
        ("192.0.2.1", |e| matches!(e, NatMapError::Form(_))),
        ("example.com=198.51.100.0/24", |e| {
            matches!(e, NatMapError::Public(_))
        }),
        ("192.0.2.1=", |e| matches!(e, NatMapError::Inside(_))),
        ("192.0.2.1=198.51.100.0/33", |e| {
            matches!(e, NatMapError::Inside(_))
        }),
        ("192.0.2.1=2001:db8::/64", |e| {
            matches!(e, NatMapError::Family(_))
        }),
        ("192.0.2.1=192.0.2.0/24", |e| {
            matches!(e, NatMapError::PublicInside(_))
        }),
        ("192.0.2.1=198.51.100.0/24=x", |e| {
            matches!(e, NatMapError::Inside(_))
        }),
        ("\u{0}=\u{0}", |e| matches!(e, NatMapError::Public(_))),
    ];
    for (s, want) in bad {
        let e = s.parse::<NatMap>().unwrap_err();
        assert!(want(&e), "{s:?}: {e}");
    }
}

#[test]
fn overlapping_or_too_many_maps_are_refused() {
    let m = |s: &str| s.parse::<NatMap>().unwrap();
    assert!(check_maps(&[
        m("192.0.2.1=198.51.100.0/25"),
        m("192.0.2.2=198.51.100.128/25")
    ])
    .is_ok());
    let e = check_maps(&[
        m("192.0.2.1=198.51.100.0/24"),
        m("192.0.2.2=198.51.100.128/25"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "192.0.2.2=198.51.100.128/25 and 192.0.2.1=198.51.100.0/24 overlap: \
         an inside address must map to one public address"
    );
    let many: Vec<NatMap> = (0..=MAX_NAT_MAPS)
        .map(|i| m(&format!("192.0.2.1=198.51.100.{i}")))
        .collect();
    assert_eq!(
        check_maps(&many),
        Err(NatMapsError::TooMany(MAX_NAT_MAPS + 1))
    );
}

/// An INVITE `src → dst` whose SDP has two streams: RTP on `media`
/// with RTCP on `rtcp`, and RTP on `media` port + 2 with RTCP muxed.
fn event([src, dst, media, rtcp]: [&str; 4]) -> SipEvent {
    let second = Media {
        rtp: Some(SocketAddr::new(sa(media).ip(), sa(media).port() + 2)),
        rtcp: None,
        rtcp_mux: true,
        hold: false,
        one_way: false,
    };
    SipEvent {
        src: sa(src),
        dst: sa(dst),
        start: SipStart::Request(SipMethod::Invite),
        call_id: "c".into(),
        from_tag: "f".into(),
        to_tag: None,
        cseq: 1,
        cseq_method: SipMethod::Invite,
        sdp: Some(vec![
            Media {
                rtp: Some(sa(media)),
                rtcp: Some(sa(rtcp)),
                ..second
            },
            second,
        ]),
    }
}

#[test]
fn the_view_maps_inside_addresses_to_the_public_one_keeping_ports() {
    let view = NatView::new(vec![
        "192.0.2.1=198.51.100.0/24".parse().unwrap(),
        "2001:db8:1::1=2001:db8:2::/64".parse().unwrap(),
    ]);
    // (src, dst, RTP, RTCP) before → after: an inside caller's INVITE
    // with private SDP; with a STUN (public) SDP and RTCP elsewhere
    // inside; the outside's message to the inside, its SDP unchanged;
    // IPv6.
    type Row<'a> = [&'a str; 4];
    let cases: &[(Row<'_>, Row<'_>)] = &[
        (
            [
                "198.51.100.2:5060",
                "203.0.113.9:5060",
                "198.51.100.2:16000",
                "198.51.100.2:16001",
            ],
            [
                "192.0.2.1:5060",
                "203.0.113.9:5060",
                "192.0.2.1:16000",
                "192.0.2.1:16001",
            ],
        ),
        (
            [
                "198.51.100.2:5060",
                "203.0.113.9:5060",
                "192.0.2.1:16000",
                "198.51.100.3:17001",
            ],
            [
                "192.0.2.1:5060",
                "203.0.113.9:5060",
                "192.0.2.1:16000",
                "192.0.2.1:17001",
            ],
        ),
        (
            [
                "203.0.113.9:5060",
                "198.51.100.2:5070",
                "203.0.113.9:12000",
                "203.0.113.9:12001",
            ],
            [
                "203.0.113.9:5060",
                "192.0.2.1:5070",
                "203.0.113.9:12000",
                "203.0.113.9:12001",
            ],
        ),
        (
            [
                "[2001:db8:2::2]:5060",
                "[2001:db8:9::9]:5060",
                "[2001:db8:2::2]:16000",
                "[2001:db8:2::2]:16001",
            ],
            [
                "[2001:db8:1::1]:5060",
                "[2001:db8:9::9]:5060",
                "[2001:db8:1::1]:16000",
                "[2001:db8:1::1]:16001",
            ],
        ),
    ];
    for (before, after) in cases {
        let mut ev = event(*before);
        view.apply(&mut ev);
        assert_eq!(ev, event(*after), "{before:?}");
    }
    // No mapping: nothing changes.
    let mut ev = event(cases[0].0);
    NatView::default().apply(&mut ev);
    assert_eq!(ev, event(cases[0].0));
}

/// The listing of a router that masquerades, port-forwards a PBX and
/// runs the SIP helper, through iptables-nft and native nft, as
/// `nft list ruleset` prints it.
const NFT: &str = r#"table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "r-out" ip saddr 198.51.100.0/24 counter packets 0 bytes 0 masquerade
		oifname "r-out" counter packets 0 bytes 0 snat to 192.0.2.1
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "r-out" udp dport 5060 counter packets 0 bytes 0 dnat to 198.51.100.2
		iifname "r-out" meta l4proto udp udp dport 10000-20000 counter packets 0 bytes 0 dnat to 198.51.100.2
	}
}
table ip raw {
	chain PREROUTING {
		type filter hook prerouting priority raw; policy accept;
		udp dport 5060 counter packets 0 bytes 0 xt target CT
	}
}
table inet t {
	ct helper sipper {
		type "sip" protocol udp
		l3proto inet
	}
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		udp dport 5060 ct helper set "sipper"
	}
	chain nat {
		type nat hook postrouting priority srcnat; policy accept;
		oifname != "lo" ip saddr 198.51.100.0/24 masquerade
	}
	chain dn {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "r-out" udp dport { 5060, 10000-20000 } dnat ip to 198.51.100.2
		iifname "r-out" tcp dport 80 dnat ip to 198.51.100.3:8080
		iifname "wan*" tcp dport 8554 redirect to :554
	}
}
"#;

const IPTABLES: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip
-A PREROUTING -p udp -m udp --dport 21 -j CT --helper ftp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i r-out -p udp -m udp --dport 5060 -j DNAT --to-destination 198.51.100.2
-A PREROUTING -i r-out -p udp -m multiport --dports 10000:20000 -j DNAT --to-destination 198.51.100.2
-A PREROUTING -i r-out -p tcp -m tcp ! --dport 5060 -j DNAT --to-destination 198.51.100.4
-A POSTROUTING -s 198.51.100.0/24 -o r-out -j MASQUERADE
-A POSTROUTING ! -o r-in -j SNAT --to-source 192.0.2.1
-A POSTROUTING -o eth9 -j MASQUERADE
-A POSTROUTING -j ACCEPT
COMMIT
";

fn rule(
    kind: NatKind,
    iface: IfaceMatch,
    dports: Option<Vec<(u16, u16)>>,
    to: Option<&str>,
) -> Identity {
    (kind, iface, dports, to.map(str::to_owned))
}

#[test]
fn nft_listing_yields_nat_rules_and_sip_helpers() {
    use IfaceMatch::*;
    use NatKind::*;
    let is = |s: &str| Is(s.to_owned());
    let got: Vec<_> = parse_nft(NFT).iter().map(NatRule::identity).collect();
    assert_eq!(
        got,
        [
            rule(Masquerade, is("r-out"), None, None),
            rule(Snat, is("r-out"), None, Some("192.0.2.1")),
            rule(
                Dnat,
                is("r-out"),
                Some(vec![(5060, 5060)]),
                Some("198.51.100.2")
            ),
            rule(
                Dnat,
                is("r-out"),
                Some(vec![(10000, 20000)]),
                Some("198.51.100.2")
            ),
            rule(SipHelper, Any, None, None),
            rule(Masquerade, Not("lo".into()), None, None),
            rule(
                Dnat,
                is("r-out"),
                Some(vec![(5060, 5060), (10000, 20000)]),
                Some("198.51.100.2")
            ),
            rule(
                Dnat,
                is("r-out"),
                Some(vec![(80, 80)]),
                Some("198.51.100.3:8080")
            ),
            rule(Redirect, is("wan*"), Some(vec![(8554, 8554)]), Some(":554")),
        ]
    );
}

#[test]
fn iptables_save_yields_nat_rules_and_sip_helpers() {
    use IfaceMatch::*;
    use NatKind::*;
    let is = |s: &str| Is(s.to_owned());
    let got: Vec<_> = parse_iptables_save(IPTABLES)
        .iter()
        .map(NatRule::identity)
        .collect();
    assert_eq!(
        got,
        [
            rule(SipHelper, Any, Some(vec![(5060, 5060)]), None),
            rule(
                Dnat,
                is("r-out"),
                Some(vec![(5060, 5060)]),
                Some("198.51.100.2")
            ),
            rule(
                Dnat,
                is("r-out"),
                Some(vec![(10000, 20000)]),
                Some("198.51.100.2")
            ),
            rule(Dnat, is("r-out"), None, Some("198.51.100.4")),
            rule(Masquerade, is("r-out"), None, None),
            rule(Snat, Not("r-in".into()), None, Some("192.0.2.1")),
            rule(Masquerade, is("eth9"), None, None),
        ]
    );
}

#[test]
fn hostile_listings_yield_nothing_or_unlimited_rules() {
    // Garbage, truncation and odd tokens never panic; what cannot be
    // read is treated as "could match".
    let cases: &[(&str, usize)] = &[
        ("", 0),
        ("\u{0}\u{ffff}masquerade", 0),
        ("masquerade", 1),
        ("oifname", 0),
        ("oifname masquerade", 1),
        ("udp dport 99999 dnat to", 1),
        ("udp dport 20000-10000 dnat to 198.51.100.2", 1),
        ("ct helper x {\n type", 0),
        ("ct helper x {\n type \"sip\"", 1),
        ("{ { } } , , ,", 0),
    ];
    for (text, n) in cases {
        let rules = parse_nft(text);
        assert_eq!(rules.len(), *n, "{text:?}: {rules:?}");
        assert!(
            rules.iter().all(|r| r.dports.is_none()),
            "{text:?}: {rules:?}"
        );
    }
    for text in [
        "-A",
        "-A X -j",
        "-A X -j DNAT --dports",
        "-A X -o -j MASQUERADE",
        "-A X -j CT --helper",
    ] {
        let rules = parse_iptables_save(text);
        assert!(
            rules.len() <= 1 && rules.iter().all(|r| r.dports.is_none()),
            "{text:?}: {rules:?}"
        );
    }
}

fn watched(interfaces: &[String]) -> Watched<'_> {
    Watched {
        interfaces,
        sip_ports: &[5060],
        media_ports: &[PortRange {
            lo: 10000,
            hi: 20000,
        }],
    }
}

#[test]
fn only_rules_on_attached_interfaces_and_watched_ports_matter_each_once() {
    let ifaces = vec!["r-out".to_owned()];
    let found = findings(
        &[parse_nft(NFT), parse_iptables_save(IPTABLES)],
        &watched(&ifaces),
    );
    let kinds: Vec<(NatKind, String)> = found.iter().map(|r| (r.kind, r.rule.clone())).collect();
    let rules: Vec<&str> = kinds.iter().map(|(_, r)| r.as_str()).collect();
    // Port 80 and port 8554 on `wan*` do not matter, nor `-o eth9`;
    // the iptables-nft rules listed twice are reported once (the nft
    // listing, read first); `! --dport 5060` is any port.
    assert_eq!(
        rules,
        [
            r#"oifname "r-out" ip saddr 198.51.100.0/24 counter packets 0 bytes 0 masquerade"#,
            r#"oifname "r-out" counter packets 0 bytes 0 snat to 192.0.2.1"#,
            r#"iifname "r-out" udp dport 5060 counter packets 0 bytes 0 dnat to 198.51.100.2"#,
            r#"iifname "r-out" meta l4proto udp udp dport 10000-20000 counter packets 0 bytes 0 dnat to 198.51.100.2"#,
            r#"type "sip" protocol udp"#,
            r#"oifname != "lo" ip saddr 198.51.100.0/24 masquerade"#,
            r#"iifname "r-out" udp dport { 5060, 10000-20000 } dnat ip to 198.51.100.2"#,
            "-A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip",
            "-A PREROUTING -i r-out -p tcp -m tcp ! --dport 5060 -j DNAT --to-destination 198.51.100.4",
            "-A POSTROUTING ! -o r-in -j SNAT --to-source 192.0.2.1",
        ]
    );
    // Attached elsewhere: only what is not tied to r-out.
    let other = vec!["wan0".to_owned()];
    let found = findings(&[parse_nft(NFT)], &watched(&other));
    let rules: Vec<&str> = found.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            r#"type "sip" protocol udp"#,
            r#"oifname != "lo" ip saddr 198.51.100.0/24 masquerade"#
        ]
    );
}

#[test]
fn advice_says_what_to_do() {
    let ifaces = vec!["r-out".to_owned()];
    let masq = parse_iptables_save("-A POSTROUTING -o r-out -j MASQUERADE");
    let helper = parse_iptables_save("-A PREROUTING -p udp --dport 5060 -j CT --helper sip");
    let map: Vec<NatMap> = vec!["192.0.2.1=198.51.100.0/24".parse().unwrap()];

    // Nothing found, no --nat: silence.
    assert!(advice(&[], &[], &ifaces).is_empty());
    // NAT without --nat: one warning naming the rule and the flag.
    let a = advice(&masq, &[], &ifaces);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, Level::Warn);
    for needle in [
        "NAT on this router",
        "-A POSTROUTING -o r-out -j MASQUERADE",
        "--nat PUBLIC=INSIDE_CIDR",
        "lose their inbound media",
    ] {
        assert!(a[0].1.contains(needle), "{needle}: {}", a[0].1);
    }
    // With the helper too: the warning says what the helper does.
    let both: Vec<NatRule> = masq.iter().chain(&helper).cloned().collect();
    let a = advice(&both, &[], &ifaces);
    assert_eq!(a.len(), 1);
    assert!(a[0].1.contains("conntrack SIP helper"), "{}", a[0].1);
    // NAT with --nat: a note; with two interfaces also a warning.
    let a = advice(&masq, &map, &ifaces);
    assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), [Level::Info]);
    assert!(
        a[0].1.contains("--nat 192.0.2.1=198.51.100.0/24"),
        "{}",
        a[0].1
    );
    let two = vec!["r-out".to_owned(), "r-in".to_owned()];
    let a = advice(&masq, &map, &two);
    assert_eq!(
        a.iter().map(|x| x.0).collect::<Vec<_>>(),
        [Level::Warn, Level::Info]
    );
    assert!(
        a[0].1.contains("attach to the outside interface only"),
        "{}",
        a[0].1
    );
    // Two interfaces with --nat warn even when no NAT rule was found.
    let a = advice(&[], &map, &two);
    assert_eq!(
        a.iter().map(|x| x.0).collect::<Vec<_>>(),
        [Level::Warn, Level::Warn]
    );
    // The helper alone changes no address.
    let a = advice(&helper, &[], &ifaces);
    assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), [Level::Info]);
    // --nat without any NAT rule: a warning.
    let a = advice(&[], &map, &ifaces);
    assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), [Level::Warn]);
    assert!(a[0].1.contains("no masquerade, SNAT or DNAT"), "{}", a[0].1);
}

#[test]
fn forwarded_media_nat_is_the_media_range_nat_without_helpers_or_sip() {
    let media = [PortRange {
        lo: 10000,
        hi: 20000,
    }];
    // (listing, interfaces, rules expected)
    let table: [(&str, &str, &[&str]); 4] = [
        (
            NFT,
            "r-out",
            &[
                r#"oifname "r-out" ip saddr 198.51.100.0/24 counter packets 0 bytes 0 masquerade"#,
                r#"oifname "r-out" counter packets 0 bytes 0 snat to 192.0.2.1"#,
                r#"iifname "r-out" meta l4proto udp udp dport 10000-20000 counter packets 0 bytes 0 dnat to 198.51.100.2"#,
                r#"oifname != "lo" ip saddr 198.51.100.0/24 masquerade"#,
                r#"iifname "r-out" udp dport { 5060, 10000-20000 } dnat ip to 198.51.100.2"#,
            ],
        ),
        // Only the rule not tied to r-out, and no SIP helper.
        (
            NFT,
            "wan0",
            &[r#"oifname != "lo" ip saddr 198.51.100.0/24 masquerade"#],
        ),
        // SIP-only DNAT does not touch media.
        (
            "table ip nat {\n chain p {\n iifname \"r-out\" udp dport 5060 dnat to 198.51.100.2\n }\n}\n",
            "r-out",
            &[],
        ),
        ("", "r-out", &[]),
    ];
    for (listing, iface, want) in table {
        let ifaces = vec![iface.to_owned()];
        let found = media_nat(&[parse_nft(listing)], &ifaces, &media);
        let rules: Vec<&str> = found.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(rules, want, "{iface}: {listing}");
    }
}
