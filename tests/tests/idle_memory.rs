//! Heap memory per idle authenticated device in a [`Broker`] (issue 6: a server holds many idle
//! devices, so what each one keeps decides how many fit).
//!
//! Deterministic: a virtual clock, and dhat counting the bytes live on the heap (what the code
//! asked for, not what the allocator made of it), so the figure does not depend on allocator
//! behaviour, timing or the machine. A change that makes idle sessions keep a buffer, copy the
//! config again or grow the broker's entries fails here.
//!
//! Everything lives in one test: dhat's counts are process-wide.

use iotmp_proto::broker::{Broker, BrokerEvent, ConnId};
use iotmp_proto::frame::Deframer;
use iotmp_proto::server::{ServerConfig, TransportInfo};
use iotmp_proto::{Client, ClientConfig, Dialect, Instant, ServerSession};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Enough devices that the broker's maps and timer heap show their per-entry cost.
const DEVICES: u64 = 2000;

/// Heap bytes one idle authenticated device may keep in the broker. Measured when this limit
/// was set: 358 (430 before the deframer's partial-frame state and the source address were
/// moved out of every connection; 1,522 before the first compaction, 18,023 after one
/// keep-alive): the boxed connection entry (session 152 bytes and the broker's 48), the maps'
/// B-tree nodes (about 30 bytes for the connection, ~100 for the device entry, per entry at
/// their fill), and the timer heap's entry (16 bytes, up to twice that with the heap's spare
/// capacity). The margin allows a field or two, not a buffer.
const MAX_HEAP_PER_DEVICE: u64 = 400;

fn connect_frame(dialect: Dialect, device: &str, now: Instant) -> Vec<u8> {
    let config = ClientConfig::new(dialect, "alice", device, "a-credential-of-some-length");
    let mut client = match Client::new(config, Default::default(), now) {
        Ok(client) => client,
        Err(e) => panic!("the client config encodes: {e}"),
    };
    let mut bytes = Vec::new();
    client.poll_transmit(&mut bytes);
    bytes
}

/// Moves the broker's output out (as a driver would) and accepts every CONNECT.
fn settle(broker: &mut Broker, now: Instant, out: &mut Vec<u8>) -> usize {
    let mut online = 0;
    loop {
        let mut moved = false;
        while let Some(conn) = broker.poll_dirty() {
            moved = true;
            broker.poll_transmit(conn, out);
            out.clear();
        }
        if let Some((conn, _)) = broker.poll_closed() {
            panic!("connection {conn} closed");
        }
        while let Some(event) = broker.poll_event() {
            moved = true;
            match event {
                BrokerEvent::Authenticate { conn, .. } => {
                    let name = format!("alice/dev{conn:05}");
                    if let Err(e) = broker.accept(now, conn, &name) {
                        panic!("accept {conn}: {e}");
                    }
                }
                BrokerEvent::DeviceOnline { .. } => online += 1,
                other => panic!("unexpected event {other:?}"),
            }
        }
        if !moved {
            return online;
        }
    }
}

fn open_idle_device(broker: &mut Broker, conn: ConnId, dialect: Dialect, now: Instant) -> usize {
    let mut out = Vec::with_capacity(64);
    broker.open(now, conn, TransportInfo::default());
    let frame = connect_frame(dialect, &format!("dev{conn:05}"), now);
    broker.handle_input(now, conn, &frame);
    drop(frame);
    let mut online = settle(broker, now, &mut out);
    // One keep-alive round trip: the echo must not leave a buffer behind either.
    broker.handle_input(now, conn, dialect.keep_alive_frame());
    online += settle(broker, now, &mut out);
    online
}

#[test]
fn idle_authenticated_devices_keep_little_heap() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let now = Instant::from_secs(1);
    let mut broker = Broker::new(ServerConfig::default());
    // One device first, so that the broker's own queues have their working size.
    assert_eq!(open_idle_device(&mut broker, 1, Dialect::Draft2026, now), 1);

    let before = dhat::HeapStats::get().curr_bytes as u64;
    let mut online = 0;
    for conn in 2..DEVICES + 2 {
        // Both generations: the 2020 draft's sessions must be as small.
        let dialect = if conn % 2 == 0 {
            Dialect::Draft2026
        } else {
            Dialect::Draft2020
        };
        online += open_idle_device(&mut broker, conn, dialect, now);
    }
    let after = dhat::HeapStats::get().curr_bytes as u64;

    assert_eq!(online, DEVICES as usize, "every device is online");
    assert_eq!(broker.connections(), DEVICES as usize + 1);
    let per_device = after.saturating_sub(before) / DEVICES;
    println!("heap per idle device: {per_device} bytes");
    assert!(
        per_device <= MAX_HEAP_PER_DEVICE,
        "an idle device keeps {per_device} heap bytes in the broker (limit {MAX_HEAP_PER_DEVICE})"
    );
}

/// The structures every idle connection carries inline. These bounds are the sizes at the time
/// of writing, on 64-bit targets.
#[test]
#[cfg(target_pointer_width = "64")]
fn per_connection_structures_stay_compact() {
    use core::mem::size_of;
    println!(
        "ServerSession {} B, Deframer {} B",
        size_of::<ServerSession>(),
        size_of::<Deframer>()
    );
    assert!(
        size_of::<ServerSession>() <= 160,
        "{}",
        size_of::<ServerSession>()
    );
    assert!(size_of::<Deframer>() <= 24, "{}", size_of::<Deframer>());
}
