//! Late timer wakeups (spec §6.3, §6.7): a driver whose timer fires only every 7 s. Sampling
//! skips the periods it missed instead of bursting them, and keep-alives stay on their fixed
//! schedule (each goes out at the first wakeup after it was due; the next one is still due at
//! t0 + k·ka, not "ka after the late one").

use std::time::Duration;

use iotmp_proto::{CloseReason, Dialect, Instant, MessageType};
use iotmp_tests::pair::alice_config;
use iotmp_tests::transcript::Direction;

use crate::common::{at, device_close, sample_with, server_close, stream_data, times_of};

in_both_dialects!(late_wakeups);

fn late_wakeups(dialect: Dialect) {
    let mut s = sample_with(alice_config(dialect).with_keep_alive(30), |r| r);
    s.pair.run_until(at(1.0));
    // Every 2 s: more than three periods pass between two wakeups.
    let id = s
        .pair
        .on_server(|srv, now| srv.start_stream(now, "temp", 2000))
        .unwrap();
    let step = Duration::from_secs(7);
    let now = s.pair.now;
    s.pair.transcript.note(
        now,
        "from here on the driver wakes the sessions only every 7 s",
    );
    s.pair.run_coarse(at(121.0), step);

    let ticks: Vec<Instant> = (1..=17).map(|k| at(1.0 + 7.0 * f64::from(k))).collect();
    let samples: Vec<Instant> = stream_data(&s.pair)
        .into_iter()
        .map(|(t, i, _)| {
            assert_eq!(i, id);
            t
        })
        .collect();
    let mut expected = vec![at(1.0)];
    expected.extend(&ticks);
    assert_eq!(
        samples, expected,
        "one sample per wakeup (the immediate one at 1 s, then every tick): no burst"
    );
    // Keep-alives due at 30, 60, 90, 120 s go out at the first wakeup at or after that.
    let first_tick_after = |due: Instant| *ticks.iter().find(|t| **t >= due).unwrap();
    let keep_alives: Vec<Instant> = (1..=4)
        .map(|k| first_tick_after(at(30.0 * f64::from(k))))
        .collect();
    assert_eq!(keep_alives, [at(36.0), at(64.0), at(92.0), at(120.0)]);
    assert_eq!(
        times_of(&s.pair, Direction::DeviceToServer, MessageType::KeepAlive),
        keep_alives
    );
    assert_eq!(
        times_of(&s.pair, Direction::ServerToDevice, MessageType::KeepAlive),
        keep_alives
    );
    assert_eq!(device_close(&s.pair), None::<(Instant, CloseReason)>);
    assert_eq!(server_close(&s.pair), None::<(Instant, CloseReason)>);

    insta::assert_snapshot!(format!("late_wakeups_{dialect}"), s.pair.transcript.text());
}
