//! The read path of [`Links`](crate::link::Links) against a real loopback peer: a read shorter
//! than the buffer ends the loop without a second read, and nothing sent is lost to that.

use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant as WallClock};

use mio::{Events, Poll};

use crate::link::{Input, Links};

const FIRST: usize = 4;
/// Upper bound on a test's run; only reached if the reader missed an event.
const GIVE_UP: Duration = Duration::from_secs(20);

/// A link over a connected loopback pair; returns the links, the link's token and the peer.
fn pair() -> (Links, usize, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (peer, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    let mut links = Links::new(Poll::new().unwrap(), FIRST);
    let id = links
        .add(mio::net::TcpStream::from_std(ours), None, false)
        .unwrap();
    (links, id, peer)
}

/// Runs the loop the drivers run until end of stream: everything read, in order.
fn read_to_end(links: &mut Links, id: usize) -> Vec<u8> {
    let mut events = Events::with_capacity(8);
    let mut got = Vec::new();
    let started = WallClock::now();
    while started.elapsed() < GIVE_UP {
        let deadline = links.now() + Duration::from_millis(200);
        links.wait(&mut events, Some(deadline)).unwrap();
        let now = links.now();
        for event in &events {
            let closed = event.is_read_closed() || event.is_error();
            let read = links.ready(event.token().0, now, closed, |input| {
                if let Input::Bytes(bytes) = input {
                    got.extend_from_slice(bytes);
                }
            });
            if matches!(read, Some(Ok(true))) {
                return got;
            }
        }
    }
    panic!("no end of stream from link {id} after {} bytes", got.len());
}

#[test]
fn many_small_writes_arrive_whole_and_the_close_is_seen() {
    let (mut links, id, mut peer) = pair();
    peer.set_nodelay(true).unwrap();
    let sent: Vec<u8> = (0..20_000u32).map(|n| (n % 251) as u8).collect();
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            // Pieces of 1 to 13 bytes, each its own segment: many short reads on our side.
            let mut rest = &sent[..];
            let mut size = 1;
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(size.min(rest.len()));
                peer.write_all(piece).unwrap();
                rest = tail;
                size = size % 13 + 1;
            }
            peer.shutdown(Shutdown::Write).unwrap();
            peer
        })
    };
    let got = read_to_end(&mut links, id);
    let _peer = writer.join().unwrap();
    assert_eq!(got.len(), sent.len());
    assert_eq!(got, sent);
}

#[test]
fn bytes_and_close_that_arrive_together_are_both_seen() {
    let (mut links, id, mut peer) = pair();
    // Both are queued before the link's first event: one event reports the data and the
    // closed peer, and the short read must not end the loop before the end of stream.
    peer.write_all(b"last words").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut links, id), b"last words");
}

#[test]
fn more_than_a_buffer_at_once_is_read_in_full() {
    let (mut links, id, mut peer) = pair();
    // Bigger than the shared read buffer: the first reads fill it, so the loop goes on.
    let sent: Vec<u8> = (0..100_000u32).map(|n| (n % 241) as u8).collect();
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            peer.write_all(&sent).unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            peer
        })
    };
    let got = read_to_end(&mut links, id);
    let _peer = writer.join().unwrap();
    assert_eq!(got, sent);
}
