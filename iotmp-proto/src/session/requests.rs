//! Table (a) of spec §6.4: the requests and streams this side opened, with stream-id allocation
//! and request timeouts. Both the client and the server use it as requesters.

use core::time::Duration;

use super::{Answer, CommandError};
use crate::message::MessageType;
use crate::time::Instant;

/// Where a stream this side opened stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamPhase {
    /// START_STREAM sent, no answer yet.
    Opening,
    /// Answered OK.
    Open,
    /// A reconfiguring START_STREAM is unanswered.
    Reconfiguring,
    /// STOP_STREAM sent; the id stays bound until it is answered.
    Stopping,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnKind {
    /// RUN, DESCRIBE, CONNECT or DISCONNECT awaiting its answer.
    Request(MessageType),
    /// A stream: its phase and configured interval.
    Stream {
        phase: StreamPhase,
        interval_ms: u64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Own {
    pub(crate) id: u16,
    pub(crate) kind: OwnKind,
    /// Set while an answer is awaited.
    pub(crate) deadline: Option<Instant>,
}

/// What an answer or a timeout did to table (a).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolution {
    /// A plain request was answered; its id is free again.
    Answered {
        id: u16,
        kind: MessageType,
        answer: Answer,
    },
    /// A plain request got no answer in time; its id is free again.
    TimedOut { id: u16, kind: MessageType },
    /// The peer accepted a new or reconfigured stream.
    StreamOpen { id: u16, interval_ms: u64 },
    /// The stream is gone: refused, timed out, or stopped. `send_stop` asks the caller to send
    /// STOP_STREAM for it (spec §6.4, §6.8); its answer will be ignored.
    StreamClosed {
        id: u16,
        why: StreamEnd,
        send_stop: bool,
    },
}

/// Why a stream of this side ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// STOP_STREAM was answered (or given up on).
    Stopped,
    /// The peer answered ERROR to START_STREAM.
    Refused(crate::dialect::ErrorInfo),
    /// The peer did not answer START_STREAM in time.
    TimedOut,
    /// The connection ended.
    ConnectionEnded,
}

#[derive(Debug)]
pub(crate) struct OwnTable {
    entries: Vec<Own>,
    next_id: u16,
    timeout: Duration,
    max_pending: usize,
    max_streams: usize,
}

impl OwnTable {
    pub(crate) fn new(
        first_id: u16,
        timeout: Duration,
        max_pending: usize,
        max_streams: usize,
    ) -> Self {
        OwnTable {
            entries: Vec::new(),
            next_id: first_id,
            timeout,
            max_pending,
            max_streams,
        }
    }

    /// Nothing outstanding: no request and no stream.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn pending(&self) -> usize {
        self.entries.iter().filter(|e| e.deadline.is_some()).count()
    }

    fn streams(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, OwnKind::Stream { .. }))
            .count()
    }

    pub(crate) fn contains(&self, id: u16) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    pub(crate) fn get(&self, id: u16) -> Option<&Own> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Allocates the next free id (spec §6.4): sequential, wrapping, never 0, never one in use
    /// here or (per `peer_uses`) in the peer's table.
    pub(crate) fn allocate(
        &mut self,
        peer_uses: impl Fn(u16) -> bool,
    ) -> Result<u16, CommandError> {
        for _ in 0..=u16::MAX {
            let candidate = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if candidate != 0 && !self.contains(candidate) && !peer_uses(candidate) {
                return Ok(candidate);
            }
        }
        Err(CommandError::NoStreamId)
    }

    /// Checks the request limit before a new request is built.
    pub(crate) fn check_capacity(&self, opens_stream: bool) -> Result<(), CommandError> {
        if self.pending() >= self.max_pending {
            return Err(CommandError::TooManyRequests);
        }
        if opens_stream && self.streams() >= self.max_streams {
            return Err(CommandError::TooManyStreams);
        }
        Ok(())
    }

    /// Records a request that was just sent with `id`.
    pub(crate) fn insert_request(&mut self, now: Instant, id: u16, kind: MessageType) {
        self.entries.push(Own {
            id,
            kind: OwnKind::Request(kind),
            deadline: Some(now + self.timeout),
        });
    }

    /// Records a START_STREAM that was just sent for a new stream.
    pub(crate) fn insert_stream(&mut self, now: Instant, id: u16, interval_ms: u64) {
        self.entries.push(Own {
            id,
            kind: OwnKind::Stream {
                phase: StreamPhase::Opening,
                interval_ms,
            },
            deadline: Some(now + self.timeout),
        });
    }

    /// Marks an open stream as being reconfigured (a START_STREAM with its id was sent).
    pub(crate) fn reconfigure(
        &mut self,
        now: Instant,
        id: u16,
        interval_ms: u64,
    ) -> Result<(), CommandError> {
        let timeout = self.timeout;
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(Own {
                kind:
                    OwnKind::Stream {
                        phase,
                        interval_ms: current,
                    },
                deadline,
                ..
            }) if *phase != StreamPhase::Stopping => {
                *phase = StreamPhase::Reconfiguring;
                *current = interval_ms;
                *deadline = Some(now + timeout);
                Ok(())
            }
            _ => Err(CommandError::UnknownStream(id)),
        }
    }

    /// Marks a stream as stopping (STOP_STREAM was sent).
    pub(crate) fn stop(&mut self, now: Instant, id: u16) -> Result<(), CommandError> {
        let timeout = self.timeout;
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(Own {
                kind: OwnKind::Stream { phase, .. },
                deadline,
                ..
            }) if *phase != StreamPhase::Stopping => {
                *phase = StreamPhase::Stopping;
                *deadline = Some(now + timeout);
                Ok(())
            }
            _ => Err(CommandError::UnknownStream(id)),
        }
    }

    /// Is `id` a stream of ours that data may arrive on?
    pub(crate) fn is_live_stream(&self, id: u16) -> bool {
        matches!(self.get(id), Some(Own { kind: OwnKind::Stream { phase, .. }, .. }) if *phase != StreamPhase::Stopping)
    }

    fn remove(&mut self, id: u16) -> Option<Own> {
        let index = self.entries.iter().position(|e| e.id == id)?;
        Some(self.entries.swap_remove(index))
    }

    /// Applies an OK or ERROR for `id`. `None` when nothing awaited it (ignored, spec §6.4).
    pub(crate) fn answer(&mut self, id: u16, answer: Answer) -> Option<Resolution> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == id && e.deadline.is_some())?;
        match (&mut entry.kind, answer) {
            (OwnKind::Request(kind), answer) => {
                let kind = *kind;
                self.remove(id);
                Some(Resolution::Answered { id, kind, answer })
            }
            (
                OwnKind::Stream {
                    phase: StreamPhase::Stopping,
                    ..
                },
                _,
            ) => {
                self.remove(id);
                Some(Resolution::StreamClosed {
                    id,
                    why: StreamEnd::Stopped,
                    send_stop: false,
                })
            }
            (OwnKind::Stream { phase, interval_ms }, Answer::Ok { .. }) => {
                *phase = StreamPhase::Open;
                entry.deadline = None;
                Some(Resolution::StreamOpen {
                    id,
                    interval_ms: *interval_ms,
                })
            }
            (OwnKind::Stream { phase, .. }, Answer::Error(info)) => {
                // A refused reconfigure leaves a stream the peer may still run: stop it (§6.8).
                let send_stop = *phase == StreamPhase::Reconfiguring;
                self.remove(id);
                Some(Resolution::StreamClosed {
                    id,
                    why: StreamEnd::Refused(info),
                    send_stop,
                })
            }
        }
    }

    /// The earliest answer deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.deadline).min()
    }

    /// Expires every request whose deadline is at or before `now`, in id order.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Resolution>) {
        let mut expired: Vec<u16> = self
            .entries
            .iter()
            .filter(|e| e.deadline.is_some_and(|d| d <= now))
            .map(|e| e.id)
            .collect();
        expired.sort_unstable();
        for id in expired {
            let Some(entry) = self.remove(id) else {
                continue;
            };
            out.push(match entry.kind {
                OwnKind::Request(kind) => Resolution::TimedOut { id, kind },
                OwnKind::Stream {
                    phase: StreamPhase::Stopping,
                    ..
                } => Resolution::StreamClosed {
                    id,
                    why: StreamEnd::Stopped,
                    send_stop: false,
                },
                OwnKind::Stream { .. } => Resolution::StreamClosed {
                    id,
                    why: StreamEnd::TimedOut,
                    send_stop: true,
                },
            });
        }
    }

    /// Ends everything (the connection is gone): every open request fails, every stream closes.
    pub(crate) fn clear(&mut self) -> Vec<Own> {
        let mut all = std::mem::take(&mut self.entries);
        all.sort_unstable_by_key(|e| e.id);
        all
    }
}
