//! The control socket: a Unix stream socket speaking JSON lines
//! (see [`crate::proto`]). The server side only talks to the controller
//! through its handle; the client side is what the CLI subcommands use.

use std::{
    io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::de::DeserializeOwned;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Semaphore,
    task::JoinSet,
};
use tracing::{debug, info, warn};

use crate::{
    controller::ControllerHandle,
    error::{CommandError, ControlError, RemoteKind},
    proto::{Request, Response, MAX_REQUEST_LINE},
};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client waits for the daemon.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response line the client accepts.
const MAX_RESPONSE_LINE: usize = 1 << 30;

/// Fails when a daemon answers on `path`; removes a stale socket file left by
/// a daemon that died. Refuses to touch a path that is not a socket.
pub fn ensure_not_running(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Socket {
                path: path.into(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket { path: path.into() });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ControlError::AlreadyRunning(path.into())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!(path = %path.display(), "removing stale control socket");
            std::fs::remove_file(path).map_err(|source| ControlError::Socket {
                path: path.into(),
                source,
            })
        }
        Err(source) => Err(ControlError::Socket {
            path: path.into(),
            source,
        }),
    }
}

/// The bound control socket. Dropping it removes the socket file (if it is
/// still the one this process created).
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    inode: (u64, u64),
}

impl ControlServer {
    /// Creates the parent directory (mode 0700) if needed, checks that no
    /// daemon is running, binds the socket and makes it mode 0600.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        let sock_err = |source| ControlError::Socket {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(sock_err)?;
            }
        }
        ensure_not_running(path)?;
        let listener = UnixListener::bind(path).map_err(sock_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
        let meta = std::fs::symlink_metadata(path).map_err(sock_err)?;
        info!(path = %path.display(), "control socket listening");
        Ok(ControlServer {
            listener,
            path: path.into(),
            inode: (meta.dev(), meta.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until the future is dropped; dropping it also
    /// drops every connection.
    pub async fn serve(&self, controller: ControllerHandle) {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = JoinSet::new();
        loop {
            let permit = match limit.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            };
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let controller = controller.clone();
                        conns.spawn(async move {
                            let (rd, wr) = stream.into_split();
                            if let Err(e) = serve_connection(rd, wr, &controller).await {
                                debug!("control connection ended: {e}");
                            }
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        warn!("accepting a control connection failed: {e}");
                        // Back off briefly on resource errors (EMFILE …).
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.inode => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    warn!(path = %self.path.display(), "removing the control socket failed: {e}");
                } else {
                    info!(path = %self.path.display(), "control socket removed");
                }
            }
            _ => warn!(path = %self.path.display(), "control socket was replaced; leaving it"),
        }
    }
}

/// Reads a line of at most `max` bytes (newline included). `Ok(None)` at end
/// of stream; an error when the line is longer.
async fn read_line<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<()>> {
    buf.clear();
    let n = rd.take(max as u64).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n >= max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line longer than {max} bytes"),
        ));
    }
    Ok(Some(()))
}

/// Serves one connection: a response line for each request line.
pub async fn serve_connection<R, W>(
    rd: R,
    mut wr: W,
    controller: &ControllerHandle,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    loop {
        let response = match read_line(&mut rd, &mut buf, MAX_REQUEST_LINE).await {
            Ok(None) => return Ok(()),
            Ok(Some(())) => {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                dispatch(&buf, controller).await
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let r = Response::failure(
                    RemoteKind::BadRequest,
                    format!("request longer than {MAX_REQUEST_LINE} bytes"),
                );
                write_response(&mut wr, r).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        write_response(&mut wr, response).await?;
    }
}

async fn write_response<W: AsyncWrite + Unpin>(wr: &mut W, r: Response) -> io::Result<()> {
    // A list of 1M pinholes is hundreds of MB of JSON: encode it on a
    // blocking thread, not on a runtime worker the controller shares.
    let mut line = tokio::task::spawn_blocking(move || serde_json::to_vec(&r))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    line.push(b'\n');
    wr.write_all(&line).await?;
    wr.flush().await
}

/// Decodes one request line and runs it.
pub async fn dispatch(line: &[u8], controller: &ControllerHandle) -> Response {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return Response::failure(RemoteKind::BadRequest, format!("invalid request: {e}"));
        }
    };
    fn reply<T: serde::Serialize>(r: Result<T, CommandError>) -> Response {
        match r {
            Ok(v) => Response::success(&v),
            Err(e) => Response::failure(e.kind(), e.to_string()),
        }
    }
    /// Big replies become JSON values on a blocking thread too.
    async fn reply_off<T: serde::Serialize + Send + 'static>(
        r: Result<T, CommandError>,
    ) -> Response {
        tokio::task::spawn_blocking(move || reply(r))
            .await
            .unwrap_or_else(|e| Response::failure(RemoteKind::Runtime, e.to_string()))
    }
    match req {
        Request::Open(p) => reply(controller.open(p).await),
        Request::Close { a, b } => reply(controller.close(a, b).await),
        Request::List => reply_off(controller.list().await).await,
        Request::Stats => reply(controller.stats().await),
        Request::Calls => reply_off(controller.calls().await).await,
    }
}

/// Sends one request to the daemon at `path` and decodes its result.
pub async fn request<T: DeserializeOwned>(path: &Path, req: &Request) -> Result<T, ControlError> {
    match tokio::time::timeout(CLIENT_TIMEOUT, request_inner(path, req)).await {
        Ok(r) => r,
        Err(_) => Err(ControlError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from the daemon at {} within {}s",
                path.display(),
                CLIENT_TIMEOUT.as_secs()
            ),
        ))),
    }
}

async fn request_inner<T: DeserializeOwned>(path: &Path, req: &Request) -> Result<T, ControlError> {
    let stream = UnixStream::connect(path).await.map_err(|source| {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => "the control socket is root-only",
            _ => "is `pinhole run` running?",
        };
        ControlError::Connect {
            path: path.into(),
            source,
            hint,
        }
    })?;
    let (rd, mut wr) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    wr.write_all(&line).await?;
    wr.shutdown().await?;
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    read_line(&mut rd, &mut buf, MAX_RESPONSE_LINE)
        .await?
        .ok_or(ControlError::NoResponse)?;
    decode_response(&buf)
}

/// Turns a response line into the result or the daemon's error.
pub fn decode_response<T: DeserializeOwned>(line: &[u8]) -> Result<T, ControlError> {
    let resp: Response =
        serde_json::from_slice(line).map_err(|e| ControlError::BadResponse(e.to_string()))?;
    match (resp.ok, resp.result, resp.error) {
        (true, Some(v), _) => {
            serde_json::from_value(v).map_err(|e| ControlError::BadResponse(e.to_string()))
        }
        (false, _, Some(err)) => Err(ControlError::Remote {
            kind: err.kind,
            message: err.message,
        }),
        _ => Err(ControlError::BadResponse("neither result nor error".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        controller::{spawn, ControllerConfig, FakeStore},
        proto::{ListReply, OpenParams, StatsReply},
    };

    fn controller() -> ControllerHandle {
        let (handle, _task) = spawn(FakeStore::new(16), ControllerConfig::new(16, 30));
        handle
    }

    async fn converse(input: &[u8]) -> Vec<Response> {
        let handle = controller();
        let (client, server) = tokio::io::duplex(1 << 20);
        let (srd, swr) = tokio::io::split(server);
        let (mut crd, mut cwr) = tokio::io::split(client);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            cwr.write_all(&input).await.unwrap();
            cwr.shutdown().await.unwrap();
        });
        let _ = serve_connection(srd, swr, &handle).await;
        writer.await.unwrap();
        let mut out = String::new();
        crd.read_to_string(&mut out).await.unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).expect("every response line is JSON"))
            .collect()
    }

    fn error_kinds(rs: &[Response]) -> Vec<Option<RemoteKind>> {
        rs.iter()
            .map(|r| r.error.as_ref().map(|e| e.kind))
            .collect()
    }

    #[tokio::test]
    async fn garbage_gets_an_error_and_the_connection_goes_on() {
        let input = b"not json\n\n   \n{\"cmd\":\"nope\"}\n\xff\xfe\n{\"cmd\":\"open\",\"a\":\"192.0.2.1:4000\",\"b\":\"[2001:db8::1]:5\"}\n{\"cmd\":\"list\"}\n";
        let rs = converse(input).await;
        assert_eq!(
            error_kinds(&rs),
            vec![
                Some(RemoteKind::BadRequest),
                Some(RemoteKind::BadRequest),
                Some(RemoteKind::BadRequest),
                Some(RemoteKind::BadRequest),
                None
            ]
        );
        let list: ListReply = serde_json::from_value(rs[4].result.clone().unwrap()).unwrap();
        assert!(list.pinholes.is_empty());
    }

    #[tokio::test]
    async fn oversized_lines_are_refused_and_the_connection_closed() {
        let mut input = vec![b'{'; MAX_REQUEST_LINE + 10];
        input.extend_from_slice(b"\n{\"cmd\":\"list\"}\n");
        let rs = converse(&input).await;
        assert_eq!(rs.len(), 1);
        assert!(rs[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("longer than"));
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_is_read() {
        let req = b"{\"cmd\":\"stats\"}";
        let mut input = req.to_vec();
        input.resize(MAX_REQUEST_LINE - 1, b' ');
        input.push(b'\n');
        let rs = converse(&input).await;
        assert_eq!(error_kinds(&rs), vec![None]);
        // The last request may lack its newline.
        let rs = converse(b"{\"cmd\":\"stats\"}").await;
        let stats: StatsReply = serde_json::from_value(rs[0].result.clone().unwrap()).unwrap();
        assert_eq!(stats.flows.capacity, 16);
    }

    #[tokio::test]
    async fn client_and_server_over_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("pinhole-test-{}", std::process::id()));
        let path = dir.join("sub/control.sock");
        let _ = std::fs::remove_dir_all(&dir);
        let server = ControlServer::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);

        // A second server refuses while the first is live.
        let err = ControlServer::bind(&path).err().unwrap();
        assert!(matches!(err, ControlError::AlreadyRunning(_)), "{err}");
        assert!(err
            .to_string()
            .starts_with("another pinhole daemon is already running"));

        let handle = controller();
        let serving = server.serve(handle);
        let client = async {
            let open: crate::proto::OpenReply = request(
                &path,
                &Request::Open(OpenParams {
                    a: "192.0.2.1:4000".parse().unwrap(),
                    b: "198.51.100.2:10000".parse().unwrap(),
                    rtcp: true,
                    idle_secs: Some(7),
                    owner: None,
                }),
            )
            .await
            .unwrap();
            assert_eq!((open.flows, open.idle_timeout_secs), (4, 7));
            let list: ListReply = request(&path, &Request::List).await.unwrap();
            assert_eq!(list.pinholes.len(), 1);
            let err = request::<ListReply>(
                &path,
                &Request::Close {
                    a: "192.0.2.9:1".parse().unwrap(),
                    b: "198.51.100.2:10000".parse().unwrap(),
                },
            )
            .await
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    ControlError::Remote {
                        kind: RemoteKind::Runtime,
                        ..
                    }
                ),
                "{err}"
            );
        };
        tokio::select! {
            _ = serving => panic!("server stopped"),
            _ = client => {}
        }
        drop(server);
        assert!(!path.exists(), "socket removed on drop");

        // A stale socket file (no listener) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let server = ControlServer::bind(&path).unwrap();
        drop(server);

        // A regular file is never replaced.
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            ControlServer::bind(&path).err().unwrap(),
            ControlError::NotASocket { .. }
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn client_reports_a_missing_daemon() {
        let path = std::env::temp_dir().join(format!("pinhole-none-{}.sock", std::process::id()));
        let err = request::<ListReply>(&path, &Request::List)
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Connect { .. }));
        assert!(err.to_string().contains("is `pinhole run` running?"));
    }

    #[test]
    fn response_decoding_table() {
        let cases: &[(&str, &str)] = &[
            (r#"{"ok":true,"result":{"pinholes":[]}}"#, "ok"),
            (
                r#"{"ok":false,"error":{"kind":"runtime","message":"m"}}"#,
                "m",
            ),
            (
                r#"{"ok":true}"#,
                "the daemon sent an invalid response: neither result nor error",
            ),
            (
                r#"{"ok":true,"result":{"x":1}}"#,
                "the daemon sent an invalid response: missing field `pinholes`",
            ),
            (
                "garbage",
                "the daemon sent an invalid response: expected value at line 1 column 1",
            ),
        ];
        for (line, want) in cases {
            let got = match decode_response::<ListReply>(line.as_bytes()) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            assert_eq!(&got, want, "{line}");
        }
    }
}
