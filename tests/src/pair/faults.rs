//! Faults a real network and a real driver bring, for scenario tests: raw bytes that no session
//! sent, one direction ending, a link that swallows what is already in flight, and a driver whose
//! timer only fires every so often (late `handle_timeout` calls).

use std::time::Duration;

use iotmp_proto::Instant;

use super::Pair;
use crate::hex_string;
use crate::transcript::Direction;

fn arrow(direction: Direction) -> &'static str {
    match direction {
        Direction::DeviceToServer => "C->S",
        Direction::ServerToDevice => "S->C",
    }
}

impl Pair {
    fn link_mut(&mut self, direction: Direction) -> &mut super::Link {
        match direction {
            Direction::DeviceToServer => &mut self.up,
            Direction::ServerToDevice => &mut self.down,
        }
    }

    /// Puts `bytes` on the link in `direction` as if the sending side had written them: they
    /// arrive after what is already in flight (and after the link's latency). The transcript
    /// notes them as raw hex, since they need not be whole or valid frames.
    pub fn inject(&mut self, direction: Direction, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.transcript.note(
            self.now,
            &format!("injected {}: {}", arrow(direction), hex_string(bytes)),
        );
        let now = self.now;
        let link = self.link_mut(direction);
        let at = now + link.latency;
        let at = link.in_flight.back().map_or(at, |(t, _)| (*t).max(at));
        link.in_flight.push_back((at, bytes.to_vec()));
    }

    /// Ends the byte stream in `direction` (the sender shut down its writing half): the receiver
    /// sees end of stream after what is in flight, and nothing sent later goes through.
    pub fn end_of_stream(&mut self, direction: Direction) {
        self.transcript
            .note(self.now, &format!("end of stream {}", arrow(direction)));
        match direction {
            Direction::DeviceToServer => self.up_open = false,
            Direction::ServerToDevice => self.down_open = false,
        }
        self.schedule_eof(direction);
    }

    /// The link in `direction` becomes a black hole at once: what is in flight is lost, and
    /// everything sent from now on too (a half-open connection).
    pub fn black_hole(&mut self, direction: Direction) {
        let in_flight = !self.link_mut(direction).in_flight.is_empty();
        self.transcript.note(
            self.now,
            &format!(
                "link {} drops everything from here on{}",
                arrow(direction),
                if in_flight {
                    ", and what is in flight"
                } else {
                    ""
                }
            ),
        );
        let link = self.link_mut(direction);
        link.dropping = true;
        link.in_flight.clear();
    }

    /// Advances the clock to `until` like a driver whose timer fires only every `step`: at each
    /// tick (`now + step`, `now + 2·step`, …, and `until`) everything that came due since the
    /// previous tick is processed at the tick's time, so `handle_timeout` runs late.
    pub fn run_coarse(&mut self, until: Instant, step: Duration) {
        assert!(step > Duration::ZERO, "a coarse step must be positive");
        let mut tick = self.now;
        while tick < until {
            tick = (tick + step).min(until);
            self.now = self.now.max(tick);
            let mut steps = 0u32;
            while self.next_wakeup().is_some_and(|t| t <= tick) {
                steps += 1;
                assert!(
                    steps < 100_000,
                    "the pair does not settle at the coarse tick {tick}"
                );
                self.step();
            }
        }
    }
}
