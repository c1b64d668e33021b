//! Connection establishment (spec §6.1, §6.2): accepted, refused, and never answered.

use std::time::Duration;

use iotmp_proto::client::ClientEvent;
use iotmp_proto::server::ServerEvent;
use iotmp_proto::{ClientConfig, CloseReason, Dialect, Instant, MessageType};
use iotmp_tests::pair::{AuthPolicy, alice_config};
use iotmp_tests::transcript::Direction;

use crate::common::{at, device_close, messages, sample, sample_with, server_close};

in_both_dialects!(
    connect_accepted,
    connect_refused_bad_credential,
    connect_refused_keep_alive_out_of_range,
    connect_timed_out_unanswered,
    connect_timed_out_black_hole,
);

/// CONNECT with ka 30 → the application accepts → OK; both sides are up, the device at once.
fn connect_accepted(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_for(Duration::from_secs(1));

    assert_eq!(
        s.pair.device_events,
        [(Instant::ZERO, ClientEvent::Connected)]
    );
    assert!(s.pair.device.session().is_connected());
    assert!(s.pair.server.is_established());
    assert_eq!(s.pair.server.keep_alive(), 30);
    assert_eq!(s.pair.server.dialect(), Some(dialect));
    assert!(matches!(
        s.pair.server_events.as_slice(),
        [(_, ServerEvent::Authenticate(request))] if request.keep_alive == 30
    ));
    let up = messages(&s.pair, Direction::DeviceToServer);
    let down = messages(&s.pair, Direction::ServerToDevice);
    assert_eq!(up.len(), 1, "only the CONNECT goes up");
    assert_eq!(down.len(), 1, "only the OK comes down");
    assert_eq!(down[0].1.kind, MessageType::Ok);
    assert_eq!(
        down[0].1.stream_id, up[0].1.stream_id,
        "OK carries the CONNECT's id"
    );

    insta::assert_snapshot!(
        format!("connect_accepted_{dialect}"),
        s.pair.transcript.text()
    );
}

/// A wrong credential: the application rejects, the server answers ERROR code 2 and closes; the
/// device reports the refusal.
fn connect_refused_bad_credential(dialect: Dialect) {
    let config = ClientConfig::new(dialect, "alice", "dev01", "wrong");
    let mut s = sample_with(config, |r| r);
    s.pair.run_for(Duration::from_secs(1));

    let (when, reason) = device_close(&s.pair).expect("the device closes");
    assert_eq!(when, Instant::ZERO);
    let CloseReason::ConnectRejected(info) = reason else {
        panic!("the device should report the refusal, got {reason:?}");
    };
    assert_eq!(info.code, Some(2));
    let text = (dialect == Dialect::Draft2020).then(|| "bad credentials".to_owned());
    assert_eq!(info.text, text, "2026 refuses with the code only (§6.10)");
    assert_eq!(
        server_close(&s.pair),
        Some((Instant::ZERO, CloseReason::Refused { code: 2 }))
    );

    insta::assert_snapshot!(
        format!("connect_refused_bad_credential_{dialect}"),
        s.pair.transcript.text()
    );
}

/// ka 2 is below the accepted 5..=1800: ERROR code 3 before the application is even asked.
fn connect_refused_keep_alive_out_of_range(dialect: Dialect) {
    let mut s = sample_with(alice_config(dialect).with_keep_alive(2), |r| r);
    s.pair.run_for(Duration::from_secs(1));

    assert!(
        !s.pair
            .server_events
            .iter()
            .any(|(_, e)| matches!(e, ServerEvent::Authenticate(_))),
        "the keep-alive is checked before authentication (§6.1 step 5)"
    );
    assert_eq!(
        server_close(&s.pair),
        Some((Instant::ZERO, CloseReason::Refused { code: 3 }))
    );
    assert!(matches!(
        device_close(&s.pair),
        Some((Instant::ZERO, CloseReason::ConnectRejected(info))) if info.code == Some(3)
    ));

    insta::assert_snapshot!(
        format!("connect_refused_keep_alive_out_of_range_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The server application never decides: the device gives up on its CONNECT after the 10 s
/// request timeout, and the server closes at its 10 s authentication deadline, sending nothing.
fn connect_timed_out_unanswered(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.auth = AuthPolicy::Ignore;
    s.pair.run_for(Duration::from_secs(20));

    assert_eq!(
        device_close(&s.pair),
        Some((at(10.0), CloseReason::ConnectTimeout))
    );
    assert_eq!(
        server_close(&s.pair),
        Some((at(10.0), CloseReason::AuthDeadline))
    );
    assert!(
        messages(&s.pair, Direction::ServerToDevice).is_empty(),
        "the server sends nothing when its deadline fires"
    );
    assert_eq!(messages(&s.pair, Direction::DeviceToServer).len(), 1);

    insta::assert_snapshot!(
        format!("connect_timed_out_unanswered_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The device's link swallows everything, its CONNECT included: the server closes at its
/// authentication deadline (10 s after accepting the transport); the device, which would wait
/// 30 s for an answer, learns it from the end of the stream.
fn connect_timed_out_black_hole(dialect: Dialect) {
    let mut config = alice_config(dialect).with_keep_alive(30);
    config.request_timeout = Duration::from_secs(30);
    let mut s = sample_with(config, |r| r);
    s.pair.black_hole(Direction::DeviceToServer);
    s.pair.run_for(Duration::from_secs(40));

    assert_eq!(
        server_close(&s.pair),
        Some((at(10.0), CloseReason::AuthDeadline))
    );
    assert!(
        !s.pair
            .server_events
            .iter()
            .any(|(_, e)| matches!(e, ServerEvent::Authenticate(_))),
        "the CONNECT never arrived"
    );
    assert_eq!(
        device_close(&s.pair),
        Some((at(10.0), CloseReason::TransportClosed))
    );

    insta::assert_snapshot!(
        format!("connect_timed_out_black_hole_{dialect}"),
        s.pair.transcript.text()
    );
}
