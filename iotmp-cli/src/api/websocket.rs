//! WebSocket streams (spec §8.4): one resource per socket, or several driven by JSON control
//! frames.
//!
//! The HTTP handshake is hyper's (a `101` response, then [`hyper::upgrade::on`]); the WebSocket
//! protocol on the upgraded connection is `async-tungstenite`'s. Each socket is one task that
//! waits for the first of: a client frame, values in its sink queues, a subscription outcome
//! (multi-resource only), or the shutdown. Waiting is fair (`race`), so a busy sink cannot starve
//! the client's frames, and one wake-up sends at most a bounded batch before looking again.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{self, Message};
use base64::Engine as _;
use futures_lite::StreamExt as _;
use futures_lite::future::{poll_fn, race};
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value as Json, json};

use iotmp_proto::Value;
use iotmp_proto::json::value::write_json;

use super::errors::ApiError;
use super::gate::Gate;
use super::json::{ApiBody, empty};
use super::routes::header_has_token;
use super::server::{App, ConnContext};
use super::sink::{SinkReceiver, Wakeup};
use super::subscribe::{SinkGuard, establish, start};

/// Largest message a client may send; a bigger one closes the socket (1009). Control frames
/// have their own, smaller limit, answered with an error frame.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// tungstenite reads in chunks of this size (its default, 128 KiB, is a lot per idle socket).
const READ_CHUNK: usize = 8 * 1024;

pub(crate) type Ws = WebSocketStream<HyperIo>;

/// True when the request asks for a WebSocket (`Connection: upgrade`, `Upgrade: websocket`).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, CONNECTION, "upgrade")
        && header_has_token(headers, UPGRADE, "websocket")
}

/// Checks the rest of the client handshake (RFC 6455 §4.2.1) and computes
/// `Sec-WebSocket-Accept`; a bad handshake is 400.
pub(crate) fn accept_key(headers: &HeaderMap) -> Result<String, ApiError> {
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(ApiError::bad_request(
            "unsupported WebSocket version (expected Sec-WebSocket-Version: 13)",
        ));
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| {
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .is_ok_and(|nonce| nonce.len() == 16)
        })
        .ok_or_else(|| ApiError::bad_request("missing or malformed Sec-WebSocket-Key"))?;
    Ok(tungstenite::handshake::derive_accept_key(key))
}

pub(crate) fn switching_protocols(accept: &str) -> Result<Response<ApiBody>, ApiError> {
    let accept = HeaderValue::from_str(accept)
        .map_err(|_| ApiError::internal("cannot build the WebSocket handshake"))?;
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// Spawns the socket's task once hyper hands over the connection. The task keeps the
/// connection's slot; if the upgrade fails it ends, dropping (and so removing) its sinks.
fn on_upgrade<F, Fut>(ctx: &ConnContext, request: &mut Request<Incoming>, run: F)
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    on_upgrade_with(ctx, request, config(), run);
}

/// [`on_upgrade`] with the WebSocket limits of `config` (the device transport allows bigger
/// messages than the API's streams).
pub(crate) fn on_upgrade_with<F, Fut>(
    ctx: &ConnContext,
    request: &mut Request<Incoming>,
    config: WebSocketConfig,
    run: F,
) where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let upgrade = hyper::upgrade::on(request);
    let slot = Arc::clone(&ctx.slot);
    smol::spawn(async move {
        let _slot = slot;
        match upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(HyperIo(upgraded), Role::Server, Some(config))
                        .await;
                run(ws).await;
            }
            Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
        }
    })
    .detach();
}

/// Single-resource WebSocket: subscribe, wait for the device (§8.4), answer 101, then one text
/// frame per value holding the value's JSON. Client frames other than close are ignored.
pub(crate) async fn single(
    ctx: ConnContext,
    request: &mut Request<Incoming>,
    accept: String,
    user: String,
    device: String,
    resource: String,
    interval_s: u32,
) -> Result<Response<ApiBody>, ApiError> {
    let app = Arc::clone(&ctx.app);
    let wakeup = Wakeup::new();
    let started = start(&app, &wakeup, &user, &device, &resource, interval_s);
    // On failure the guard drops here and removes the sink.
    establish(started.ready, app.limits.answer_timeout).await?;
    let response = switching_protocols(&accept)?;
    let (guard, values) = (started.guard, started.values);
    tracing::debug!(
        sink = guard.sink(),
        "WebSocket for {user}/{device}/{resource}"
    );
    on_upgrade(&ctx, request, move |ws| async move {
        let socket = Socket::new(ws, app, wakeup);
        socket.run_single(guard, values).await;
    });
    Ok(response)
}

/// Multi-resource WebSocket: answer 101 at once; subscriptions come as control frames.
pub(crate) fn multi(
    ctx: ConnContext,
    request: &mut Request<Incoming>,
    accept: String,
    user: String,
    device: String,
) -> Result<Response<ApiBody>, ApiError> {
    let response = switching_protocols(&accept)?;
    let app = Arc::clone(&ctx.app);
    tracing::debug!("multi-resource WebSocket for {user}/{device}");
    on_upgrade(&ctx, request, move |ws| async move {
        let socket = Socket::new(ws, app, Wakeup::new());
        socket.run_multi(user, device).await;
    });
    Ok(response)
}

/// What a socket task waits for.
enum Event {
    Client(Option<Result<Message, tungstenite::Error>>),
    Values,
    Ready(Outcome),
    Shutdown,
}

/// A multi-resource subscription's outcome: resource, generation, result.
type Outcome = (String, u64, Result<(), ApiError>);

/// A sink of a multi-resource socket.
#[derive(Debug)]
struct MultiSink {
    /// Tells this subscription's outcome from the one of an earlier subscription of the same
    /// resource on this socket.
    generation: u64,
    values: SinkReceiver,
    /// Removes the sink when this entry is dropped.
    _guard: SinkGuard,
    /// Waits for the outcome; dropping it (the entry was replaced or removed) cancels the wait.
    pending: Option<smol::Task<()>>,
}

/// The wait for the shutdown, made once per socket: a wait made afresh at each wake-up would
/// join and leave the shutdown's listener list (shared by every socket) once per value.
type ShutdownWait = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Socket {
    ws: Ws,
    app: Arc<App>,
    wakeup: Wakeup,
    /// Polls the client's read only when the socket woke it: most wake-ups are for values.
    client_gate: Gate,
    shutdown: ShutdownWait,
    /// The shutdown wait finished (it must not be polled again).
    shut_down: bool,
}

impl Socket {
    fn new(ws: Ws, app: Arc<App>, wakeup: Wakeup) -> Self {
        let shutdown = app.shutdown.clone();
        Socket {
            ws,
            app,
            wakeup,
            client_gate: Gate::new(),
            shutdown: Box::pin(async move { shutdown.wait().await }),
            shut_down: false,
        }
    }

    /// The next event; `outcomes` is only given on multi-resource sockets.
    async fn next(&mut self, outcomes: Option<&async_channel::Receiver<Outcome>>) -> Event {
        let Socket {
            ws,
            wakeup,
            client_gate,
            shutdown,
            shut_down,
            ..
        } = self;
        if *shut_down {
            return Event::Shutdown;
        }
        let client = async { Event::Client(client_gate.wrap(ws.next()).await) };
        let values = async {
            wakeup.wait().await;
            Event::Values
        };
        let shutdown = async {
            shutdown.as_mut().await;
            *shut_down = true;
            Event::Shutdown
        };
        let ready = async {
            match outcomes {
                Some(rx) => match rx.recv().await {
                    Ok(outcome) => Event::Ready(outcome),
                    // The socket holds a sender: never closed while it runs.
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        race(race(client, values), race(ready, shutdown)).await
    }

    /// Sends one text frame.
    async fn send(&mut self, json: &Json) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(json.to_string())).await
    }

    /// Queues one text frame of JSON text written by [`write_json`], without flushing:
    /// tungstenite keeps it in its write buffer (up to `write_buffer_size`), so that the frames
    /// of one batch reach the socket in one write at [`Socket::flush`].
    async fn feed_text(&mut self, text: Vec<u8>) -> Result<(), tungstenite::Error> {
        // The writer only writes UTF-8; the lossy path is never taken.
        let text = String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        poll_fn(|cx| Sink::poll_ready(Pin::new(&mut self.ws), cx)).await?;
        Sink::start_send(Pin::new(&mut self.ws), Message::text(text))
    }

    /// Writes every queued frame out.
    async fn flush(&mut self) -> Result<(), tungstenite::Error> {
        poll_fn(|cx| Sink::poll_flush(Pin::new(&mut self.ws), cx)).await
    }

    /// Closes with `code` (errors ignored: the socket is going away anyway).
    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }

    /// Handles what ends a socket; true when the loop must stop.
    async fn ends(&mut self, event: &Event) -> bool {
        match event {
            Event::Client(None) => true,
            Event::Client(Some(Err(tungstenite::Error::Capacity(_)))) => {
                self.close(CloseCode::Size, "message too big").await;
                true
            }
            Event::Client(Some(Err(e))) => {
                tracing::debug!("WebSocket read: {e}");
                true
            }
            Event::Client(Some(Ok(Message::Close(_)))) => {
                // Sends tungstenite's reply to the client's close (the send itself is refused).
                let _ = self.ws.close(None).await;
                true
            }
            Event::Shutdown => {
                self.close(CloseCode::Away, "server shutting down").await;
                true
            }
            _ => false,
        }
    }

    async fn run_single(mut self, guard: SinkGuard, mut values: SinkReceiver) {
        let _guard = guard;
        let batch = self.app.limits.sink_queue.max(1);
        loop {
            let event = self.next(None).await;
            if self.ends(&event).await {
                break;
            }
            if let Event::Values = event {
                // The value's JSON, nothing else (§8.4); the batch goes out in one write.
                let mut sent = 0;
                while let Some(value) = values.try_recv() {
                    if self.feed_text(value_text(&value.value)).await.is_err() {
                        return;
                    }
                    sent += 1;
                    if sent == batch {
                        // Serve the client side, then come back for the rest.
                        self.wakeup.poke();
                        break;
                    }
                }
                if sent > 0 && self.flush().await.is_err() {
                    return;
                }
                values.log_drops();
            }
        }
    }

    async fn run_multi(mut self, user: String, device: String) {
        let mut sinks: BTreeMap<String, MultiSink> = BTreeMap::new();
        let capacity = self.app.limits.max_sinks_per_socket.max(1);
        let (outcome_tx, outcome_rx) = async_channel::bounded::<Outcome>(capacity);
        let mut generation = 0u64;
        loop {
            let event = self.next(Some(&outcome_rx)).await;
            if self.ends(&event).await {
                break;
            }
            let result = match event {
                Event::Client(Some(Ok(Message::Text(text)))) => {
                    let limits = &self.app.limits;
                    match parse_control(&text, limits.max_control_frame, limits.max_interval_s) {
                        Err((resource, error)) => self.send(&error_frame(resource, &error)).await,
                        Ok(control) if !control.enabled => {
                            sinks.remove(&control.resource);
                            Ok(())
                        }
                        Ok(control) => {
                            if !sinks.contains_key(&control.resource) && sinks.len() >= capacity {
                                let error = format!(
                                    "too many subscriptions on this socket (max {capacity})"
                                );
                                self.send(&error_frame(Some(control.resource), &error))
                                    .await
                            } else {
                                generation += 1;
                                // An existing sink leaves before the new one joins (§8.4).
                                sinks.remove(&control.resource);
                                self.subscribe(
                                    &user,
                                    &device,
                                    control,
                                    generation,
                                    &outcome_tx,
                                    &mut sinks,
                                );
                                Ok(())
                            }
                        }
                    }
                }
                Event::Client(Some(Ok(Message::Binary(_)))) => {
                    self.send(&error_frame(None, "control frames are JSON text frames"))
                        .await
                }
                Event::Ready((resource, generation, outcome)) => {
                    let current = sinks
                        .get_mut(&resource)
                        .filter(|s| s.generation == generation);
                    match (current, outcome) {
                        (Some(sink), Ok(())) => {
                            // Finished: nothing left to cancel.
                            if let Some(task) = sink.pending.take() {
                                task.detach();
                            }
                            Ok(())
                        }
                        (Some(_), Err(e)) => {
                            // The failed subscription is dropped; the socket stays open.
                            sinks.remove(&resource);
                            self.send(&error_frame(Some(resource), &e.text)).await
                        }
                        // An outcome of a subscription that was replaced or removed meanwhile.
                        (None, _) => Ok(()),
                    }
                }
                Event::Values => self.send_values(&mut sinks).await,
                // Pings are answered by tungstenite; pongs and raw frames need nothing.
                _ => Ok(()),
            };
            if result.is_err() {
                break;
            }
        }
    }

    /// Registers the sink of a control frame and waits for its outcome in a task of its own.
    fn subscribe(
        &self,
        user: &str,
        device: &str,
        control: Control,
        generation: u64,
        outcomes: &async_channel::Sender<Outcome>,
        sinks: &mut BTreeMap<String, MultiSink>,
    ) {
        let started = start(
            &self.app,
            &self.wakeup,
            user,
            device,
            &control.resource,
            control.interval_s,
        );
        let (ready, timeout) = (started.ready, self.app.limits.answer_timeout);
        let (tx, resource) = (outcomes.clone(), control.resource.clone());
        let pending = smol::spawn(async move {
            let outcome = establish(ready, timeout).await;
            let _ = tx.send((resource, generation, outcome)).await;
        });
        sinks.insert(
            control.resource,
            MultiSink {
                generation,
                values: started.values,
                _guard: started.guard,
                pending: Some(pending),
            },
        );
    }

    /// Sends queued values as data frames, one sink after the other (round robin), at most one
    /// batch per wake-up.
    async fn send_values(
        &mut self,
        sinks: &mut BTreeMap<String, MultiSink>,
    ) -> Result<(), tungstenite::Error> {
        let batch = self.app.limits.sink_queue.max(1);
        let mut sent = 0;
        loop {
            let mut any = false;
            for (resource, sink) in sinks.iter_mut() {
                let Some(value) = sink.values.try_recv() else {
                    continue;
                };
                any = true;
                let frame = data_frame(resource, &value.value, value.ts_unix_ms);
                self.feed_text(frame).await?;
                sent += 1;
            }
            if !any {
                break;
            }
            if sent >= batch {
                self.wakeup.poke();
                break;
            }
        }
        if sent > 0 {
            self.flush().await?;
        }
        for sink in sinks.values_mut() {
            sink.values.log_drops();
        }
        Ok(())
    }
}

/// A single-resource data frame: the value's JSON, nothing else (§8.4).
fn value_text(value: &Value) -> Vec<u8> {
    let mut text = Vec::with_capacity(32);
    write_json(value, &mut text);
    text
}

/// A multi-resource data frame, `{"resource": <name>, "value": <json>, "ts": <unix ms>}`,
/// written in one pass.
fn data_frame(resource: &str, value: &Value, ts_unix_ms: u64) -> Vec<u8> {
    let mut text = Vec::with_capacity(64 + resource.len());
    text.extend_from_slice(b"{\"resource\":");
    // Writing a string into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut text, resource);
    text.extend_from_slice(b",\"value\":");
    write_json(value, &mut text);
    text.extend_from_slice(b",\"ts\":");
    text.extend_from_slice(ts_unix_ms.to_string().as_bytes());
    text.push(b'}');
    text
}

/// `{"resource": <name or null>, "error": <text>}`.
fn error_frame(resource: Option<String>, error: &str) -> Json {
    json!({ "resource": resource, "error": error })
}

/// A multi-resource control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Control {
    resource: String,
    interval_s: u32,
    enabled: bool,
}

/// Parses `{"resource": "<name>", "interval": <seconds>, "enabled": <bool>}`; `interval`
/// defaults to 0 and `enabled` to true (a `null` counts as absent); other keys are ignored.
/// Errors carry the resource when it is known, for the error frame.
fn parse_control(
    text: &str,
    max: usize,
    max_interval: u32,
) -> Result<Control, (Option<String>, String)> {
    if text.len() > max {
        return Err((None, format!("control frame above {max} bytes")));
    }
    let json: Json =
        serde_json::from_str(text).map_err(|e| (None, format!("invalid JSON: {e}")))?;
    let Json::Object(fields) = json else {
        return Err((None, "a control frame is a JSON object".to_owned()));
    };
    let resource = match fields.get("resource") {
        Some(Json::String(r)) if !r.is_empty() => r.clone(),
        _ => return Err((None, "\"resource\" must be a non-empty string".to_owned())),
    };
    let interval_s = match fields.get("interval") {
        None | Some(Json::Null) => 0,
        Some(Json::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n <= max_interval => n,
            _ => {
                return Err((
                    Some(resource),
                    format!("bad interval {n}: expected whole seconds 0..={max_interval}"),
                ));
            }
        },
        Some(_) => {
            return Err((Some(resource), "\"interval\" must be a number".to_owned()));
        }
    };
    let enabled = match fields.get("enabled") {
        None | Some(Json::Null) => true,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err((Some(resource), "\"enabled\" must be a boolean".to_owned())),
    };
    Ok(Control {
        resource,
        interval_s,
        enabled,
    })
}

/// hyper's upgraded connection as a `futures-io` stream, which is what `async-tungstenite`
/// reads and writes (`smol-hyper` only adapts the other direction).
pub(crate) struct HyperIo(Upgraded);

impl std::fmt::Debug for HyperIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HyperIo")
    }
}

impl AsyncRead for HyperIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = hyper::rt::ReadBuf::new(buf);
        match hyper::rt::Read::poll_read(Pin::new(&mut self.0), cx, read.unfilled()) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for HyperIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.0), cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames() {
        let ok = |text: &str| parse_control(text, 4096, 86400).unwrap();
        assert_eq!(
            ok(r#"{"resource":"temp"}"#),
            Control {
                resource: "temp".into(),
                interval_s: 0,
                enabled: true
            }
        );
        assert_eq!(
            ok(r#"{"resource":"a/b","interval":5,"enabled":false,"x":1}"#),
            Control {
                resource: "a/b".into(),
                interval_s: 5,
                enabled: false
            }
        );
        let err = |text: &str| parse_control(text, 4096, 86400).unwrap_err();
        assert_eq!(err("nope").0, None);
        assert_eq!(err("[1]").0, None);
        assert_eq!(err(r#"{"interval":5}"#).0, None);
        assert_eq!(err(r#"{"resource":""}"#).0, None);
        for bad in [
            r#"{"resource":"t","interval":-1}"#,
            r#"{"resource":"t","interval":1.5}"#,
            r#"{"resource":"t","interval":86401}"#,
            r#"{"resource":"t","interval":"5"}"#,
            r#"{"resource":"t","enabled":"yes"}"#,
        ] {
            assert_eq!(err(bad).0.as_deref(), Some("t"), "{bad}");
        }
        let big = format!(r#"{{"resource":"{}"}}"#, "x".repeat(5000));
        assert!(err(&big).1.contains("4096"));
    }

    #[test]
    fn data_frames_are_the_json_of_the_spec() {
        let mut map = iotmp_proto::value::Map::new();
        map.insert("t", Value::F32(21.5));
        map.insert("s", Value::from("a\"b"));
        let value = Value::Map(map);
        let frame = data_frame("te\"mp", &value, 1_767_225_600_123);
        let expected = json!({
            "resource": "te\"mp",
            "value": iotmp_proto::json::value::to_json(&value),
            "ts": 1_767_225_600_123u64,
        });
        assert_eq!(String::from_utf8(frame).unwrap(), expected.to_string());
        assert_eq!(
            String::from_utf8(value_text(&value)).unwrap(),
            r#"{"t":21.5,"s":"a\"b"}"#
        );
    }

    #[test]
    fn handshake() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        assert_eq!(accept_key(&h).unwrap_err().status.as_u16(), 400);
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
        assert_eq!(accept_key(&h).unwrap_err().status.as_u16(), 400);
        // RFC 6455 §1.3's example.
        h.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(accept_key(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
