//! The SIP header fields the firewall parses: CSeq, From/To/Contact
//! (name-addr), Via.

use std::net::IpAddr;

use super::{grammar, header_name_matches, invalid, Method, SipError, MAX_CSEQ};
use crate::signaling::{
    message::{
        self, find_param, is_scheme, is_token, is_wsp, parse_decimal, parse_params, parse_quoted,
        split_outside, truncate,
    },
    Header, Param, MAX_LIST_ITEMS,
};

/// `CSeq: <seq> <method>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (at most [`MAX_CSEQ`]).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

/// A `name-addr` or `addr-spec` with header parameters (`From`, `To`, `Contact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name (unquoted), if any.
    pub display_name: Option<String>,
    /// The URI, without `<>`.
    pub uri: String,
    /// Header parameters after the URI (`tag`, `expires`, `q`, …).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// Value of a parameter (case-insensitive name); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// One `Via` entry: `SIP/2.0/UDP host[:port];params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name (`SIP`).
    pub protocol: String,
    /// Protocol version (`2.0`).
    pub version: String,
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …) as written.
    pub transport: String,
    /// `sent-by` host (IPv6 references keep their brackets).
    pub host: String,
    /// `sent-by` port.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`, …).
    pub params: Vec<Param>,
}

impl Via {
    /// Value of a parameter (case-insensitive name); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The `received` parameter as an address.
    pub fn received(&self) -> Option<IpAddr> {
        self.param("received").flatten().and_then(parse_host_ip)
    }

    /// The `rport` parameter value, if it has one.
    pub fn rport(&self) -> Option<u16> {
        self.param("rport").flatten().and_then(|p| p.parse().ok())
    }

    /// The `sent-by` host as an address, when it is an IP literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        parse_host_ip(&self.host)
    }
}

pub(super) fn parse_host_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

pub(super) fn parse_cseq(value: &str) -> Result<CSeq, SipError> {
    let mut it = value
        .split(|c: char| c.is_whitespace())
        .filter(|s| !s.is_empty());
    let (Some(num), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(invalid("CSeq", "expected `number method`"));
    };
    let seq = parse_decimal(num, 10)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= MAX_CSEQ)
        .ok_or_else(|| {
            invalid(
                "CSeq",
                format!("sequence number {:?} is not below 2**31", truncate(num)),
            )
        })?;
    if !is_token(method) {
        return Err(invalid(
            "CSeq",
            format!("invalid method {:?}", truncate(method)),
        ));
    }
    Ok(CSeq {
        seq,
        method: Method::from_token(method),
    })
}

/// Non-empty comma-separated elements of a list header.
pub(super) fn list_items<'a>(value: &'a str, name: &'static str) -> Result<Vec<&'a str>, SipError> {
    let items = split_outside(value, ',', MAX_LIST_ITEMS)
        .ok_or_else(|| invalid(name, format!("more than {MAX_LIST_ITEMS} elements")))?;
    items
        .into_iter()
        .map(|i| {
            let i = i.trim_matches(is_wsp);
            if i.is_empty() {
                Err(invalid(name, "empty list element"))
            } else {
                Ok(i)
            }
        })
        .collect()
}

pub(super) fn parse_contacts(headers: &[Header]) -> Result<(Vec<NameAddr>, bool), SipError> {
    let mut contacts = Vec::new();
    let mut wildcard = false;
    for h in headers
        .iter()
        .filter(|h| header_name_matches(&h.name, "contact"))
    {
        if h.value == "*" {
            wildcard = true;
            continue;
        }
        for item in list_items(&h.value, "Contact")? {
            if contacts.len() >= MAX_LIST_ITEMS {
                return Err(invalid(
                    "Contact",
                    format!("more than {MAX_LIST_ITEMS} entries"),
                ));
            }
            contacts.push(parse_name_addr(item, "Contact")?);
        }
    }
    if wildcard && !contacts.is_empty() {
        return Err(invalid("Contact", "'*' mixed with addresses"));
    }
    Ok((contacts, wildcard))
}

/// Parses `[display-name] <URI> *(;param)` or `addr-spec *(;param)`.
pub fn parse_name_addr(value: &str, name: &'static str) -> Result<NameAddr, SipError> {
    let s = value.trim_matches(is_wsp);
    if s.is_empty() {
        return Err(invalid(name, "empty value"));
    }
    let (display_name, uri, after) = if s.starts_with('"') {
        let (display, rest) = parse_quoted(s).map_err(grammar(name))?;
        let rest = rest.trim_start_matches(is_wsp);
        if !rest.starts_with('<') {
            return Err(invalid(
                name,
                "quoted display name must be followed by <URI>",
            ));
        }
        let (uri, after) = angle_uri(rest, name)?;
        (Some(display), uri, after)
    } else if let Some(lt) = s.find('<') {
        let display = s[..lt].trim_matches(is_wsp);
        if !display.split(is_wsp).all(|w| w.is_empty() || is_token(w)) {
            return Err(invalid(
                name,
                format!(
                    "display name {:?} must be tokens or a quoted string",
                    truncate(display)
                ),
            ));
        }
        let (uri, after) = angle_uri(&s[lt..], name)?;
        let display = (!display.is_empty()).then(|| display.to_string());
        (display, uri, after)
    } else {
        let (uri, after) = match s.find(';') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let uri = uri.trim_end_matches(is_wsp);
        if uri.contains(['?', ',']) {
            return Err(invalid(
                name,
                "a URI containing ',', ';' or '?' must be enclosed in <>",
            ));
        }
        (None, uri, after)
    };
    if uri.contains(char::is_whitespace) {
        return Err(invalid(name, "whitespace inside the URI"));
    }
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or_else(|| invalid(name, format!("URI {:?} has no scheme", truncate(uri))))?;
    if !is_scheme(scheme) || rest.is_empty() {
        return Err(invalid(name, format!("invalid URI {:?}", truncate(uri))));
    }
    Ok(NameAddr {
        display_name,
        uri: uri.to_string(),
        params: parse_params(after).map_err(grammar(name))?,
    })
}

/// `s` starts with `<`: returns the URI inside and the text after `>`.
pub(super) fn angle_uri<'a>(
    s: &'a str,
    name: &'static str,
) -> Result<(&'a str, &'a str), SipError> {
    let gt = s
        .find('>')
        .ok_or_else(|| invalid(name, "'<' without matching '>'"))?;
    let uri = &s[1..gt];
    if uri.is_empty() {
        return Err(invalid(name, "empty <>"));
    }
    if uri.starts_with(char::is_whitespace) || uri.ends_with(char::is_whitespace) {
        return Err(invalid(name, "whitespace inside <>"));
    }
    Ok((uri, &s[gt + 1..]))
}

/// Parses one Via entry (`sent-protocol LWS sent-by *(;via-params)`), allowing
/// whitespace around `/` as RFC 3261 does.
pub fn parse_via(item: &str) -> Result<Via, SipError> {
    let (proto, params) = match item.find(';') {
        Some(i) => (&item[..i], &item[i..]),
        None => (item, ""),
    };
    let mut fields = [""; 3];
    let mut rest = proto.trim_start_matches(is_wsp);
    for (i, field) in fields.iter_mut().enumerate() {
        let end = rest
            .find(|c: char| !(c.is_ascii() && message::is_token_char(c as u8)))
            .unwrap_or(rest.len());
        let tok = &rest[..end];
        if tok.is_empty() {
            return Err(invalid(
                "Via",
                format!("malformed sent-protocol in {:?}", truncate(item)),
            ));
        }
        *field = tok;
        rest = &rest[end..];
        if i < 2 {
            rest = rest
                .trim_start_matches(is_wsp)
                .strip_prefix('/')
                .ok_or_else(|| invalid("Via", format!("expected '/' in {:?}", truncate(item))))?
                .trim_start_matches(is_wsp);
        }
    }
    if !rest.starts_with(is_wsp) {
        return Err(invalid("Via", "expected whitespace before sent-by"));
    }
    let sent_by = rest.trim_matches(is_wsp);
    let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| invalid("Via", "unterminated IPv6 reference"))?;
        (&sent_by[..close + 2], &v6[close + 1..])
    } else {
        match sent_by.find(':') {
            Some(i) => (sent_by[..i].trim_end_matches(is_wsp), &sent_by[i..]),
            None => (sent_by, ""),
        }
    };
    let port = port.trim_matches(is_wsp);
    let port = if port.is_empty() {
        None
    } else {
        let p = port
            .strip_prefix(':')
            .map(|p| p.trim_matches(is_wsp))
            .ok_or_else(|| invalid("Via", "unexpected text after host"))?;
        Some(
            parse_decimal(p, 5)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| invalid("Via", format!("invalid port {:?}", truncate(p))))?,
        )
    };
    let host_ok = if host.starts_with('[') {
        host.len() > 2 && parse_host_ip(host).is_some()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !host_ok {
        return Err(invalid(
            "Via",
            format!("invalid sent-by host {:?}", truncate(host)),
        ));
    }
    let [protocol, version, transport] = fields;
    Ok(Via {
        protocol: protocol.to_string(),
        version: version.to_string(),
        transport: transport.to_string(),
        host: host.to_string(),
        port,
        params: parse_params(params).map_err(grammar("Via"))?,
    })
}
