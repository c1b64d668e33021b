//! What the bench asks of the operating system: the open-file limit, sockets bound to a chosen
//! loopback source address, and the server's memory and CPU time from `/proc`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

/// Sockets (and files) the bench keeps for itself beyond its connections: stdio, the poll
/// instances, the registry database, the provisioning probe, the progress bar.
pub(crate) const RESERVED_FILES: u64 = 64;

/// Raises the soft open-file limit to the hard limit and returns it.
#[cfg(unix)]
pub(crate) fn raise_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current != Some(hard)
    {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Without rlimits, assume the connections fit.
#[cfg(not(unix))]
pub(crate) fn raise_file_limit() -> u64 {
    u64::MAX
}

/// The source address of connection `index`: spread over 127.0.0.0/8, a different address for
/// each of the first 15 million connections and never 127.0.0.1 (where the server usually
/// listens), so that no address runs out of ephemeral ports and every device looks like a host
/// of its own to the server's per-address admission rules, as in a real deployment.
pub(crate) fn source_address(index: usize) -> Ipv4Addr {
    let host = (index % 250) as u8 + 2;
    let block = index / 250;
    let c = (block % 250) as u8 + 1;
    let b = ((block / 250) % 250) as u8 + 1;
    Ipv4Addr::new(127, b, c, host)
}

/// A non-blocking TCP connection to `target` from `source` (port picked by the kernel); the
/// connection completes later (writable readiness).
#[cfg(unix)]
pub(crate) fn connect_from(
    source: Ipv4Addr,
    target: SocketAddr,
) -> io::Result<mio::net::TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, connect, socket_with};
    let family = match target {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    // IPv6 loopback is one address: nothing to spread.
    if target.is_ipv4() {
        bind(&fd, &SocketAddr::from((source, 0)))?;
    }
    match connect(&fd, &target) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = std::net::TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok(mio::net::TcpStream::from_std(stream))
}

/// Elsewhere: an ordinary connection from the default source address.
#[cfg(not(unix))]
pub(crate) fn connect_from(_: Ipv4Addr, target: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let stream = mio::net::TcpStream::connect(target)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether a non-blocking connect finished: `Ok(true)` connected, `Ok(false)` still going.
pub(crate) fn connect_done(stream: &mio::net::TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// The resident memory of process `pid`, bytes (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

/// User + system CPU time of process `pid` (all threads), microseconds (`/proc/PID/stat`).
pub(crate) fn cpu_us(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ')' in stat"))?;
    let mut fields = after.split_whitespace().skip(11);
    let mut next = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short stat line"))
    };
    let ticks = next()? + next()?;
    Ok(ticks * 1_000_000 / clock_ticks())
}

#[cfg(unix)]
fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(not(unix))]
fn clock_ticks() -> u64 {
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_spread_and_avoid_the_server_address() {
        assert_eq!(source_address(0), Ipv4Addr::new(127, 1, 1, 2));
        assert_eq!(source_address(249), Ipv4Addr::new(127, 1, 1, 251));
        assert_eq!(source_address(250), Ipv4Addr::new(127, 1, 2, 2));
        assert_eq!(source_address(62_500), Ipv4Addr::new(127, 2, 1, 2));
        assert!((0..70_000).all(|i| source_address(i) != Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn own_process_figures_read() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_us(pid).is_ok());
        assert!(rss_bytes(u32::MAX).is_err());
    }
}
