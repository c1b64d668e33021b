//! Test certificates made at run time: a CA, a server certificate for `localhost`/127.0.0.1,
//! and client certificates signed by the CA (or by another CA).

use std::sync::Arc;

use iotmp_proto::tls::{self, Roots};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA that can sign leaf certificates.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// Certificate, DER.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses).
    pub fn leaf(&self, common_name: &str, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// Everything a TLS test needs.
pub struct TestPki {
    /// The CA of the server and of accepted device certificates.
    pub ca: TestCa,
    /// The server's certificate (`localhost`, `127.0.0.1`).
    pub server: Leaf,
    /// A device certificate signed by the CA.
    pub device: Leaf,
    /// Another device certificate signed by the CA (a different device).
    pub other_device: Leaf,
}

impl TestPki {
    /// Makes a CA, a server certificate and two device certificates.
    pub fn new() -> Self {
        let ca = TestCa::new("iotmp test CA");
        let server = ca.leaf("iotmp test server", &["localhost", "127.0.0.1"]);
        let device = ca.leaf("dev-cert", &["dev-cert"]);
        let other_device = ca.leaf("dev-other", &["dev-other"]);
        TestPki {
            ca,
            server,
            device,
            other_device,
        }
    }

    /// The server config: requests client certificates signed by the CA.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        tls::server_config(
            self.server.cert_pem.as_bytes(),
            self.server.key_pem.as_bytes(),
            Some(self.ca.cert_pem.as_bytes()),
        )
        .expect("server TLS config")
    }

    /// A client config trusting the CA, optionally presenting `identity`.
    pub fn client_config(&self, identity: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let identity = identity.map(|l| (l.cert_pem.as_bytes(), l.key_pem.as_bytes()));
        tls::client_config(Roots::Pem(self.ca.cert_pem.as_bytes()), identity)
            .expect("client TLS config")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
