//! Server-Sent Events on a single-resource URL (spec §8.4).
//!
//! `200`, `Content-Type: text/event-stream`, then one `data: <compact JSON>\n\n` event per
//! delivered value (the values queued at one wake-up go out as one chunk, so one write), and a
//! `:` comment after [`ApiLimits::sse_keepalive`](super::ApiLimits) of silence, which also lets
//! a vanished client be noticed (the write fails). The body owns the
//! sink: when hyper drops it (client gone, connection closed) the sink is removed. The stream
//! ends on shutdown, so that the connection can close gracefully.

use std::convert::Infallible;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future::FutureExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::Shutdown;
use super::errors::ApiError;
use iotmp_proto::Value;
use iotmp_proto::json::value::write_json;

use super::json::ApiBody;
use super::server::App;
use super::sink::{SinkReceiver, Wakeup};
use super::subscribe::{SinkGuard, establish, start};

/// The comment sent while idle.
const KEEPALIVE: &[u8] = b":\n\n";

/// Subscribes, waits for the device (§8.4 handshake), and answers with the event stream.
pub(crate) async fn open(
    app: &App,
    user: String,
    device: String,
    resource: String,
    interval_s: u32,
) -> Result<Response<ApiBody>, ApiError> {
    let wakeup = Wakeup::new();
    let started = start(app, &wakeup, &user, &device, &resource, interval_s);
    // On failure the guard drops here and removes the sink.
    establish(started.ready, app.limits.answer_timeout).await?;
    tracing::debug!(
        sink = started.guard.sink(),
        "SSE stream for {user}/{device}/{resource}"
    );
    let state = State {
        values: started.values,
        wakeup,
        _guard: started.guard,
        keepalive: app.limits.sse_keepalive,
        shutdown: app.shutdown.clone(),
    };
    let events = futures_lite::stream::unfold(state, |mut state| async move {
        let frame = state.next_event().await?;
        Some((Ok::<_, Infallible>(Frame::data(frame)), state))
    });
    let mut response = Response::new(StreamBody::new(events).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Most events in one chunk; the sink queue's own bound is usually smaller.
const MAX_BATCH: usize = 256;

/// Appends one `data:` event holding the value's compact JSON.
fn push_event(chunk: &mut Vec<u8>, value: &Value) {
    chunk.extend_from_slice(b"data: ");
    write_json(value, chunk);
    chunk.extend_from_slice(b"\n\n");
}

/// What the event stream holds between events.
struct State {
    values: SinkReceiver,
    wakeup: Wakeup,
    /// Keeps the sink registered while the body lives.
    _guard: SinkGuard,
    keepalive: Duration,
    shutdown: Shutdown,
}

enum Wait {
    Value,
    Idle,
    Stop,
}

impl State {
    /// The next chunk to send: an event, or a keep-alive comment; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            if self.shutdown.is_triggered() {
                return None;
            }
            if let Some(value) = self.values.try_recv() {
                // Every value queued by now goes out in one chunk, so one write.
                let mut chunk = Vec::with_capacity(64);
                push_event(&mut chunk, &value.value);
                for _ in 1..MAX_BATCH {
                    let Some(value) = self.values.try_recv() else {
                        break;
                    };
                    push_event(&mut chunk, &value.value);
                }
                self.values.log_drops();
                return Some(Bytes::from(chunk));
            }
            let keepalive = self.keepalive;
            let wait = async {
                self.wakeup.wait().await;
                Wait::Value
            }
            .or(async {
                self.shutdown.wait().await;
                Wait::Stop
            })
            .or(async {
                Timer::after(keepalive).await;
                Wait::Idle
            })
            .await;
            match wait {
                Wait::Value => {}
                Wait::Idle => return Some(Bytes::from_static(KEEPALIVE)),
                Wait::Stop => return None,
            }
        }
    }
}
