//! Loopback connections from a chosen source address, so that tests can play several hosts
//! (the whole 127.0.0.0/8 is local on Linux): admission rules key on the source address.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};

use rustix::net::{AddressFamily, SocketType};

/// A TCP connection to `to` whose local address is `source` (any free port).
pub fn connect_from(source: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let family = if source.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::bind(&socket, &SocketAddr::new(source, 0))?;
    rustix::net::connect(&socket, &to)?;
    Ok(TcpStream::from(socket))
}
