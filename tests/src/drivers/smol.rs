//! The smol driver behind the runtime-neutral test traits, on both of its executors: smol's and
//! async-std's. One test binary runs both, since the executor is a run-time option.

use std::net::SocketAddr;

use iotmp_proto::admission::AdmissionConfig;
use iotmp_smol::{DeviceOptions, ServerOptions};

use super::adapters::driver_adapters;
use super::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

driver_adapters!(iotmp_smol, SmolServer, SmolDevice);

/// The smol driver on smol's global executor.
pub struct Smol;

/// The smol driver on async-std's global executor.
pub struct AsyncStd;

impl Runtime for Smol {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer> {
        serve(spec, iotmp_smol::Runtime::Smol)
    }

    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice> {
        connect(spec, iotmp_smol::Runtime::Smol)
    }
}

impl Runtime for AsyncStd {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer> {
        serve(spec, iotmp_smol::Runtime::AsyncStd)
    }

    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice> {
        connect(spec, iotmp_smol::Runtime::AsyncStd)
    }
}

fn serve(spec: ServerSpec, runtime: iotmp_smol::Runtime) -> Box<dyn TestServer> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let options = ServerOptions {
        tcp: Some(spec.tcp.unwrap_or(loopback)),
        tls: spec.tls.map(|config| (loopback, config)),
        session: spec.session,
        record: None,
        runtime,
        // The suite is about the protocol; admission has its own tests (admission.rs).
        admission: AdmissionConfig::unlimited(),
    };
    Box::new(SmolServer(
        iotmp_smol::serve(options).expect("smol server starts"),
    ))
}

fn connect(spec: DeviceSpec, runtime: iotmp_smol::Runtime) -> Box<dyn TestDevice> {
    let options = DeviceOptions {
        address: spec.addr.to_string(),
        tls: spec.tls,
        backoff: spec.backoff,
        record: None,
        runtime,
    };
    let driver = iotmp_smol::connect(options, spec.config, spec.resources);
    Box::new(SmolDevice(driver.expect("smol device starts")))
}
