//! The control socket: how CLI commands reach a running daemon, which owns the store.
//!
//! `control.sock` lives in the state directory with mode 0600, so only the daemon's user can
//! use it. One connection carries one request line of JSON and gets one response line back.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::ops::{Reply, Request};

const SOCKET: &str = "control.sock";
/// A request line longer than this is not one of ours, except an import.
const MAX_REQUEST: u64 = 64 * 1024;
/// An import carries watchers' state and history, megabytes in all, and one watcher with 1,000
/// history entries can pass 64 KB alone. So `pagehook import` sends its records in batches
/// of about a megabyte (a record larger than that alone), and a request line that begins as
/// an import may be this long: a bound on what one connection makes the daemon hold, far above
/// any real record, that `import` checks every record against before it sends the first.
pub(crate) const MAX_IMPORT_REQUEST: u64 = 64 * 1024 * 1024;
/// How an import request line begins: serde writes the tag first (a test pins it).
const IMPORT_PREFIX: &[u8] = br#"{"command":"import""#;
/// How long a client waits for the daemon; `once` may run checks for a while.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

/// `{"ok": true, "output": ...}` or `{"ok": false, "error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
struct Response {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The response line to a request: the handler's reply, already encoded (a large report is
/// encoded as it is read), or its error.
fn response_line(result: Result<Vec<u8>, String>) -> Vec<u8> {
    let mut line = match result {
        Ok(output) => {
            let mut line = br#"{"ok":true,"output":"#.to_vec();
            line.extend_from_slice(&output);
            line.push(b'}');
            line
        }
        Err(error) => serde_json::to_vec(&Response {
            ok: false,
            output: None,
            error: Some(error),
        })
        .expect("plain data"),
    };
    line.push(b'\n');
    line
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the running daemon refused: {0}")]
    Refused(String),
    #[error("cannot talk to the running daemon at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the running daemon sent an answer this pagehook cannot read: {0}")]
    Protocol(#[from] serde_json::Error),
    #[error("the running daemon did not answer within {0:?}")]
    Timeout(Duration),
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// Send `request` to the daemon serving `state_dir`. `Ok(None)` means no daemon is listening
/// (no socket, or a stale one left by a crash), so the caller may open the store itself.
pub async fn call(state_dir: &Path, request: &Request) -> Result<Option<Reply>, ControlError> {
    let path = socket_path(state_dir);
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(io(err)),
    };
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        write.write_all(&line).await.map_err(io)?;
        let mut answer = Vec::new();
        BufReader::new(read)
            .read_until(b'\n', &mut answer)
            .await
            .map_err(io)?;
        let response: Response = serde_json::from_slice(&answer)?;
        match response.ok {
            true => response
                .output
                .map(Some)
                .ok_or_else(|| ControlError::Refused("an answer without a reply".to_owned())),
            false => Err(ControlError::Refused(response.error.unwrap_or_default())),
        }
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout(CLIENT_TIMEOUT))?
}

/// The control socket, bound: a command that connects from now on waits in the backlog until
/// [`serve`] answers it, so the daemon may say it is ready before it serves.
pub struct Bound {
    listener: UnixListener,
    path: PathBuf,
}

/// Bind the control socket of `state_dir`. The caller owns the store's lock, so a socket file
/// left behind by a crash is safe to replace.
pub fn bind(state_dir: &Path) -> std::io::Result<Bound> {
    let path = socket_path(state_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => debug!(path = %path.display(), "removed a stale control socket"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Bound { listener, path })
}

/// Serve the bound control socket until `shutdown`, answering each request with `handle`,
/// which gives the JSON of its [`Reply`].
pub async fn serve<H, F>(bound: Bound, handle: H, shutdown: CancellationToken)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
{
    let Bound { listener, path } = bound;
    let handle = Arc::new(handle);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(answer(stream, handle.clone()));
                }
                Err(err) => warn!(error = %err, "control socket accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&path);
}

async fn answer<H, F>(stream: UnixStream, handle: Arc<H>)
where
    H: Fn(Request) -> F,
    F: Future<Output = Result<Vec<u8>, String>>,
{
    let (read, mut write) = stream.into_split();
    let result = match read_request(BufReader::new(read)).await {
        Err(err) => Err(err),
        Ok(line) => match serde_json::from_slice::<Request>(&line) {
            Err(err) => Err(format!(
                "unknown request (is the CLI a different version?): {err}"
            )),
            Ok(request) => handle(request).await,
        },
    };
    if let Err(err) = write.write_all(&response_line(result)).await {
        debug!(error = %err, "control client went away before the answer");
    }
}

/// One request line, at most [`MAX_REQUEST`] long, or [`MAX_IMPORT_REQUEST`] for an import.
async fn read_request(mut reader: impl AsyncBufRead + Unpin) -> Result<Vec<u8>, String> {
    let unreadable = |err: std::io::Error| format!("cannot read the request: {err}");
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_REQUEST)
        .read_until(b'\n', &mut line)
        .await
        .map_err(unreadable)?;
    let mut limit = MAX_REQUEST;
    if line.len() as u64 == MAX_REQUEST && !line.ends_with(b"\n") && line.starts_with(IMPORT_PREFIX)
    {
        limit = MAX_IMPORT_REQUEST;
        reader
            .take(MAX_IMPORT_REQUEST - MAX_REQUEST)
            .read_until(b'\n', &mut line)
            .await
            .map_err(unreadable)?;
    }
    if line.len() as u64 == limit && !line.ends_with(b"\n") {
        return Err(format!("the request is longer than {limit} bytes"));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Replayed;

    #[tokio::test]
    async fn only_an_import_may_pass_the_request_limit_and_only_up_to_its_own() {
        let import = serde_json::to_vec(&Request::Import { records: vec![] }).unwrap();
        assert!(import.starts_with(IMPORT_PREFIX), "the tag comes first");

        let long = |prefix: &[u8], len: u64| {
            let mut line = prefix.to_vec();
            line.resize(len as usize, b' ');
            line.push(b'\n');
            line
        };
        let big_import = long(IMPORT_PREFIX, 3 * MAX_REQUEST);
        assert_eq!(read_request(&big_import[..]).await.unwrap(), big_import);
        let big_other = long(br#"{"command":"status""#, 3 * MAX_REQUEST);
        let err = read_request(&big_other[..]).await.unwrap_err();
        assert_eq!(err, "the request is longer than 65536 bytes");
        let too_big = long(IMPORT_PREFIX, MAX_IMPORT_REQUEST + 1);
        let err = read_request(&too_big[..]).await.unwrap_err();
        assert_eq!(
            err,
            format!("the request is longer than {MAX_IMPORT_REQUEST} bytes")
        );
    }

    #[tokio::test]
    async fn a_request_reaches_the_handler_and_its_answer_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            call(dir.path(), &Request::Deliveries)
                .await
                .unwrap()
                .is_none(),
            "no daemon, no answer"
        );
        let shutdown = CancellationToken::new();
        let bound = bind(dir.path()).unwrap();
        let path = socket_path(dir.path());
        let server = tokio::spawn(serve(
            bound,
            |request| async move {
                match request {
                    Request::Replay { event_ids, .. } if event_ids.is_empty() => {
                        Err("nothing to replay".to_string())
                    }
                    other => Ok(serde_json::to_vec(&Reply::Replay(Replayed {
                        queued: vec![("echo".to_owned(), serde_json::to_string(&other).unwrap())],
                    }))
                    .unwrap()),
                }
            },
            shutdown.clone(),
        ));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let answer = call(dir.path(), &Request::Deliveries).await.unwrap();
        let echo = Replayed {
            queued: vec![("echo".to_owned(), r#"{"command":"deliveries"}"#.to_owned())],
        };
        assert_eq!(answer, Some(Reply::Replay(echo)));
        let refused = call(
            dir.path(),
            &Request::Replay {
                event_ids: vec![],
                dead: false,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(refused, ControlError::Refused(ref e) if e == "nothing to replay"));

        shutdown.cancel();
        server.await.unwrap();
        assert!(!path.exists(), "the socket is removed on shutdown");
    }
}
