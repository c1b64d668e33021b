//! One server connection as a single hand-written future.
//!
//! A server holds one of these per device for the device's whole life, so its size is what
//! an idle device costs beside the core. Written with `async` blocks (admission, then reading
//! and writing side by side in `read.or(write)`), the task held ~0.7 KB of future plus a boxed
//! stream, `split` halves behind an `Arc<Mutex<_>>` and async-net's per-direction readiness
//! futures. Here the idle state is the socket (async-io's `Async`, whose shared `Source` is the
//! only per-socket registration), the outlet and the channel to the broker, about 100 bytes.
//! What only a busy connection needs — a write in flight with its timeout, a message the
//! broker's queue had no room for, a TLS handshake — is boxed and dropped when done.

use std::future::Future;
use std::io;
use std::net::{IpAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_channel::{Sender, TrySendError};
use async_io::{Async, Timer};
use futures_lite::FutureExt;
use futures_rustls::TlsAcceptor;
use iotmp_proto::broker::ConnId;
use iotmp_proto::server::TransportInfo;
use iotmp_proto::tls::transport_info;

use crate::outlet::{Inlet, outlet};
use crate::server::{ConnIo, Input};
use crate::{IO_TIMEOUT, Io, READ_BUFFER};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A finished TLS handshake: the secured transport and what it tells of the client.
type Handshake = BoxFuture<io::Result<(Box<dyn Io>, TransportInfo)>>;

/// The connection task. It lives until the broker drops its end of the outlet (see
/// [`ConnIo`]) and everything handed over is written, or the broker is gone.
pub(crate) struct Connection {
    conn: ConnId,
    inputs: Sender<(ConnId, Input)>,
    inlet: Inlet,
    phase: Phase,
    /// A message the broker's bounded queue had no room for. Nothing more is read or reported
    /// until it is in: this is the backpressure that stops reading while the broker is busy.
    sending: Option<BoxFuture<bool>>,
    /// End the task once `sending` is delivered (the writer failed).
    end_after_sending: bool,
}

enum Phase {
    /// `Open` not sent yet.
    Start(Option<Start>),
    /// Waiting for the broker's admission decision.
    Admitting(Option<Accepted>),
    /// The TLS handshake; boxed (rustls's state is over a kilobyte).
    Handshaking(Handshake),
    Running(Running),
}

/// The transport before the broker admitted it.
struct Accepted {
    tcp: Async<TcpStream>,
    tls: Option<TlsAcceptor>,
}

/// What the `Open` message carries.
struct Start {
    accepted: Accepted,
    peer: Option<IpAddr>,
    io: ConnIo,
}

struct Running {
    transport: Transport,
    /// The write (or the final close) in flight, if any.
    write: Option<Box<Write>>,
    /// The peer has not ended its side yet.
    reading: bool,
}

enum Transport {
    Tcp(Async<TcpStream>),
    Tls(Box<dyn Io>),
}

impl Transport {
    fn io(&mut self) -> Pin<&mut dyn Io> {
        match self {
            Transport::Tcp(tcp) => Pin::new(tcp),
            Transport::Tls(tls) => Pin::new(&mut **tls),
        }
    }
}

/// Bytes being written, then flushed; or, with `closing`, the close after the last bytes.
/// Every step must make progress within [`IO_TIMEOUT`].
struct Write {
    bytes: Vec<u8>,
    done: usize,
    closing: bool,
    deadline: Timer,
}

impl Write {
    fn new(bytes: Vec<u8>, closing: bool) -> Box<Self> {
        Box::new(Write {
            bytes,
            done: 0,
            closing,
            deadline: Timer::after(IO_TIMEOUT),
        })
    }

    /// Ready with `true` once everything is written and flushed (or the close is done).
    fn poll(&mut self, cx: &mut Context<'_>, transport: &mut Transport) -> Poll<bool> {
        loop {
            let step = if self.closing {
                transport.io().poll_close(cx).map_ok(|()| 0)
            } else if let Some(rest) = self.bytes.get(self.done..).filter(|r| !r.is_empty()) {
                transport.io().poll_write(cx, rest)
            } else {
                transport.io().poll_flush(cx).map_ok(|()| 0)
            };
            match step {
                Poll::Ready(Ok(0)) if self.closing || self.done == self.bytes.len() => {
                    return Poll::Ready(true);
                }
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(n)) => {
                    self.done += n;
                    self.deadline.set_after(IO_TIMEOUT);
                }
                Poll::Pending => {
                    return match self.deadline.poll(cx) {
                        Poll::Ready(_) => Poll::Ready(false),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Connection {
    pub(crate) fn new(
        conn: ConnId,
        tcp: Async<TcpStream>,
        peer: Option<IpAddr>,
        tls: Option<TlsAcceptor>,
        inputs: Sender<(ConnId, Input)>,
    ) -> Self {
        // IOTMP frames are small and often answer each other: do not let Nagle hold them back.
        let _ = tcp.get_ref().set_nodelay(true);
        let (out, inlet) = outlet();
        let io = ConnIo { out, busy: false };
        Connection {
            conn,
            inputs,
            inlet,
            phase: Phase::Start(Some(Start {
                accepted: Accepted { tcp, tls },
                peer,
                io,
            })),
            sending: None,
            end_after_sending: false,
        }
    }

    /// One step of the current phase.
    fn poll_phase(&mut self, cx: &mut Context<'_>) -> Step {
        match &mut self.phase {
            Phase::Start(start) => {
                let Some(Start { accepted, peer, io }) = start.take() else {
                    return Step::End;
                };
                self.phase = Phase::Admitting(Some(accepted));
                self.deliver(Input::Open(io, peer), false)
            }
            Phase::Admitting(waiting) => {
                // A refused connection is closed here without reading a byte.
                match self.inlet.poll_admitted(cx) {
                    Poll::Pending => return Step::Wait,
                    Poll::Ready(false) => return Step::End,
                    Poll::Ready(true) => {}
                }
                let Some(Accepted { tcp, tls }) = waiting.take() else {
                    return Step::End;
                };
                self.phase = match tls {
                    None => Phase::Running(Running::new(Transport::Tcp(tcp))),
                    Some(acceptor) => Phase::Handshaking(handshake(acceptor, tcp)),
                };
                Step::Again
            }
            Phase::Handshaking(handshake) => {
                // Nothing is written before the handshake is done, so the outlet closing can
                // only mean the broker gave up on it (authentication deadline).
                if self.inlet.poll_closed(cx).is_ready() {
                    return Step::End;
                }
                match handshake.as_mut().poll(cx) {
                    Poll::Pending => Step::Wait,
                    Poll::Ready(Err(_)) => self.deliver(Input::Eof, true),
                    Poll::Ready(Ok((tls, info))) => {
                        self.phase = Phase::Running(Running::new(Transport::Tls(tls)));
                        self.deliver(Input::Tls(info), false)
                    }
                }
            }
            Phase::Running(running) => match running.poll_next(cx, &self.inlet) {
                Next::Send(input) => self.deliver(input, false),
                Next::SendAndEnd(input) => self.deliver(input, true),
                Next::End => Step::End,
                Next::Wait => Step::Wait,
            },
        }
    }

    /// Hands `input` to the broker, or keeps it in `sending` when the queue is full; ends the
    /// task if the broker is gone, or after `input` when `last`.
    fn deliver(&mut self, input: Input, last: bool) -> Step {
        match self.inputs.try_send((self.conn, input)) {
            Err(TrySendError::Closed(_)) => Step::End,
            Ok(()) if last => Step::End,
            Ok(()) => Step::Again,
            Err(TrySendError::Full(message)) => {
                let inputs = self.inputs.clone();
                self.sending = Some(Box::pin(async move { inputs.send(message).await.is_ok() }));
                self.end_after_sending = last;
                Step::Again
            }
        }
    }
}

/// What the task does after one step.
enum Step {
    /// Made progress: poll again.
    Again,
    /// Everything waits for a wake-up.
    Wait,
    /// The connection is over.
    End,
}

/// What the running connection has for the broker.
enum Next {
    Send(Input),
    /// The writer failed: the connection is over once this is delivered.
    SendAndEnd(Input),
    /// The final close is done.
    End,
    Wait,
}

impl Running {
    fn new(transport: Transport) -> Self {
        Running {
            transport,
            write: None,
            reading: true,
        }
    }

    /// Drives the write side, then the read side; the next message for the broker, if any.
    fn poll_next(&mut self, cx: &mut Context<'_>, inlet: &Inlet) -> Next {
        if self.write.is_none() {
            match inlet.poll_recv(cx) {
                Poll::Ready(Some(bytes)) => self.write = Some(Write::new(bytes, false)),
                // The broker let go and everything it gave was written: close.
                Poll::Ready(None) => self.write = Some(Write::new(Vec::new(), true)),
                Poll::Pending => {}
            }
        }
        if let Some(write) = self.write.as_mut()
            && let Poll::Ready(written) = write.poll(cx, &mut self.transport)
        {
            // After the close (done or failed) the task ends with the write side.
            if write.closing {
                return Next::End;
            }
            self.write = None;
            return if written {
                Next::Send(Input::Wrote)
            } else {
                Next::SendAndEnd(Input::Eof)
            };
        }
        if self.reading {
            let mut buf = [0; READ_BUFFER];
            match self.transport.io().poll_read(cx, &mut buf) {
                Poll::Pending => {}
                // An error ends the transport like EOF does (non-blocking reads are not
                // interrupted).
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.reading = false;
                    return Next::Send(Input::Eof);
                }
                Poll::Ready(Ok(n)) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    return Next::Send(Input::Bytes(bytes));
                }
            }
        }
        Next::Wait
    }
}

impl Future for Connection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(sending) = this.sending.as_mut() {
                match sending.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(false) => return Poll::Ready(()),
                    Poll::Ready(true) => this.sending = None,
                }
                if this.end_after_sending {
                    return Poll::Ready(());
                }
            }
            match this.poll_phase(cx) {
                Step::Again => {}
                Step::Wait => return Poll::Pending,
                Step::End => return Poll::Ready(()),
            }
        }
    }
}

/// The TLS handshake, boxed: rustls's state is over a kilobyte, and a future holding it inline
/// would make every connection's task that much larger for its whole life, TLS or not.
fn handshake(acceptor: TlsAcceptor, tcp: Async<TcpStream>) -> Handshake {
    Box::pin(async move {
        let tls = acceptor.accept(tcp).await?;
        let info = transport_info(tls.get_ref().1.peer_certificates());
        Ok((Box::new(tls) as Box<dyn Io>, info))
    })
}
