//! The daemon's side of the control socket: a Unix stream socket speaking
//! JSON lines (see [`super::wire`]). It only talks to the controller through
//! its handle.

use std::{
    io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::UnixListener,
    sync::Semaphore,
    task::JoinSet,
};
use tracing::{debug, info, warn};

use super::{
    wire::{read_line, RemoteKind, Request, Response, MAX_REQUEST_LINE},
    ControlError,
};
use crate::controller::{CommandError, ControllerHandle};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

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

/// How the daemon reports a refused or failed command to the client (the
/// classification is the socket's business, so the controller does not
/// import the api).
pub fn remote_kind(err: &CommandError) -> RemoteKind {
    match err {
        CommandError::Addr(_)
        | CommandError::OwnerTooLong { .. }
        | CommandError::ReservedOwner
        | CommandError::HaOff => RemoteKind::BadRequest,
        CommandError::Table(_) | CommandError::Store(_) | CommandError::Stopped => {
            RemoteKind::Runtime
        }
    }
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
            Err(e) => Response::failure(remote_kind(&e), e.to_string()),
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
        Request::HaPromote => reply(
            controller
                .ha(crate::controller::foreign::HaOp::Promote)
                .await,
        ),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::{
        api::client::{decode_response, request},
        controller::report::{ListReply, OpenParams, StatsReply},
        controller::{spawn, ControllerConfig, FakeStore},
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
            let open: crate::controller::report::OpenReply = request(
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
