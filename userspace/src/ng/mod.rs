//! rtpengine's "ng" control protocol (`--ng-listen`), so that SIP proxies
//! (Kamailio's and OpenSIPS's `rtpengine` modules) drive pinhole with
//! nothing changed but an address.
//!
//! - [`bencode`]: the codec;
//! - [`wire`]: datagram framing (`COOKIE SP bencode-dictionary`), typed
//!   requests ([`NgRequest`]) and replies;
//! - [`cache`]: replies by cookie, so a retransmitted request runs once;
//! - [`options`]: rtpengine's offer/answer options (`received-from`, the
//!   address flags, and the SDP-changing options pinhole refuses);
//! - [`service`]: request → reply ([`NgService::handle`]) behind
//!   [`NgBackend`], with [`CallsBackend`] implementing it over the call
//!   state and a [`Pinholes`] trait for the table and the flow map;
//! - [`serve_udp`]: the listener loop.
//!
//! pinhole filters, it does not relay: `offer` and `answer` return the SDP
//! unchanged and open pinholes between the endpoints it names, under the
//! rules of observed signaling (see [`crate::calls`]), with the signaling
//! peer taken from `received-from`. Options that would need the SDP or the
//! media changed are refused ([`options`]).
//!
//! Wiring, in the daemon: bind a `tokio::net::UdpSocket` on the listen
//! address and run [`serve_udp`] with a closure that sends `(peer,
//! datagram)` to the controller task and awaits its reply; the controller
//! keeps one [`NgService`] and answers with
//! `service.handle(&mut CallsBackend { calls, pinholes, now }, peer,
//! &datagram, now)`.

pub mod bencode;
pub mod cache;
pub mod options;
pub mod service;
pub mod wire;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

pub use service::{
    call_stats, ApplyFailure, BackendError, CallStats, CallsBackend, NgBackend, NgConfig,
    NgCounters, NgService, Pinholes, StreamStats, Totals, OUT_OF_PORTS, RECV_BUFFER, SESSION_LIMIT,
};
pub use wire::{CallRef, Delete, NgCommand, NgRequest, OfferAnswer};

/// Receives datagrams on `socket`, hands each to `handle` with its sender,
/// and sends back the reply `handle` returns, if any. One request at a time,
/// in arrival order. Returns only when receiving fails for good; transient
/// errors (ICMP errors reported on the socket, interrupts) are skipped.
pub async fn serve_udp<F, Fut>(socket: UdpSocket, mut handle: F) -> std::io::Result<()>
where
    F: FnMut(SocketAddr, Vec<u8>) -> Fut,
    Fut: Future<Output = Option<Vec<u8>>>,
{
    use std::io::ErrorKind::*;
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ConnectionRefused | ConnectionReset | Interrupted) => {
                continue
            }
            Err(e) => return Err(e),
        };
        if let Some(reply) = handle(peer, buf[..n].to_vec()).await {
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, error = %e, "ng: reply not sent");
            }
        }
    }
}
