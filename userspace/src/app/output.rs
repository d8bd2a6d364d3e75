//! Human-readable output of the client subcommands.

use pinhole_common::Reason;

use crate::controller::report::{CallsReply, CloseReply, ListReply, OpenReply, StatsReply};
use crate::controller::table::OpenOutcome;

/// Column alignment.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Renders rows under a header with columns padded to their widest cell,
/// separated by two spaces, without trailing blanks.
fn render_table(header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = header.iter().map(|(h, _)| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            match header[i].1 {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn secs(s: u64) -> String {
    format!("{s}s")
}

fn timeout(s: u64) -> String {
    if s == 0 {
        "never".into()
    } else {
        secs(s)
    }
}

/// `list` as a table.
pub fn list(reply: &ListReply) -> String {
    if reply.pinholes.is_empty() {
        return "no pinholes open\n".into();
    }
    use Align::*;
    let header = [
        ("ID", Right),
        ("A", Left),
        ("B", Left),
        ("RTCP", Left),
        ("IDLE", Right),
        ("AGE", Right),
        ("TIMEOUT", Right),
        ("PACKETS", Right),
        ("BYTES", Right),
        ("OWNER", Left),
    ];
    let rows: Vec<Vec<String>> = reply
        .pinholes
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.a.to_string(),
                p.b.to_string(),
                if p.rtcp { "yes" } else { "no" }.into(),
                secs(p.idle_secs),
                secs(p.age_secs),
                timeout(p.idle_timeout_secs),
                p.packets.to_string(),
                p.bytes.to_string(),
                owners(p),
            ]
        })
        .collect();
    render_table(&header, &rows)
}

/// The owner column: every holder, comma-separated.
fn owners(p: &crate::controller::report::PinholeInfo) -> String {
    if p.owners.is_empty() {
        p.owner.clone()
    } else {
        p.owners.join(",")
    }
}

/// `stats` as a table of counters followed by the table usage and the
/// signaling counters.
pub fn stats(reply: &StatsReply) -> String {
    use Align::*;
    let header = [
        ("REASON", Left),
        ("VERDICT", Left),
        ("PACKETS", Right),
        ("BYTES", Right),
    ];
    let mut rows = Vec::new();
    for r in Reason::ALL {
        let c = reply.counters.get(r.name()).copied().unwrap_or_default();
        let verdict = r.action().name();
        rows.push(vec![
            r.name().to_string(),
            verdict.into(),
            c.packets.to_string(),
            c.bytes.to_string(),
        ]);
    }
    // Reasons a newer daemon reports that this client does not know.
    for (name, c) in &reply.counters {
        if !Reason::ALL.iter().any(|r| r.name() == name) {
            rows.push(vec![
                name.clone(),
                "?".into(),
                c.packets.to_string(),
                c.bytes.to_string(),
            ]);
        }
    }
    let mut out = render_table(&header, &rows);
    out.push_str(&format!(
        "\npinholes: {}\nflows: {} of {} used\nrefused (table full): {}\nexpired: {}\n\
         controller longest step: {} us\n",
        reply.pinholes,
        reply.flows.used,
        reply.flows.capacity,
        reply.rejected_full,
        reply.expired,
        reply.longest_step_us
    ));
    let s = &reply.signaling;
    let r = &s.refused;
    let l = &s.setup_latency_us;
    out.push_str(&format!(
        "\nsignaling: {}\n\
         messages: {} SIP, {} RTSP ({} packets, {} parse errors)\n\
         calls: {} active, {} opened, {} closed\n\
         refused: {} untrusted, {} third-party media, {} call cap, {} peer cap, {} map full\n\
         setup latency: {} samples, p50 {} us, p99 {} us, max {} us\n",
        if s.mode.is_empty() { "?" } else { &s.mode },
        s.sip_messages,
        s.rtsp_messages,
        s.packets,
        s.parse_errors,
        s.calls_active,
        s.calls_opened,
        s.calls_closed,
        r.untrusted,
        r.third_party_media,
        r.call_cap,
        r.peer_cap,
        r.map_full,
        l.count,
        l.p50,
        l.p99,
        l.max
    ));
    if let Some(q) = &s.queue {
        let kernel = match &q.kernel {
            Some(k) => format!(
                "{} waiting, {} dropped (queue full), {} dropped (not delivered), last id {}",
                k.queue_total, k.queue_dropped, k.user_dropped, k.id_sequence
            ),
            None => "not bound: signaling passes unobserved".into(),
        };
        out.push_str(&format!(
            "queue {}: reader restarts {}, kernel: {kernel}\n",
            q.queue_num, q.reader_restarts
        ));
    }
    if !reply.interfaces.is_empty() {
        let ifaces: Vec<String> = reply
            .interfaces
            .iter()
            .map(|i| match (i.state.as_str(), i.ifindex) {
                ("absent", _) | (_, None) => format!("{} {}", i.name, i.state),
                (state, Some(index)) => {
                    format!("{} {state} ({}, ifindex {index})", i.name, i.mode)
                }
            })
            .collect();
        out.push_str(&format!("\ninterfaces: {}\n", ifaces.join(", ")));
    }
    if let Some(h) = &reply.ha {
        out.push_str(&format!(
            "\nha: node {}, redis {}, {} peers, {} foreign pinholes, {} adopted\n\
             replication: {} published, {} applied, {} refused, {} errors, {} resyncs, \
             lag {} ms (max {} ms), {} ends dropped\n",
            h.node,
            if h.connected {
                "connected"
            } else {
                "DISCONNECTED"
            },
            h.peers,
            h.foreign_pinholes,
            h.adopted,
            h.published,
            h.applied,
            h.refused,
            h.errors,
            h.resyncs,
            h.lag_ms_last,
            h.lag_ms_max,
            h.ends_dropped
        ));
    }
    out
}

/// `ha promote`.
pub fn promoted(r: &crate::controller::foreign::HaReply) -> String {
    format!(
        "adopted {} foreign pinholes ({} failed)\n",
        r.done, r.failed
    )
}

/// `calls` as a table: one row per open media pair, a call without any on a
/// row of its own.
pub fn calls(reply: &CallsReply) -> String {
    if reply.calls.is_empty() {
        return "no calls\n".into();
    }
    use Align::*;
    let header = [
        ("KIND", Left),
        ("CALL", Left),
        ("TAG", Left),
        ("STATE", Left),
        ("AGE", Right),
        ("STREAM", Left),
        ("A", Left),
        ("B", Left),
        ("PACKETS", Right),
        ("BYTES", Right),
    ];
    let mut rows = Vec::new();
    for c in &reply.calls {
        let call = |stream: String, a: String, b: String, packets: u64, bytes: u64| {
            vec![
                c.kind.clone(),
                c.call_id.clone(),
                c.tag.clone(),
                c.state.clone(),
                secs(c.age_secs),
                stream,
                a,
                b,
                packets.to_string(),
                bytes.to_string(),
            ]
        };
        if c.streams.is_empty() {
            rows.push(call("-".into(), "-".into(), "-".into(), 0, 0));
        }
        for s in &c.streams {
            let state = match s.state.as_str() {
                "open" => String::new(),
                other => format!(" ({other})"),
            };
            rows.push(call(
                format!("{}/{}{state}", s.index, s.kind),
                s.a.to_string(),
                s.b.to_string(),
                s.packets,
                s.bytes,
            ));
        }
    }
    render_table(&header, &rows)
}

/// The one line `open` prints.
pub fn opened(r: &OpenReply) -> String {
    let verb = match r.outcome {
        OpenOutcome::Opened => "opened",
        OpenOutcome::Refreshed => "refreshed",
    };
    let rtcp = if r.rtcp { " with RTCP" } else { "" };
    let idle = match r.idle_timeout_secs {
        0 => "no idle timeout".to_string(),
        s => format!("idle timeout {s}s"),
    };
    format!(
        "{verb} pinhole {}: {} <-> {}{rtcp} ({} flows, {idle})",
        r.id, r.a, r.b, r.flows
    )
}

/// The one line `close` prints.
pub fn closed(r: &CloseReply) -> String {
    let rtcp = if r.rtcp { " with RTCP" } else { "" };
    format!(
        "closed pinhole {}: {} <-> {}{rtcp} ({} flows removed)",
        r.id, r.a, r.b, r.flows_removed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::report::{CounterInfo, FlowUsage, PinholeInfo};

    #[test]
    fn list_is_an_aligned_table() {
        let p = |id, a: &str, b: &str, rtcp, packets| PinholeInfo {
            id,
            a: a.parse().unwrap(),
            b: b.parse().unwrap(),
            rtcp,
            idle_timeout_secs: if id == 1 { 300 } else { 0 },
            idle_secs: 3,
            age_secs: 5,
            packets,
            bytes: packets * 100,
            owner: if id == 1 {
                "manual"
            } else {
                "sip:a@b;from-tag=1"
            }
            .into(),
            owners: if id == 1 {
                vec![]
            } else {
                vec!["manual".into(), "sip:a@b;from-tag=1".into()]
            },
            flows: vec![],
        };
        let reply = ListReply {
            pinholes: vec![
                p(1, "192.0.2.1:4000", "198.51.100.2:10000", false, 12),
                p(12, "[2001:db8::1]:4000", "[2001:db8::2]:10000", true, 1234),
            ],
        };
        let want = "\
ID  A                   B                    RTCP  IDLE  AGE  TIMEOUT  PACKETS   BYTES  OWNER
 1  192.0.2.1:4000      198.51.100.2:10000   no      3s   5s     300s       12    1200  manual
12  [2001:db8::1]:4000  [2001:db8::2]:10000  yes     3s   5s    never     1234  123400  manual,sip:a@b;from-tag=1
";
        assert_eq!(list(&reply), want);
        assert_eq!(list(&ListReply::default()), "no pinholes open\n");
    }

    #[test]
    fn stats_lists_every_reason_in_order() {
        let mut counters = std::collections::BTreeMap::new();
        for r in Reason::ALL {
            counters.insert(
                r.name().to_string(),
                CounterInfo {
                    packets: r as u64,
                    bytes: 10 * r as u64,
                },
            );
        }
        counters.insert(
            "future_reason".into(),
            CounterInfo {
                packets: 1,
                bytes: 2,
            },
        );
        let reply = StatsReply {
            counters,
            flows: FlowUsage {
                used: 4,
                capacity: 262144,
            },
            pinholes: 2,
            rejected_full: 1,
            expired: 0,
            ha: None,
            longest_step_us: 850,
            signaling: crate::controller::report::SignalingStats {
                mode: "inline".into(),
                sip_messages: 7,
                parse_errors: 1,
                setup_latency_us: crate::controller::report::LatencyStats {
                    count: 3,
                    p50: 120.5,
                    p99: 480.0,
                    max: 480.0,
                },
                queue: Some(crate::capture::nfqueue::QueueStats {
                    queue_num: 4242,
                    reader_restarts: 1,
                    kernel: Some(crate::capture::nfqueue::KernelQueueStats {
                        queue_num: 4242,
                        queue_total: 2,
                        queue_dropped: 3,
                        user_dropped: 4,
                        id_sequence: 99,
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            },
            interfaces: vec![
                crate::controller::report::InterfaceStatus {
                    name: "r-out".into(),
                    state: "attached".into(),
                    mode: "skb".into(),
                    ifindex: Some(7),
                    ..Default::default()
                },
                crate::controller::report::InterfaceStatus {
                    name: "r-in".into(),
                    state: "absent".into(),
                    mode: "skb".into(),
                    ..Default::default()
                },
            ],
        };
        let text = stats(&reply);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            text.contains(
                "queue 4242: reader restarts 1, kernel: 2 waiting, 3 dropped (queue full), \
                 4 dropped (not delivered), last id 99\n"
            ),
            "{text}"
        );
        assert!(lines[0].starts_with("REASON"));
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert!(lines[i + 1].starts_with(r.name()), "{}", lines[i + 1]);
        }
        assert!(lines[4].contains("hit") && lines[4].contains("pass"));
        assert!(lines[5].contains("miss") && lines[5].contains("drop"));
        assert!(lines[Reason::COUNT as usize + 1].starts_with("future_reason"));
        assert!(text.contains("flows: 4 of 262144 used"));
        assert!(text.contains("refused (table full): 1"));
        assert!(text.contains("controller longest step: 850 us"), "{text}");
        assert!(text.contains("signaling: inline"), "{text}");
        assert!(text.contains("messages: 7 SIP, 0 RTSP (0 packets, 1 parse errors)"));
        assert!(text.contains("setup latency: 3 samples, p50 120.5 us, p99 480 us"));
        assert!(
            text.contains("interfaces: r-out attached (skb, ifindex 7), r-in absent"),
            "{text}"
        );
    }

    #[test]
    fn calls_is_a_table_of_streams() {
        use crate::controller::report::{CallEntry, StreamEntry};
        let stream = |index, kind: &str, a: &str, b: &str, packets| StreamEntry {
            index,
            kind: kind.into(),
            dialog: Some("t2".into()),
            a: a.parse().unwrap(),
            b: b.parse().unwrap(),
            a_to_b: CounterInfo {
                packets,
                bytes: packets * 100,
            },
            b_to_a: CounterInfo::default(),
            packets,
            bytes: packets * 100,
            state: "open".into(),
        };
        let call = |kind: &str, id: &str, streams: Vec<StreamEntry>| CallEntry {
            kind: kind.into(),
            call_id: id.into(),
            tag: "t1".into(),
            owner: format!("{kind}:{id};from-tag=t1"),
            state: "confirmed".into(),
            age_secs: 7,
            last_signal_secs: Some(2),
            packets: streams.iter().map(|s| s.packets).sum(),
            bytes: streams.iter().map(|s| s.bytes).sum(),
            streams,
        };
        let reply = CallsReply {
            calls: vec![
                call(
                    "ng",
                    "abc@x",
                    vec![
                        stream(0, "rtp", "192.0.2.2:12000", "198.51.100.2:10000", 32),
                        stream(0, "rtcp", "192.0.2.2:12001", "198.51.100.2:10001", 2),
                    ],
                ),
                call("sip", "q", vec![]),
            ],
        };
        let want = "\
KIND  CALL   TAG  STATE      AGE  STREAM  A                B                   PACKETS  BYTES
ng    abc@x  t1   confirmed   7s  0/rtp   192.0.2.2:12000  198.51.100.2:10000       32   3200
ng    abc@x  t1   confirmed   7s  0/rtcp  192.0.2.2:12001  198.51.100.2:10001        2    200
sip   q      t1   confirmed   7s  -       -                -                         0      0
";
        assert_eq!(calls(&reply), want);
        assert_eq!(calls(&CallsReply::default()), "no calls\n");
    }

    #[test]
    fn one_line_messages() {
        let r = OpenReply {
            id: 3,
            outcome: OpenOutcome::Opened,
            a: "192.0.2.1:4000".parse().unwrap(),
            b: "198.51.100.2:10000".parse().unwrap(),
            rtcp: true,
            idle_timeout_secs: 300,
            flows: 4,
        };
        assert_eq!(
            opened(&r),
            "opened pinhole 3: 192.0.2.1:4000 <-> 198.51.100.2:10000 with RTCP (4 flows, idle timeout 300s)"
        );
        let c = CloseReply {
            id: 3,
            a: r.a,
            b: r.b,
            rtcp: false,
            flows_removed: 2,
        };
        assert_eq!(
            closed(&c),
            "closed pinhole 3: 192.0.2.1:4000 <-> 198.51.100.2:10000 (2 flows removed)"
        );
    }
}
