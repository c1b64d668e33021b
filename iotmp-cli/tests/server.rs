//! `iotmp server` end to end: the real binary on 127.0.0.1 with OS-picked ports, a temporary
//! registry prepared with the registry commands, devices driven in-process (`iotmp_smol` and
//! `iotmp_mio`, and once the `iotmp device` binary), HTTP with a raw `TcpStream`, WebSockets
//! with the blocking `tungstenite` client.
//!
//! Every wait is bounded ([`WAIT`]); every process is killed when its test ends, also when it
//! fails. The 504 of a device that never answers in time is exercised with a mio device whose
//! handler sleeps past `--request-timeout` (the API tests cover the fake-backend case too).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use iotmp_proto::client::ClientAuth;
use iotmp_proto::{ClientConfig, DeviceResources, Dialect, Value};
use serde_json::{Value as Json, json};
use tungstenite::Message;

use common::server::*;

const DEV26: &str = "/v3/users/alice/devices/dev26/resources";
const DEV20: &str = "/v3/users/alice/devices/dev20/resources";

// ----- the tests -----------------------------------------------------------------------------------

/// Devices in both dialects: the list, DESCRIBE, RUN with and without input, the refusals of
/// §8.1, and DISCONNECT to every device on Ctrl-C.
#[test]
fn devices_in_both_dialects() {
    let registry = Registry::new(&["alice/dev26", "alice/dev20", "alice/devoff", "bob/bobdev"]);
    let server = Server::start(&registry, &[]);
    let (alice, bob) = (registry.alice.as_str(), registry.bob.as_str());
    let before = iotmp_cli::api::unix_ms(std::time::SystemTime::now());
    let dev26 = device(&server, &registry, "alice/dev26", Dialect::Draft2026);
    let dev20 = device(&server, &registry, "alice/dev20", Dialect::Draft2020);
    server.wait_online("alice", "dev26", alice);
    server.wait_online("alice", "dev20", alice);

    let list = server.devices("alice", alice);
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|d| d["device"].as_str().unwrap()).collect();
    assert_eq!(names, ["dev20", "dev26", "devoff"]);
    assert_eq!(list[0]["dialect"], "2020");
    assert_eq!(list[1]["dialect"], "2026");
    for online in &list[..2] {
        let at = online["connected_at"].as_u64().unwrap();
        assert!(at >= before && at < before + 60_000, "{online}");
    }
    assert_eq!(
        list[2],
        json!({"device": "devoff", "connected": false, "dialect": null, "connected_at": null})
    );
    // Bob sees his own device only.
    assert_eq!(
        server.devices("bob", bob),
        json!([{"device": "bobdev", "connected": false, "dialect": null, "connected_at": null}])
    );

    for base in [DEV26, DEV20] {
        let describe = server.get(base, Some(alice)).ok();
        assert_eq!(describe["temp"]["fn"], 3, "{describe}");
        assert_eq!(describe["led"]["fn"], 2, "{describe}");
        assert_eq!(describe["echo"]["fn"], 4, "{describe}");
        assert_eq!(
            server.get(&format!("{base}/temp"), Some(alice)).ok(),
            json!(21.5)
        );
        let echo = server.send(
            "POST",
            &format!("{base}/echo"),
            alice,
            Some(br#"{"a":[1,true,"x"]}"#),
        );
        assert_eq!(echo.ok(), json!({"a": [1, true, "x"]}));
        let unknown = server.get(&format!("{base}/nope"), Some(alice));
        assert_eq!(unknown.status, 404, "{}", unknown.text());
    }
    let reply = server.send("POST", &format!("{DEV26}/led"), alice, Some(b"true"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(*dev26.probe.led.lock().unwrap(), Some(Value::Bool(true)));
    let reply = server.send("POST", &format!("{DEV20}/led"), alice, Some(b"\"on\""));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(*dev20.probe.led.lock().unwrap(), Some(Value::from("on")));

    // Authentication and isolation (§8.1).
    let temp = format!("{DEV26}/temp");
    server
        .get(&temp, None)
        .assert_error(401, "missing API token");
    server
        .get(&temp, Some("nope.nope"))
        .assert_error(401, "unknown API token");
    server
        .get(&temp, Some(bob))
        .assert_error(403, "the API token does not give access to this user");
    server
        .get("/v3/users/bob/devices/dev26/resources/temp", Some(bob))
        .assert_error(404, "unknown device");
    server
        .get("/v3/users/alice/devices/devoff/resources/temp", Some(alice))
        .assert_error(404, "device offline");
    server
        .get("/v3/users/alice/devices/ghost/resources", Some(alice))
        .assert_error(404, "unknown device");
    assert_eq!(
        server
            .get(&format!("{temp}?authorization={alice}"), None)
            .ok(),
        json!(21.5)
    );

    // A wrong credential is refused, and logged without the secret.
    let wrong = Connect {
        auth: ClientAuth::Credentials {
            user: "alice".into(),
            device: "devoff".into(),
            credential: "not-the-credential".into(),
        },
        ..Connect::credentials(
            server.tcp.unwrap(),
            Dialect::Draft2026,
            &registry,
            "alice/devoff",
        )
    }
    .start();
    wrong.wait_disconnect("refused");
    drop(wrong);
    let mut server = server;
    server.wait_for_log("user \"alice\" device \"devoff\": unknown device or wrong credential");
    assert!(!server.stderr().contains("not-the-credential"));

    let log = server.stop();
    assert!(
        log.contains("device alice/dev26 online (dialect 2026"),
        "{log}"
    );
    assert!(log.contains("device alice/dev20 offline"), "{log}");
    dev26.wait_disconnect("shutdown");
    dev20.wait_disconnect("shutdown");
}

/// Streams: a sampling WebSocket counted over a window, an event WebSocket, SSE.
#[test]
fn websockets_and_server_sent_events() {
    let registry = Registry::new(&["alice/dev26"]);
    let server = Server::start(&registry, &[]);
    let alice = registry.alice.as_str();
    let dev = device(&server, &registry, "alice/dev26", Dialect::Draft2026);
    server.wait_online("alice", "dev26", alice);

    // ?interval=1: one value a second. The first may come at once; then count for 4 s.
    let mut ws = websocket(server.http(), &format!("{DEV26}/counter?interval=1"), alice);
    let first: u64 = next_text(&mut ws, Instant::now() + WAIT)
        .expect("a first value")
        .parse()
        .unwrap();
    let window = Instant::now() + Duration::from_secs(4);
    let mut values = vec![first];
    while let Some(text) = next_text(&mut ws, window) {
        values.push(text.parse().unwrap());
    }
    let counted = values.len() - 1;
    assert!(
        (3..=5).contains(&counted),
        "{counted} frames in 4 s: {values:?}"
    );
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    drop(ws);

    // Events only: the device may send its current value when the stream opens, then what
    // it pushes.
    let mut events = websocket(server.http(), &format!("{DEV26}/alarm"), alice);
    dev.stream_value("alarm", Value::from("fire"));
    let deadline = Instant::now() + WAIT;
    let mut text = next_text(&mut events, deadline).expect("an event");
    if text == "\"quiet\"" {
        text = next_text(&mut events, deadline).expect("the pushed event");
    }
    assert_eq!(text, "\"fire\"");

    // SSE with an interval: values keep coming, one `data:` event each.
    let mut sse = Sse::open(server.http(), &format!("{DEV26}/temp?interval=1"), alice);
    assert_eq!(sse.next_data(), "21.5");
    assert_eq!(sse.next_data(), "21.5");
    drop(sse);

    // Multi-resource WebSocket on the resources URL (§8.4): control frames in, tagged data
    // frames out, an error frame for a subscription the device refuses, the socket stays open.
    let mut multi = websocket(server.http(), DEV26, alice);
    let control = |ws: &mut Client, text: &str| ws.send(Message::Text(text.into())).unwrap();
    control(&mut multi, r#"{"resource":"counter","interval":1}"#);
    let deadline = Instant::now() + WAIT;
    let frame: Json =
        serde_json::from_str(&next_text(&mut multi, deadline).expect("a data frame")).unwrap();
    assert_eq!(frame["resource"], "counter", "{frame}");
    assert!(frame["value"].is_u64() && frame["ts"].is_u64(), "{frame}");
    control(
        &mut multi,
        r#"{"resource":"no-such-resource","interval":1}"#,
    );
    let error = std::iter::from_fn(|| next_text(&mut multi, deadline))
        .map(|t| serde_json::from_str::<Json>(&t).unwrap())
        .find(|f| f.get("error").is_some())
        .expect("an error frame");
    assert_eq!(error["resource"], "no-such-resource", "{error}");
    control(&mut multi, r#"{"resource":"counter","enabled":false}"#);
    // Once disabled (and what was in flight has arrived), no more counter values come.
    let settle = Instant::now() + Duration::from_millis(1500);
    while next_text(&mut multi, settle).is_some() {}
    assert_eq!(
        next_text(&mut multi, Instant::now() + Duration::from_millis(2500)),
        None
    );
    drop(multi);
    server.stop();
}

/// Recorders: rows written with the server's time, read through the buckets endpoint,
/// isolated per user, added and removed while the server runs (CLI and API), and still there
/// after a restart.
#[test]
fn recorders_fill_buckets_that_survive_a_restart() {
    let registry = Registry::new(&["alice/dev26"]);
    let (code, out, err) = registry.run(&[
        "recorder",
        "add",
        "alice/dev26",
        "counter",
        "--every",
        "1",
        "--bucket",
        "counts",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1");
    let alice = registry.alice.as_str();
    let counts = "/v3/users/alice/buckets/counts/data";

    let server = Server::start(&registry, &[]);
    let dev = device(&server, &registry, "alice/dev26", Dialect::Draft2026);
    let mut rows = Vec::new();
    eventually("3 recorded rows", || {
        rows = server
            .get(counts, Some(alice))
            .ok()
            .as_array()
            .unwrap()
            .clone();
        rows.len() >= 3
    });
    let ts: Vec<i64> = rows.iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    let values: Vec<u64> = rows.iter().map(|r| r["value"].as_u64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    for gap in ts.windows(2).map(|w| w[1] - w[0]) {
        assert!((500..=1800).contains(&gap), "rows 1 s apart: {ts:?}");
    }
    // Ranges and limits of the endpoint.
    let page = server
        .get(&format!("{counts}?from={}&limit=1", ts[1]), Some(alice))
        .ok();
    assert_eq!(page, json!([rows[1]]));
    let page = server
        .get(&format!("{counts}?to={}", ts[1]), Some(alice))
        .ok();
    assert_eq!(page, json!([rows[0]]));
    server
        .get(&format!("{counts}?limit=0"), Some(alice))
        .assert_error(400, "bad limit \"0\": expected 1..=10000");
    // Isolation.
    server
        .get(counts, Some(&registry.bob))
        .assert_error(403, "the API token does not give access to this user");
    server
        .get("/v3/users/bob/buckets/counts/data", Some(&registry.bob))
        .assert_error(404, "unknown bucket");

    // A recorder added with the CLI while the server runs starts within a refresh.
    let (code, _, err) = registry.run(&[
        "recorder",
        "add",
        "alice/dev26",
        "temp",
        "--every",
        "1",
        "--bucket",
        "temps",
    ]);
    assert_eq!(code, 0, "{err}");
    eventually("a row in the CLI's new bucket", || {
        let reply = server.get("/v3/users/alice/buckets/temps/data", Some(alice));
        reply.status == 200 && reply.json().as_array().is_some_and(|a| !a.is_empty())
    });
    assert_eq!(
        server
            .get("/v3/users/alice/buckets/temps/data?limit=1", Some(alice))
            .ok()[0]["value"],
        json!(21.5)
    );

    // The same through the API.
    let reply = server.send(
        "POST",
        "/v3/users/alice/recorders",
        alice,
        Some(br#"{"device":"dev26","resource":"temp","bucket":"api","interval":1}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = reply.json()["id"].as_i64().unwrap();
    server
        .send(
            "POST",
            "/v3/users/alice/recorders",
            alice,
            Some(br#"{"device":"dev26","resource":"temp","bucket":"api","interval":5}"#),
        )
        .assert_error(
            409,
            "this device's resource is already recorded into this bucket",
        );
    server
        .send(
            "POST",
            "/v3/users/alice/recorders",
            alice,
            Some(br#"{"device":"ghost","resource":"temp","bucket":"api"}"#),
        )
        .assert_error(404, "unknown device");
    server
        .send(
            "POST",
            "/v3/users/alice/recorders",
            alice,
            Some(br#"{"device":"dev26","resource":"temp","bucket":"no way"}"#),
        )
        .assert_error(
            400,
            "\"no way\" is not a valid bucket name: use only ASCII letters, digits, '_', '-' and '.'",
        );
    eventually("a row in the API's new bucket", || {
        let reply = server.get("/v3/users/alice/buckets/api/data", Some(alice));
        reply.status == 200 && reply.json().as_array().is_some_and(|a| !a.is_empty())
    });
    let list = server.get("/v3/users/alice/recorders", Some(alice)).ok();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    server
        .send(
            "DELETE",
            &format!("/v3/users/bob/recorders/{id}"),
            &registry.bob,
            None,
        )
        .assert_error(404, "unknown recorder");
    let reply = server.send(
        "DELETE",
        &format!("/v3/users/alice/recorders/{id}"),
        alice,
        None,
    );
    assert_eq!(reply.ok(), json!({ "removed": id }));
    let mut server = server;
    server.wait_for_log(&format!("recorder {id} stopped"));

    // Restart: every committed row is still there, and the recorders start again.
    let before = server.get(counts, Some(alice)).ok();
    server.stop();
    drop(dev);
    let (code, out, _) = registry.run(&["recorder", "list", "alice", "--json"]);
    assert_eq!(code, 0);
    let listed: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let mut server = Server::start(&registry, &[]);
    server.wait_for_log("recorder 1: alice/dev26 \"counter\" every 1 s into bucket counts");
    let after = server.get(counts, Some(alice)).ok();
    let (before, after) = (before.as_array().unwrap(), after.as_array().unwrap());
    assert!(
        after.len() >= before.len(),
        "{} < {}",
        after.len(),
        before.len()
    );
    assert_eq!(&after[..before.len()], &before[..]);
    server.stop();
}

/// Devices and tokens registered while the server runs work at once: a failed lookup
/// refreshes the registry before refusing.
#[test]
fn registry_changes_apply_while_running() {
    let mut registry = Registry::new(&["alice/dev26"]);
    let server = Server::start(&registry, &[]);
    registry.add_device("alice/late");
    let started = Instant::now();
    let late = device(&server, &registry, "alice/late", Dialect::Draft2026);
    server.wait_online("alice", "late", &registry.alice);
    // One attempt, no backoff: the refresh after the failed lookup found the new device.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server
            .get(
                "/v3/users/alice/devices/late/resources/temp",
                Some(&registry.alice)
            )
            .ok(),
        json!(21.5)
    );

    let token = registry.secret(&["user", "token", "alice"]);
    eventually("the new token to work", || {
        server.get("/v3/users/alice/devices", Some(&token)).status == 200
    });
    drop(late);
    server.stop();
}

/// A test CA, the server's certificate and key (`localhost`, 127.0.0.1), and device
/// certificates signed by the CA.
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    server: (String, String),
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        let mut pki = Pki {
            ca_pem,
            issuer: Issuer::new(params, key),
            server: (String::new(), String::new()),
        };
        pki.server = pki.leaf(&["localhost", "127.0.0.1"]);
        pki
    }

    /// A certificate and its key, PEM.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client configuration trusting the CA, with an optional client certificate.
    fn client(&self, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        iotmp_proto::tls::client_config(
            iotmp_proto::tls::Roots::Pem(self.ca_pem.as_bytes()),
            identity.map(|(c, k)| (c.as_bytes(), k.as_bytes())),
        )
        .unwrap()
    }

    /// Writes the server's files into the registry's folder: (cert, key, CA) paths.
    fn files(&self, registry: &Registry) -> (String, String, String) {
        let path = |p: PathBuf| p.to_str().unwrap().to_owned();
        (
            path(registry.file("server.pem", &self.server.0)),
            path(registry.file("server.key", &self.server.1)),
            path(registry.file("ca.pem", &self.ca_pem)),
        )
    }
}

/// Certificate authentication over TLS (spec §6.2): a registered certificate connects, an
/// unregistered one (signed by the same CA) is refused; credentials work over TLS too.
#[test]
fn certificate_auth_over_tls() {
    let pki = Pki::new();
    let (cam_pem, cam_key) = pki.leaf(&["cam"]);
    let (other_pem, other_key) = pki.leaf(&["other"]);

    let registry = Registry::new(&["alice/dev26"]);
    let cam_file = registry.file("cam.pem", &cam_pem);
    let (code, _, err) = registry.run(&[
        "device",
        "add",
        "alice/cam",
        "--cert",
        cam_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (cert, key, ca_file) = pki.files(&registry);
    let mut server = Server::start(
        &registry,
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            &ca_file,
        ],
    );
    server.wait_for_log("device certificates verified against --client-ca");
    let tls_addr = server.tls.unwrap();
    let by_certificate = |pem: &str, key: &str| Connect {
        auth: ClientAuth::Certificate {
            pem: pem.to_owned(),
        },
        tls: Some(pki.client(Some((pem, key)))),
        ..Connect::credentials(tls_addr, Dialect::Draft2026, &registry, "alice/dev26")
    };
    let cam = by_certificate(&cam_pem, &cam_key).start();
    server.wait_online("alice", "cam", &registry.alice);
    assert_eq!(
        server
            .get(
                "/v3/users/alice/devices/cam/resources/temp",
                Some(&registry.alice)
            )
            .ok(),
        json!(21.5)
    );

    let other = by_certificate(&other_pem, &other_key).start();
    other.wait_disconnect("refused");
    server.wait_for_log("no device has the certificate with SHA-256");

    let over_tls = Connect {
        tls: Some(pki.client(None)),
        ..Connect::credentials(tls_addr, Dialect::Draft2020, &registry, "alice/dev26")
    }
    .start();
    server.wait_online("alice", "dev26", &registry.alice);
    drop((cam, other, over_tls));
    server.stop();
}

/// The other drivers run the same server: mio and async-std.
#[test]
fn mio_and_async_std_runtimes() {
    let registry = Registry::new(&["alice/dev26", "alice/dev20"]);
    for runtime in ["mio", "async-std"] {
        let server = Server::start(&registry, &["--runtime", runtime]);
        assert!(
            server.stderr().contains(&format!("runtime {runtime})")),
            "{}",
            server.stderr()
        );
        let alice = registry.alice.as_str();
        let dev26 = device(&server, &registry, "alice/dev26", Dialect::Draft2026);
        let dev20 = device(&server, &registry, "alice/dev20", Dialect::Draft2020);
        server.wait_online("alice", "dev26", alice);
        server.wait_online("alice", "dev20", alice);
        for base in [DEV26, DEV20] {
            assert_eq!(
                server.get(&format!("{base}/temp"), Some(alice)).ok(),
                json!(21.5),
                "{runtime}"
            );
        }
        let mut ws = websocket(server.http(), &format!("{DEV20}/counter?interval=1"), alice);
        let deadline = Instant::now() + WAIT;
        let a: u64 = next_text(&mut ws, deadline).unwrap().parse().unwrap();
        let b: u64 = next_text(&mut ws, deadline).unwrap().parse().unwrap();
        assert!(a < b, "{runtime}: {a} then {b}");
        drop(ws);
        server.stop();
        dev26.wait_disconnect("shutdown");
        dev20.wait_disconnect("shutdown");
    }
}

/// A device that does not answer within `--request-timeout`: 504 "device timeout".
#[test]
fn a_device_slower_than_the_request_timeout_is_504() {
    let registry = Registry::new(&["alice/dev26"]);
    let server = Server::start(&registry, &["--request-timeout", "1s"]);
    // mio runs the handler on its own thread, so its sleep blocks nobody else in this process.
    let slow = Connect {
        mio: true,
        slow: Duration::from_millis(2500),
        ..Connect::credentials(
            server.tcp.unwrap(),
            Dialect::Draft2026,
            &registry,
            "alice/dev26",
        )
    }
    .start();
    let alice = registry.alice.as_str();
    server.wait_online("alice", "dev26", alice);
    let started = Instant::now();
    server
        .get(&format!("{DEV26}/slow"), Some(alice))
        .assert_error(504, "device timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Once the handler returned, the device answers again.
    eventually("the device to answer again", || {
        server.get(&format!("{DEV26}/temp"), Some(alice)).status == 200
    });
    drop(slow);
    server.stop();
}

/// The `iotmp device` binary against the `iotmp server` binary.
#[test]
fn the_device_binary_connects() {
    let registry = Registry::new(&["alice/pi"]);
    let server = Server::start(&registry, &[]);
    let uri = format!("iotmp://{}", server.tcp.unwrap());
    let mut device = command()
        .args(["device", "-s", &uri, "--user", "alice", "--device", "pi"])
        .args([
            "--dialect",
            "2020",
            "--counter",
            "ticks",
            "--const",
            "model=\"rpi4\"",
        ])
        .env("IOTMP_CREDENTIAL", registry.credential("alice/pi"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let alice = registry.alice.as_str();
    server.wait_online("alice", "pi", alice);
    let base = "/v3/users/alice/devices/pi/resources";
    assert_eq!(
        server.get(&format!("{base}/model"), Some(alice)).ok(),
        json!("rpi4")
    );
    assert!(
        server
            .get(&format!("{base}/ticks"), Some(alice))
            .ok()
            .is_u64()
    );
    server.stop();
    let deadline = Instant::now() + WAIT;
    // The device keeps reconnecting after the server left; stop it.
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&device), Signal::INT).unwrap();
    while device.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "iotmp device did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Options that cannot work exit with 2 and say what to fix.
#[test]
fn unusable_options_exit_2() {
    let registry = Registry::new(&[]);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let missing = registry.dir.path().join("missing.db");
    for (args, needle) in [
        (
            vec!["server", "--db", registry.db(), "--tls-cert", "c.pem"],
            "--tls-cert needs --tls-key",
        ),
        (
            vec!["server", "--db", missing.to_str().unwrap()],
            "there is no registry database",
        ),
        (
            vec![
                "server",
                "--db",
                registry.db(),
                "--listen",
                "127.0.0.1:0",
                "--http",
                &busy,
            ],
            "cannot listen for the HTTP API",
        ),
        (
            vec!["server", "--db", registry.db(), "--listen", "localhost:1"],
            "IP:PORT",
        ),
        (
            vec![
                "server",
                "--db",
                registry.db(),
                "--tls-cert",
                "/nonexistent/c.pem",
                "--tls-key",
                "k",
            ],
            "cannot read the certificate (--tls-cert) /nonexistent/c.pem",
        ),
    ] {
        let (code, _, err) = iotmp(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// `iotmp recorder` on the database: add, list, remove, and its refusals.
#[test]
fn recorder_commands() {
    let registry = Registry::new(&["alice/dev26"]);
    let (code, out, err) = registry.run(&[
        "recorder",
        "add",
        "alice/dev26",
        "temp",
        "--every",
        "5m",
        "--bucket",
        "t",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let added: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(
        added,
        json!({"id": 1, "user": "alice", "device": "dev26", "resource": "temp",
               "interval": 300, "bucket": "t"})
    );
    let (code, out, _) = registry.run(&["recorder", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("alice/dev26") && out.contains("300 s"),
        "{out}"
    );
    for (args, needle) in [
        (
            vec![
                "recorder",
                "add",
                "alice/ghost",
                "t",
                "--every",
                "1",
                "--bucket",
                "b",
            ],
            "there is no device alice/ghost",
        ),
        (
            vec![
                "recorder",
                "add",
                "alice/dev26",
                "t",
                "--every",
                "1.5",
                "--bucket",
                "b",
            ],
            "whole seconds",
        ),
        (
            vec![
                "recorder",
                "add",
                "alice/dev26",
                "t",
                "--every",
                "1",
                "--bucket",
                "a/b",
            ],
            "not a valid bucket name",
        ),
        (
            vec!["recorder", "remove", "7"],
            "there is no recorder with id 7",
        ),
    ] {
        let (code, _, err) = registry.run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, out, _) = registry.run(&["recorder", "remove", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("Removed recorder 1"), "{out}");
    let (_, out, _) = registry.run(&["recorder", "list", "--json"]);
    assert_eq!(out.trim(), "[]");
}

/// `--https`: the API over TLS with the server's certificate (and no device TLS listener).
#[test]
fn https_api() {
    let pki = Pki::new();
    let registry = Registry::new(&["alice/dev26"]);
    let (cert, key, _) = pki.files(&registry);
    let server = Server::start(
        &registry,
        &[
            "--https",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-listen",
            "off",
        ],
    );
    assert!(
        !server.stderr().contains("iotmps://"),
        "{}",
        server.stderr()
    );
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(pki.client(None), name).unwrap();
    let socket = TcpStream::connect(server.http()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let auth = format!("Bearer {}", registry.alice);
    let mut head = request_head(
        "GET",
        "/v3/users/alice/devices",
        &[("Authorization", &auth)],
    );
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A peer that closes without close_notify is fine here: the response is complete.
    let _ = tls.read_to_end(&mut raw);
    assert_eq!(
        parse_reply(&raw).ok(),
        json!([{"device": "dev26", "connected": false, "dialect": null, "connected_at": null}])
    );
    server.stop();
}

/// Session limits: a keep-alive outside the accepted range is refused with code 3, and a
/// connection that sends no CONNECT is closed after the authentication deadline.
#[test]
fn session_limits_apply() {
    let registry = Registry::new(&["alice/dev26"]);
    let server = Server::start(
        &registry,
        &["--keep-alive-min", "30", "--auth-deadline", "500ms"],
    );
    let short = Connect {
        keep_alive: Some(10),
        ..Connect::credentials(
            server.tcp.unwrap(),
            Dialect::Draft2026,
            &registry,
            "alice/dev26",
        )
    }
    .start();
    short.wait_disconnect("code 3");
    drop(short);
    let fine = Connect {
        keep_alive: Some(30),
        ..Connect::credentials(
            server.tcp.unwrap(),
            Dialect::Draft2026,
            &registry,
            "alice/dev26",
        )
    }
    .start();
    server.wait_online("alice", "dev26", &registry.alice);
    drop(fine);

    let mut silent = TcpStream::connect(server.tcp.unwrap()).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    // Closed without a byte (spec §6.1): EOF, or a reset.
    assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    server.stop();
}

/// `--record DIR` on both binaries: every connection leaves a trace that `iotmp replay`
/// replays to the same outputs, RUN included.
#[test]
fn record_writes_replayable_traces() {
    let registry = Registry::new(&["alice/pi"]);
    let server_dir = registry.dir.path().join("server-traces");
    let device_dir = registry.dir.path().join("device-traces");
    let server = Server::start(&registry, &["--record", server_dir.to_str().unwrap()]);
    let uri = format!("iotmp://{}", server.tcp.unwrap());
    let mut device = command()
        .args(["device", "-s", &uri, "--user", "alice", "--device", "pi"])
        .args([
            "--counter",
            "ticks",
            "--record",
            device_dir.to_str().unwrap(),
        ])
        .env("IOTMP_CREDENTIAL", registry.credential("alice/pi"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let alice = registry.alice.as_str();
    server.wait_online("alice", "pi", alice);
    let ticks = "/v3/users/alice/devices/pi/resources/ticks";
    assert!(server.get(ticks, Some(alice)).ok().is_u64());
    // The device first, so that it does not reconnect: one session on each side.
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&device), Signal::INT).unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = device.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "iotmp device did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // The server writes a trace when its connection closes: after the device's DISCONNECT.
    eventually("the server's trace", || {
        std::fs::read_dir(&server_dir).is_ok_and(|d| d.count() == 1)
    });
    server.stop();

    for (dir, role, run) in [
        (&server_dir, "server-", "cmd run"),
        (&device_dir, "device-1-", "Run("),
    ] {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let file = &files[0];
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(role) && name.ends_with(".trace"), "{name}");
        let trace = std::fs::read_to_string(file).unwrap();
        assert!(trace.contains(run), "{trace}");
        let (code, out, err) = iotmp(&["replay", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {err}\n{trace}");
        assert!(out.contains("ticks"), "{name}: {out}");
    }
}

// ----- admission: a credential brute force -----------------------------------------------------

/// A TCP connection from `source` (any address of 127.0.0.0/8 is local) to `to`.
fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let socket = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&socket, &SocketAddr::from((source, 0))).unwrap();
    connect(&socket, &to).unwrap();
    TcpStream::from(socket)
}

/// The first byte the server sends after our CONNECT (0x01 OK, 0x02 ERROR), or `None` when it
/// closes without a byte.
fn connect_reaction(source: [u8; 4], to: SocketAddr, credentials: [&str; 3]) -> Option<u8> {
    let mut stream = connect_from(source, to);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let connect = iotmp_proto::Message::new(iotmp_proto::MessageType::Connect)
        .with_stream_id(1)
        .with_payload(Value::Array(credentials.map(Value::from).to_vec()));
    let mut bytes = Vec::new();
    Dialect::Draft2026
        .encode(&connect, iotmp_proto::Flavour::V2, &mut bytes)
        .unwrap();
    // A connection closed at once may be reset before or after this write: the read tells.
    let _ = stream.write_all(&bytes);
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(0) => None,
        Ok(_) => Some(first[0]),
        Err(e) => {
            let kind = e.kind();
            assert!(
                !matches!(
                    kind,
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "the server neither answered nor closed in time"
            );
            None
        }
    }
}

/// A device on a raw socket from `source`, run by the sans-IO `Device` on its own thread until
/// `stop` is set: it has an output `ticks`.
fn raw_device(
    source: [u8; 4],
    to: SocketAddr,
    user: &str,
    device: &str,
    credential: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<bool> {
    let config = ClientConfig::new(Dialect::Draft2026, user, device, credential);
    std::thread::spawn(move || {
        let resources = DeviceResources::new().output("ticks", || Ok(Value::from(42u64)));
        let epoch = Instant::now();
        let now = || iotmp_proto::Instant::from_elapsed(epoch.elapsed());
        let mut device = iotmp_proto::Device::new(config, resources, now()).unwrap();
        let mut stream = connect_from(source, to);
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (mut out, mut buf, mut connected) = (Vec::new(), [0u8; 4096], false);
        while !stop.load(Ordering::Relaxed) {
            device.poll_transmit(&mut out);
            if stream.write_all(&out).is_err() {
                break;
            }
            out.clear();
            while let Some(event) = device.poll_event() {
                connected |= event == iotmp_proto::ClientEvent::Connected;
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => device.handle_input(now(), &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            if device.poll_timeout().is_some_and(|(at, _)| at <= now()) {
                device.handle_timeout(now());
            }
        }
        connected
    })
}

/// A script of wrong-credential CONNECTs from one address is banned after `--ban-after`
/// failures: its connections are then closed at once, without an answer. Meanwhile a device
/// from another address connects and is served, and the ban ends after `--ban-time`.
#[test]
fn a_credential_brute_force_is_banned() {
    let registry = Registry::new(&["alice/dev01", "alice/dev02"]);
    let server = Server::start(
        &registry,
        &[
            "--ban-after",
            "5",
            "--failure-window",
            "60s",
            "--ban-time",
            "2s",
        ],
    );
    let devices = server.tcp.unwrap();
    let attacker = [127, 0, 0, 3];
    let mut answered = 0;
    let mut closed = 0;
    for i in 0..30 {
        let guess = format!("guess-{i}");
        match connect_reaction(attacker, devices, ["alice", "dev01", &guess]) {
            Some(0x02) => {
                assert_eq!(closed, 0, "an ERROR after the ban started");
                answered += 1;
            }
            None => closed += 1,
            other => panic!("unexpected first byte {other:?}"),
        }
    }
    let banned_at = Instant::now();
    assert_eq!(answered, 5, "five refused guesses, then the ban");
    assert_eq!(closed, 25);

    // Another address is served during the ban: a device connects and answers a RUN.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let good = raw_device(
        [127, 0, 0, 2],
        devices,
        "alice",
        "dev02",
        registry.credential("alice/dev02"),
        stop.clone(),
    );
    server.wait_online("alice", "dev02", &registry.alice);
    let reply = server.get(
        "/v3/users/alice/devices/dev02/resources/ticks",
        Some(&registry.alice),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!(42));
    // Even the right credential is turned away from the banned address.
    if banned_at.elapsed() < Duration::from_millis(1500) {
        let right = registry.credential("alice/dev01");
        assert_eq!(
            connect_reaction(attacker, devices, ["alice", "dev01", right]),
            None
        );
    }
    let log = server.stderr();
    assert!(log.contains("banned 127.0.0.3 for 2s"), "{log}");

    // The ban ends after its window.
    let right = registry.credential("alice/dev01").to_owned();
    eventually("the ban to end", || {
        connect_reaction(attacker, devices, ["alice", "dev01", &right]) == Some(0x01)
    });
    stop.store(true, Ordering::Relaxed);
    assert!(good.join().unwrap(), "the good device was connected");
    let log = server.stop();
    assert!(log.contains("refused"), "{log}");
}
