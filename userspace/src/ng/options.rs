//! rtpengine's offer/answer options (`flags` and the option keys a proxy's
//! module sends) as pinhole treats them: honoured, not applicable to a
//! filter that does not relay (accepted, nothing to do), or refused.
//!
//! pinhole returns the SDP unchanged, so an option that would change what
//! the peers receive (ICE, DTLS, SDES, RTP/AVP ↔ RTP/SAVP, transcoding,
//! recording, …) is refused with an `error-reason` naming it, never
//! answered `ok` with the SDP as it was. The one exception is an option
//! whose effect on this SDP is nothing (`transport-protocol` naming the
//! SDP's own protocol, `address-family` its own family, `DTLS=off`,
//! `SDES-off`): that is honoured.
//!
//! The address options decide whose word the media addresses are taken on
//! ([`ApiSource`]): `received-from` names the signaling peer, which the
//! media must come from (the direct-media rule of observed signaling);
//! `trust-address` vouches for the SDP's addresses; `SIP-source-address`
//! replaces them with `received-from`; `port-latching` asks for bounded
//! latching from `received-from` (`pinhole run --latching`).

use std::net::{IpAddr, SocketAddr};

use super::bencode::Value;
use super::wire::RequestError;
use crate::calls::{ApiSource, Media};

/// The options of one `offer` or `answer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaOptions {
    /// `received-from`: where the proxy received the SIP message.
    pub received_from: Option<IpAddr>,
    /// `trust-address`.
    pub trust_address: bool,
    /// `SIP-source-address`.
    pub sip_source_address: bool,
    /// `port-latching`.
    pub port_latching: bool,
    /// `transport-protocol`: honoured only when every `m=` line already
    /// uses it.
    pub transport_protocol: Option<String>,
    /// `address-family` (`IP4`, `IP6`): honoured only when every stream
    /// already is of that family.
    pub address_family: Option<String>,
    /// Options pinhole cannot carry out, as `name` or `name=value`.
    pub refused: Vec<String>,
}

/// `trust address`, `Trust_Address` → `trust-address`.
fn norm(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Flags (entries of the `flags` list) refused outright: each changes the
/// SDP or the media, which a filter cannot.
const REFUSED_FLAGS: &[&str] = &[
    "asymmetric",
    "media-handover",
    "record-call",
    "siprec",
    "always-transcode",
    "single-codec",
    "inject-dtmf",
    "generate-rtcp",
    "generate-mid",
    "full-rtcp-attribute",
    "pad-crypto",
    "reject-ice",
    "trickle-ice",
];

/// Prefixes of flattened options (`codec-strip-PCMA`, `SDES-no-…`,
/// `rtcp-mux-demux`, `OSRTP-offer`), refused, except the `SDES-off` family.
const REFUSED_PREFIXES: &[&str] = &["codec-", "rtcp-mux-", "osrtp-", "sdes-", "ice=", "dtls="];

/// Values of `DTLS` and `SDES` that ask for nothing to be added.
fn is_off(v: &str) -> bool {
    matches!(norm(v).as_str(), "off" | "no" | "disable" | "default")
}

impl MediaOptions {
    /// Reads the options of a request: its `flags` list (already decoded)
    /// and the option keys, through `get` (key lookup with rtpengine's
    /// spelling rules).
    pub fn parse<'a>(
        flags: &[String],
        get: impl Fn(&str) -> Option<&'a Value>,
    ) -> Result<MediaOptions, RequestError> {
        let mut o = MediaOptions::default();
        for flag in flags {
            let f = norm(flag);
            match f.as_str() {
                "trust-address" => o.trust_address = true,
                "sip-source-address" => o.sip_source_address = true,
                "port-latching" => o.port_latching = true,
                f if REFUSED_FLAGS.contains(&f) => o.refused.push(flag.clone()),
                f if f == "sdes-off" || f == "sdes-no" => {}
                f if REFUSED_PREFIXES.iter().any(|p| f.starts_with(p)) => {
                    o.refused.push(flag.clone())
                }
                // Everything else is a no-op here, as unknown flags are
                // for rtpengine (see docs/signaling.md, "Control API for SIP proxies").
                _ => {}
            }
        }
        if let Some(v) = get("received-from") {
            o.received_from = Some(received_from(v)?);
        }
        let text = |key: &'static str| -> Result<Option<String>, RequestError> {
            get(key)
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or(RequestError::Type {
                        key,
                        expected: "a UTF-8 string",
                    })
                })
                .transpose()
        };
        let list = |key: &'static str| -> Vec<String> {
            match get(key) {
                Some(Value::List(items)) => items
                    .iter()
                    .map(|i| i.as_str().unwrap_or("?").to_string())
                    .collect(),
                Some(v) => vec![v.as_str().unwrap_or("?").to_string()],
                None => Vec::new(),
            }
        };
        if let Some(v) = text("ICE")? {
            if norm(&v) != "default" {
                o.refused.push(format!("ICE={v}"));
            }
        }
        if let Some(v) = text("DTLS")? {
            if !is_off(&v) {
                o.refused.push(format!("DTLS={v}"));
            }
        }
        for v in list("SDES") {
            if !is_off(&v) {
                o.refused.push(format!("SDES-{v}"));
            }
        }
        for (key, name) in [
            ("rtcp-mux", "rtcp-mux-"),
            ("OSRTP", "OSRTP-"),
            ("T.38", "T.38-"),
        ] {
            o.refused
                .extend(list(key).into_iter().map(|v| format!("{name}{v}")));
        }
        if let Some(Value::Dict(codec)) = get("codec") {
            for (k, v) in codec {
                let empty = match v {
                    Value::List(l) => l.is_empty(),
                    Value::Dict(d) => d.is_empty(),
                    Value::Bytes(b) => b.is_empty(),
                    Value::Int(_) => false,
                };
                if !empty {
                    o.refused
                        .push(format!("codec-{}", String::from_utf8_lossy(k)));
                }
            }
        }
        if let Some(v) = text("record-call")? {
            if !matches!(norm(&v).as_str(), "no" | "off" | "false" | "0") {
                o.refused.push(format!("record-call={v}"));
            }
        }
        if let Some(v) = text("media-address")? {
            o.refused.push(format!("media-address={v}"));
        }
        if get("ptime").is_some() {
            o.refused.push("ptime".into());
        }
        o.transport_protocol = text("transport-protocol")?;
        o.address_family = text("address-family")?;
        Ok(o)
    }

    /// Who vouches for the media addresses, for the call state.
    pub fn source(&self) -> ApiSource {
        ApiSource {
            peer: self.received_from,
            vouched: self.trust_address,
            latching: self.port_latching,
        }
    }

    /// Why this request cannot be carried out on `sdp` (its streams
    /// `media`) as the proxy expects, naming the options; `None` when it
    /// can.
    pub fn refusal(&self, sdp: &str, media: &[Media]) -> Option<String> {
        let mut refused = self.refused.clone();
        if let Some(want) = &self.transport_protocol {
            let mismatch = sdp
                .lines()
                .filter_map(|l| l.strip_prefix("m="))
                .any(|m| m.split_whitespace().nth(2) != Some(want.as_str()));
            if mismatch {
                refused.push(format!("transport-protocol={want}"));
            }
        }
        if let Some(want) = &self.address_family {
            let v4 = match want.to_ascii_uppercase().as_str() {
                "IP4" => Some(true),
                "IP6" => Some(false),
                _ => None,
            };
            let same = |a: &SocketAddr| Some(a.ip().to_canonical().is_ipv4()) == v4;
            if v4.is_none() || media.iter().filter_map(|m| m.rtp).any(|a| !same(&a)) {
                refused.push(format!("address-family={want}"));
            }
        }
        if !refused.is_empty() {
            return Some(format!(
                "pinhole filters and does not rewrite SDP or media; unsupported: {}",
                refused.join(", ")
            ));
        }
        if self.trust_address && self.sip_source_address {
            return Some("trust-address and SIP-source-address contradict each other".into());
        }
        if self.sip_source_address && self.received_from.is_none() {
            return Some("SIP-source-address needs received-from".into());
        }
        None
    }

    /// The streams as the proxy means them: with `SIP-source-address`,
    /// every address is `received-from` (ports as announced).
    pub fn apply(&self, media: Vec<Media>) -> Vec<Media> {
        let Some(peer) = self.received_from.filter(|_| self.sip_source_address) else {
            return media;
        };
        let moved = |a: Option<SocketAddr>| {
            a.map(|a| match a.ip().is_unspecified() {
                true => a,
                false => SocketAddr::new(peer, a.port()),
            })
        };
        media
            .into_iter()
            .map(|m| Media {
                rtp: moved(m.rtp),
                rtcp: moved(m.rtcp),
                ..m
            })
            .collect()
    }
}

/// `received-from`: `[family, address]`, as Kamailio and OpenSIPS send it
/// (`["IP4", "203.0.113.10"]`); a unicast address of that family.
fn received_from(v: &Value) -> Result<IpAddr, RequestError> {
    const KEY: &str = "received-from";
    let bad = |why| RequestError::Invalid { key: KEY, why };
    let Value::List(items) = v else {
        return Err(RequestError::Type {
            key: KEY,
            expected: "a list [family, address]",
        });
    };
    let [family, addr] = items.as_slice() else {
        return Err(bad("must be [family, address]"));
    };
    let (Some(family), Some(addr)) = (family.as_str(), addr.as_str()) else {
        return Err(bad("must be [family, address]"));
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
    let v4 = match family {
        "IP4" => true,
        "IP6" => false,
        _ => return Err(bad("family must be IP4 or IP6")),
    };
    if ip.is_ipv4() != v4 {
        return Err(bad("address is not of the family named"));
    }
    let ip = ip.to_canonical();
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(bad("not a unicast address"));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str], keys: &[(&str, Value)]) -> Result<MediaOptions, RequestError> {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        MediaOptions::parse(&flags, |k| {
            keys.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
        })
    }

    const SDP: &str = "v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn media() -> Vec<Media> {
        vec![Media {
            rtp: Some("192.0.2.10:4000".parse().unwrap()),
            rtcp: Some("192.0.2.10:4001".parse().unwrap()),
            rtcp_mux: false,
            hold: false,
            one_way: false,
        }]
    }

    /// Every option a Kamailio or OpenSIPS config commonly passes, as a
    /// flag or a key, and whether pinhole carries it out (`None`: ok) or
    /// refuses it (the name the error-reason carries).
    #[test]
    fn each_option_is_honoured_or_refused_by_name() {
        let l = |items: &[&str]| Value::List(items.iter().map(|i| Value::str(i)).collect());
        type Case = (
            Vec<&'static str>,
            Vec<(&'static str, Value)>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (vec![], vec![], None),
            // Honoured or not applicable: ok.
            (vec!["trust-address"], vec![], None),
            (vec!["trust address"], vec![], None),
            (vec!["symmetric"], vec![], None),
            (vec!["strict-source"], vec![], None),
            (vec!["loop-protect"], vec![], None),
            (vec!["no-rtcp-attribute"], vec![], None),
            (vec!["SDES-off"], vec![], None),
            (vec!["an-unknown-flag"], vec![], None),
            (
                vec![],
                vec![("replace", l(&["origin", "session-connection"]))],
                None,
            ),
            (
                vec![],
                vec![("direction", l(&["external", "internal"]))],
                None,
            ),
            (vec![], vec![("label", Value::str("caller"))], None),
            (vec![], vec![("ICE", Value::str("default"))], None),
            (vec![], vec![("DTLS", Value::str("off"))], None),
            (vec![], vec![("SDES", l(&["off"]))], None),
            (
                vec![],
                vec![("transport-protocol", Value::str("RTP/AVP"))],
                None,
            ),
            (vec![], vec![("address-family", Value::str("IP4"))], None),
            (vec![], vec![("record-call", Value::str("no"))], None),
            (
                vec![],
                vec![("codec", Value::dict([("strip", l(&[]))]))],
                None,
            ),
            // Refused, by name.
            (
                vec![],
                vec![("ICE", Value::str("remove"))],
                Some("ICE=remove"),
            ),
            (
                vec![],
                vec![("ICE", Value::str("force"))],
                Some("ICE=force"),
            ),
            (
                vec![],
                vec![("DTLS", Value::str("passive"))],
                Some("DTLS=passive"),
            ),
            (
                vec![],
                vec![("SDES", l(&["no-AES_CM_128_HMAC_SHA1_32"]))],
                Some("SDES-no-AES_CM_128_HMAC_SHA1_32"),
            ),
            (
                vec![],
                vec![("transport-protocol", Value::str("RTP/SAVP"))],
                Some("transport-protocol=RTP/SAVP"),
            ),
            (
                vec![],
                vec![("address-family", Value::str("IP6"))],
                Some("address-family=IP6"),
            ),
            (
                vec![],
                vec![("codec", Value::dict([("transcode", l(&["PCMA"]))]))],
                Some("codec-transcode"),
            ),
            (
                vec![],
                vec![("codec", Value::dict([("mask", l(&["opus"]))]))],
                Some("codec-mask"),
            ),
            (
                vec![],
                vec![("codec", Value::dict([("strip", l(&["all"]))]))],
                Some("codec-strip"),
            ),
            (vec!["codec-strip-PCMA"], vec![], Some("codec-strip-PCMA")),
            (
                vec![],
                vec![("record-call", Value::str("yes"))],
                Some("record-call=yes"),
            ),
            (vec!["record-call"], vec![], Some("record-call")),
            (vec!["record call"], vec![], Some("record call")),
            (
                vec![],
                vec![("rtcp-mux", l(&["demux"]))],
                Some("rtcp-mux-demux"),
            ),
            (vec!["rtcp-mux-demux"], vec![], Some("rtcp-mux-demux")),
            (
                vec![],
                vec![("media-address", Value::str("192.0.2.99"))],
                Some("media-address=192.0.2.99"),
            ),
            (vec!["asymmetric"], vec![], Some("asymmetric")),
            (vec!["media-handover"], vec![], Some("media-handover")),
            (vec!["always-transcode"], vec![], Some("always-transcode")),
            (vec!["generate-mid"], vec![], Some("generate-mid")),
            (vec![], vec![("OSRTP", l(&["offer"]))], Some("OSRTP-offer")),
            (vec![], vec![("ptime", Value::Int(20))], Some("ptime")),
        ];
        for (flags, keys, want) in cases {
            let o = parse(&flags, &keys).unwrap();
            let got = o.refusal(SDP, &media());
            match want {
                None => assert_eq!(got, None, "{flags:?} {keys:?}"),
                Some(name) => {
                    let why = got.unwrap_or_else(|| panic!("{flags:?} {keys:?} not refused"));
                    assert!(why.contains(name), "{why} does not name {name}");
                }
            }
        }
        // All refusals named together.
        let o = parse(&["asymmetric"], &[("ICE", Value::str("remove"))]).unwrap();
        assert_eq!(
            o.refusal(SDP, &media()).unwrap(),
            "pinhole filters and does not rewrite SDP or media; unsupported: asymmetric, ICE=remove"
        );
    }

    #[test]
    fn address_options() {
        let rf = |fam: &str, a: &str| {
            (
                "received-from",
                Value::List(vec![Value::str(fam), Value::str(a)]),
            )
        };
        let o = parse(
            &["SIP-source-address", "port-latching"],
            &[rf("IP4", "203.0.113.10")],
        )
        .unwrap();
        let peer: IpAddr = "203.0.113.10".parse().unwrap();
        assert_eq!(
            o.source(),
            ApiSource {
                peer: Some(peer),
                vouched: false,
                latching: true
            }
        );
        assert_eq!(o.refusal(SDP, &media()), None);
        let moved = o.apply(media());
        assert_eq!(moved[0].rtp, Some("203.0.113.10:4000".parse().unwrap()));
        assert_eq!(moved[0].rtcp, Some("203.0.113.10:4001".parse().unwrap()));
        // Without SIP-source-address the SDP's addresses stay.
        let o = parse(&[], &[rf("IP6", "2001:db8::10")]).unwrap();
        assert_eq!(o.apply(media()), media());
        assert_eq!(o.source().peer, Some("2001:db8::10".parse().unwrap()));
        // Contradictions and missing received-from: refused.
        let o = parse(&["SIP-source-address"], &[]).unwrap();
        assert_eq!(
            o.refusal(SDP, &media()).unwrap(),
            "SIP-source-address needs received-from"
        );
        let o = parse(
            &["SIP-source-address", "trust-address"],
            &[rf("IP4", "203.0.113.10")],
        )
        .unwrap();
        assert!(o.refusal(SDP, &media()).unwrap().contains("contradict"));

        // Hostile received-from values.
        let pair = |f: &str, a: &str| Value::List(vec![Value::str(f), Value::str(a)]);
        let bad: Vec<(Value, &str)> = vec![
            (Value::str("203.0.113.10"), "a list [family, address]"),
            (
                Value::List(vec![Value::str("IP4")]),
                "must be [family, address]",
            ),
            (
                Value::List(vec![Value::str("IP4"), Value::Int(1)]),
                "must be [family, address]",
            ),
            (pair("IP4", "x"), "not an IP address"),
            (pair("IP5", "203.0.113.1"), "family must be"),
            (pair("IP6", "203.0.113.1"), "not of the family"),
            (pair("IP4", "0.0.0.0"), "not a unicast"),
            (pair("IP4", "224.0.0.1"), "not a unicast"),
            (pair("IP4", "255.255.255.255"), "not a unicast"),
            (pair("IP6", "::"), "not a unicast"),
        ];
        for (v, why) in bad {
            let e = parse(&[], &[("received-from", v.clone())]).unwrap_err();
            assert!(e.to_string().contains(why), "{v:?}: {e}");
        }
        let e = parse(&[], &[("ICE", Value::Int(1))]).unwrap_err();
        assert_eq!(e.to_string(), "key `ICE` must be a UTF-8 string");
    }
}
