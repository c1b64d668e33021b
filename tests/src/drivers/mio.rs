//! The mio driver behind the runtime-neutral test traits.

use std::net::SocketAddr;

use iotmp_mio::{DeviceOptions, ServerOptions};
use iotmp_proto::admission::AdmissionConfig;

use super::adapters::driver_adapters;
use super::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

driver_adapters!(iotmp_mio, MioServer, MioDevice);

/// The mio runtime: one driver thread per server or device.
pub struct Mio;

impl Runtime for Mio {
    fn name(&self) -> &'static str {
        "mio"
    }

    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let options = ServerOptions {
            tcp: Some(spec.tcp.unwrap_or(loopback)),
            tls: spec.tls.map(|config| (loopback, config)),
            session: spec.session,
            record: None,
            // The suite is about the protocol; admission has its own tests (admission.rs).
            admission: AdmissionConfig::unlimited(),
        };
        Box::new(MioServer(
            iotmp_mio::serve(options).expect("mio server starts"),
        ))
    }

    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice> {
        let options = DeviceOptions {
            address: spec.addr.to_string(),
            tls: spec.tls,
            backoff: spec.backoff,
            record: None,
        };
        let driver = iotmp_mio::connect(options, spec.config, spec.resources);
        Box::new(MioDevice(driver.expect("mio device starts")))
    }
}
