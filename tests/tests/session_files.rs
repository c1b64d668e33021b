//! Replays parts 1–9 of `vectors/sessions-2020.txt` and `sessions-2026.txt` with a real device
//! session and a real server session on the virtual clock, and checks that they produce exactly
//! the file's frames, in the file's order, at the file's times.

use std::time::Duration;

use iotmp_proto::{ClientConfig, DeviceResources, Dialect, Instant};
use iotmp_tests::pair::{Pair, alice_config};
use iotmp_tests::sample::server_config;
use iotmp_tests::sessions::{FileFrame, parse};
use iotmp_tests::transcript::Direction;
use iotmp_tests::{hex_string, load_text};

/// Part 9: one connection per rejected login.
fn rejected(config: ClientConfig) -> Pair {
    let mut pair = Pair::new(config, DeviceResources::new(), server_config());
    pair.run_for(Duration::from_secs(1));
    assert!(
        pair.device_closed() && pair.server_closed(),
        "a refused CONNECT closes both ends"
    );
    pair
}

fn produced(pairs: &[Pair]) -> Vec<(Instant, Direction, Vec<u8>)> {
    pairs
        .iter()
        .flat_map(|p| p.transcript.frames().iter().cloned())
        .collect()
}

fn check(dialect: Dialect, file: &str) {
    let expected: Vec<FileFrame> = parse(&load_text(file))
        .into_iter()
        .filter(|f| f.part <= 9)
        .collect();
    assert!(
        expected.len() > 30,
        "{file}: parts 1-9 should hold many frames"
    );
    let (user, device, _) = iotmp_tests::pair::alice();
    let wrong = ClientConfig::new(dialect, &user, &device, "wrong");
    let short_ka = alice_config(dialect).with_keep_alive(2);
    let pairs = [
        iotmp_tests::sample::main_exchange(dialect),
        rejected(wrong),
        rejected(short_ka),
    ];
    let got = produced(&pairs);
    let transcripts: String = pairs
        .iter()
        .map(|p| p.transcript.text())
        .collect::<Vec<_>>()
        .join("\n");
    for (i, want) in expected.iter().enumerate() {
        let Some((at, direction, bytes)) = got.get(i) else {
            panic!("{file}: frame {i} missing: {}\n{transcripts}", want.line);
        };
        assert_eq!(
            (direction, hex_string(bytes)),
            (&want.direction, hex_string(&want.bytes)),
            "{file}: frame {i} ({})\n{transcripts}",
            want.line
        );
        if let Some(t) = want.time {
            assert_eq!(*at, Pair::at(t), "{file}: frame {i} ({}) time", want.line);
        }
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{file}: extra frames\n{transcripts}"
    );
}

#[test]
fn session_2020_parts_1_to_9() {
    check(Dialect::Draft2020, "sessions-2020.txt");
}

#[test]
fn session_2026_parts_1_to_9() {
    check(Dialect::Draft2026, "sessions-2026.txt");
}
