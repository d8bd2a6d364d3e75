//! Installing many pinholes through the daemon's control socket: `open`
//! requests written back to back on one connection (the protocol is one JSON
//! line per request and per response), answers read as they come. The daemon
//! makes one map update per flow (aya 0.14 has no batched update).

use std::{
    io::{BufRead, BufReader, BufWriter, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use pinhole::{
    addr::Endpoint,
    api::wire::{Request, Response},
    controller::report::OpenParams,
};

/// The `i`-th synthetic pinhole: a unique IPv4 outside endpoint in
/// 203.0.113.0/24 and an inside endpoint in 198.51.100.0/24, media port in
/// 10000-20000. Unique for `i` below 254 × 60000.
pub fn synthetic(i: u32) -> (SocketAddr, SocketAddr) {
    let host = 1 + (i / 60_000) as u8;
    let port = 2000 + (i % 60_000) as u16;
    let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, host)), port);
    let b = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2 + (i % 200) as u8)),
        10_000 + (i % 10_000) as u16,
    );
    (a, b)
}

/// Opens synthetic pinholes `from..to` (never idle-expiring) and returns
/// how long the daemon took to answer them all.
pub fn open_many(control: &Path, from: u32, to: u32) -> Result<Duration> {
    let stream = UnixStream::connect(control)
        .with_context(|| format!("connecting to {}", control.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let reader_stream = stream.try_clone()?;
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(move || -> Result<()> {
            let mut w = BufWriter::with_capacity(1 << 16, &stream);
            for i in from..to {
                let (a, b) = synthetic(i);
                let req = Request::Open(OpenParams {
                    a: Endpoint::new(a)?,
                    b: Endpoint::new(b)?,
                    rtcp: false,
                    idle_secs: Some(0),
                    owner: None,
                });
                serde_json::to_writer(&mut w, &req)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            Ok(())
        });
        let mut r = BufReader::with_capacity(1 << 16, reader_stream);
        let mut line = String::new();
        for i in from..to {
            line.clear();
            if r.read_line(&mut line).context("reading an answer")? == 0 {
                bail!(
                    "the daemon closed the control connection after {} opens",
                    i - from
                );
            }
            let resp: Response = serde_json::from_str(&line).context("an answer")?;
            if !resp.ok {
                bail!("open #{i} {:?} refused: {:?}", synthetic(i), resp.error);
            }
        }
        writer.join().expect("writer thread")
    })?;
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn synthetic_pinholes_are_unique_and_documentation_addresses() {
        let outside: BTreeSet<SocketAddr> = (0..300_000).map(|i| synthetic(i).0).collect();
        assert_eq!(outside.len(), 300_000);
        for i in [0, 59_999, 60_000, 1_199_999, 254 * 60_000 - 1] {
            let (a, b) = synthetic(i);
            let (IpAddr::V4(a_ip), IpAddr::V4(b_ip)) = (a.ip(), b.ip()) else {
                panic!("{i}: not IPv4");
            };
            assert_eq!(a_ip.octets()[..3], [203, 0, 113], "{i}");
            assert_eq!(b_ip.octets()[..3], [198, 51, 100], "{i}");
            assert!((10_000..=20_000).contains(&b.port()), "{i}");
        }
    }
}
