//! Which UDP the media port ranges catch: `--media-prefix` (the protected
//! destination networks, frozen into the program's [`Config`]) and the
//! start-up warning when the media ranges overlap the host's ephemeral ports.
//!
//! On a router, replies to inside clients (DNS, QUIC, NTP) whose ephemeral
//! or NAT-remapped port falls in a media range are dropped as misses. With
//! `--media-prefix`, only UDP to a media port *and* to one of those networks
//! is filtered; the rest passes, counted as `not_media_prefix`.
//!
//! The list is a small frozen array in `.rodata` rather than an LPM trie:
//! the verifier sees its length, so with no prefix the check is removed
//! entirely, and with a few it costs a handful of compares and no map
//! lookup (docs/deployments.md, "Media port ranges scoped by address", has the measured cost).

use ipnet::IpNet;
use pinhole_common::{Config, PortRange, PrefixV4, PrefixV6, MAX_MEDIA_PREFIXES};

use crate::datapath::error::SetupError;

/// Writes `nets` into `config` as the protected destination prefixes. An
/// empty list leaves every destination protected (the default). At most
/// [`MAX_MEDIA_PREFIXES`] per family; host bits are cleared.
pub fn apply_media_prefixes(config: &mut Config, nets: &[IpNet]) -> Result<(), SetupError> {
    let v4: Vec<PrefixV4> = nets
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(n) => Some(PrefixV4 {
                net: n.network().octets(),
                mask: n.netmask().octets(),
            }),
            IpNet::V6(_) => None,
        })
        .collect();
    let v6: Vec<PrefixV6> = nets
        .iter()
        .filter_map(|n| match n {
            IpNet::V6(n) => Some(PrefixV6 {
                net: n.network().octets(),
                mask: n.netmask().octets(),
            }),
            IpNet::V4(_) => None,
        })
        .collect();
    for (family, given) in [(4, v4.len()), (6, v6.len())] {
        if given > MAX_MEDIA_PREFIXES {
            return Err(SetupError::TooManyPrefixes {
                family,
                given,
                max: MAX_MEDIA_PREFIXES,
            });
        }
    }
    config.media_prefixes = u32::from(!nets.is_empty());
    config.n_prefixes4 = v4.len() as u32;
    config.n_prefixes6 = v6.len() as u32;
    config.prefixes4[..v4.len()].copy_from_slice(&v4);
    config.prefixes6[..v6.len()].copy_from_slice(&v6);
    Ok(())
}

/// Where Linux keeps the ephemeral port range of the current namespace
/// (IPv6 shares it).
pub const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Parses `ip_local_port_range` ("32768\t60999\n").
pub fn parse_local_port_range(text: &str) -> Option<PortRange> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(lo)), Some(Ok(hi)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    (lo <= hi).then_some(PortRange { lo, hi })
}

/// The start-up warning when media ranges overlap the ephemeral range
/// `local`, `None` when they do not. `prefixes` says whether
/// `--media-prefix` is set (then only destinations inside it are affected).
pub fn overlap_warning(media: &[PortRange], local: PortRange, prefixes: bool) -> Option<String> {
    let overlaps: Vec<String> = media
        .iter()
        .filter(|r| r.lo <= local.hi && local.lo <= r.hi)
        .map(|r| format!("{}-{}", r.lo.max(local.lo), r.hi.min(local.hi)))
        .collect();
    if overlaps.is_empty() {
        return None;
    }
    let scope = if prefixes {
        "--media-prefix is set, so this affects only those destinations: keep the \
         router's own addresses and the inside clients' networks out of it"
    } else {
        "to protect only the media addresses, set --media-prefix to their networks"
    };
    Some(format!(
        "media ports {} overlap the ephemeral port range {}-{} (net.ipv4.ip_local_port_range): \
         UDP replies to those ports (DNS, NTP, QUIC answers to this host, or to clients whose \
         OS or NAT picks ports there) are dropped as misses; {scope}, or move the ephemeral \
         range or the media ranges apart (sysctl net.ipv4.ip_local_port_range, --media-ports)",
        overlaps.join(","),
        local.lo,
        local.hi,
    ))
}

/// Logs [`overlap_warning`] for this host, if any. A missing or unreadable
/// file is not an error (no warning can be given).
pub fn warn_local_port_overlap(media: &[PortRange], prefixes: bool) {
    let Ok(text) = std::fs::read_to_string(LOCAL_PORT_RANGE) else {
        return;
    };
    if let Some(local) = parse_local_port_range(&text) {
        if let Some(msg) = overlap_warning(media, local, prefixes) {
            tracing::warn!("{msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    #[test]
    fn local_port_range_parsing_table() {
        let table = [
            ("32768\t60999\n", Some(r(32768, 60999))),
            ("1024 65535", Some(r(1024, 65535))),
            ("10000 10000", Some(r(10000, 10000))),
            ("60999 32768", None),
            ("32768", None),
            ("32768 60999 1", None),
            ("32768 70000", None),
            ("-1 5", None),
            ("", None),
            ("a b", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_local_port_range(text), want, "{text:?}");
        }
    }

    #[test]
    fn overlap_warning_names_the_overlap_and_the_remedy() {
        let linux = r(32768, 60999);
        // The default media range is below Linux's default ephemeral range.
        assert_eq!(overlap_warning(&[r(10000, 20000)], linux, false), None);
        assert_eq!(overlap_warning(&[r(61000, 65535)], linux, false), None);
        // A BSD's 10000-65535 range, or media up high.
        let bsd = r(10000, 65535);
        let w = overlap_warning(&[r(10000, 20000)], bsd, false).expect("overlap");
        assert!(w.contains("media ports 10000-20000"), "{w}");
        assert!(w.contains("10000-65535"), "{w}");
        assert!(w.contains("set --media-prefix"), "{w}");
        let w = overlap_warning(
            &[r(6970, 7170), r(30000, 40000), r(60000, 62000)],
            linux,
            true,
        )
        .expect("overlap");
        assert!(w.contains("media ports 32768-40000,60000-60999 "), "{w}");
        assert!(w.contains("--media-prefix is set"), "{w}");
        // Touching at one port is an overlap.
        assert!(overlap_warning(&[r(20000, 32768)], linux, false).is_some());
        assert_eq!(overlap_warning(&[], linux, false), None);
    }

    #[test]
    fn prefixes_go_into_the_config_by_family() {
        let nets: Vec<IpNet> = ["198.51.100.77/24", "2001:db8:1::5/48", "192.0.2.128/25"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut c = Config::EMPTY;
        apply_media_prefixes(&mut c, &nets).unwrap();
        assert_eq!((c.media_prefixes, c.n_prefixes4, c.n_prefixes6), (1, 2, 1));
        // Host bits are cleared, so the program's `dst & mask == net` holds.
        assert_eq!(c.prefixes4[0].net, [198, 51, 100, 0]);
        assert_eq!(c.prefixes4[0].mask, [255, 255, 255, 0]);
        assert!(c.protects_v4([198, 51, 100, 1]));
        assert!(c.protects_v4([192, 0, 2, 200]));
        assert!(!c.protects_v4([192, 0, 2, 1]));
        assert!(!c.protects_v4([203, 0, 113, 1]));
        assert!(c.protects_v6(
            "2001:db8:1::9"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        ));
        assert!(!c.protects_v6(
            "2001:db8:2::9"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        ));

        let mut c = Config::EMPTY;
        apply_media_prefixes(&mut c, &[]).unwrap();
        assert_eq!(c, Config::EMPTY);

        let nine: Vec<IpNet> = (0..9)
            .map(|i| format!("198.51.100.{}/32", i).parse().unwrap())
            .collect();
        let mut c = Config::EMPTY;
        let e = apply_media_prefixes(&mut c, &nine).unwrap_err();
        assert_eq!(
            e.to_string(),
            "too many IPv4 --media-prefix networks (9); at most 8"
        );
        // Eight of each family fit.
        let mut sixteen = nine[..8].to_vec();
        sixteen.extend((0..8).map(|i| format!("2001:db8::{i}/128").parse::<IpNet>().unwrap()));
        let mut c = Config::EMPTY;
        apply_media_prefixes(&mut c, &sixteen).unwrap();
        assert_eq!((c.n_prefixes4, c.n_prefixes6), (8, 8));
    }
}
