//! The delivery pump: the first stop of every driver event, a task on smol's executor.
//!
//! A value for an API sink goes straight into its queue here, on the executor that also runs
//! the WebSocket and SSE tasks, so that waking those tasks is a local schedule rather than a
//! wake-up of another thread. Everything else (authentication, connection state, recorder
//! values, refusals) is forwarded unchanged, in order, to the event loop thread, whose work may
//! block (SQLite, SHA-256).
//!
//! One wake-up handles every event already queued (up to [`MAX_BATCH`]) and reads the clock
//! once for the values among them: under load the driver keeps adding while the pump works.

use std::sync::Arc;
use std::time::SystemTime;

use async_channel::{Receiver, Sender};
use iotmp_cli::api::{SinkValue, unix_ms};
use iotmp_proto::broker::BrokerEvent;

use super::state::Shared;

/// Most events handled per wake-up before the pump lets the executor's other tasks run.
pub(crate) const MAX_BATCH: usize = 1024;

/// Runs until the driver's events end; then drops `rest`, which ends the event loop.
pub(crate) async fn run(
    events: Receiver<BrokerEvent>,
    shared: Arc<Shared>,
    rest: Sender<BrokerEvent>,
) {
    while let Ok(first) = events.recv().await {
        let received_ms = unix_ms(SystemTime::now());
        route(first, &shared, &rest, received_ms);
        let mut handled = 1;
        while handled < MAX_BATCH {
            let Ok(event) = events.try_recv() else { break };
            route(event, &shared, &rest, received_ms);
            handled += 1;
        }
        if handled == MAX_BATCH {
            futures_lite::future::yield_now().await;
        }
    }
}

/// Delivers a value for an API sink; forwards anything else.
fn route(event: BrokerEvent, shared: &Shared, rest: &Sender<BrokerEvent>, received_ms: u64) {
    let values = match &event {
        BrokerEvent::Delivery { sink, .. } => shared.sink(*sink),
        _ => None,
    };
    match (values, event) {
        (Some(values), BrokerEvent::Delivery { value, .. }) => {
            // False once the socket closed; the API unsubscribes that sink itself.
            let _ = values.send(SinkValue {
                value,
                ts_unix_ms: received_ms,
            });
        }
        // Unbounded: never full; closed only once the event loop is gone (shutdown).
        (_, other) => {
            let _ = rest.try_send(other);
        }
    }
}
