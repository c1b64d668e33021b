//! The replay-trace state both sessions carry: the time that stamps outputs, and, while
//! recording (feature `serde`), the trace being written. One place, so that the client and the
//! server record inputs, commands and outputs the same way.

use crate::time::Instant;

#[derive(Debug)]
pub(crate) struct Recording {
    /// The time of the latest input or command, which stamps outputs in a trace.
    pub(crate) now: Instant,
    #[cfg(feature = "serde")]
    pub(crate) trace: Option<Box<crate::trace::TraceWriter>>,
}

impl Recording {
    pub(crate) const fn new(now: Instant) -> Self {
        Recording {
            now,
            #[cfg(feature = "serde")]
            trace: None,
        }
    }

    /// Starts a trace with `header`.
    #[cfg(feature = "serde")]
    pub(crate) fn start(&mut self, header: crate::trace::TraceWriter) {
        self.trace = Some(Box::new(header));
    }

    /// The trace text written since the last call (empty when not recording).
    #[cfg(feature = "serde")]
    pub(crate) fn take(&mut self) -> String {
        self.trace
            .as_deref_mut()
            .map(crate::trace::TraceWriter::take)
            .unwrap_or_default()
    }

    /// Records the bytes a `poll_transmit` appended after `start`.
    #[cfg_attr(not(feature = "serde"), allow(unused_variables))]
    pub(crate) fn output(&mut self, buf: &[u8], start: usize) {
        #[cfg(feature = "serde")]
        if let Some(trace) = self.trace.as_deref_mut() {
            trace.output(self.now, buf.get(start..).unwrap_or_default());
        }
    }

    /// Records an event a `poll_event` hands out.
    #[cfg_attr(not(feature = "serde"), allow(unused_variables))]
    pub(crate) fn event(&mut self, event: Option<&dyn core::fmt::Debug>) {
        #[cfg(feature = "serde")]
        if let (Some(e), Some(trace)) = (event, self.trace.as_deref_mut()) {
            trace.event(self.now, e);
        }
    }
}
