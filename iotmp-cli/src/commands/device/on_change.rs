//! `--on-change NAME:every=1s,threshold=0.5`: a thread per watched resource polls it and,
//! when its value changed enough, sends it on the resource's event stream (spec §6.7, the
//! seed's "heading" example: a compass streams only when it turns).
//!
//! A change is measured from the last value *sent* (or, at first, the first value polled), not
//! from the previous poll, so a slow drift is sent once it adds up to the threshold. The polled
//! value is the one sent (`stream_value`): reading the resource again to send it would run its
//! command a second time, or step a counter twice. The driver drops the value when no server
//! listens to the resource's event stream.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};

use iotmp_proto::Value;
use tracing::{debug, warn};

use super::driver::Handle;
use super::sources::{Read, log_text};
use super::spec::Watch;

/// Whether `now` differs enough from `reference` to be sent: numbers by at least `threshold`
/// (and by something, so that a threshold of 0 means any change), anything else when unequal.
pub(crate) fn changed(reference: &Value, now: &Value, threshold: f64) -> bool {
    match (reference.as_f64(), now.as_f64()) {
        (Some(a), Some(b)) => a != b && (a - b).abs() >= threshold,
        _ => reference != now,
    }
}

/// The running pollers. Dropping them (or [`Watchers::stop`]) ends them at their next wake-up;
/// their threads are not joined (see [`Watchers::stop`]).
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    stops: Vec<Sender<()>>,
}

impl Watchers {
    /// Starts one poller per watch; `readers` must hold every watched name (the declarations
    /// were checked for it).
    pub(crate) fn start(
        watches: &[Watch],
        readers: &[(String, Arc<dyn Read>)],
        handle: &Handle,
    ) -> std::io::Result<Watchers> {
        let mut watchers = Watchers::default();
        for watch in watches {
            let Some((_, reader)) = readers.iter().find(|(name, _)| *name == watch.name) else {
                continue;
            };
            let (stop, stopped) = mpsc::channel::<()>();
            let poller = Poller {
                watch: watch.clone(),
                reader: reader.clone(),
                handle: handle.clone(),
            };
            std::thread::Builder::new()
                .name(format!("iotmp-watch-{}", watch.name))
                .spawn(move || poller.run(&stopped))?;
            watchers.stops.push(stop);
        }
        Ok(watchers)
    }

    /// Tells every poller to stop. It does not wait: a poller may be in the middle of a
    /// command, and the device's shutdown need not wait for that.
    pub(crate) fn stop(self) {
        drop(self.stops);
    }
}

struct Poller {
    watch: Watch,
    reader: Arc<dyn Read>,
    handle: Handle,
}

impl Poller {
    fn run(self, stopped: &mpsc::Receiver<()>) {
        let name = &self.watch.name;
        let mut reference: Option<Value> = None;
        let mut last_error: Option<String> = None;
        // The stop channel doubles as the sleep: it wakes up at once when the device stops.
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(self.watch.every) {
            let value = match self.reader.read() {
                Ok(value) => {
                    last_error = None;
                    value
                }
                Err(e) => {
                    // Once per distinct failure: a broken sensor polled every second would
                    // otherwise flood the log.
                    if last_error.as_deref() != Some(e.message.as_str()) {
                        warn!("--on-change {name}: reading failed: {}", e.message);
                        last_error = Some(e.message);
                    }
                    continue;
                }
            };
            match &reference {
                None => reference = Some(value),
                Some(previous) if changed(previous, &value, self.watch.threshold) => {
                    debug!(
                        "--on-change {name}: {} -> {}",
                        log_text(previous),
                        log_text(&value)
                    );
                    self.handle.stream_value(name, value.clone());
                    reference = Some(value);
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_by_threshold_others_by_equality() {
        let n = |x: f64| Value::from_number(x);
        assert!(!changed(&n(10.0), &n(10.2), 0.5));
        assert!(changed(&n(10.0), &n(10.5), 0.5));
        assert!(changed(&n(10.0), &n(9.0), 0.5));
        assert!(changed(&n(1.0), &n(1.001), 0.0), "threshold 0: any change");
        assert!(!changed(&n(1.0), &n(1.0), 0.0));
        assert!(
            !changed(&Value::UInt(3), &Value::F32(3.0), 0.0),
            "same number, other type"
        );
        assert!(changed(&Value::from("N"), &Value::from("NE"), 100.0));
        assert!(!changed(&Value::from("N"), &Value::from("N"), 0.0));
        assert!(changed(&n(1.0), &Value::from("1"), 0.0));
    }
}
