//! The device transport over WebSocket (spec §9): `/iotmp` on the HTTP listener.
//!
//! The API does not run IOTMP sessions itself: the device driver does, on its TCP listener. So a
//! valid `/iotmp` upgrade opens a TCP connection to that listener (the *device bridge*, on
//! loopback) and pipes bytes both ways:
//!
//! * each binary WebSocket message is written to TCP as is: the driver's deframer reads a byte
//!   stream, which is exactly what §9 asks of receivers (a frame may span messages, a message
//!   may hold several frames);
//! * each TCP read becomes one binary message (at most [`READ_CHUNK`] bytes);
//! * a text message closes with 1003; a WebSocket close or error closes the TCP side (the
//!   session ends as on any dropped connection); the TCP side ending closes the WebSocket (1000).
//!
//! Every buffer is bounded: one message or one read at a time per direction, and a direction
//! waits for its write to finish before reading more (backpressure reaches the peer through
//! TCP and WebSocket flow control). Idle connections need no timer here: the session's own
//! authentication deadline and keep-alive (§6) close the TCP side, which closes the socket.
//!
//! Limitations, by design of the bridge:
//! * certificate auth is not available: the session sees a plain TCP connection from loopback,
//!   so a TLS client certificate presented to an HTTPS listener never reaches it. That is what
//!   §9 says for `ws://`; for `wss://` it is a documented gap (credentials auth works);
//! * the session's peer address is the bridge's loopback address, not the device's;
//! * without a plain TCP device listener (`--listen off`) there is nothing to bridge to, and
//!   `/iotmp` answers 404 like any unknown path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpStream;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{self, Message};
use futures_lite::future::{FutureExt as _, race};
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::{Method, Request, Response};

use super::errors::ApiError;
use super::json::ApiBody;
use super::server::ConnContext;
use super::websocket::{self, Ws};

/// The path of the device transport (§9).
pub(crate) const PATH: &str = "/iotmp";

/// The subprotocol a client must offer and the server selects (§9).
const SUBPROTOCOL: &str = "iotmp";

/// Largest binary message a device may send: one whole frame of the largest body (256 KiB,
/// §7.1) plus its header (two varints of at most 5 bytes), since senders put a frame in one
/// message. Beyond, the socket closes with 1009.
const MAX_DEVICE_MESSAGE: usize = 256 * 1024 + 10;

/// Bytes per TCP read, and so the largest message sent to the device.
const READ_CHUNK: usize = 16 * 1024;

/// How long the bridge's loopback connection may take; a driver that does not accept in that
/// time is overloaded or gone, answered 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the bridge connects: the device listener's address, with an unspecified IP
/// (`0.0.0.0`, `::`) replaced by the loopback of its family, since the bridge is local.
pub(crate) fn bridge_target(listener: SocketAddr) -> SocketAddr {
    let ip = match listener.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listener.port())
}

/// True when the request offers subprotocol `iotmp`. Subprotocol names are case-sensitive
/// tokens (RFC 6455 §4.1), so the match is exact.
fn offers_subprotocol(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == SUBPROTOCOL)
}

/// Serves `/iotmp`: checks the handshake (400 without the `iotmp` subprotocol), connects to the
/// device listener at `bridge` (503 when it cannot), answers 101 and pipes the two streams.
pub(crate) async fn open(
    ctx: ConnContext,
    mut request: Request<Incoming>,
    bridge: SocketAddr,
) -> Result<Response<ApiBody>, ApiError> {
    if request.method() != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    if !websocket::is_upgrade(request.headers()) {
        return Err(ApiError::bad_request(
            "/iotmp is the WebSocket device transport: expected a WebSocket upgrade",
        ));
    }
    let accept = websocket::accept_key(request.headers())?;
    if !offers_subprotocol(&request) {
        return Err(ApiError::bad_request(
            "the device transport requires the WebSocket subprotocol \"iotmp\" \
             (Sec-WebSocket-Protocol: iotmp)",
        ));
    }
    // Connected before the 101, so that a driver that is down is a clear 503, not a socket
    // that closes at once.
    let tcp = async { TcpStream::connect(bridge).await.map(Some) }
        .or(async {
            Timer::after(CONNECT_TIMEOUT).await;
            Ok(None)
        })
        .await;
    let tcp = match tcp {
        Ok(Some(tcp)) => tcp,
        Ok(None) => {
            return Err(ApiError::unavailable(
                "the device listener did not accept in time",
            ));
        }
        Err(e) => {
            tracing::warn!("device bridge: cannot connect to {bridge}: {e}");
            return Err(ApiError::unavailable("the device listener is unavailable"));
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut response = websocket::switching_protocols(&accept)?;
    response.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let app = Arc::clone(&ctx.app);
    tracing::debug!("device bridge: WebSocket connected to {bridge}");
    websocket::on_upgrade_with(&ctx, &mut request, config(), move |ws| async move {
        let end = pipe(ws, tcp, &app.shutdown, app.limits.shutdown_grace).await;
        tracing::debug!("device bridge: closed ({end:?})");
    });
    Ok(response)
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(MAX_DEVICE_MESSAGE))
        .max_frame_size(Some(MAX_DEVICE_MESSAGE))
}

/// Why a bridge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed the WebSocket (or the connection dropped).
    Client,
    /// The client sent a text message.
    Text,
    /// A message above [`MAX_DEVICE_MESSAGE`].
    TooBig,
    /// The session's TCP connection ended (DISCONNECT, auth failure, keep-alive timeout...).
    Session,
    /// The server is stopping and the session did not end within the grace period.
    Shutdown,
}

/// Pipes `ws` and `tcp` until either side ends, then closes the other.
async fn pipe(ws: Ws, tcp: TcpStream, shutdown: &super::Shutdown, grace: Duration) -> End {
    let (mut sender, mut receiver) = ws.split();
    let (mut tcp_in, mut tcp_out) = (tcp.clone(), tcp.clone());
    let to_tcp = async {
        loop {
            match receiver.next().await {
                Some(Ok(Message::Binary(data))) => {
                    if tcp_out.write_all(&data).await.is_err() {
                        return End::Session;
                    }
                }
                Some(Ok(Message::Text(_))) => return End::Text,
                Some(Err(tungstenite::Error::Capacity(_))) => return End::TooBig,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Client,
                // Pings are answered by tungstenite; WebSocket ping/pong is independent of
                // IOTMP keep-alive (§9).
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    };
    let to_ws = async {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match tcp_in.read(&mut buf).await {
                Ok(0) | Err(_) => return End::Session,
                Ok(n) => n,
            };
            let chunk = buf.get(..n).unwrap_or_default().to_vec();
            if sender.send(Message::binary(chunk)).await.is_err() {
                return End::Client;
            }
        }
    };
    // On shutdown the driver sends DISCONNECT to its sessions, this one included: keep piping
    // so that it reaches the device, and close only if the session outlives the grace period.
    let stopping = async {
        shutdown.wait().await;
        Timer::after(grace).await;
        End::Shutdown
    };
    let end = race(to_tcp, race(to_ws, stopping)).await;
    // Ends the session (the driver sees EOF) whichever side ended first.
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    let close = |code: CloseCode, reason: &'static str| {
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    };
    let frame = match end {
        // tungstenite answers the client's close itself on this call.
        End::Client => None,
        End::Text => close(CloseCode::Unsupported, "IOTMP uses binary messages only"),
        End::TooBig => close(CloseCode::Size, "message too big"),
        End::Session => close(CloseCode::Normal, "session closed"),
        End::Shutdown => close(CloseCode::Away, "server shutting down"),
    };
    // Errors ignored: the socket is going away anyway.
    let _ = sender.close(frame).await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_targets_loopback_for_unspecified_addresses() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            bridge_target(addr("0.0.0.0:25204")),
            addr("127.0.0.1:25204")
        );
        assert_eq!(bridge_target(addr("[::]:7")), addr("[::1]:7"));
        assert_eq!(bridge_target(addr("10.0.0.1:9")), addr("10.0.0.1:9"));
    }
}
