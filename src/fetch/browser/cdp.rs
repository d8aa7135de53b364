//! One DevTools protocol connection: numbered calls whose answers are matched by id, and events
//! routed to the session they belong to.
//!
//! Messages stay untyped JSON. Every Chromium release adds events and enum values, and a typed
//! client that fails to parse one either drops it or breaks the connection; here an event nobody
//! asked for is simply not routed anywhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

/// The largest message accepted from the browser. The page's HTML, the only large thing asked
/// for, is read in chunks well below it; anything bigger is a browser gone wrong.
const MAX_MESSAGE: usize = 32 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum CdpError {
    #[error("the connection to the browser closed")]
    Closed,
    #[error("{method}: {message}")]
    Protocol { method: String, message: String },
}

/// An event: its method (`Page.lifecycleEvent`) and parameters.
#[derive(Debug)]
pub(super) struct Event {
    pub(crate) method: String,
    pub(crate) params: Value,
}

type Reply = oneshot::Sender<Result<Value, String>>;

#[derive(Default)]
struct Routes {
    calls: HashMap<u64, Reply>,
    sessions: HashMap<String, mpsc::UnboundedSender<Event>>,
}

/// A cheap-to-clone handle on one connection.
#[derive(Clone)]
pub(super) struct Connection {
    outgoing: mpsc::UnboundedSender<String>,
    next_id: Arc<AtomicU64>,
    // A std mutex: held only to insert or take one route, never across an await.
    routes: Arc<Mutex<Routes>>,
    closed: CancellationToken,
}

impl Connection {
    /// Speak over Chromium's `--remote-debugging-pipe`: NUL-terminated JSON, commands into the
    /// browser's fd 3, answers and events out of its fd 4.
    pub(super) fn over_pipe(
        to_browser: impl AsyncWrite + Unpin + Send + 'static,
        from_browser: impl AsyncRead + Unpin + Send + 'static,
    ) -> Connection {
        let (connection, mut outgoing) = Connection::new();
        let closed = connection.closed.clone();
        tokio::spawn(async move {
            let mut to_browser = to_browser;
            loop {
                let message = tokio::select! {
                    () = closed.cancelled() => break,
                    message = outgoing.recv() => message,
                };
                let Some(mut message) = message else { break };
                message.push('\0');
                if to_browser.write_all(message.as_bytes()).await.is_err() {
                    break;
                }
            }
            closed.cancel();
        });
        let reader = connection.clone();
        tokio::spawn(async move {
            let mut from_browser = BufReader::new(from_browser);
            let mut message = Vec::new();
            loop {
                let read = tokio::select! {
                    () = reader.closed.cancelled() => break,
                    read = read_message(&mut from_browser, &mut message) => read,
                };
                if !read {
                    break;
                }
                reader.dispatch(&message);
                message.clear();
            }
            reader.close();
        });
        connection
    }

    /// Speak over a WebSocket to a browser that is already running (`endpoint = "ws://..."`).
    pub(super) async fn over_websocket(url: &Url) -> Result<Connection, String> {
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
                .await
                .map_err(|err| crate::fetch::error_chain(&err))?;
        let (mut sink, mut stream) = socket.split();
        let (connection, mut outgoing) = Connection::new();
        let closed = connection.closed.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = closed.cancelled() => break,
                    message = outgoing.recv() => message,
                };
                let Some(message) = message else { break };
                if sink.send(Message::text(message)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
            closed.cancel();
        });
        let reader = connection.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = reader.closed.cancelled() => break,
                    message = stream.next() => message,
                };
                match message {
                    Some(Ok(Message::Text(text))) => reader.dispatch(text.as_bytes()),
                    Some(Ok(Message::Binary(bytes))) => reader.dispatch(&bytes),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                }
            }
            reader.close();
        });
        Ok(connection)
    }

    fn new() -> (Connection, mpsc::UnboundedReceiver<String>) {
        let (outgoing, receiver) = mpsc::unbounded_channel();
        let connection = Connection {
            outgoing,
            next_id: Arc::new(AtomicU64::new(1)),
            routes: Arc::new(Mutex::new(Routes::default())),
            closed: CancellationToken::new(),
        };
        (connection, receiver)
    }

    /// Call `method` on the browser (`session` None) or on one attached page. The call is sent
    /// now, before the answer is awaited, so that calls started one after another go out
    /// together and are answered in order.
    pub(super) fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> impl Future<Output = Result<Value, CdpError>> + Send + 'static {
        let sent = self.send(session, method, params);
        let method = method.to_owned();
        async move {
            // A call dropped before its answer leaves its route behind until the answer comes
            // or the connection closes; both happen, since every call is bounded by a page's
            // timeout.
            match sent?.await {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(message)) => Err(CdpError::Protocol { method, message }),
                Err(_) => Err(CdpError::Closed),
            }
        }
    }

    fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<oneshot::Receiver<Result<Value, String>>, CdpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        {
            let mut routes = self.routes.lock().expect("not poisoned");
            if self.closed.is_cancelled() {
                return Err(CdpError::Closed);
            }
            routes.calls.insert(id, reply);
        }
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        if self.outgoing.send(message.to_string()).is_err() {
            self.routes.lock().expect("not poisoned").calls.remove(&id);
            return Err(CdpError::Closed);
        }
        Ok(answer)
    }

    /// The events of one session, from now until it detaches or the connection closes.
    pub(super) fn events(&self, session: &str) -> mpsc::UnboundedReceiver<Event> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut routes = self.routes.lock().expect("not poisoned");
        if !self.closed.is_cancelled() {
            routes.sessions.insert(session.to_owned(), sender);
        }
        receiver
    }

    pub(super) fn forget(&self, session: &str) {
        self.routes
            .lock()
            .expect("not poisoned")
            .sessions
            .remove(session);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves once the connection is gone.
    pub(super) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Fail every waiting call and end every event stream.
    pub(super) fn close(&self) {
        let routes = {
            let mut routes = self.routes.lock().expect("not poisoned");
            self.closed.cancel();
            std::mem::take(&mut *routes)
        };
        drop(routes);
    }

    fn dispatch(&self, bytes: &[u8]) {
        let Ok(mut message) = serde_json::from_slice::<Value>(bytes) else {
            tracing::debug!(bytes = bytes.len(), "unreadable DevTools message ignored");
            return;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let reply = self.routes.lock().expect("not poisoned").calls.remove(&id);
            if let Some(reply) = reply {
                let answer = match message.get_mut("error") {
                    Some(error) => Err(error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned()),
                    None => Ok(message
                        .get_mut("result")
                        .map(Value::take)
                        .unwrap_or(Value::Null)),
                };
                let _ = reply.send(answer);
            }
            return;
        }
        let (Some(method), Some(session)) = (
            message.get("method").and_then(Value::as_str),
            message.get("sessionId").and_then(Value::as_str),
        ) else {
            return;
        };
        let routes = self.routes.lock().expect("not poisoned");
        if let Some(events) = routes.sessions.get(session) {
            let event = Event {
                method: method.to_owned(),
                params: message
                    .get_mut("params")
                    .map(Value::take)
                    .unwrap_or_default(),
            };
            let _ = events.send(event);
        }
    }
}

/// Read one NUL-terminated message into `message`; false at the end of the stream or when the
/// message passes [`MAX_MESSAGE`].
async fn read_message(reader: &mut (impl AsyncBufReadExt + Unpin), message: &mut Vec<u8>) -> bool {
    loop {
        let Ok(buffer) = reader.fill_buf().await else {
            return false;
        };
        if buffer.is_empty() {
            return false;
        }
        let (taken, done) = match buffer.iter().position(|&b| b == 0) {
            Some(end) => {
                message.extend_from_slice(&buffer[..end]);
                (end + 1, true)
            }
            None => {
                message.extend_from_slice(buffer);
                (buffer.len(), false)
            }
        };
        reader.consume(taken);
        if message.len() > MAX_MESSAGE {
            tracing::warn!(
                bytes = message.len(),
                "the browser sent an oversized DevTools message"
            );
            return false;
        }
        if done {
            return true;
        }
    }
}
