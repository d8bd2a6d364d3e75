//! A SETUP request paired with its response: the media endpoints to open.

use std::net::IpAddr;

use super::{
    Delivery, LowerTransport, Method, RtspError, RtspMessage, Session, TransportAddr, TransportSpec,
};

/// The media endpoints negotiated by one SETUP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupInfo {
    /// The transport spec the server chose (from the response).
    pub transport: TransportSpec,
    /// Client RTP port.
    pub client_rtp: Option<u16>,
    /// Client RTCP port.
    pub client_rtcp: Option<u16>,
    /// Server RTP port.
    pub server_rtp: Option<u16>,
    /// Server RTCP port.
    pub server_rtcp: Option<u16>,
    /// Server-side media source address (`source=` or `src_addr`), when given.
    pub source: Option<IpAddr>,
    /// Client-side media destination address (`destination=` or `dest_addr`), when given.
    pub destination: Option<IpAddr>,
    /// Media is carried over TCP (interleaved on the RTSP connection or
    /// `RTP/AVP/TCP`): no UDP pinhole is needed.
    pub interleaved: bool,
    /// Multicast delivery.
    pub multicast: bool,
    /// The `Session` of the response.
    pub session: Option<Session>,
}

impl SetupInfo {
    /// True when UDP media flows must be let through for this setup.
    pub fn needs_pinhole(&self) -> bool {
        !self.interleaved && (self.client_rtp.is_some() || self.server_rtp.is_some())
    }
}

/// Pairs a SETUP request with its response (same `CSeq`, 2xx status) and
/// derives the media ports. The response's transport spec is authoritative;
/// ports it omits are taken from the request's matching spec.
pub fn setup_info(request: &RtspMessage, response: &RtspMessage) -> Result<SetupInfo, RtspError> {
    if request.method() != Some(&Method::Setup) {
        return Err(RtspError::NotSetupExchange("request is not SETUP".into()));
    }
    let code = response
        .status_code()
        .ok_or_else(|| RtspError::NotSetupExchange("second message is not a response".into()))?;
    if !(200..300).contains(&code) {
        return Err(RtspError::NotSetupExchange(format!(
            "response status {code}"
        )));
    }
    if request.cseq != response.cseq {
        return Err(RtspError::NotSetupExchange(format!(
            "CSeq {} does not match request CSeq {}",
            response.cseq, request.cseq
        )));
    }
    let chosen = response
        .transport
        .first()
        .ok_or(RtspError::MissingHeader("Transport"))?;
    let offered = request
        .transport
        .iter()
        .find(|t| t.lower == chosen.lower && t.profile.eq_ignore_ascii_case(&chosen.profile))
        .or(request.transport.first());
    let client_from = |t: &TransportSpec| {
        t.client_port
            .map(|r| (Some(r.rtp()), r.rtcp()))
            .or_else(|| {
                t.dest_addr.first().and_then(|a| a.port).map(|rtp| {
                    let rtcp = t
                        .dest_addr
                        .get(1)
                        .and_then(|a| a.port)
                        .or(rtp.checked_add(1));
                    (Some(rtp), rtcp)
                })
            })
    };
    let (client_rtp, client_rtcp) = client_from(chosen)
        .or_else(|| offered.and_then(client_from))
        .unwrap_or((None, None));
    let (server_rtp, server_rtcp) = chosen
        .server_port
        .map(|r| (Some(r.rtp()), r.rtcp()))
        .or_else(|| {
            chosen.src_addr.first().and_then(|a| a.port).map(|rtp| {
                let rtcp = chosen
                    .src_addr
                    .get(1)
                    .and_then(|a| a.port)
                    .or(rtp.checked_add(1));
                (Some(rtp), rtcp)
            })
        })
        .unwrap_or((None, None));
    let ip = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<IpAddr>().ok());
    let source = ip(&chosen.source).or_else(|| chosen.src_addr.first().and_then(TransportAddr::ip));
    let destination =
        ip(&chosen.destination).or_else(|| chosen.dest_addr.first().and_then(TransportAddr::ip));
    Ok(SetupInfo {
        transport: chosen.clone(),
        client_rtp,
        client_rtcp,
        server_rtp,
        server_rtcp,
        source,
        destination,
        interleaved: chosen.lower == LowerTransport::Tcp || chosen.interleaved.is_some(),
        multicast: chosen.delivery == Some(Delivery::Multicast),
        session: response.session.clone(),
    })
}
