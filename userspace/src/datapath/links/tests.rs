use super::*;

/// Records what the tracker asked for; fails attaches to `refuse`.
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    refuse: Option<u32>,
}

impl Attach for Fake {
    fn attach(&mut self, iface: &str, ifindex: u32) -> Result<(), LoadError> {
        self.calls.push(format!("attach {iface} {ifindex}"));
        if self.refuse == Some(ifindex) {
            return Err(LoadError::NoSuchInterface(iface.into()));
        }
        Ok(())
    }

    fn release(&mut self, iface: &str) {
        self.calls.push(format!("release {iface}"));
    }
}

fn link(index: u32, name: &str, up: bool) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        up,
    }
}

fn tracker() -> Tracker<Fake> {
    Tracker::new(
        Fake::default(),
        XdpMode::Native,
        &[("r-out".into(), 5), ("r-in".into(), 6)],
    )
}

/// (state, ifindex, up, reattached) of `r-out`.
fn out(t: &Tracker<Fake>) -> (String, Option<u32>, Option<bool>, u64) {
    let s = &t.status()[0];
    assert_eq!((s.name.as_str(), s.mode.as_str()), ("r-out", "native"));
    (s.state.clone(), s.ifindex, s.up, s.reattached)
}

#[test]
fn churn_sequences() {
    use LinkEvent::*;
    let attached = |i, up| ("attached".to_string(), Some(i), up, 0);
    type Want = (String, Option<u32>, Option<bool>, u64);
    let cases: Vec<(&str, Vec<LinkEvent>, &[&str], Want)> = vec![
        (
            "down and up: nothing to do",
            vec![
                New(link(5, "r-out", true)),
                New(link(5, "r-out", false)),
                New(link(5, "r-out", true)),
            ],
            &[],
            attached(5, Some(true)),
        ),
        (
            "deleted: the link is let go",
            vec![
                New(link(5, "r-out", false)),
                Deleted(link(5, "r-out", false)),
            ],
            &["release r-out"],
            ("absent".into(), None, None, 0),
        ),
        (
            "re-created under another index: attached again",
            vec![
                Deleted(link(5, "r-out", false)),
                New(link(9, "r-out", false)),
            ],
            &["release r-out", "attach r-out 9"],
            ("attached".into(), Some(9), Some(false), 1),
        ),
        (
            "re-created with the deletion missed",
            vec![New(link(9, "r-out", true))],
            &["release r-out", "attach r-out 9"],
            ("attached".into(), Some(9), Some(true), 1),
        ),
        (
            "a failed attach is retried on the next change",
            vec![
                Deleted(link(5, "r-out", false)),
                New(link(13, "r-out", false)),
                New(link(13, "r-out", true)),
                Deleted(link(13, "r-out", true)),
                New(link(14, "r-out", true)),
            ],
            &[
                "release r-out",
                "attach r-out 13",
                "attach r-out 13",
                "attach r-out 14",
            ],
            ("attached".into(), Some(14), Some(true), 1),
        ),
        (
            "renamed away: detached, and attached to the next of that name",
            vec![New(link(5, "wan0", true)), New(link(11, "r-out", true))],
            &["release r-out", "attach r-out 11"],
            ("attached".into(), Some(11), Some(true), 1),
        ),
        (
            "other interfaces are ignored",
            vec![
                New(link(7, "eth9", true)),
                Deleted(link(7, "eth9", true)),
                Deleted(link(16, "r-in-not", false)),
            ],
            &[],
            attached(5, None),
        ),
        (
            "snapshot: unchanged",
            vec![Snapshot(vec![
                link(1, "lo", true),
                link(5, "r-out", true),
                link(6, "r-in", true),
            ])],
            &[],
            attached(5, Some(true)),
        ),
        (
            "snapshot: gone, then back under another index",
            vec![
                Snapshot(vec![link(6, "r-in", true)]),
                Snapshot(vec![link(6, "r-in", true), link(8, "r-out", true)]),
            ],
            &["release r-out", "attach r-out 8"],
            ("attached".into(), Some(8), Some(true), 1),
        ),
    ];
    for (what, events, calls, want) in cases {
        let mut t = tracker();
        if what.contains("failed") {
            t.attach.refuse = Some(13);
        }
        for ev in events {
            t.on_event(ev);
        }
        assert_eq!(t.attach.calls, calls, "{what}");
        assert_eq!(out(&t), want, "{what}");
        // The other interface is never touched.
        let r_in = &t.status()[1];
        assert_eq!(
            (r_in.state.as_str(), r_in.ifindex),
            ("attached", Some(6)),
            "{what}"
        );
    }
}

#[test]
fn a_failed_attach_shows_in_the_status_until_it_succeeds() {
    let mut t = tracker();
    t.attach.refuse = Some(13);
    t.on_event(LinkEvent::Deleted(link(5, "r-out", true)));
    t.on_event(LinkEvent::New(link(13, "r-out", true)));
    let s = &t.status()[0];
    assert_eq!((s.state.as_str(), s.ifindex), ("failed", Some(13)));
    assert_eq!(s.error.as_deref(), Some("no such interface: r-out"));
    t.on_event(LinkEvent::Snapshot(vec![link(6, "r-in", true)]));
    let s = &t.status()[0];
    assert_eq!((s.state.as_str(), s.ifindex), ("absent", None));
    t.attach.refuse = None;
    t.on_event(LinkEvent::New(link(15, "r-out", true)));
    let s = &t.status()[0];
    assert_eq!(
        (s.state.as_str(), s.ifindex, s.error.as_deref()),
        ("attached", Some(15), None)
    );
}

/// A netlink message of `ty` with a link message of `index`/`name`.
fn message(ty: RouteNetlinkMessage, seq: u32, port: u32, flags: u16) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.port_number = port;
    header.flags = flags;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(ty));
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

fn link_message(index: u32, name: Option<&str>, flags: LinkFlags) -> LinkMessage {
    let mut l = LinkMessage::default();
    l.header.index = index;
    l.header.flags = flags;
    if let Some(n) = name {
        l.attributes.push(LinkAttribute::IfName(n.into()));
    }
    l
}

#[test]
fn datagrams_decode_and_hostile_ones_do_not_panic() {
    let up = LinkFlags::Up | LinkFlags::LowerUp;
    let new = message(
        RouteNetlinkMessage::NewLink(link_message(5, Some("r-out"), up)),
        0,
        0,
        0,
    );
    let del = message(
        RouteNetlinkMessage::DelLink(link_message(9, Some("eth0.100"), LinkFlags::Up)),
        0,
        0,
        0,
    );
    let reply = message(
        RouteNetlinkMessage::NewLink(link_message(1, Some("lo"), up)),
        7,
        4242,
        NLM_F_DUMP_INTR,
    );
    let nameless = message(
        RouteNetlinkMessage::NewLink(link_message(3, None, up)),
        0,
        0,
        0,
    );
    let mut done = NetlinkMessage::<RouteNetlinkMessage>::new(
        NetlinkHeader::default(),
        NetlinkPayload::Done(Default::default()),
    );
    done.header.sequence_number = 7;
    done.finalize();
    let mut done_bytes = vec![0; done.buffer_len()];
    done.serialize(&mut done_bytes);

    let ok = |seq, port, flags, msg| {
        Ok::<_, String>(Decoded {
            seq,
            port,
            flags,
            msg,
        })
    };
    let both = [new.clone(), del.clone()].concat();
    type Case = (&'static str, Vec<u8>, Vec<Result<Decoded, String>>);
    let cases: Vec<Case> = vec![
        (
            "new link, up",
            new.clone(),
            vec![ok(0, 0, 0, Message::New(link(5, "r-out", true)))],
        ),
        (
            "deleted link, no carrier",
            del.clone(),
            vec![ok(0, 0, 0, Message::Deleted(link(9, "eth0.100", false)))],
        ),
        (
            "two messages in one datagram",
            both.clone(),
            vec![
                ok(0, 0, 0, Message::New(link(5, "r-out", true))),
                ok(0, 0, 0, Message::Deleted(link(9, "eth0.100", false))),
            ],
        ),
        (
            "a dump reply and its end",
            [reply.clone(), done_bytes.clone()].concat(),
            vec![
                ok(7, 4242, NLM_F_DUMP_INTR, Message::New(link(1, "lo", true))),
                ok(7, 0, 0, Message::Done),
            ],
        ),
        (
            "a link without a name is not one of ours",
            nameless,
            vec![ok(0, 0, 0, Message::Other)],
        ),
        ("empty", Vec::new(), Vec::new()),
    ];
    for (what, bytes, want) in cases {
        let got = decode(&bytes);
        assert_eq!(got, want, "{what}");
    }

    // Hostile and broken datagrams: errors, never a panic or a loop.
    let mut too_long = new.clone();
    too_long[0..4].copy_from_slice(&(new.len() as u32 + 64).to_ne_bytes());
    let mut too_short = new.clone();
    too_short[0..4].copy_from_slice(&8u32.to_ne_bytes());
    let mut zero = new.clone();
    zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
    let mut bad_attr = new.clone();
    // The first attribute's length (after the 16-byte netlink and
    // 16-byte link headers) claims more than there is.
    bad_attr[32..34].copy_from_slice(&0xfff0u16.to_ne_bytes());
    let hostile: Vec<(&str, Vec<u8>, usize)> = vec![
        ("truncated header", new[..10].to_vec(), 1),
        ("length beyond the datagram", too_long, 1),
        ("length shorter than a header", too_short, 1),
        ("zero length", zero, 1),
        ("attribute overrunning the message", bad_attr, 1),
        (
            "a good message then garbage",
            [new.clone(), vec![0xff; 7]].concat(),
            2,
        ),
        ("garbage", vec![0xa5; 300], 1),
    ];
    for (what, bytes, n) in hostile {
        let got = decode(&bytes);
        assert_eq!(got.len(), n, "{what}: {got:?}");
        assert!(got.last().unwrap().is_err(), "{what}: {got:?}");
    }
    // Every prefix of a good datagram.
    for cut in 0..both.len() {
        let _ = decode(&both[..cut]);
    }
}

#[test]
fn the_dump_request_is_a_getlink_dump() {
    let bytes = dump_request(3);
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
    assert_eq!(m.header.sequence_number, 3);
    assert_eq!(m.header.flags, NLM_F_REQUEST | NLM_F_DUMP);
    assert!(matches!(
        m.payload,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(_))
    ));
}
