//! Accepting connections and running hyper on them.
//!
//! One task per connection (smol's global executor, like the drivers): optional TLS handshake,
//! then hyper's HTTP/1.1 connection with upgrades. A WebSocket continues in a task of its own
//! once hyper hands over the upgraded connection; it keeps the connection's slot.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::Sender;
use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use futures_lite::future::FutureExt as _;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_rustls::TlsAcceptor;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol_hyper::rt::SmolTimer;

use super::backend::Backend;
use super::hyper_io::HttpIo;
use super::{ApiLimits, Shutdown, routes};

/// Largest request head (request line and headers) hyper buffers. hyper's own minimum is 8 KiB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// After an accept error (e.g. out of file descriptors), wait this long before the next accept
/// instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) limits: ApiLimits,
    pub(crate) shutdown: Shutdown,
    /// Where `/iotmp` connects its devices (see `transport`); `None` serves no `/iotmp`.
    pub(crate) device_bridge: Option<SocketAddr>,
}

/// One open connection, counted against [`ApiLimits::max_connections`] and waited for at
/// shutdown until every holder (the connection task, its WebSocket task) dropped it.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    active: Arc<AtomicUsize>,
    _alive: Sender<()>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a request handler gets: the app and its connection's slot.
#[derive(Debug, Clone)]
pub(crate) struct ConnContext {
    pub(crate) app: Arc<App>,
    pub(crate) slot: Arc<ConnSlot>,
}

/// Serves the HTTP API (spec §8) on `listener` — HTTPS when `tls` is given — until `shutdown`
/// is triggered; then stops accepting, closes streams, lets requests finish within
/// [`ApiLimits::shutdown_grace`] and returns. Spawns its tasks on smol's global executor.
///
/// Errors of single connections are logged, never returned: the listener keeps serving.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    backend: Arc<dyn Backend>,
    limits: ApiLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    serve_with_bridge(listener, tls, backend, limits, shutdown, None).await
}

/// [`serve`], also serving the device transport `/iotmp` (spec §9) when `device_bridge` is the
/// address of the server's plain TCP device listener: each `/iotmp` WebSocket is piped to a
/// TCP connection to it (an unspecified IP is reached on loopback).
pub async fn serve_with_bridge(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    backend: Arc<dyn Backend>,
    limits: ApiLimits,
    shutdown: Shutdown,
    device_bridge: Option<SocketAddr>,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let grace = limits.shutdown_grace;
    let max_connections = limits.max_connections;
    let app = Arc::new(App {
        backend,
        limits,
        shutdown: shutdown.clone(),
        device_bridge: device_bridge.map(super::transport::bridge_target),
    });
    let active = Arc::new(AtomicUsize::new(0));
    let (alive_tx, alive_rx) = async_channel::bounded::<()>(1);
    if let Ok(addr) = listener.local_addr() {
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        tracing::info!("HTTP API listening on {scheme}://{addr}/v3");
        if let Some(bridge) = app.device_bridge {
            let scheme = if acceptor.is_some() { "wss" } else { "ws" };
            tracing::info!("devices: WebSocket on {scheme}://{addr}/iotmp (bridged to {bridge})");
        }
    }
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                shutdown.wait().await;
                None
            })
            .await;
        let (stream, peer) = match accepted {
            None => break,
            Some(Ok(accepted)) => accepted,
            Some(Err(e)) => {
                tracing::warn!("HTTP API: accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if active.fetch_add(1, Ordering::Relaxed) >= max_connections {
            active.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("HTTP API: {max_connections} connections open; closing {peer}");
            continue;
        }
        let ctx = ConnContext {
            app: Arc::clone(&app),
            slot: Arc::new(ConnSlot {
                active: Arc::clone(&active),
                _alive: alive_tx.clone(),
            }),
        };
        let acceptor = acceptor.clone();
        smol::spawn(async move {
            if let Err(e) = connection(ctx, stream, acceptor).await {
                tracing::debug!("HTTP API: connection from {peer}: {e}");
            }
        })
        .detach();
    }
    drop(listener);
    drop(alive_tx);
    // Every connection task ends within the grace period after the shutdown; the extra second
    // covers their final writes.
    async { while alive_rx.recv().await.is_ok() {} }
        .or(async {
            Timer::after(grace + Duration::from_secs(1)).await;
            tracing::warn!("HTTP API: connections still open after the shutdown grace period");
        })
        .await;
    Ok(())
}

/// One connection: TLS if configured, then HTTP until the client or the shutdown ends it.
async fn connection(
    ctx: ConnContext,
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let limits = &ctx.app.limits;
    let io = StallTimeout::new(stream, limits.write_timeout);
    match acceptor {
        None => http(ctx, HttpIo(io)).await,
        Some(acceptor) => {
            let handshake = async { acceptor.accept(io).await }
                .or(async {
                    Timer::after(limits.header_timeout).await;
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timeout",
                    ))
                })
                .await?;
            http(ctx, HttpIo(handshake)).await
        }
    }
}

/// hyper's HTTP/1.1 on one connection, with upgrades, stopped gracefully by the shutdown.
async fn http<I>(ctx: ConnContext, io: I) -> io::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let app = Arc::clone(&ctx.app);
    let mut builder = http1::Builder::new();
    builder
        .timer(SmolTimer::new())
        .header_read_timeout(app.limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let service = service_fn(move |request| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(routes::handle(ctx, request).await) }
    });
    let conn = builder.serve_connection(io, service).with_upgrades();
    futures_lite::pin!(conn);
    let finished = async { Some(conn.as_mut().await) }
        .or(async {
            app.shutdown.wait().await;
            None
        })
        .await;
    let result = match finished {
        Some(result) => result,
        None => {
            // Finish the request in flight (SSE bodies end on the shutdown), then close.
            conn.as_mut().graceful_shutdown();
            async { conn.as_mut().await }
                .or(async {
                    Timer::after(app.limits.shutdown_grace).await;
                    Ok(())
                })
                .await
        }
    };
    result.map_err(io::Error::other)
}

/// A socket whose writes fail with `TimedOut` once one of them made no progress for a while.
///
/// hyper and tungstenite wait for a writable socket as long as it takes; a client that stops
/// reading would hold its task (and its sink) forever. Reads are not limited here: idle
/// keep-alive connections and quiet WebSockets are legitimate, and hyper bounds request heads.
#[derive(Debug)]
pub(crate) struct StallTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed when a write is pending; disarmed by any progress.
    stalled_since: Option<Timer>,
}

impl<T> StallTimeout<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        StallTimeout {
            inner,
            timeout,
            stalled_since: None,
        }
    }

    /// Maps a pending write to an error once the stall timer fires.
    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let timer = self
                    .stalled_since
                    .get_or_insert_with(|| Timer::after(timeout));
                match Pin::new(timer).poll(cx) {
                    Poll::Ready(_) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write made no progress",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_close(cx);
        self.check(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that never accepts a byte.
    struct Stuck;

    impl AsyncWrite for Stuck {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[test]
    fn a_stalled_write_times_out() {
        use futures_lite::AsyncWriteExt as _;
        let mut io = StallTimeout::new(Stuck, Duration::from_millis(50));
        let started = std::time::Instant::now();
        let err = futures_lite::future::block_on(io.write(b"x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
