//! Configuration of the call-state layer and the trust checks it applies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Latch, Side};

/// Limits, timers and trust policy for SIP calls and RTSP sessions.
///
/// A duration of zero disables the limit it names, except `bye_grace`, where
/// zero closes at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallConfig {
    /// Only signaling whose source or destination lies in one of these
    /// networks opens pinholes. Default: any (`0.0.0.0/0`, `::/0`).
    pub trusted_signaling: Vec<IpNet>,
    /// Media endpoints in these networks may differ from the address of the
    /// signaling peer that announced them (media relays, SBCs). Default: none,
    /// so media must come from the signaling peers themselves, like netfilter's
    /// `sip_direct_media=1`.
    pub media_relay: Vec<IpNet>,
    /// Symmetric pairs (RTP and RTCP each count) one call or session may hold.
    pub max_pairs_per_call: usize,
    /// Active calls (and, separately, RTSP sessions) per signaling source IP.
    pub max_calls_per_peer: usize,
    /// Calls tracked at once (and, separately, RTSP sessions and pending
    /// SETUPs).
    pub max_calls: usize,
    /// Early dialogs (forks) one call may hold.
    pub max_dialogs_per_call: usize,
    /// How long a call's pinholes stay after its BYE, for trailing RTCP.
    pub bye_grace: Duration,
    /// A call closes this long after its INVITE, BYE or not.
    pub max_lifetime: Duration,
    /// Idle timeout handed to the pinhole table with every open (zero: never).
    pub idle_timeout: Duration,
    /// Idle timeout of the pairs of a stream on hold (`sendonly`,
    /// `recvonly`, `inactive` or `c=0.0.0.0` on either side): legitimately
    /// silent, so longer than `idle_timeout` (zero: never).
    pub hold_timeout: Duration,
    /// How long an unanswered call setup or offer, or an RTSP SETUP without
    /// response, is remembered (cf. SIP Timer C). Refreshed by provisional
    /// responses.
    pub setup_timeout: Duration,
    /// RTSP session timeout when the server names none (RFC 2326 §12.37).
    pub rtsp_session_timeout: Duration,
    /// How long a closed call is remembered so that a late duplicate of its
    /// INVITE does not revive it (64·T1 as in RFC 3261).
    pub closed_linger: Duration,
    /// Bounded latching for media behind NAT (zero, the default: off,
    /// strict). When on, a stream whose one end announced an address other
    /// than its signaling peer's (and outside `media_relay`) is not refused
    /// as third-party media: it becomes an [`Intent::Latch`], a half-open
    /// pinhole the first packet from that peer's address completes within
    /// this window. The other end must pass the check; both failing is
    /// still refused.
    ///
    /// [`Intent::Latch`]: super::Intent::Latch
    pub latching: Duration,
    /// Pre-answer latching: while an offer waits for its answer, the
    /// answerer's first media packets open the stream's pair instead of
    /// racing the answer. For each offered stream whose offered endpoint
    /// passes the media-origin check, a provisional pair
    /// ([`Latch::pre_answer`]) latches on the first packet from the
    /// answerer's signaling address (the address the offer was sent to),
    /// any port, to the offered endpoint, within `setup_timeout`. The
    /// answer supersedes it: its own pairs open, then every provisional
    /// pair closes (one the answer names again keeps its flows). Only
    /// observed SIP: the ng API and RTSP have no such race.
    ///
    /// Off in this `Default` (so tests of other behaviour see only what they
    /// test); the daemon's default (`--pre-answer`) is on.
    pub pre_answer: bool,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            trusted_signaling: vec![
                IpNet::V4(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("prefix 0 is valid")),
                IpNet::V6(Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 0).expect("prefix 0 is valid")),
            ],
            media_relay: Vec::new(),
            max_pairs_per_call: 16,
            max_calls_per_peer: 256,
            max_calls: 100_000,
            max_dialogs_per_call: 32,
            bye_grace: Duration::from_secs(2),
            max_lifetime: Duration::from_secs(4 * 3600),
            idle_timeout: Duration::from_secs(300),
            hold_timeout: Duration::from_secs(3600),
            setup_timeout: Duration::from_secs(180),
            rtsp_session_timeout: Duration::from_secs(60),
            closed_linger: Duration::from_secs(32),
            latching: Duration::ZERO,
            pre_answer: false,
        }
    }
}

impl CallConfig {
    /// Whether a message from `src` to `dst` may open pinholes.
    pub fn is_trusted(&self, src: IpAddr, dst: IpAddr) -> bool {
        let (src, dst) = (src.to_canonical(), dst.to_canonical());
        self.trusted_signaling
            .iter()
            .any(|net| net.contains(&src) || net.contains(&dst))
    }

    /// Whether a media address announced by the signaling peer `origin` is
    /// acceptable: the peer's own address, or inside a media-relay network.
    pub fn media_allowed(&self, media: IpAddr, origin: IpAddr) -> bool {
        let (media, origin) = (media.to_canonical(), origin.to_canonical());
        media == origin || self.media_relay.iter().any(|net| net.contains(&media))
    }

    /// The latch for a pair whose `side` end failed [`media_allowed`]
    /// (announced by `origin`) while its other end, `local`, passed: `None`
    /// when latching is off or `origin` cannot source media towards `local`
    /// (another family, not unicast).
    ///
    /// [`media_allowed`]: Self::media_allowed
    pub fn latch(&self, side: Side, origin: IpAddr, local: SocketAddr) -> Option<Latch> {
        let from = origin.to_canonical();
        let usable = usable_endpoint(SocketAddr::new(from, 1));
        let same_family = from.is_ipv4() == local.ip().to_canonical().is_ipv4();
        (!self.latching.is_zero() && usable && same_family).then_some(Latch {
            side,
            from,
            pre_answer: false,
        })
    }
}

/// `addr` with an IPv4-mapped IPv6 address turned into plain IPv4, so that
/// both spellings name the same flow.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether `addr` can be one end of a pinhole: non-zero port and a unicast
/// address (the pinhole table refuses anything else).
pub(crate) fn usable_endpoint(addr: SocketAddr) -> bool {
    let unicast = match addr.ip().to_canonical() {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    };
    let zoned = matches!(addr, SocketAddr::V6(v6) if v6.scope_id() != 0);
    addr.port() != 0 && unicast && !zoned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trust_and_relay_checks() {
        let any = CallConfig::default();
        let narrow = CallConfig {
            trusted_signaling: vec!["192.0.2.0/24".parse().unwrap()],
            media_relay: vec![
                "203.0.113.0/28".parse().unwrap(),
                "2001:db8:f::/48".parse().unwrap(),
            ],
            ..CallConfig::default()
        };
        // (config, src, dst, trusted)
        let trust = [
            (&any, "198.51.100.1", "203.0.113.1", true),
            (&any, "2001:db8::1", "2001:db8::2", true),
            (&narrow, "192.0.2.7", "198.51.100.1", true),
            (&narrow, "198.51.100.1", "192.0.2.7", true),
            (&narrow, "198.51.100.1", "203.0.113.1", false),
            (&narrow, "::ffff:192.0.2.7", "2001:db8::2", true),
            (&narrow, "2001:db8::1", "2001:db8::2", false),
        ];
        for (cfg, src, dst, want) in trust {
            assert_eq!(cfg.is_trusted(ip(src), ip(dst)), want, "{src} -> {dst}");
        }
        // (config, media, origin, allowed)
        let media = [
            (&any, "192.0.2.1", "192.0.2.1", true),
            (&any, "192.0.2.2", "192.0.2.1", false),
            (&any, "::ffff:192.0.2.1", "192.0.2.1", true),
            (&narrow, "203.0.113.5", "192.0.2.1", true),
            (&narrow, "203.0.113.16", "192.0.2.1", false),
            (&narrow, "2001:db8:f::9", "2001:db8::1", true),
            (&narrow, "2001:db8:e::9", "2001:db8::1", false),
        ];
        for (cfg, m, origin, want) in media {
            assert_eq!(
                cfg.media_allowed(ip(m), ip(origin)),
                want,
                "{m} from {origin}"
            );
        }
    }

    #[test]
    fn usable_endpoints() {
        let cases = [
            ("192.0.2.1:4000", true),
            ("192.0.2.1:0", false),
            ("0.0.0.0:4000", false),
            ("224.0.0.1:4000", false),
            ("255.255.255.255:4000", false),
            ("[2001:db8::1]:4000", true),
            ("[::]:4000", false),
            ("[ff02::1]:4000", false),
            ("[::ffff:192.0.2.1]:4000", true),
        ];
        for (addr, want) in cases {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(usable_endpoint(addr), want, "{addr}");
        }
        assert_eq!(
            canonical("[::ffff:192.0.2.1]:4000".parse().unwrap()),
            "192.0.2.1:4000".parse::<SocketAddr>().unwrap()
        );
    }
}
