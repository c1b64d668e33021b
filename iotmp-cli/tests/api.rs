//! The HTTP API of spec chapter 8 over real loopback sockets, with a fake backend: every
//! endpoint and status code, the value ↔ JSON mapping, WebSockets (single and multi-resource),
//! Server-Sent Events, tokens, slow consumers, shutdown and HTTPS.
//!
//! Clients are deliberately plain: raw HTTP/1.1 over `std::net::TcpStream` and the blocking
//! `tungstenite` client, each with a read timeout, so every wait is bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotmp_cli::api::{
    self, ApiLimits, Backend, BoxFuture, BucketRecord, DataFailure, DeviceInfo, DeviceStatus,
    NewRecorder, RecordQuery, RecorderInfo, Shutdown, SinkSender, SinkValue, SubscribeFailure,
    Subscription,
};
use iotmp_proto::broker::RequestFailure;
use iotmp_proto::control::RequestResult;
use iotmp_proto::dialect::ErrorInfo;
use iotmp_proto::fanout::SinkId;
use iotmp_proto::session::StreamEnd;
use iotmp_proto::{Answer, CommandError, Dialect, Map, Value};
use serde_json::{Value as Json, json};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use common::server::{Reply, Sse, http, parse_reply, request_head};

/// Every blocking read of a test client gives up after this.
const TIMEOUT: Duration = Duration::from_secs(10);

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

// ----- the fake backend -----------------------------------------------------------------------

/// A sink the fake holds.
struct FakeSink {
    device: String,
    resource: String,
    sink: SinkId,
    interval_s: u32,
    values: SinkSender,
}

/// Users alice (devices dev01 online 2026, dev00 offline, zeta online 2020) and bob (bobdev).
/// RUN answers depend on the resource name; see [`Fake::answer`].
#[derive(Default)]
struct Fake {
    sinks: Mutex<Vec<FakeSink>>,
    unsubscribed: Mutex<Vec<(String, SinkId)>>,
    inputs: Mutex<Vec<(String, Option<Value>)>>,
    next_sink: AtomicU64,
    /// Recorders by owner.
    recorders: Mutex<Vec<(String, RecorderInfo)>>,
    next_recorder: AtomicU64,
}

fn ok(payload: Option<Value>) -> RequestResult {
    Ok(Answer::Ok {
        params: None,
        payload,
    })
}

fn device_error(code: Option<u64>, text: Option<&str>) -> ErrorInfo {
    ErrorInfo {
        code,
        has_payload: code.is_some() || text.is_some(),
        text: text.map(str::to_owned),
    }
}

/// An ERROR whose payload holds neither a code nor a message (spec §8.5: 500, not 404).
fn device_error_empty_payload() -> ErrorInfo {
    ErrorInfo {
        code: None,
        text: None,
        has_payload: true,
    }
}

impl Fake {
    fn answer(resource: &str, input: Option<Value>) -> Option<RequestResult> {
        Some(match resource {
            "temp" => ok(Some(Value::F32(22.0))),
            "float" => ok(Some(Value::F32(21.5))),
            "raw" => ok(Some(Value::Bytes(vec![0, 1, 2, 250, 251]))),
            "big" => ok(Some(Value::UInt(u64::MAX))),
            "neg" => ok(Some(Value::NegInt(1 << 63))),
            "nan" => ok(Some(Value::F64(f64::NAN))),
            "action" => ok(None),
            "echo" => ok(input),
            "missing" => Ok(Answer::Error(device_error(None, None))),
            "opaque" => Ok(Answer::Error(device_error_empty_payload())),
            "broken" => Ok(Answer::Error(device_error(None, Some("sensor failed")))),
            "odd-code" => Ok(Answer::Error(device_error(Some(7), Some("odd")))),
            "busy" => Ok(Answer::Error(device_error(Some(503), Some("busy")))),
            "teapot" => Ok(Answer::Error(device_error(Some(418), None))),
            "limit" => Err(RequestFailure::Refused(CommandError::TooManyRequests)),
            "slow" => Err(RequestFailure::Timeout),
            "gone" => Err(RequestFailure::ConnectionLost),
            "stopped" => return None,
            // Anything else names itself, so that paths can be checked.
            other => {
                let mut map = Map::new();
                map.insert("resource", other);
                ok(Some(Value::Map(map)))
            }
        })
    }

    /// Pushes `value` to every sink of `resource`; returns how many got it.
    fn push(&self, resource: &str, value: Value, ts: u64) -> usize {
        let sinks = self.sinks.lock().unwrap();
        sinks
            .iter()
            .filter(|s| s.resource == resource)
            .filter(|s| {
                s.values.send(SinkValue {
                    value: value.clone(),
                    ts_unix_ms: ts,
                })
            })
            .count()
    }

    fn live_sinks(&self, resource: &str) -> Vec<(SinkId, u32)> {
        let gone = self.unsubscribed.lock().unwrap().clone();
        self.sinks
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.resource == resource && !gone.iter().any(|(_, id)| *id == s.sink))
            .map(|s| (s.sink, s.interval_s))
            .collect()
    }

    fn unsubscribed(&self, resource: &str) -> usize {
        self.unsubscribed
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == resource)
            .count()
    }

    fn sender(&self, resource: &str) -> SinkSender {
        let sinks = self.sinks.lock().unwrap();
        sinks
            .iter()
            .rev()
            .find(|s| s.resource == resource)
            .unwrap()
            .values
            .clone()
    }
}

impl Backend for Fake {
    fn user_for_token(&self, token: &str) -> Option<String> {
        match token {
            ALICE => Some("alice".into()),
            BOB => Some("bob".into()),
            _ => None,
        }
    }

    fn devices(&self, user: &str) -> Vec<DeviceInfo> {
        let info = |device: &str, connected, dialect, at| DeviceInfo {
            device: device.into(),
            connected,
            dialect,
            connected_at_unix_ms: at,
        };
        match user {
            // Unsorted on purpose, and an offline device with stale connection data.
            "alice" => vec![
                info(
                    "zeta",
                    true,
                    Some(Dialect::Draft2020),
                    Some(1_700_000_000_123),
                ),
                info(
                    "dev01",
                    true,
                    Some(Dialect::Draft2026),
                    Some(1_700_000_000_000),
                ),
                info("dev00", false, Some(Dialect::Draft2026), Some(5)),
            ],
            "bob" => vec![info("bobdev", true, Some(Dialect::Draft2026), Some(1))],
            _ => Vec::new(),
        }
    }

    fn device_status(&self, user: &str, device: &str) -> DeviceStatus {
        match (user, device) {
            ("alice", "dev01" | "zeta") | ("bob", "bobdev") => DeviceStatus::Online,
            ("alice", "dev00") => DeviceStatus::Offline,
            _ => DeviceStatus::Unknown,
        }
    }

    fn run(
        &self,
        _user: &str,
        _device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> BoxFuture<Option<RequestResult>> {
        self.inputs
            .lock()
            .unwrap()
            .push((resource.to_owned(), input.clone()));
        if resource == "hang" {
            return Box::pin(std::future::pending());
        }
        Box::pin(std::future::ready(Fake::answer(resource, input)))
    }

    fn describe(
        &self,
        _user: &str,
        _device: &str,
        resource: Option<&str>,
    ) -> BoxFuture<Option<RequestResult>> {
        let answer = match resource {
            None => {
                let mut fns = Map::new();
                for (name, f) in [("led", 2u64), ("temp", 3)] {
                    let mut d = Map::new();
                    d.insert("fn", f);
                    fns.insert(name, Value::Map(d));
                }
                ok(Some(Value::Map(fns)))
            }
            Some(_) => ok(Some(Value::Map(Map::new()))),
        };
        Box::pin(std::future::ready(Some(answer)))
    }

    fn subscribe(
        &self,
        _user: &str,
        device: &str,
        resource: &str,
        interval_s: u32,
        values: SinkSender,
    ) -> Subscription {
        let sink = self.next_sink.fetch_add(1, Ordering::Relaxed) + 1;
        self.sinks.lock().unwrap().push(FakeSink {
            device: device.to_owned(),
            resource: resource.to_owned(),
            sink,
            interval_s,
            values,
        });
        let refused = |code, text| {
            Subscription::failed(
                sink,
                SubscribeFailure::Device(StreamEnd::Refused(device_error(code, text))),
            )
        };
        match resource {
            "unstreamable" => refused(Some(400), Some("resource cannot be streamed")),
            "missing" => refused(None, None),
            "timeout" => Subscription::failed(sink, SubscribeFailure::Device(StreamEnd::TimedOut)),
            "limit" => {
                Subscription::failed(sink, SubscribeFailure::Limit("too many streams".into()))
            }
            "stuck" => Subscription {
                sink,
                ready: Box::pin(std::future::pending()),
            },
            // The device answers the START_STREAM a little later.
            "delayed" => Subscription {
                sink,
                ready: Box::pin(async {
                    async_io::Timer::after(Duration::from_millis(200)).await;
                    Ok(())
                }),
            },
            _ => Subscription::ready(sink),
        }
    }

    fn unsubscribe(&self, _user: &str, _device: &str, resource: &str, sink: SinkId) {
        self.unsubscribed
            .lock()
            .unwrap()
            .push((resource.to_owned(), sink));
    }

    /// alice's bucket `b1` holds values 1, 2, 3 at ts 10, 20, 30; bucket `slow` never answers.
    fn records(
        &self,
        user: &str,
        bucket: &str,
        query: RecordQuery,
    ) -> BoxFuture<Result<Vec<BucketRecord>, DataFailure>> {
        let answer = match (user, bucket) {
            ("alice", "b1") => Ok([(10, 1), (20, 2), (30, 3)]
                .into_iter()
                .filter(|(ts, _)| query.from.is_none_or(|from| *ts >= from))
                .filter(|(ts, _)| query.to.is_none_or(|to| *ts < to))
                .take(query.limit as usize)
                .map(|(ts, v)| BucketRecord {
                    ts_unix_ms: ts,
                    value: json!({ "v": v }),
                })
                .collect()),
            ("alice", "slow") => return Box::pin(std::future::pending()),
            ("alice", "broken") => Err(DataFailure::Failed("disk on fire".into())),
            _ => Err(DataFailure::NotFound(api::UNKNOWN_BUCKET.into())),
        };
        Box::pin(std::future::ready(answer))
    }

    fn recorders(&self, user: &str) -> BoxFuture<Result<Vec<RecorderInfo>, DataFailure>> {
        let list = self
            .recorders
            .lock()
            .unwrap()
            .iter()
            .filter(|(owner, _)| owner == user)
            .map(|(_, r)| r.clone())
            .collect();
        Box::pin(std::future::ready(Ok(list)))
    }

    fn add_recorder(
        &self,
        user: &str,
        recorder: NewRecorder,
    ) -> BoxFuture<Result<RecorderInfo, DataFailure>> {
        let answer = if self.device_status(user, &recorder.device) == DeviceStatus::Unknown {
            Err(DataFailure::NotFound("unknown device".into()))
        } else if recorder.bucket.contains(' ') {
            Err(DataFailure::Invalid("bad bucket name".into()))
        } else {
            let id = self.next_recorder.fetch_add(1, Ordering::Relaxed) + 1;
            let info = RecorderInfo {
                id: i64::try_from(id).unwrap(),
                device: recorder.device,
                resource: recorder.resource,
                interval_s: recorder.interval_s,
                bucket: recorder.bucket,
            };
            self.recorders
                .lock()
                .unwrap()
                .push((user.to_owned(), info.clone()));
            Ok(info)
        };
        Box::pin(std::future::ready(answer))
    }

    fn remove_recorder(&self, user: &str, id: i64) -> BoxFuture<Result<(), DataFailure>> {
        let mut recorders = self.recorders.lock().unwrap();
        let before = recorders.len();
        recorders.retain(|(owner, r)| !(owner == user && r.id == id));
        let answer = if recorders.len() < before {
            Ok(())
        } else {
            Err(DataFailure::NotFound(api::UNKNOWN_RECORDER.into()))
        };
        Box::pin(std::future::ready(answer))
    }
}

// ----- the server under test --------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    fake: Arc<Fake>,
    shutdown: Shutdown,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    fn start() -> Self {
        Server::with(ApiLimits::default(), None)
    }

    fn with(limits: ApiLimits, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = async_net::TcpListener::try_from(listener).unwrap();
        let fake = Arc::new(Fake::default());
        let shutdown = Shutdown::new();
        let backend: Arc<dyn Backend> = fake.clone();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            smol::block_on(api::serve(listener, tls, backend, limits, stop))
        });
        Server {
            addr,
            fake,
            shutdown,
            thread: Some(thread),
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http(self.addr, "GET", path, &headers, None)
    }

    fn post(&self, path: &str, token: &str, body: &[u8]) -> Reply {
        let auth = format!("Bearer {token}");
        http(
            self.addr,
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        )
    }

    /// Stops the server and checks that `serve` returns in bounded time.
    fn stop(mut self) {
        self.shutdown.trigger();
        let thread = self.thread.take().unwrap();
        let started = Instant::now();
        while !thread.is_finished() {
            assert!(
                started.elapsed() < TIMEOUT,
                "serve did not return after shutdown"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Polls `condition` every 10 ms for at most [`TIMEOUT`].
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

const DEV01: &str = "/v3/users/alice/devices/dev01/resources";

fn resource(name: &str) -> String {
    format!("{DEV01}/{name}")
}

// ----- WebSocket and SSE clients -----------------------------------------------------------------

type Client = WebSocket<TcpStream>;

/// Opens a WebSocket; `Err(status)` when the server refused the upgrade.
fn websocket(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Client, (u16, Json)> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tungstenite::client(request, stream) {
        Ok((ws, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Json::Null);
            Err((response.status().as_u16(), json))
        }
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// The next text frame (pings and pongs skipped).
fn next_text(ws: &mut Client) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn next_json(ws: &mut Client) -> Json {
    serde_json::from_str(&next_text(ws)).unwrap()
}

fn send_json(ws: &mut Client, json: &Json) {
    ws.send(Message::text(json.to_string())).unwrap();
}

// ----- §8.2: list, DESCRIBE, RUN ---------------------------------------------------------------

#[test]
fn device_list_is_sorted_with_nulls_while_offline() {
    let server = Server::start();
    let reply = server.get("/v3/users/alice/devices", Some(ALICE));
    assert_eq!(
        reply.ok_text(),
        r#"[{"device":"dev00","connected":false,"dialect":null,"connected_at":null},{"device":"dev01","connected":true,"dialect":"2026","connected_at":1700000000000},{"device":"zeta","connected":true,"dialect":"2020","connected_at":1700000000123}]"#
    );
    server.stop();
}

#[test]
fn describe_returns_the_payload() {
    let server = Server::start();
    let reply = server.get(DEV01, Some(ALICE));
    assert_eq!(reply.ok_text(), r#"{"led":{"fn":2},"temp":{"fn":3}}"#);
}

#[test]
fn run_with_get_and_post() {
    let server = Server::start();
    // GET: no input; an integral f32 keeps its fraction.
    assert_eq!(server.get(&resource("temp"), Some(ALICE)).ok_text(), "22.0");
    assert_eq!(
        server.get(&resource("float"), Some(ALICE)).ok_text(),
        "21.5"
    );
    // An OK without payload is null.
    assert_eq!(
        server.get(&resource("action"), Some(ALICE)).ok_text(),
        "null"
    );
    // POST: the body is the input; empty body = no input.
    let reply = server.post(
        &resource("echo"),
        ALICE,
        br#"{"on":true,"level":22.0,"x":23.5}"#,
    );
    assert_eq!(reply.ok_text(), r#"{"on":true,"level":22,"x":23.5}"#);
    assert_eq!(server.post(&resource("echo"), ALICE, b"").ok_text(), "null");
    let inputs = server.fake.inputs.lock().unwrap().clone();
    let echoes: Vec<&Option<Value>> = inputs
        .iter()
        .filter(|(r, _)| r == "echo")
        .map(|(_, i)| i)
        .collect();
    let mut expected = Map::new();
    expected.insert("on", true);
    expected.insert("level", Value::UInt(22));
    expected.insert("x", Value::F32(23.5));
    assert_eq!(echoes, [&Some(Value::Map(expected)), &None]);
    assert!(inputs.contains(&("temp".to_owned(), None)));
}

#[test]
fn values_map_to_json_as_in_8_3() {
    let server = Server::start();
    let get = |name: &str| server.get(&resource(name), Some(ALICE)).ok_text();
    assert_eq!(get("raw"), r#""AAEC+vs=""#);
    assert_eq!(get("big"), "18446744073709551615");
    assert_eq!(get("neg"), "-9223372036854775808");
    assert_eq!(get("nan"), "null");
    // JSON -> value: integers stay exact up to the ends of the range.
    let echo = |body: &str| server.post(&resource("echo"), ALICE, body.as_bytes());
    assert_eq!(
        echo("18446744073709551615").ok_text(),
        "18446744073709551615"
    );
    assert_eq!(
        echo("-9223372036854775808").ok_text(),
        "-9223372036854775808"
    );
    assert_eq!(echo("2.72").ok_text(), "2.72");
    let inputs = server.fake.inputs.lock().unwrap().clone();
    assert!(inputs.contains(&("echo".to_owned(), Some(Value::UInt(u64::MAX)))));
    assert!(inputs.contains(&("echo".to_owned(), Some(Value::NegInt(1 << 63)))));
    assert!(inputs.contains(&("echo".to_owned(), Some(Value::F64(2.72)))));
}

#[test]
fn bad_bodies_are_400() {
    let server = Server::start();
    let post = |body: &[u8]| server.post(&resource("echo"), ALICE, body);
    for body in [&b"{"[..], b"tru", b"1 2", b"\xff"] {
        let reply = post(body);
        assert_eq!(reply.status, 400, "{body:?}: {}", reply.text());
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON body")
        );
    }
    for body in ["18446744073709551616", "-9223372036854775809", "[1e400]"] {
        let reply = post(body.as_bytes());
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    // Nothing reached the device.
    assert!(server.fake.inputs.lock().unwrap().is_empty());
    // A body declared above 256 KiB is refused before it is read.
    let auth = format!("Bearer {ALICE}");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut head = request_head(
        "POST",
        &resource("echo"),
        &[("Authorization", &auth), ("Content-Length", "262145")],
    );
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_reply(&raw).assert_error(400, "request body above 262144 bytes");
    // Exactly the limit is fine.
    let mut big = vec![b' '; 256 * 1024];
    big[0] = b'1';
    assert_eq!(post(&big).ok_text(), "1");
}

#[test]
fn resource_paths_are_percent_decoded_per_segment() {
    let server = Server::start();
    let get = |path: &str| server.get(&resource(path), Some(ALICE)).json();
    assert_eq!(get("$fs/get/a.txt"), json!({ "resource": "$fs/get/a.txt" }));
    assert_eq!(
        get("%24fs/get%2Fsub/a%20b.txt"),
        json!({ "resource": "$fs/get/sub/a b.txt" })
    );
    assert_eq!(get("caf%C3%A9"), json!({ "resource": "café" }));
    let reply = server.get(&resource("bad%zz"), Some(ALICE));
    assert_eq!(reply.status, 400);
    // User and device segments are decoded too.
    let reply = server.get(
        "/v3/users/%61lice/devices/dev%301/resources/temp",
        Some(ALICE),
    );
    assert_eq!(reply.ok_text(), "22.0");
}

// ----- §8.1: authentication ---------------------------------------------------------------------

#[test]
fn tokens_401_and_403() {
    let server = Server::start();
    for reply in [
        server.get("/v3/users/alice/devices", None),
        server.get(&resource("temp"), Some("nope")),
        server.get(&format!("{}?authorization=nope", resource("temp")), None),
        http(
            server.addr,
            "GET",
            "/v3/users/alice/devices",
            &[("Authorization", "Basic YWxpY2U6eA==")],
            None,
        ),
    ] {
        assert_eq!(reply.status, 401, "{}", reply.text());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.json()["error"].is_string());
    }
    // Bob's token on alice's paths.
    let reply = server.get("/v3/users/alice/devices", Some(BOB));
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());
    let reply = server.get(&resource("temp"), Some(BOB));
    assert_eq!(reply.status, 403);
}

#[test]
fn query_token_and_header_precedence() {
    let server = Server::start();
    let path = format!("{}?authorization={ALICE}", resource("temp"));
    assert_eq!(server.get(&path, None).ok_text(), "22.0");
    // The header wins: bob's header with alice's query token is 403 on alice's path...
    assert_eq!(server.get(&path, Some(BOB)).status, 403);
    // ...and alice's header with bob's query token is fine.
    let path = format!("{}?authorization={BOB}", resource("temp"));
    assert_eq!(server.get(&path, Some(ALICE)).ok_text(), "22.0");
    // A percent-encoded query token is decoded.
    let path = format!(
        "{}?interval=1&authorization=alice%2Dtoken",
        resource("temp")
    );
    assert_eq!(server.get(&path, None).ok_text(), "22.0");
}

// ----- §8.1: the other statuses -------------------------------------------------------------------

#[test]
fn not_found_cases() {
    let server = Server::start();
    server
        .get("/v3/users/alice/devices/nope/resources/temp", Some(ALICE))
        .assert_error(404, "unknown device");
    server
        .get("/v3/users/alice/devices/nope/resources", Some(ALICE))
        .assert_error(404, "unknown device");
    server
        .get("/v3/users/alice/devices/dev00/resources/temp", Some(ALICE))
        .assert_error(404, "device offline");
    server
        .post("/v3/users/alice/devices/dev00/resources/temp", ALICE, b"1")
        .assert_error(404, "device offline");
    // A bare device ERROR (no code, no payload) is an unknown resource (§8.5).
    server
        .get(&resource("missing"), Some(ALICE))
        .assert_error(404, "unknown resource");
    // A connection that ended before the answer: the device is offline now.
    server
        .get(&resource("gone"), Some(ALICE))
        .assert_error(404, "device offline");
    for path in [
        "/",
        "/v2/users/alice/devices",
        "/v3/users/alice",
        "/v3/users/alice/devices/dev01",
        "/v3/users/alice/devices/dev01/resources/",
        "/iotmp",
    ] {
        server
            .get(path, Some(ALICE))
            .assert_error(404, "unknown route");
    }
}

#[test]
fn wrong_methods_are_405() {
    let server = Server::start();
    let auth = format!("Bearer {ALICE}");
    let headers = [("Authorization", auth.as_str())];
    let reply = http(server.addr, "PUT", &resource("temp"), &headers, Some(b"1"));
    reply.assert_error(405, "method not allowed (allowed: GET, POST)");
    assert_eq!(reply.header("allow"), Some("GET, POST"));
    let reply = http(server.addr, "DELETE", DEV01, &headers, None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET"));
    let reply = http(
        server.addr,
        "POST",
        "/v3/users/alice/devices",
        &headers,
        Some(b"{}"),
    );
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[test]
fn device_errors_500_503_504() {
    let mut limits = ApiLimits::default();
    limits.answer_timeout = Duration::from_millis(300);
    let server = Server::with(limits, None);
    let get = |name: &str| server.get(&resource(name), Some(ALICE));
    get("broken").assert_error(500, "sensor failed");
    get("opaque").assert_error(500, "device error");
    get("odd-code").assert_error(500, "odd");
    get("busy").assert_error(503, "busy");
    get("teapot").assert_error(418, "device error");
    get("limit").assert_error(503, "too many outstanding requests");
    get("stopped").assert_error(503, "server shutting down");
    get("slow").assert_error(504, "device timeout");
    // A backend that never answers: the API's own deadline.
    let started = Instant::now();
    get("hang").assert_error(504, "device timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ----- §8.4: single-resource WebSocket ------------------------------------------------------------

#[test]
fn single_resource_websocket_events() {
    let server = Server::start();
    let mut ws = websocket(server.addr, &resource("temp"), Some(ALICE)).unwrap();
    assert_eq!(
        server.fake.live_sinks("temp")[0].1,
        0,
        "no interval = events"
    );
    server.fake.push("temp", Value::F32(21.5), 1);
    server.fake.push("temp", Value::F32(22.0), 2);
    let mut map = Map::new();
    map.insert("temperature", Value::F32(23.5));
    map.insert("humidity", Value::UInt(60));
    server.fake.push("temp", Value::Map(map), 3);
    let frames: Vec<String> = (0..3).map(|_| next_text(&mut ws)).collect();
    assert_eq!(
        frames,
        ["21.5", "22.0", r#"{"temperature":23.5,"humidity":60}"#]
    );
    // Client text frames are ignored, the stream goes on.
    ws.send(Message::text("hello")).unwrap();
    server.fake.push("temp", Value::from("x"), 4);
    assert_eq!(next_text(&mut ws), r#""x""#);
    // Closing removes the sink.
    ws.close(None).unwrap();
    eventually("the sink removal", || server.fake.unsubscribed("temp") == 1);
    assert!(server.fake.live_sinks("temp").is_empty());
    server.stop();
}

#[test]
fn single_resource_websocket_with_interval_counts_frames() {
    let server = Server::start();
    let mut ws = websocket(
        server.addr,
        &format!("{}?interval=5", resource("temp")),
        Some(ALICE),
    )
    .unwrap();
    assert_eq!(server.fake.live_sinks("temp").len(), 1);
    assert_eq!(server.fake.live_sinks("temp")[0].1, 5);
    for n in 0..20u64 {
        server.fake.push("temp", Value::UInt(n), n);
        // Paced, so that no value is dropped by the (64-value) queue.
        if n % 8 == 7 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let frames: Vec<String> = (0..20).map(|_| next_text(&mut ws)).collect();
    let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
    assert_eq!(frames, expected);
    // No 21st frame.
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(ws.read().is_err());
    drop(ws);
    eventually("the sink removal", || server.fake.unsubscribed("temp") == 1);
}

#[test]
fn websocket_handshake_failures() {
    let mut limits = ApiLimits::default();
    limits.answer_timeout = Duration::from_millis(300);
    let server = Server::with(limits, None);
    let open = |path: String, token| {
        websocket(server.addr, &path, token)
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(open(resource("temp"), None).0, 401);
    assert_eq!(open(resource("temp"), Some(BOB)).0, 403);
    let (status, body) = open(format!("{}?interval=86401", resource("temp")), Some(ALICE));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("interval"));
    assert_eq!(
        open(format!("{}?interval=-1", resource("temp")), Some(ALICE)).0,
        400
    );
    assert_eq!(
        open(format!("{}?interval=2.5", resource("temp")), Some(ALICE)).0,
        400
    );
    assert_eq!(
        open(
            "/v3/users/alice/devices/dev00/resources/temp".into(),
            Some(ALICE)
        ),
        (404, json!({ "error": "device offline" }))
    );
    assert_eq!(
        open(
            "/v3/users/alice/devices/nope/resources/temp".into(),
            Some(ALICE)
        ),
        (404, json!({ "error": "unknown device" }))
    );
    // The device's answer to the START_STREAM decides (§8.4, §8.5).
    assert_eq!(
        open(resource("unstreamable"), Some(ALICE)),
        (400, json!({ "error": "resource cannot be streamed" }))
    );
    assert_eq!(
        open(resource("missing"), Some(ALICE)),
        (404, json!({ "error": "unknown resource" }))
    );
    assert_eq!(open(resource("timeout"), Some(ALICE)).0, 504);
    assert_eq!(open(resource("stuck"), Some(ALICE)).0, 504);
    assert_eq!(
        open(resource("limit"), Some(ALICE)),
        (503, json!({ "error": "too many streams" }))
    );
    // Every sink that was registered for a failed handshake was removed again.
    for name in ["unstreamable", "missing", "timeout", "stuck", "limit"] {
        eventually(name, || server.fake.unsubscribed(name) == 1);
    }
    // Nothing was registered before the checks passed.
    assert!(server.fake.live_sinks("temp").is_empty());
    // A handshake that waited for the device's answer succeeds once it comes.
    let started = Instant::now();
    let ws = websocket(server.addr, &resource("delayed"), Some(ALICE)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    drop(ws);
}

#[test]
fn malformed_websocket_handshake_is_400() {
    let server = Server::start();
    let auth = format!("Bearer {ALICE}");
    let reply = http(
        server.addr,
        "GET",
        &resource("temp"),
        &[
            ("Authorization", &auth),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        None,
    );
    assert_eq!(reply.status, 400);
    assert!(server.fake.live_sinks("temp").is_empty());
}

// ----- §8.4: multi-resource WebSocket --------------------------------------------------------------

#[test]
fn multi_resource_websocket() {
    let mut limits = ApiLimits::default();
    limits.answer_timeout = Duration::from_millis(300);
    let server = Server::with(limits, None);
    let fake = &server.fake;
    let mut ws = websocket(server.addr, DEV01, Some(ALICE)).unwrap();
    send_json(&mut ws, &json!({ "resource": "temp", "interval": 2 }));
    send_json(
        &mut ws,
        &json!({ "resource": "sensors/hum", "enabled": true }),
    );
    eventually("two sinks", || {
        fake.live_sinks("temp").len() == 1 && fake.live_sinks("sensors/hum").len() == 1
    });
    assert_eq!(fake.live_sinks("temp")[0].1, 2);
    assert_eq!(fake.live_sinks("sensors/hum")[0].1, 0);
    assert_eq!(fake.sinks.lock().unwrap()[0].device, "dev01");
    fake.push("temp", Value::F32(21.5), 1_700_000_000_001);
    assert_eq!(
        next_text(&mut ws),
        r#"{"resource":"temp","value":21.5,"ts":1700000000001}"#
    );
    fake.push("sensors/hum", Value::UInt(60), 7);
    assert_eq!(
        next_json(&mut ws),
        json!({ "resource": "sensors/hum", "value": 60, "ts": 7 })
    );

    // Problems are error frames; the socket stays open.
    ws.send(Message::text("{not json")).unwrap();
    let frame = next_json(&mut ws);
    assert_eq!(frame["resource"], Json::Null);
    assert!(frame["error"].as_str().unwrap().starts_with("invalid JSON"));
    send_json(&mut ws, &json!({ "interval": 5 }));
    assert_eq!(next_json(&mut ws)["resource"], Json::Null);
    send_json(&mut ws, &json!({ "resource": "temp", "interval": "5" }));
    assert_eq!(next_json(&mut ws)["resource"], "temp");
    send_json(&mut ws, &json!({ "resource": "temp", "interval": 86401 }));
    assert_eq!(next_json(&mut ws)["resource"], "temp");
    ws.send(Message::text(format!(
        r#"{{"resource":"{}"}}"#,
        "x".repeat(4100)
    )))
    .unwrap();
    assert_eq!(
        next_json(&mut ws),
        json!({ "resource": null, "error": "control frame above 4096 bytes" })
    );
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(next_json(&mut ws)["resource"], Json::Null);
    // The device refuses, or does not answer: the subscription is dropped with an error frame.
    send_json(&mut ws, &json!({ "resource": "unstreamable" }));
    assert_eq!(
        next_json(&mut ws),
        json!({ "resource": "unstreamable", "error": "resource cannot be streamed" })
    );
    send_json(&mut ws, &json!({ "resource": "stuck" }));
    assert_eq!(
        next_json(&mut ws),
        json!({ "resource": "stuck", "error": "device timeout" })
    );
    eventually("failed sinks removed", || {
        fake.unsubscribed("unstreamable") == 1 && fake.unsubscribed("stuck") == 1
    });
    // Still streaming the others.
    fake.push("temp", Value::F32(22.0), 2);
    assert_eq!(
        next_json(&mut ws),
        json!({ "resource": "temp", "value": 22.0, "ts": 2 })
    );

    // A new interval replaces the sink (leave + join).
    send_json(&mut ws, &json!({ "resource": "temp", "interval": 10 }));
    eventually("the replaced sink", || {
        fake.unsubscribed("temp") == 1 && fake.live_sinks("temp").iter().any(|s| s.1 == 10)
    });
    assert_eq!(fake.live_sinks("temp").len(), 1);
    // Disabling removes it; disabling again is a no-op.
    send_json(&mut ws, &json!({ "resource": "temp", "enabled": false }));
    send_json(&mut ws, &json!({ "resource": "temp", "enabled": false }));
    eventually("the disabled sink", || fake.live_sinks("temp").is_empty());
    fake.push("sensors/hum", Value::UInt(61), 8);
    assert_eq!(next_json(&mut ws)["value"], 61);
    assert_eq!(fake.unsubscribed("temp"), 2);

    // Closing removes what is left.
    ws.close(None).unwrap();
    eventually("every sink removed", || {
        fake.live_sinks("sensors/hum").is_empty()
    });
    server.stop();
}

#[test]
fn multi_resource_websocket_checks_the_device_first() {
    let server = Server::start();
    let path = "/v3/users/alice/devices/dev00/resources";
    assert_eq!(
        websocket(server.addr, path, Some(ALICE))
            .map(|_| ())
            .unwrap_err(),
        (404, json!({ "error": "device offline" }))
    );
    let (status, _) = websocket(server.addr, DEV01, None).map(|_| ()).unwrap_err();
    assert_eq!(status, 401);
}

#[test]
fn multi_resource_websocket_limits_its_sinks() {
    let mut limits = ApiLimits::default();
    limits.max_sinks_per_socket = 2;
    let server = Server::with(limits, None);
    let mut ws = websocket(server.addr, DEV01, Some(ALICE)).unwrap();
    for name in ["a", "b", "c"] {
        send_json(&mut ws, &json!({ "resource": name }));
    }
    assert_eq!(
        next_json(&mut ws),
        json!({ "resource": "c", "error": "too many subscriptions on this socket (max 2)" })
    );
    // Re-enabling an existing one is not a new sink.
    send_json(&mut ws, &json!({ "resource": "a", "interval": 3 }));
    eventually("a replaced", || {
        server
            .fake
            .live_sinks("a")
            .first()
            .is_some_and(|s| s.1 == 3)
    });
    assert!(server.fake.live_sinks("c").is_empty());
}

// ----- §8.4: Server-Sent Events ---------------------------------------------------------------------

#[test]
fn server_sent_events() {
    let mut limits = ApiLimits::default();
    limits.sse_keepalive = Duration::from_millis(200);
    let server = Server::with(limits, None);
    let (head, sse) = Sse::request(
        server.addr,
        &format!("{}?interval=3", resource("temp")),
        ALICE,
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut sse = sse.unwrap();
    assert_eq!(server.fake.live_sinks("temp")[0].1, 3);
    // Idle: a comment.
    assert_eq!(sse.next(), ":");
    server.fake.push("temp", Value::F32(21.5), 1);
    let mut map = Map::new();
    map.insert("t", Value::F32(22.0));
    server.fake.push("temp", Value::Map(map), 2);
    assert_eq!(sse.next_data(), "21.5");
    assert_eq!(sse.next_data(), r#"{"t":22.0}"#);
    // Closing the connection removes the sink (noticed at the next write at the latest).
    drop(sse);
    eventually("the SSE sink removal", || {
        server.fake.unsubscribed("temp") == 1
    });
    server.stop();
}

#[test]
fn server_sent_events_errors() {
    let mut limits = ApiLimits::default();
    limits.answer_timeout = Duration::from_millis(300);
    let server = Server::with(limits, None);
    let open = |path: String| Sse::request(server.addr, &path, ALICE).0;
    open(format!("{}?interval=x", resource("temp")))
        .assert_error(400, "bad interval \"x\": expected whole seconds 0..=86400");
    open("/v3/users/alice/devices/dev00/resources/temp".into()).assert_error(404, "device offline");
    open(resource("unstreamable")).assert_error(400, "resource cannot be streamed");
    open(resource("stuck")).assert_error(504, "device timeout");
    eventually("failed SSE sinks removed", || {
        server.fake.unsubscribed("unstreamable") == 1 && server.fake.unsubscribed("stuck") == 1
    });
    // Bob cannot stream alice's device.
    let (reply, _) = Sse::request(server.addr, &resource("temp"), BOB);
    assert_eq!(reply.status, 403);
}

// ----- slow consumers --------------------------------------------------------------------------------

#[test]
fn a_slow_client_drops_its_oldest_values_and_blocks_nobody() {
    let mut limits = ApiLimits::default();
    limits.sink_queue = 8;
    let server = Server::with(limits, None);
    let fake = &server.fake;
    // The slow client subscribes and then does not read.
    let mut slow = websocket(server.addr, &resource("bulk"), Some(ALICE)).unwrap();
    let mut fast = websocket(server.addr, &resource("temp"), Some(ALICE)).unwrap();
    // 64 MiB of values: far more than the socket buffers hold, so the slow client's socket
    // fills up and its queue overflows.
    let payload = "x".repeat(64 * 1024);
    const VALUES: u64 = 1024;
    let started = Instant::now();
    for n in 0..VALUES {
        let value = Value::Array(vec![Value::UInt(n), Value::from(payload.as_str())]);
        assert_eq!(fake.push("bulk", value, n), 1);
    }
    // Pushing never waited for the client.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let dropped = fake.sender("bulk").dropped();
    assert!(dropped > 0, "no value was dropped");
    // Meanwhile another client is served at once.
    for n in 0..10 {
        fake.push("temp", Value::UInt(n), n);
        assert_eq!(next_text(&mut fast), n.to_string());
    }
    // The slow client finally reads: it gets increasing values ending with the newest, with
    // the oldest ones of each overflow missing.
    let mut seen = Vec::new();
    while seen.last() != Some(&(VALUES - 1)) {
        let frame: Json = serde_json::from_str(&next_text(&mut slow)).unwrap();
        seen.push(frame[0].as_u64().unwrap());
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seen:?}"
    );
    assert!((seen.len() as u64) < VALUES);
    assert_eq!(seen.len() as u64 + fake.sender("bulk").dropped(), VALUES);
}

// ----- shutdown, limits and HTTPS ---------------------------------------------------------------------

#[test]
fn shutdown_closes_websockets_and_returns() {
    let server = Server::start();
    let mut ws = websocket(server.addr, &resource("temp"), Some(ALICE)).unwrap();
    let addr = server.addr;
    let fake = Arc::clone(&server.fake);
    server.stop();
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    eventually("the sink removal", || fake.unsubscribed("temp") == 1);
    // The listener is closed.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn connections_beyond_the_limit_are_closed() {
    let mut limits = ApiLimits::default();
    limits.max_connections = 1;
    let server = Server::with(limits, None);
    let ws = websocket(server.addr, &resource("temp"), Some(ALICE)).unwrap();
    // The second connection is accepted and closed at once: no response.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = stream.write_all(b"GET /v3/users/alice/devices HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(raw.is_empty());
    // Once the WebSocket is gone, its slot is free again.
    drop(ws);
    eventually("a free slot", || server.fake.unsubscribed("temp") == 1);
    eventually("a served request", || {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let auth = format!("Authorization: Bearer {ALICE}\r\n");
        let request = format!(
            "GET /v3/users/alice/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n"
        );
        let _ = stream.write_all(request.as_bytes());
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        raw.starts_with(b"HTTP/1.1 200")
    });
}

#[test]
fn https() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server_config = iotmp_proto::tls::server_config(
        leaf.pem().as_bytes(),
        leaf_key.serialize_pem().as_bytes(),
        None,
    )
    .unwrap();
    let server = Server::with(ApiLimits::default(), Some(server_config));
    let client_config = iotmp_proto::tls::client_config(
        iotmp_proto::tls::Roots::Pem(ca_cert.pem().as_bytes()),
        None,
    )
    .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(client_config, name).unwrap();
    let socket = TcpStream::connect(server.addr).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let mut head = request_head(
        "GET",
        &resource("temp"),
        &[("Authorization", &format!("Bearer {ALICE}"))],
    );
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A peer that closes without close_notify is fine here: the response is complete.
    let _ = tls.read_to_end(&mut raw);
    assert_eq!(parse_reply(&raw).ok_text(), "22.0");
    server.stop();
}

#[test]
fn sink_values_can_be_stamped_now() {
    let v = SinkValue::now(Value::Null);
    let now = api::unix_ms(std::time::SystemTime::now());
    assert!(v.ts_unix_ms <= now && now - v.ts_unix_ms < 60_000);
}

/// Each user sees their own devices.
#[test]
fn other_users_see_their_own_devices() {
    let server = Server::start();
    let reply = server.get("/v3/users/bob/devices", Some(BOB));
    assert_eq!(
        reply.ok_text(),
        r#"[{"device":"bobdev","connected":true,"dialect":"2026","connected_at":1}]"#
    );
}

/// An EventSource opens on the response head: it must not wait for the first event or comment.
#[test]
fn sse_head_comes_before_any_event() {
    let server = Server::start();
    let started = Instant::now();
    let (head, _sse) = Sse::request(server.addr, &resource("temp"), ALICE);
    assert_eq!(head.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ----- recorded data and recorders ---------------------------------------------------------------

const B1: &str = "/v3/users/alice/buckets/b1/data";

#[test]
fn bucket_data_with_ranges_and_limits() {
    let server = Server::start();
    let reply = server.get(B1, Some(ALICE));
    assert_eq!(
        reply.ok_text(),
        r#"[{"ts":10,"value":{"v":1}},{"ts":20,"value":{"v":2}},{"ts":30,"value":{"v":3}}]"#
    );
    let ts = |path: &str| -> Vec<u64> {
        let reply = server.get(path, Some(ALICE));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["ts"].as_u64().unwrap())
            .collect()
    };
    // Half-open ranges: `from` included, `to` excluded.
    assert_eq!(ts(&format!("{B1}?from=20")), [20, 30]);
    assert_eq!(ts(&format!("{B1}?to=30")), [10, 20]);
    assert_eq!(ts(&format!("{B1}?from=11&to=30")), [20]);
    assert_eq!(ts(&format!("{B1}?limit=2")), [10, 20]);
    assert_eq!(ts(&format!("{B1}?from=-5&limit=1")), [10]);
    for bad in ["from=x", "to=1.5", "limit=0", "limit=10001", "from="] {
        server
            .get(&format!("{B1}?{bad}"), Some(ALICE))
            .assert_error(400, &bad_query_text(bad));
    }
    // The same authentication and isolation as every other route.
    server.get(B1, None).assert_error(401, "missing API token");
    server
        .get(B1, Some(BOB))
        .assert_error(403, "the API token does not give access to this user");
    server
        .get(&format!("{B1}?authorization={ALICE}"), None)
        .ok_text();
    server
        .get("/v3/users/alice/buckets/nope/data", Some(ALICE))
        .assert_error(404, "unknown bucket");
    server
        .get("/v3/users/bob/buckets/b1/data", Some(BOB))
        .assert_error(404, "unknown bucket");
    server
        .get("/v3/users/alice/buckets/broken/data", Some(ALICE))
        .assert_error(500, "disk on fire");
    let reply = server.post(B1, ALICE, b"");
    reply.assert_error(405, "method not allowed (allowed: GET)");
    assert_eq!(reply.header("allow"), Some("GET"));
}

/// The 400 text of a bad data query parameter.
fn bad_query_text(pair: &str) -> String {
    let (name, value) = pair.split_once('=').unwrap();
    match name {
        "limit" => format!("bad limit {value:?}: expected 1..=10000"),
        _ => format!("bad {name} {value:?}: expected unix milliseconds"),
    }
}

#[test]
fn bucket_data_waits_are_bounded() {
    let mut limits = ApiLimits::default();
    limits.answer_timeout = Duration::from_millis(200);
    let server = Server::with(limits, None);
    server
        .get("/v3/users/alice/buckets/slow/data", Some(ALICE))
        .assert_error(503, "storage busy");
}

#[test]
fn recorders_are_added_listed_and_removed_per_user() {
    let server = Server::start();
    let list =
        |user: &str, token: &str| server.get(&format!("/v3/users/{user}/recorders"), Some(token));
    assert_eq!(list("alice", ALICE).ok_text(), "[]");

    let reply = server.post(
        "/v3/users/alice/recorders",
        ALICE,
        br#"{"device":"dev01","resource":"temp","bucket":"b1","interval":10}"#,
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let added = reply.json();
    assert_eq!(
        added,
        json!({"id": 1, "device": "dev01", "resource": "temp", "interval": 10, "bucket": "b1"})
    );
    assert_eq!(list("alice", ALICE).json(), json!([added]));
    // Bob sees none of alice's recorders and cannot touch them.
    assert_eq!(list("bob", BOB).ok_text(), "[]");
    list("alice", BOB).assert_error(403, "the API token does not give access to this user");
    let delete = |path: &str, token: &str| {
        let auth = format!("Bearer {token}");
        http(
            server.addr,
            "DELETE",
            path,
            &[("Authorization", &auth)],
            None,
        )
    };
    delete("/v3/users/bob/recorders/1", BOB).assert_error(404, "unknown recorder");
    delete("/v3/users/alice/recorders/1", BOB)
        .assert_error(403, "the API token does not give access to this user");

    // Refusals: the body, the device, the store's checks, the id.
    for (body, status, text) in [
        (
            &br#"{"device":"nope","resource":"t","bucket":"b"}"#[..],
            404,
            "unknown device",
        ),
        (
            br#"{"device":"dev01","resource":"t","bucket":"a b"}"#,
            400,
            "bad bucket name",
        ),
        (
            br#"{"device":"dev01","resource":"t"}"#,
            400,
            "bucket is missing",
        ),
        (
            br#"{"device":"dev01","resource":"t","bucket":"b","interval":86401}"#,
            400,
            "interval must be whole seconds 0..=86400",
        ),
    ] {
        server
            .post("/v3/users/alice/recorders", ALICE, body)
            .assert_error(status, text);
    }
    for id in ["0", "-1", "x", "99"] {
        delete(&format!("/v3/users/alice/recorders/{id}"), ALICE)
            .assert_error(404, "unknown recorder");
    }
    let reply = server.get("/v3/users/alice/recorders/1", Some(ALICE));
    reply.assert_error(405, "method not allowed (allowed: DELETE)");

    let reply = delete("/v3/users/alice/recorders/1", ALICE);
    assert_eq!(reply.ok_text(), r#"{"removed":1}"#);
    assert_eq!(list("alice", ALICE).ok_text(), "[]");
    delete("/v3/users/alice/recorders/1", ALICE).assert_error(404, "unknown recorder");
}

/// A backend without recorded data answers the data routes with 501.
#[test]
fn backends_without_data_answer_501() {
    struct Minimal;
    impl Backend for Minimal {
        fn user_for_token(&self, _: &str) -> Option<String> {
            Some("alice".into())
        }
        fn devices(&self, _: &str) -> Vec<DeviceInfo> {
            Vec::new()
        }
        fn device_status(&self, _: &str, _: &str) -> DeviceStatus {
            DeviceStatus::Unknown
        }
        fn run(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: Option<Value>,
        ) -> BoxFuture<Option<RequestResult>> {
            Box::pin(std::future::ready(None))
        }
        fn describe(&self, _: &str, _: &str, _: Option<&str>) -> BoxFuture<Option<RequestResult>> {
            Box::pin(std::future::ready(None))
        }
        fn subscribe(&self, _: &str, _: &str, _: &str, _: u32, _: SinkSender) -> Subscription {
            Subscription::failed(1, SubscribeFailure::Unavailable)
        }
        fn unsubscribe(&self, _: &str, _: &str, _: &str, _: SinkId) {}
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = async_net::TcpListener::try_from(listener).unwrap();
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || {
        smol::block_on(api::serve(
            listener,
            None,
            Arc::new(Minimal),
            ApiLimits::default(),
            stop,
        ))
    });
    let auth = [("Authorization", "Bearer x")];
    for (method, path) in [
        ("GET", B1),
        ("GET", "/v3/users/alice/recorders"),
        ("DELETE", "/v3/users/alice/recorders/1"),
    ] {
        http(addr, method, path, &auth, None)
            .assert_error(501, "this server keeps no recorded data");
    }
    shutdown.trigger();
    thread.join().unwrap().unwrap();
}

/// A WebSocket client message above the API's limit (64 KiB) closes the socket with 1009
/// ("message too big") instead of being buffered whole.
#[test]
fn websocket_messages_over_the_limit_close_with_1009() {
    use tungstenite::protocol::frame::coding::CloseCode;
    let server = Server::start();
    let mut ws = websocket(server.addr, &resource("temp"), Some(ALICE)).unwrap();
    let _ = ws.send(Message::text("x".repeat(65 * 1024)));
    let deadline = Instant::now() + TIMEOUT;
    let code = loop {
        assert!(Instant::now() < deadline, "no close frame in time");
        match ws.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Size));
    server.stop();
}
