//! The TLS client of `SSL_GET` checks (keepalived's `ssl.c`): rustls with its ring provider,
//! taking any certificate as keepalived does without a `ca` — a health check asks whether the
//! server answers, not whether it is who it says it is.

use std::sync::Arc;

use lvs_core::health::{Check, Detail, Outcome, Probe};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::Shared;

/// Takes any certificate, but still checks the handshake's signatures with it, so the
/// connection is a real TLS session.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure as a check result.
pub(super) fn failure(e: &rustls::Error) -> Outcome {
    Outcome::down(Detail::Io(format!("tls: {e}")))
}

/// Makes the client configuration the first time a TLS check starts.
pub(super) fn ensure_config(shared: &mut Shared) -> Result<(), Outcome> {
    if shared.tls.is_none() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| failure(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        shared.tls = Some(Arc::new(config));
    }
    Ok(())
}

/// A client session for `probe`, naming the check's `virtualhost` (SNI) when it is a DNS
/// name, the target's address otherwise.
pub(super) fn connect(shared: &Shared, probe: &Probe) -> Result<ClientConnection, Outcome> {
    let Some(config) = shared.tls.clone() else { return Err(Outcome::down(Detail::Io("tls: no client".into()))) };
    let host = match &*probe.check {
        Check::Http(h) => h.virtualhost.clone(),
        _ => None,
    };
    let name = host
        .and_then(|h| ServerName::try_from(h).ok())
        .unwrap_or_else(|| ServerName::IpAddress(probe.target.addr.into()));
    ClientConnection::new(config, name).map_err(|e| failure(&e))
}
