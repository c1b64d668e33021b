//! The sockets of one driver thread: TCP streams, optionally wrapped in rustls, with their
//! unwritten bytes and their graceful close. Shared by both loops; moves bytes only and knows
//! nothing of IOTMP.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use iotmp_proto::Instant;
use iotmp_proto::server::TransportInfo;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

/// How long a closing link may take to deliver its last bytes and see the peer's end of stream.
const LINGER: Duration = Duration::from_secs(5);

/// What a read produced.
pub(crate) enum Input<'a> {
    /// The TLS handshake just finished (always before the first plaintext).
    Secured(TransportInfo),
    /// Plaintext.
    Bytes(&'a [u8]),
}

/// The links of a loop, by token number, and its one read buffer.
pub(crate) struct Links {
    pub(crate) poll: Poll,
    open: HashMap<usize, Link>,
    /// Closed by the core, still delivering their last bytes; with when to give up on the peer.
    closing: HashMap<usize, (Link, Instant)>,
    next: usize,
    buf: Vec<u8>,
    /// The core's clock counts microseconds from here.
    epoch: std::time::Instant,
}

impl Links {
    /// Links get tokens from `first` on; lower tokens are the caller's.
    pub(crate) fn new(poll: Poll, first: usize) -> Self {
        Links {
            poll,
            open: HashMap::new(),
            closing: HashMap::new(),
            next: first,
            buf: vec![0; 16 * 1024],
            epoch: std::time::Instant::now(),
        }
    }

    /// The time on the core's clock.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_elapsed(self.epoch.elapsed())
    }

    /// No link open or closing.
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closing.is_empty()
    }

    /// Registers a socket (also WRITABLE while `connecting`, to learn when it is connected)
    /// and returns its token number.
    pub(crate) fn add(
        &mut self,
        mut tcp: TcpStream,
        tls: Option<rustls::Connection>,
        connecting: bool,
    ) -> io::Result<usize> {
        // Frames are small and latency matters more than packet count (best effort).
        let _ = tcp.set_nodelay(true);
        let id = self.next;
        let interest = if connecting {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.poll
            .registry()
            .register(&mut tcp, Token(id), interest)?;
        self.next += 1;
        let link = Link {
            tcp,
            tls: tls.map(Box::new),
            out: Backlog::default(),
            secured: false,
            interest,
            half_closed: false,
        };
        self.open.insert(id, link);
        Ok(id)
    }

    /// Waits for readiness until `deadline` or the first linger deadline.
    pub(crate) fn wait(
        &mut self,
        events: &mut Events,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let linger = self.closing.values().map(|&(_, linger)| linger).min();
        let at = deadline.into_iter().chain(linger).min();
        let timeout = at.map(|at| at.saturating_since(self.now()));
        match self.poll.poll(events, timeout) {
            Err(e) if e.kind() != ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// An outgoing connection: `Ok(true)` once made, `Ok(false)` while still connecting.
    pub(crate) fn connected(&self, id: usize) -> io::Result<bool> {
        let Some(link) = self.open.get(&id) else {
            return Ok(false);
        };
        if let Some(e) = link.tcp.take_error()? {
            return Err(e);
        }
        match link.tcp.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Readiness of link `id`. An open link is read until it is drained, each piece going to
    /// `f`, then flushed: `Some(Ok(true))` at end of stream. A closing link just advances
    /// (`None`). Spurious wakeups are harmless: the first read blocks.
    ///
    /// `closed` is the event's word that the peer closed its side or the socket failed
    /// (`is_read_closed`, `is_error`): then the link is read until the end of stream or the
    /// error shows, because no later event may come for it.
    pub(crate) fn ready(
        &mut self,
        id: usize,
        now: Instant,
        closed: bool,
        f: impl FnMut(Input<'_>),
    ) -> Option<io::Result<bool>> {
        let Some(link) = self.open.get_mut(&id) else {
            self.advance(id, now);
            return None;
        };
        let eof = link.read(&mut self.buf, !closed, f);
        // The TLS handshake may have answers to write.
        Some(eof.and_then(|eof| link.flush(self.poll.registry(), id).map(|()| eof)))
    }

    /// True when open link `id` still holds bytes its socket did not take.
    pub(crate) fn backlogged(&self, id: usize) -> bool {
        self.open.get(&id).is_some_and(|l| !l.out.is_empty())
    }

    /// Writes `bytes` to link `id`: at once as far as the socket takes them, the rest when
    /// it is writable again.
    pub(crate) fn send(&mut self, id: usize, bytes: &[u8]) -> io::Result<()> {
        let Some(link) = self.open.get_mut(&id) else {
            return Ok(());
        };
        if link.out.is_empty() && link.tls.is_none() {
            // The common case: straight from the caller's buffer to the socket, no copy.
            let n = write_some(&mut link.tcp, bytes)?;
            link.out.push(bytes.get(n..).unwrap_or_default());
        } else {
            link.out.push(bytes);
        }
        link.flush(self.poll.registry(), id)
    }

    /// Closes link `id` gracefully: its last bytes, TLS close_notify, then half-close and wait
    /// (at most [`LINGER`]) for the peer's end of stream, so that unread input does not turn
    /// the close into a reset that could destroy those last bytes.
    pub(crate) fn close(&mut self, id: usize, now: Instant, last: &[u8]) {
        let Some(mut link) = self.open.remove(&id) else {
            return;
        };
        link.out.push(last);
        if let Some(tls) = &mut link.tls {
            // Everything goes to rustls now, so that close_notify comes after it.
            tls.set_buffer_limit(None);
            let _ = tls.writer().write_all(link.out.pending());
            link.out.consumed(usize::MAX);
            tls.send_close_notify();
        }
        self.closing.insert(id, (link, now + LINGER));
        self.advance(id, now);
    }

    /// Drops link `id` at once (a connection attempt given up).
    pub(crate) fn abort(&mut self, id: usize) {
        let closing = || self.closing.remove(&id).map(|(link, _)| link);
        if let Some(mut link) = self.open.remove(&id).or_else(closing) {
            let _ = self.poll.registry().deregister(&mut link.tcp);
        }
    }

    /// Advances every closing link whose linger deadline passed (no event marks it).
    pub(crate) fn expire(&mut self, now: Instant) {
        let expired = (self.closing.iter())
            .filter(|(_, (_, linger))| now >= *linger)
            .map(|(&id, _)| id)
            .collect::<Vec<_>>();
        for id in expired {
            self.advance(id, now);
        }
    }

    fn advance(&mut self, id: usize, now: Instant) {
        let Some((link, linger)) = self.closing.get_mut(&id) else {
            return;
        };
        if now >= *linger || link.flush(self.poll.registry(), id).is_err() {
            return self.abort(id);
        }
        if link.wanted() == Interest::READABLE && !link.half_closed {
            link.half_closed = true;
            let _ = link.tcp.shutdown(Shutdown::Write);
        }
        // Input is discarded; end of stream or an error ends the wait.
        // No event says whether the peer closed: read until the socket would block.
        let ended = !matches!(link.read(&mut self.buf, false, |_| {}), Ok(false));
        if ended && link.half_closed {
            self.abort(id);
        }
    }
}

/// A socket with its unwritten bytes. A server holds one per device in a map, so it is kept
/// to 24 bytes: the rustls state (over a kilobyte) and the backlog are boxed, and the linger
/// deadline of a closing link lives beside it in the closing map.
struct Link {
    tcp: TcpStream,
    tls: Option<Box<rustls::Connection>>,
    /// Bytes the socket (or rustls) did not take yet.
    out: Backlog,
    secured: bool,
    interest: Interest,
    half_closed: bool,
}

impl Link {
    /// Reads until the socket is drained, handing each piece to `f`; `Ok(true)` at end of
    /// stream.
    ///
    /// With `short_read_drains`, a plain TCP read that returns fewer bytes than `buf` holds
    /// ends the loop, saving the read that would only report `WouldBlock`. That is safe because
    /// mio registers sockets edge-triggered: a TCP read returns less than asked only when it
    /// emptied the receive queue, and any byte (or end of stream) that arrives after that raises
    /// a new readiness event. The caller passes false when the event reported a closed peer or
    /// an error (no new event would come for those) and when no event prompted the read.
    fn read(
        &mut self,
        buf: &mut [u8],
        short_read_drains: bool,
        mut f: impl FnMut(Input<'_>),
    ) -> io::Result<bool> {
        loop {
            let Some(tls) = &mut self.tls else {
                match self.tcp.read(buf) {
                    Ok(0) => return Ok(true),
                    Ok(n) => {
                        f(Input::Bytes(buf.get(..n).unwrap_or_default()));
                        if short_read_drains && n < buf.len() {
                            return Ok(false);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            };
            let eof = match tls.read_tls(&mut self.tcp) {
                Ok(n) => n == 0,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Err(e) = tls.process_new_packets() {
                // Let the peer learn why (the alert rustls queued), then fail.
                let _ = tls.write_tls(&mut self.tcp);
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            if !self.secured && !tls.is_handshaking() {
                self.secured = true;
                let certificates = tls.peer_certificates();
                f(Input::Secured(iotmp_proto::tls::transport_info(
                    certificates,
                )));
            }
            loop {
                match tls.reader().read(buf) {
                    Ok(0) => return Ok(true), // close_notify
                    Ok(n) => f(Input::Bytes(buf.get(..n).unwrap_or_default())),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // TCP ended without close_notify: many devices just drop the connection.
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            if eof {
                return Ok(true);
            }
        }
    }

    /// Writes waiting bytes until done or the socket would block, then registers WRITABLE
    /// interest exactly while bytes still wait.
    fn flush(&mut self, registry: &Registry, id: usize) -> io::Result<()> {
        loop {
            let progress = match &mut self.tls {
                None if self.out.is_empty() => 0,
                None => write_some(&mut self.tcp, self.out.pending())?,
                Some(tls) => {
                    // rustls takes plaintext up to its buffer limit; the rest waits here.
                    self.out.consumed(tls.writer().write(self.out.pending())?);
                    if !tls.wants_write() {
                        break;
                    }
                    match tls.write_tls(&mut self.tcp) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        other => other?,
                    }
                }
            };
            if self.tls.is_none() {
                self.out.consumed(progress);
            }
            if progress == 0 {
                break;
            }
        }
        let interest = self.wanted();
        if interest != self.interest {
            registry.reregister(&mut self.tcp, Token(id), interest)?;
            self.interest = interest;
        }
        Ok(())
    }

    fn wanted(&self) -> Interest {
        if self.out.is_empty() && !self.tls.as_ref().is_some_and(|t| t.wants_write()) {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        }
    }
}

/// Unwritten bytes: a buffer and how much of it went out. Nothing (one null pointer) when
/// empty, so that idle links hold no buffer; compacted lazily, so that a long backlog is not
/// moved per write.
#[derive(Default)]
struct Backlog(Option<Box<Unsent>>);

struct Unsent {
    buf: Vec<u8>,
    sent: usize,
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn pending(&self) -> &[u8] {
        (self.0.as_ref()).map_or(&[], |u| u.buf.get(u.sent..).unwrap_or_default())
    }

    fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let unsent = self.0.get_or_insert_with(|| {
            Box::new(Unsent {
                buf: Vec::new(),
                sent: 0,
            })
        });
        if unsent.sent > 0 && unsent.sent >= unsent.buf.len() / 2 {
            unsent.buf.drain(..unsent.sent);
            unsent.sent = 0;
        }
        unsent.buf.extend_from_slice(bytes);
    }

    fn consumed(&mut self, n: usize) {
        if let Some(unsent) = &mut self.0 {
            unsent.sent = unsent.sent.saturating_add(n);
            if unsent.sent >= unsent.buf.len() {
                self.0 = None;
            }
        }
    }
}

/// One non-blocking write: how many bytes the socket took (0 if it would block).
fn write_some(tcp: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        return match tcp.write(bytes) {
            Ok(0) if !bytes.is_empty() => Err(ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    /// A server holds one link per device in a map: keep it small (TLS state and backlog boxed).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_link_stays_compact() {
        // Debug builds of mio add a selector id to every socket.
        let limit = if cfg!(debug_assertions) { 40 } else { 24 };
        let size = size_of::<super::Link>();
        assert!(size <= limit, "{size}");
    }
}
