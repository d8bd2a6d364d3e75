//! A tiny RTSP/1.0 server and client over real TCP sockets, for the
//! signaling tests: enough of RFC 2326 to SETUP (UDP `client_port` /
//! `server_port`, or interleaved), PLAY, keep alive (GET_PARAMETER) and
//! TEARDOWN. Media is not generated here: the tests own the UDP sockets
//! behind the announced ports and send what they need.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{Error, Netns, Result, POLL_INTERVAL};

/// How long the server waits for the client's connection, and either side
/// for a message.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one message head.
const MAX_HEAD: usize = 16 * 1024;

/// What the server answers.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The Session id it hands out.
    pub session: String,
    /// `;timeout=N` on the Session header, if any.
    pub timeout_secs: Option<u32>,
    /// Its RTP and RTCP ports for UDP transport (`server_port=rtp-rtcp`).
    pub server_ports: (u16, u16),
}

impl ServerConfig {
    /// A session id unique to this process, `timeout_secs`, and RTP on
    /// `server_rtp` with RTCP on the next port.
    pub fn unique(timeout_secs: Option<u32>, server_rtp: u16) -> ServerConfig {
        ServerConfig {
            session: format!("{:08}{:08}", std::process::id(), crate::unique_id()),
            timeout_secs,
            server_ports: (server_rtp, server_rtp + 1),
        }
    }
}

/// One RTSP message: start line, headers (name, value) and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        let mut words = self.start.split_whitespace();
        (words.next()? == "RTSP/1.0").then_some(())?;
        words.next()?.parse().ok()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        let mut words = self.start.split_whitespace();
        let method = words.next()?;
        (words.nth(1)? == "RTSP/1.0").then_some(method)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message (head up to the empty line, then `Content-Length`
/// bytes of body). `Ok(None)` on a clean end of stream before a message.
pub fn read_message(r: &mut impl BufRead) -> Result<Option<Message>> {
    let mut lines = Vec::new();
    let mut size = 0;
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(Error::io("reading an RTSP message"))?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(Error::Setup("RTSP message cut short".into()));
        }
        size += n;
        if size > MAX_HEAD {
            return Err(Error::Setup("RTSP message head too long".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate blank lines between messages
            }
            break;
        }
        lines.push(line);
    }
    let start = lines.remove(0);
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Error::Setup(format!("bad RTSP header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut msg = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let len: usize = msg
        .header("Content-Length")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| Error::Setup("bad Content-Length".into()))?
        .unwrap_or(0);
    msg.body.resize(len, 0);
    r.read_exact(&mut msg.body)
        .map_err(Error::io("reading an RTSP body"))?;
    Ok(Some(msg))
}

/// `client_port=a-b` of a Transport header.
fn client_ports(transport: &str) -> Option<&str> {
    transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("client_port="))
}

/// The server's answer to one request, and whether the session ends.
fn answer(cfg: &ServerConfig, req: &Message) -> (Message, bool) {
    let cseq = req.header("CSeq").unwrap_or("0").to_owned();
    let session = match cfg.timeout_secs {
        Some(t) => format!("{};timeout={t}", cfg.session),
        None => cfg.session.clone(),
    };
    let mut headers = vec![("CSeq".to_owned(), cseq)];
    let mut status = "RTSP/1.0 200 OK";
    let mut end = false;
    match req.method() {
        Some("OPTIONS") => headers.push((
            "Public".into(),
            "OPTIONS, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN".into(),
        )),
        Some("SETUP") => {
            let transport = req.header("Transport").unwrap_or("");
            if transport.contains("interleaved") || transport.contains("RTP/AVP/TCP") {
                headers.push((
                    "Transport".into(),
                    "RTP/AVP/TCP;unicast;interleaved=0-1".into(),
                ));
                headers.push(("Session".into(), session));
            } else if let Some(ports) = client_ports(transport) {
                let (rtp, rtcp) = cfg.server_ports;
                headers.push((
                    "Transport".into(),
                    format!("RTP/AVP;unicast;client_port={ports};server_port={rtp}-{rtcp}"),
                ));
                headers.push(("Session".into(), session));
            } else {
                status = "RTSP/1.0 461 Unsupported Transport";
            }
        }
        Some("PLAY" | "PAUSE" | "GET_PARAMETER") => headers.push(("Session".into(), session)),
        Some("TEARDOWN") => {
            headers.push(("Session".into(), cfg.session.clone()));
            end = true;
        }
        _ => status = "RTSP/1.0 405 Method Not Allowed",
    }
    (
        Message {
            start: status.into(),
            headers,
            body: Vec::new(),
        },
        end,
    )
}

/// A server thread answering one client connection until TEARDOWN or the
/// end of the stream. It can also push interleaved frames
/// (`$ channel length data`) to the client.
#[derive(Debug)]
pub struct RtspServer {
    addr: SocketAddr,
    thread: Option<JoinHandle<Result<Vec<Message>>>>,
    stop: Arc<AtomicBool>,
    /// The accepted connection, for interleaved media.
    conn: Arc<std::sync::Mutex<Option<TcpStream>>>,
}

impl RtspServer {
    /// Listens on `addr` inside `ns` and serves one client in a thread.
    pub fn start(ns: &Netns, addr: SocketAddr, cfg: ServerConfig) -> Result<RtspServer> {
        let listener = ns.tcp_listener(addr)?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("making the RTSP listener non-blocking"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let conn = Arc::new(std::sync::Mutex::new(None));
        let thread = {
            let (stop, conn) = (stop.clone(), conn.clone());
            std::thread::spawn(move || serve(listener, cfg, &stop, &conn))
        };
        Ok(RtspServer {
            addr,
            thread: Some(thread),
            stop,
            conn,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one interleaved frame on `channel` to the connected client.
    pub fn send_interleaved(&self, channel: u8, data: &[u8]) -> Result<()> {
        let guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stream = guard
            .as_ref()
            .ok_or_else(|| Error::Setup("no RTSP client connected".into()))?;
        let len = u16::try_from(data.len())
            .map_err(|_| Error::Setup("interleaved frame too long".into()))?;
        let mut frame = vec![b'$', channel];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(data);
        stream
            .write_all(&frame)
            .map_err(Error::io("sending an interleaved frame"))
    }

    /// Waits for the server thread and returns the requests it answered.
    pub fn finish(mut self) -> Result<Vec<Message>> {
        let thread = self.thread.take().expect("the thread runs until finish");
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(conn) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    cfg: ServerConfig,
    stop: &AtomicBool,
    conn: &std::sync::Mutex<Option<TcpStream>>,
) -> Result<Vec<Message>> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: "an RTSP client".into(),
                        after: IO_TIMEOUT,
                    });
                }
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(e) => return Err(Error::io("accepting an RTSP client")(e)),
        }
    };
    stream
        .set_nonblocking(false)
        .map_err(Error::io("making the RTSP connection blocking"))?;
    let writer = stream
        .try_clone()
        .map_err(Error::io("cloning the RTSP connection"))?;
    *conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(
        stream
            .try_clone()
            .map_err(Error::io("cloning the RTSP connection"))?,
    );
    let mut reader = BufReader::new(stream);
    let mut seen = Vec::new();
    while let Some(req) = read_message(&mut reader)? {
        let (resp, end) = answer(&cfg, &req);
        (&writer)
            .write_all(&resp.encode())
            .map_err(Error::io("sending an RTSP response"))?;
        seen.push(req);
        if end {
            break;
        }
    }
    Ok(seen)
}

/// The client side: requests with increasing CSeq on one connection.
#[derive(Debug)]
pub struct RtspClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    url: String,
    cseq: u32,
    session: Option<String>,
}

impl RtspClient {
    /// Connects from inside `ns` to `server`.
    pub fn connect(ns: &Netns, server: SocketAddr) -> Result<RtspClient> {
        let stream = ns.tcp_connect(server, IO_TIMEOUT)?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(Error::io("setting an RTSP read timeout"))?;
        let writer = stream
            .try_clone()
            .map_err(Error::io("cloning the RTSP connection"))?;
        Ok(RtspClient {
            reader: BufReader::new(stream),
            writer,
            url: format!("rtsp://{server}/media"),
            cseq: 0,
            session: None,
        })
    }

    /// Sends `method` with `headers` (plus CSeq and, once known, Session)
    /// and returns the response. Remembers the Session id of a SETUP reply.
    pub fn request(&mut self, method: &str, headers: &[(&str, &str)]) -> Result<Message> {
        let bytes = self.encode(method, headers);
        self.send_raw(&bytes)?;
        self.reply(method, self.cseq)
    }

    /// [`RtspClient::request`], failing unless the answer is 200 OK.
    pub fn request_ok(&mut self, method: &str, headers: &[(&str, &str)]) -> Result<Message> {
        let resp = self.request(method, headers)?;
        if resp.status() != Some(200) {
            return Err(Error::Setup(format!(
                "RTSP {method}: {} {:?}",
                resp.start, resp.headers
            )));
        }
        Ok(resp)
    }

    /// The bytes of the next request (taking the next CSeq), for tests that
    /// send requests split or pipelined with [`RtspClient::send_raw`] and
    /// then collect the replies with [`RtspClient::reply`].
    pub fn encode(&mut self, method: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        self.cseq += 1;
        let uri = if method == "SETUP" {
            format!("{}/track1", self.url)
        } else {
            self.url.clone()
        };
        let mut all = vec![("CSeq".to_owned(), self.cseq.to_string())];
        if let Some(s) = &self.session {
            all.push(("Session".to_owned(), s.clone()));
        }
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        Message {
            start: format!("{method} {uri} RTSP/1.0"),
            headers: all,
            body: Vec::new(),
        }
        .encode()
    }

    /// The CSeq of the last encoded request.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// Writes `bytes` in one `write` (Nagle is off, so each call leaves as
    /// its own segment).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .set_nodelay(true)
            .map_err(Error::io("setting TCP_NODELAY"))?;
        self.writer
            .write_all(bytes)
            .map_err(Error::io("sending to the RTSP server"))
    }

    /// Reads the reply to the request `method` with CSeq `cseq`, and
    /// remembers the Session id of a SETUP reply.
    pub fn reply(&mut self, method: &str, cseq: u32) -> Result<Message> {
        let resp = self.read_response(method)?;
        if resp.header("CSeq") != Some(cseq.to_string().as_str()) {
            return Err(Error::Setup(format!(
                "RTSP {method}: response CSeq {:?}, sent {cseq}",
                resp.header("CSeq"),
            )));
        }
        if method == "SETUP" {
            if let Some(s) = resp.header("Session") {
                let id = s.split(';').next().unwrap_or(s).trim().to_owned();
                self.session = Some(id);
            }
        }
        Ok(resp)
    }

    /// Skips interleaved frames until a response arrives.
    fn read_response(&mut self, method: &str) -> Result<Message> {
        loop {
            let first = self
                .reader
                .fill_buf()
                .map_err(Error::io(format!("reading the RTSP {method} response")))?;
            if first.first() == Some(&b'$') {
                self.read_interleaved()?;
                continue;
            }
            return read_message(&mut self.reader)?.ok_or_else(|| {
                Error::Setup(format!("the server closed before answering {method}"))
            });
        }
    }

    /// Reads one interleaved frame: (channel, data).
    pub fn read_interleaved(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 4];
        self.reader
            .read_exact(&mut head)
            .map_err(Error::io("reading an interleaved frame"))?;
        if head[0] != b'$' {
            return Err(Error::Setup(format!(
                "expected an interleaved frame, got {head:?}"
            )));
        }
        let mut data = vec![0u8; usize::from(u16::from_be_bytes([head[2], head[3]]))];
        self.reader
            .read_exact(&mut data)
            .map_err(Error::io("reading an interleaved frame"))?;
        Ok((head[1], data))
    }

    /// The Session id of the SETUP reply.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }
}

/// Whether a pinhole's `owner` names the RTSP session `session`:
/// `rtsp:<session>` or `rtsp:<server>;session=<session>` (parameters in any
/// order).
pub fn is_rtsp_owner(owner: Option<&str>, session: &str) -> bool {
    let Some(rest) = owner.and_then(|o| o.strip_prefix("rtsp:")) else {
        return false;
    };
    let mut parts = rest.split(';');
    let first = parts.next().unwrap_or("");
    first == session || parts.any(|p| p.strip_prefix("session=").is_some_and(|s| s == session))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(timeout: Option<u32>) -> ServerConfig {
        ServerConfig {
            session: "12345678".into(),
            timeout_secs: timeout,
            server_ports: (14000, 14001),
        }
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Message {
        Message {
            start: format!("{method} rtsp://198.51.100.2:8554/media RTSP/1.0"),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    /// (method, request headers, session timeout, status, response header
    /// checked, its value, whether the session ends)
    type AnswerCase<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<u32>,
        u16,
        &'a str,
        Option<&'a str>,
        bool,
    );

    #[test]
    fn answers() {
        let cases: &[AnswerCase] = &[
            (
                "SETUP",
                &[
                    ("CSeq", "2"),
                    ("Transport", "RTP/AVP;unicast;client_port=16500-16501"),
                ],
                Some(2),
                200,
                "Transport",
                Some("RTP/AVP;unicast;client_port=16500-16501;server_port=14000-14001"),
                false,
            ),
            (
                "SETUP",
                &[
                    ("CSeq", "2"),
                    ("Transport", "RTP/AVP;unicast;client_port=16500-16501"),
                ],
                Some(2),
                200,
                "Session",
                Some("12345678;timeout=2"),
                false,
            ),
            (
                "SETUP",
                &[
                    ("CSeq", "3"),
                    ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
                ],
                None,
                200,
                "Transport",
                Some("RTP/AVP/TCP;unicast;interleaved=0-1"),
                false,
            ),
            (
                "SETUP",
                &[("CSeq", "3"), ("Transport", "RTP/AVP;multicast")],
                None,
                461,
                "Transport",
                None,
                false,
            ),
            (
                "PLAY",
                &[("CSeq", "4")],
                None,
                200,
                "Session",
                Some("12345678"),
                false,
            ),
            (
                "TEARDOWN",
                &[("CSeq", "5")],
                Some(9),
                200,
                "Session",
                Some("12345678"),
                true,
            ),
            (
                "RECORD",
                &[("CSeq", "6")],
                None,
                405,
                "CSeq",
                Some("6"),
                false,
            ),
        ];
        for (method, headers, timeout, status, name, value, ends) in cases {
            let (resp, end) = answer(&cfg(*timeout), &request(method, headers));
            assert_eq!(resp.status(), Some(*status), "{method} {headers:?}");
            assert_eq!(resp.header(name), *value, "{method} {headers:?}: {name}");
            assert_eq!(end, *ends, "{method}");
        }
    }

    #[test]
    fn messages_round_trip_and_hostile_input_fails() {
        let req = request("OPTIONS", &[("CSeq", "1")]);
        let bytes = req.encode();
        let mut r = BufReader::new(&bytes[..]);
        let back = read_message(&mut r).unwrap().unwrap();
        assert_eq!(back.method(), Some("OPTIONS"));
        assert_eq!(back.header("cseq"), Some("1"));
        assert!(read_message(&mut r).unwrap().is_none());

        for bad in [
            &b"OPTIONS rtsp://x RTSP/1.0\r\nno colon here\r\n\r\n"[..],
            b"OPTIONS rtsp://x RTSP/1.0\r\nCSeq: 1\r\n",
            b"OPTIONS rtsp://x RTSP/1.0\r\nContent-Length: x\r\n\r\n",
            b"OPTIONS rtsp://x RTSP/1.0\r\nContent-Length: 10\r\n\r\nshort",
        ] {
            assert!(
                read_message(&mut BufReader::new(bad)).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(
            "OPTIONS rtsp://x RTSP/1.0\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert!(read_message(&mut BufReader::new(long.as_bytes())).is_err());
    }

    #[test]
    fn rtsp_owners() {
        for (owner, ok) in [
            (Some("rtsp:12345678"), true),
            (Some("rtsp:198.51.100.2:8554;session=12345678"), true),
            (Some("rtsp:[2001:db8:2::2]:8554;session=12345678"), true),
            (Some("rtsp:198.51.100.2:8554;session=123456789"), false),
            (Some("rtsp:1234567"), false),
            (Some("sip:12345678"), false),
            (Some("manual"), false),
            (None, false),
        ] {
            assert_eq!(is_rtsp_owner(owner, "12345678"), ok, "{owner:?}");
        }
    }
}
