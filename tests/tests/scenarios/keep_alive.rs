//! Keep-alive (spec §6.3): the device's fixed schedule, the server's echo, and how each side
//! notices that the other has gone silent.

use iotmp_proto::{CloseReason, Dialect, MessageType};
use iotmp_tests::transcript::Direction;

use crate::common::{at, device_close, excerpt, sample, server_close, times_of};

in_both_dialects!(
    keep_alive_hour,
    keep_alive_lost_server_to_device,
    keep_alive_lost_device_to_server,
);

/// An idle hour with ka 60: 60 keep-alives up at 60 s, 120 s, … 3600 s, each echoed at once.
/// The snapshot keeps the first two and the last minute.
fn keep_alive_hour(dialect: Dialect) {
    let mut s = sample(dialect, Some(60));
    s.pair.run_until(at(3600.0));

    let expected: Vec<_> = (1..=60).map(|k| at(60.0 * f64::from(k))).collect();
    let up = times_of(&s.pair, Direction::DeviceToServer, MessageType::KeepAlive);
    let down = times_of(&s.pair, Direction::ServerToDevice, MessageType::KeepAlive);
    assert_eq!(up.len(), 60);
    assert_eq!(down.len(), 60);
    assert_eq!(
        up, expected,
        "the device keeps a fixed schedule from the OK"
    );
    assert_eq!(down, expected, "the server echoes every keep-alive at once");
    assert!(s.pair.device.session().is_connected() && s.pair.server.is_established());
    assert_eq!(device_close(&s.pair), None);
    assert_eq!(server_close(&s.pair), None);

    insta::assert_snapshot!(
        format!("keep_alive_hour_{dialect}"),
        excerpt(s.pair.transcript.text(), |t| t <= 120.0 || t >= 3540.0)
    );
}

/// The server's echoes stop reaching the device after 100 s. The keep-alive of 120 s goes out
/// and nothing comes back; at 180 s the next one is due with no frame received since the last:
/// the device declares the link dead, sends nothing more and closes.
fn keep_alive_lost_server_to_device(dialect: Dialect) {
    let mut s = sample(dialect, Some(60));
    s.pair.run_until(at(100.0));
    s.pair.black_hole(Direction::ServerToDevice);
    s.pair.run_until(at(300.0));

    assert_eq!(
        device_close(&s.pair),
        Some((at(180.0), CloseReason::DeadLink))
    );
    assert_eq!(
        times_of(&s.pair, Direction::DeviceToServer, MessageType::KeepAlive),
        [at(60.0), at(120.0)],
        "no keep-alive goes out once the link is declared dead"
    );
    // The device closing its transport is what the server sees.
    assert_eq!(
        server_close(&s.pair),
        Some((at(180.0), CloseReason::TransportClosed))
    );

    insta::assert_snapshot!(
        format!("keep_alive_lost_server_to_device_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The device's frames stop reaching the server after 100 s. The last frame the server got is
/// the keep-alive of 60 s, so it expires the connection at 60 + 60 × 1.15 = 129 s, without a
/// DISCONNECT; the device sees the end of the stream.
fn keep_alive_lost_device_to_server(dialect: Dialect) {
    let mut s = sample(dialect, Some(60));
    s.pair.run_until(at(100.0));
    s.pair.black_hole(Direction::DeviceToServer);
    s.pair.run_until(at(300.0));

    assert_eq!(
        server_close(&s.pair),
        Some((at(129.0), CloseReason::KeepAliveExpired))
    );
    assert!(
        times_of(&s.pair, Direction::ServerToDevice, MessageType::Disconnect).is_empty(),
        "no DISCONNECT on keep-alive expiry (§6.11)"
    );
    assert_eq!(
        device_close(&s.pair),
        Some((at(129.0), CloseReason::TransportClosed))
    );

    insta::assert_snapshot!(
        format!("keep_alive_lost_device_to_server_{dialect}"),
        s.pair.transcript.text()
    );
}
