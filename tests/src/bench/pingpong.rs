//! UDP ping-pong through the router: round-trip times of RTP-sized packets
//! between a socket on the outside host and an echo on the inside host.

use std::{
    io::ErrorKind,
    net::UdpSocket,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::stats::Samples;

/// Result of a ping-pong run.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PingReport {
    pub sent: u64,
    pub lost: u64,
    /// Round-trip times in microseconds.
    pub rtt_us: Samples,
}

/// Echoes every datagram on `sock` back to its sender until `stop`.
pub fn echo(sock: &UdpSocket, stop: &AtomicBool) -> Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = sock.send_to(&buf[..n], from);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("echo"),
        }
    }
    Ok(())
}

/// How to ping.
#[derive(Clone, Copy, Debug)]
pub struct PingOpts<'a> {
    /// UDP payload bytes (158 makes a 200-byte Ethernet frame over IPv4).
    pub payload: usize,
    /// Pings at most.
    pub count: u64,
    /// How long each ping waits for its echo.
    pub timeout: Duration,
    /// Pause between pings.
    pub interval: Duration,
    /// Stop at this time.
    pub until: Option<Instant>,
    /// Stop once this is set.
    pub stop: Option<&'a AtomicBool>,
}

impl Default for PingOpts<'_> {
    fn default() -> Self {
        PingOpts {
            payload: 158,
            count: 1,
            timeout: Duration::from_millis(100),
            interval: Duration::ZERO,
            until: None,
            stop: None,
        }
    }
}

/// Pings the peer `sock` is connected to, one ping at a time.
pub fn ping(sock: &UdpSocket, opts: &PingOpts<'_>) -> Result<PingReport> {
    let PingOpts {
        payload,
        count,
        timeout,
        interval,
        until,
        stop,
    } = *opts;
    sock.set_read_timeout(Some(timeout))?;
    let mut out = vec![0u8; payload.max(8)];
    let mut buf = [0u8; 2048];
    let mut report = PingReport::default();
    let mut rtts = Vec::with_capacity(count.min(1 << 20) as usize);
    for seq in 0..count {
        if until.is_some_and(|u| Instant::now() >= u)
            || stop.is_some_and(|s| s.load(Ordering::Relaxed))
        {
            break;
        }
        out[..8].copy_from_slice(&seq.to_be_bytes());
        let t0 = Instant::now();
        sock.send(&out).context("ping")?;
        report.sent += 1;
        let got = loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 && buf[..8] == seq.to_be_bytes() => break true,
                // A late echo of an earlier (lost) ping.
                Ok(_) => {
                    if t0.elapsed() >= timeout {
                        break false;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ICMP errors (port unreachable) surface as ECONNREFUSED.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => break false,
                Err(e) => return Err(e).context("pong"),
            }
        };
        if got {
            rtts.push(t0.elapsed().as_secs_f64() * 1e6);
        } else {
            report.lost += 1;
        }
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
    }
    report.rtt_us = Samples::new(rtts);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_round_trips() {
        let echo_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pinger = UdpSocket::bind("127.0.0.1:0").unwrap();
        pinger.connect(echo_sock.local_addr().unwrap()).unwrap();
        let stop = AtomicBool::new(false);
        let report = std::thread::scope(|s| {
            let e = s.spawn(|| echo(&echo_sock, &stop));
            let opts = PingOpts {
                count: 50,
                timeout: Duration::from_secs(2),
                ..Default::default()
            };
            let r = ping(&pinger, &opts).unwrap();
            stop.store(true, Ordering::Relaxed);
            e.join().unwrap().unwrap();
            r
        });
        assert_eq!((report.sent, report.lost), (50, 0));
        assert_eq!(report.rtt_us.0.len(), 50);
        assert!(report.rtt_us.min().unwrap() > 0.0);
    }

    #[test]
    fn nobody_answering_is_loss() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pinger = UdpSocket::bind("127.0.0.1:0").unwrap();
        pinger.connect(silent.local_addr().unwrap()).unwrap();
        let opts = PingOpts {
            payload: 64,
            count: 3,
            timeout: Duration::from_millis(20),
            ..Default::default()
        };
        let r = ping(&pinger, &opts).unwrap();
        assert_eq!((r.sent, r.lost, r.rtt_us.0.len()), (3, 3, 0));
    }
}
