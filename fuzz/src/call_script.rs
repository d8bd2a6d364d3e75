//! The `calls` target's input: SIP messages between a few signaling hosts,
//! with SDP drawn from a small pool of addresses and ports, as fixed-size
//! records so that any byte string is a script and seeds can be written as
//! real call flows.
//!
//! Layout: one flags byte (bit 0: trust only 192.0.2.0/24, bit 1: media
//! relay 203.0.113.192/26), then 22-byte steps (an incomplete last one is
//! dropped): wait `u16` LE (×10 ms), from, to, start (0–6 a request method
//! of [`METHODS`], else a response), status `u16` LE (100 + n % 600),
//! Call-ID, From-tag, To-tag (≥ 0x80: none), CSeq, CSeq method (responses
//! only), SDP flags (bit 7 present, bits 4–5 stream count, bits 0–3
//! session `c=`), and three 3-byte streams ([`Stream`]).

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Signaling hosts.
pub const HOSTS: [&str; 5] = [
    "192.0.2.1:5060",
    "198.51.100.2:5060",
    "203.0.113.3:5080",
    "[2001:db8::1]:5060",
    "[2001:db8::2]:5060",
];

/// `c=` and `a=rtcp` addresses: the hosts', a third party's, a media
/// relay's (203.0.113.200) and unusable ones. An index past the end means
/// "none".
pub const MEDIA_IPS: [(&str, &str); 10] = [
    ("IP4", "192.0.2.1"),
    ("IP4", "198.51.100.2"),
    ("IP4", "203.0.113.3"),
    ("IP6", "2001:db8::1"),
    ("IP6", "2001:db8::2"),
    ("IP4", "203.0.113.99"),
    ("IP4", "203.0.113.200"),
    ("IP4", "0.0.0.0"),
    ("IP4", "224.0.1.1"),
    ("IP6", "::ffff:192.0.2.1"),
];

pub const PORTS: [u16; 7] = [0, 1, 4000, 4001, 5004, 49170, 65535];
pub const PROTOS: [&str; 4] = ["RTP/AVP", "RTP/SAVPF", "TCP/RTP/AVP", "udp"];
pub const DIRECTIONS: [&str; 5] = ["", "sendrecv", "sendonly", "recvonly", "inactive"];
pub const METHODS: [&str; 7] = [
    "INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "OPTIONS",
];

const STEP: usize = 22;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    /// Index into [`PORTS`].
    pub port: u8,
    /// Index into [`PROTOS`].
    pub proto: u8,
    pub rtcp_mux: bool,
    /// Index into [`DIRECTIONS`].
    pub direction: u8,
    /// Media-level `c=`: index into [`MEDIA_IPS`].
    pub conn: u8,
    /// `a=rtcp`: 0 none, 1 port, 2 port and address.
    pub rtcp: u8,
    /// `a=rtcp` port (index into [`PORTS`]) and address (into [`MEDIA_IPS`]).
    pub rtcp_at: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub wait_10ms: u16,
    pub from: u8,
    pub to: u8,
    /// 0–6: a request of [`METHODS`]; else a response with `status`.
    pub start: u8,
    pub status: u16,
    pub call: u8,
    pub from_tag: u8,
    /// ≥ 0x80: no To-tag.
    pub to_tag: u8,
    pub cseq: u8,
    pub cseq_method: u8,
    pub sdp: bool,
    /// Session-level `c=`: index into [`MEDIA_IPS`].
    pub session_conn: u8,
    pub streams: Vec<Stream>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallScript {
    pub narrow_trust: bool,
    pub relay: bool,
    pub steps: Vec<Step>,
}

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[usize::from(i) % items.len()]
}

fn media_ip(i: u8) -> Option<(&'static str, &'static str)> {
    MEDIA_IPS.get(usize::from(i)).copied()
}

impl Stream {
    fn decode(b: [u8; 3]) -> Stream {
        Stream {
            port: b[0] & 0x0f,
            proto: b[1] & 3,
            rtcp_mux: b[1] & 4 != 0,
            direction: (b[1] >> 3) & 7,
            rtcp: b[1] >> 6,
            conn: b[2] & 0x0f,
            rtcp_at: b[2] >> 4,
        }
    }

    fn encode(&self) -> [u8; 3] {
        [
            self.port & 0x0f,
            (self.proto & 3)
                | u8::from(self.rtcp_mux) << 2
                | (self.direction & 7) << 3
                | (self.rtcp & 3) << 6,
            (self.conn & 0x0f) | (self.rtcp_at & 0x0f) << 4,
        ]
    }
}

impl CallScript {
    pub fn decode(data: &[u8]) -> CallScript {
        let flags = data.first().copied().unwrap_or(0);
        let steps = data
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(STEP)
            .map(|b| {
                let sdp_flags = b[12];
                let n = usize::from((sdp_flags >> 4) & 3);
                Step {
                    wait_10ms: u16::from_le_bytes([b[0], b[1]]),
                    from: b[2],
                    to: b[3],
                    start: b[4],
                    status: u16::from_le_bytes([b[5], b[6]]),
                    call: b[7],
                    from_tag: b[8],
                    to_tag: b[9],
                    cseq: b[10],
                    cseq_method: b[11],
                    sdp: sdp_flags & 0x80 != 0,
                    session_conn: sdp_flags & 0x0f,
                    streams: (0..n)
                        .map(|i| Stream::decode([b[13 + 3 * i], b[14 + 3 * i], b[15 + 3 * i]]))
                        .collect(),
                }
            })
            .collect();
        CallScript {
            narrow_trust: flags & 1 != 0,
            relay: flags & 2 != 0,
            steps,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.narrow_trust) | u8::from(self.relay) << 1];
        for s in &self.steps {
            assert!(s.streams.len() <= 3, "at most three streams per SDP");
            out.extend_from_slice(&s.wait_10ms.to_le_bytes());
            out.extend_from_slice(&[s.from, s.to, s.start]);
            out.extend_from_slice(&s.status.to_le_bytes());
            out.extend_from_slice(&[s.call, s.from_tag, s.to_tag, s.cseq, s.cseq_method]);
            out.push(u8::from(s.sdp) << 7 | (s.streams.len() as u8) << 4 | (s.session_conn & 0x0f));
            for i in 0..3 {
                out.extend_from_slice(&s.streams.get(i).copied().unwrap_or_default().encode());
            }
        }
        out
    }
}

impl Step {
    /// Signaling source and destination.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        let host = |i| pick(&HOSTS, i).parse().expect("valid host address");
        (host(self.from), host(self.to))
    }

    /// The request method, for requests.
    pub fn method(&self) -> Option<&'static str> {
        METHODS.get(usize::from(self.start)).copied()
    }

    /// The SDP body, if any.
    pub fn sdp_text(&self) -> Option<String> {
        if !self.sdp {
            return None;
        }
        let mut s = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n");
        if let Some((t, ip)) = media_ip(self.session_conn) {
            let _ = write!(s, "c=IN {t} {ip}\r\n");
        }
        s.push_str("t=0 0\r\n");
        for m in &self.streams {
            let proto = pick(&PROTOS, m.proto);
            let _ = write!(s, "m=audio {} {proto} 0\r\n", pick(&PORTS, m.port));
            if let Some((t, ip)) = media_ip(m.conn) {
                let _ = write!(s, "c=IN {t} {ip}\r\n");
            }
            if m.rtcp_mux {
                s.push_str("a=rtcp-mux\r\n");
            }
            if m.rtcp > 0 {
                let _ = write!(s, "a=rtcp:{}", pick(&PORTS, m.rtcp_at));
                if m.rtcp > 1 {
                    let (t, ip) = pick(&MEDIA_IPS, m.rtcp_at);
                    let _ = write!(s, " IN {t} {ip}");
                }
                s.push_str("\r\n");
            }
            let dir = pick(&DIRECTIONS, m.direction);
            if !dir.is_empty() {
                let _ = write!(s, "a={dir}\r\n");
            }
        }
        Some(s)
    }

    /// The whole message as a UA would send it from `src`.
    pub fn message(&self, src: SocketAddr) -> String {
        let mut m = String::new();
        // A request's CSeq names its own method; a response's names any.
        let cseq_method = match self.method() {
            Some(method) => {
                let _ = write!(m, "{method} sip:bob@example.com SIP/2.0\r\n");
                method
            }
            None => {
                let _ = write!(m, "SIP/2.0 {} Whatever\r\n", 100 + self.status % 600);
                pick(&METHODS, self.cseq_method)
            }
        };
        let _ = write!(m, "Via: SIP/2.0/UDP {src};branch=z9hG4bK{}\r\n", self.cseq);
        let _ = write!(
            m,
            "From: <sip:alice@example.com>;tag=f{}\r\n",
            self.from_tag % 4
        );
        if self.to_tag < 0x80 {
            let _ = write!(m, "To: <sip:bob@example.com>;tag=t{}\r\n", self.to_tag % 4);
        } else {
            m.push_str("To: <sip:bob@example.com>\r\n");
        }
        let _ = write!(m, "Call-ID: call{}@example.com\r\n", self.call % 4);
        let _ = write!(m, "CSeq: {} {cseq_method}\r\n", 1 + self.cseq % 8);
        let body = self.sdp_text().unwrap_or_default();
        if self.sdp {
            m.push_str("Content-Type: application/sdp\r\n");
        }
        let _ = write!(m, "Content-Length: {}\r\n\r\n{body}", body.len());
        m
    }
}
