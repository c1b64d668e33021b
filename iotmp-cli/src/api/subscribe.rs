//! The subscription handshake of the streaming endpoints (spec §8.4): register the sink, wait
//! (bounded) until the backend says it is established, and remove it again whatever happens to
//! the socket afterwards.

use std::sync::Arc;

use async_io::Timer;
use futures_lite::future::FutureExt as _;
use iotmp_proto::fanout::SinkId;

use super::backend::{Backend, BoxFuture, SubscribeOutcome};
use super::errors::ApiError;
use super::server::App;
use super::sink::{SinkReceiver, Wakeup};

/// A registered sink: unsubscribes when dropped, so that a closed socket, a failed handshake
/// or a replaced subscription always removes its sink exactly once.
#[derive(Debug)]
pub(crate) struct SinkGuard {
    backend: Arc<dyn Backend>,
    user: String,
    device: String,
    resource: String,
    sink: SinkId,
}

impl SinkGuard {
    pub(crate) fn sink(&self) -> SinkId {
        self.sink
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.backend
            .unsubscribe(&self.user, &self.device, &self.resource, self.sink);
    }
}

/// A sink just registered: its guard, its queue, and the outcome still to come.
pub(crate) struct Started {
    pub(crate) guard: SinkGuard,
    pub(crate) values: SinkReceiver,
    pub(crate) ready: BoxFuture<SubscribeOutcome>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

/// Registers a sink for `resource` whose values wake `wakeup`'s connection.
pub(crate) fn start(
    app: &App,
    wakeup: &Wakeup,
    user: &str,
    device: &str,
    resource: &str,
    interval_s: u32,
) -> Started {
    let label = format!("{user}/{device}/{resource}");
    let (sender, values) = wakeup.queue(app.limits.sink_queue, label);
    let subscription = app
        .backend
        .subscribe(user, device, resource, interval_s, sender);
    Started {
        guard: SinkGuard {
            backend: Arc::clone(&app.backend),
            user: user.to_owned(),
            device: device.to_owned(),
            resource: resource.to_owned(),
            sink: subscription.sink,
        },
        values,
        ready: subscription.ready,
    }
}

/// Waits for a sink to be established, at most `timeout` (then 504).
pub(crate) async fn establish(
    ready: BoxFuture<SubscribeOutcome>,
    timeout: std::time::Duration,
) -> Result<(), ApiError> {
    let outcome = async { Some(ready.await) }
        .or(async {
            Timer::after(timeout).await;
            None
        })
        .await;
    match outcome {
        None => Err(ApiError::timeout()),
        Some(Ok(())) => Ok(()),
        Some(Err(failure)) => Err(ApiError::from_subscribe_failure(&failure)),
    }
}
