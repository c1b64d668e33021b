//! The queue of encoded frames waiting for `poll_transmit`.

use crate::dialect::{Dialect, EncodeError};
use crate::message::Message;
use crate::pson::Flavour;

/// Above this capacity a drained queue gives its memory back, so idle sessions hold no buffer.
const RETAIN_CAPACITY: usize = 256;

#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) dialect: Dialect,
    pub(crate) flavour: Flavour,
    bytes: Vec<u8>,
}

impl Outbox {
    pub(crate) const fn new(dialect: Dialect, flavour: Flavour) -> Self {
        Outbox {
            dialect,
            flavour,
            bytes: Vec::new(),
        }
    }

    /// Encodes `message` as one frame at the end of the queue (nothing on error).
    pub(crate) fn send(&mut self, message: &Message) -> Result<(), EncodeError> {
        self.dialect.encode(message, self.flavour, &mut self.bytes)
    }

    pub(crate) fn send_raw(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn clear(&mut self) {
        self.bytes = Vec::new();
    }

    /// Gives the memory of an empty queue back (a queue with bytes keeps them).
    pub(crate) fn release(&mut self) {
        if self.bytes.is_empty() {
            self.bytes = Vec::new();
        }
    }

    /// Moves every queued byte to the end of `buf`; returns how many.
    pub(crate) fn drain_into(&mut self, buf: &mut Vec<u8>) -> usize {
        let n = self.bytes.len();
        if buf.is_empty() && buf.capacity() < self.bytes.capacity() {
            std::mem::swap(buf, &mut self.bytes);
        } else {
            buf.append(&mut self.bytes);
        }
        if self.bytes.capacity() > RETAIN_CAPACITY {
            self.bytes = Vec::new();
        }
        n
    }
}
