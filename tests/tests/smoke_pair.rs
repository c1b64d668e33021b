use iotmp_proto::{Dialect, Value};
use iotmp_tests::pair::Pair;
use std::time::Duration;

#[test]
fn smoke() {
    for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
        let (mut pair, temp, _heading, _led) = Pair::sample(dialect, Some(30));
        pair.run_for(Duration::from_millis(1));
        pair.on_server(|s, now| s.describe(now, None).unwrap());
        pair.on_server(|s, now| s.run(now, "temp", None).unwrap());
        temp.push(Value::F32(21.75));
        pair.run_until(Pair::at(10.0));
        pair.on_server(|s, now| s.start_stream(now, "temp", 5000).unwrap());
        pair.run_until(Pair::at(70.0));
        pair.on_device(|d, now| {
            d.client()
                .disconnect(now, Some("bye".into()), true)
                .unwrap()
        });
        pair.run_until(Pair::at(80.0));
        println!("{}", pair.transcript.text());
        assert!(pair.device_closed() && pair.server_closed());
    }
}
