//! The device's stream table (spec §6.7).

use core::time::Duration;

use crate::dialect::Dialect;
use crate::message::StreamKind;
use crate::time::Instant;
use crate::value::Text;

/// One stream the server opened on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The server's stream id.
    pub id: u16,
    /// The resource streamed.
    pub resource: Text,
    /// Sampling interval in ms; 0 = event stream.
    pub interval_ms: u64,
    /// When the next sample is due (sampling streams).
    pub next_due: Instant,
    /// A value must go out on this stream as soon as the application provides one.
    pub(crate) wants_value: bool,
}

impl StreamEntry {
    /// Sampling (interval > 0) or event stream.
    pub const fn kind(&self) -> StreamKind {
        if self.interval_ms > 0 {
            StreamKind::Sample
        } else {
            StreamKind::Event
        }
    }
}

/// Why a START_STREAM cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartError {
    UnknownStream,
    TableFull,
}

#[derive(Debug, Default)]
pub(crate) struct StreamTable {
    pub(crate) entries: Vec<StreamEntry>,
}

impl StreamTable {
    pub(crate) fn contains(&self, id: u16) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    fn remove_where(&mut self, f: impl Fn(&StreamEntry) -> bool) {
        self.entries.retain(|e| !f(e));
    }

    /// START_STREAM with a resource (spec §6.7 step 1).
    pub(crate) fn open(
        &mut self,
        now: Instant,
        dialect: Dialect,
        id: u16,
        resource: Text,
        interval_ms: u64,
        capacity: usize,
    ) -> Result<(), StartError> {
        self.remove_where(|e| e.id == id);
        let kind = if interval_ms > 0 {
            StreamKind::Sample
        } else {
            StreamKind::Event
        };
        match dialect {
            Dialect::Draft2020 => self.remove_where(|e| e.resource == resource),
            Dialect::Draft2026 => self.remove_where(|e| e.resource == resource && e.kind() == kind),
        }
        if self.entries.len() >= capacity {
            return Err(StartError::TableFull);
        }
        self.entries.push(StreamEntry {
            id,
            resource,
            interval_ms,
            next_due: now + Duration::from_millis(interval_ms),
            wants_value: false,
        });
        Ok(())
    }

    /// START_STREAM without a resource: reconfigure (spec §6.7 step 2). Returns the resource.
    pub(crate) fn reconfigure(
        &mut self,
        now: Instant,
        dialect: Dialect,
        id: u16,
        interval_ms: u64,
    ) -> Result<Text, StartError> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(StartError::UnknownStream)?;
        let old_kind = entry.kind();
        entry.interval_ms = interval_ms;
        entry.next_due = now + Duration::from_millis(interval_ms);
        let new_kind = entry.kind();
        let resource = entry.resource.clone();
        if dialect == Dialect::Draft2026 && new_kind != old_kind {
            self.remove_where(|e| e.id != id && e.resource == resource && e.kind() == new_kind);
        }
        Ok(resource)
    }

    pub(crate) fn remove(&mut self, id: u16) -> bool {
        let before = self.entries.len();
        self.remove_where(|e| e.id == id);
        self.entries.len() != before
    }

    pub(crate) fn get_mut(&mut self, id: u16) -> Option<&mut StreamEntry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    /// The event stream of `resource`, if any (2020: only if its one stream is an event stream).
    pub(crate) fn event_stream_mut(&mut self, resource: &str) -> Option<&mut StreamEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.resource == resource && e.interval_ms == 0)
    }

    /// Marks every sampling stream due at `now`, skipping missed periods (spec §6.7).
    pub(crate) fn mark_due(&mut self, now: Instant, due: &mut Vec<Text>) {
        for entry in self
            .entries
            .iter_mut()
            .filter(|e| e.interval_ms > 0 && now >= e.next_due)
        {
            let interval = Duration::from_millis(entry.interval_ms);
            entry.next_due += interval;
            if entry.next_due <= now {
                entry.next_due = now + interval;
            }
            entry.wants_value = true;
            if !due.contains(&entry.resource) {
                due.push(entry.resource.clone());
            }
        }
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|e| e.interval_ms > 0)
            .map(|e| e.next_due)
            .min()
    }
}
