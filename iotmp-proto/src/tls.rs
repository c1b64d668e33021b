//! TLS configuration for the drivers (feature `tls`): rustls configs built from PEM, the way
//! spec §6.2 and §9 want them.
//!
//! * Servers present a certificate chain and key; when a client CA is given they *request* a
//!   client certificate and verify it against that CA, but still admit clients without one
//!   (they authenticate with credentials). A verified certificate enables certificate auth.
//! * Clients verify the server against the system roots or a given CA (and send SNI, which
//!   rustls does from the server name), optionally presenting a client certificate.
//!
//! This module reads no files and opens no sockets: it takes PEM bytes. Only
//! [`Roots::System`] asks the operating system for its root store, once, while configuring.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::server::TransportInfo;

/// A TLS configuration that could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM holds no certificate.
    #[error("no certificate found in the {0} PEM")]
    NoCertificate(&'static str),
    /// The PEM could not be read.
    #[error("invalid {what} PEM: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The system root store could not be loaded.
    #[error("cannot load the system root certificates: {0}")]
    SystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier refused the CA.
    #[error("client CA: {0}")]
    Verifier(String),
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: "private key",
        detail: e.to_string(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration: `cert_chain_pem` and `key_pem` identify the server; with
/// `client_ca_pem` client certificates are requested and verified against it.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert_chain_pem, "server certificate")?;
    let key = private_key(key_pem)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = match client_ca_pem {
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "client CA")? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

/// Which certificates a client trusts.
#[derive(Debug, Clone)]
pub enum Roots<'a> {
    /// The operating system's root store.
    System,
    /// The CA certificates of this PEM.
    Pem(&'a [u8]),
}

/// A client configuration trusting `roots`, with an optional client certificate
/// (`(cert_chain_pem, key_pem)`) for certificate auth.
pub fn client_config(
    roots: Roots<'_>,
    identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                let detail = loaded
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(TlsError::SystemRoots(detail));
            }
            let _ = store.add_parsable_certificates(loaded.certs);
        }
        Roots::Pem(pem) => {
            for cert in certificates(pem, "CA")? {
                store.add(cert)?;
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(
            certificates(chain, "client certificate")?,
            private_key(key)?,
        )?,
    };
    Ok(Arc::new(config))
}

/// What a server session should know about a finished TLS handshake: the verified client
/// certificate (the leaf), if the client presented one.
pub fn transport_info(peer_certificates: Option<&[CertificateDer<'_>]>) -> TransportInfo {
    TransportInfo {
        tls: true,
        verified_client_certificate: peer_certificates
            .and_then(<[_]>::first)
            .map(|c| c.as_ref().to_vec()),
    }
}
