//! [`TlsOptions`]: how `mqtts://` and `wss://` connections verify the server and
//! authenticate the client, and their translation into a rustls `ClientConfig`.
//!
//! rustls with the *ring* provider: no OpenSSL, no C toolchain beyond what ring builds,
//! the same stack on every platform. Trust anchors are the operating system's store
//! (`rustls-native-certs`, so an organisation's private CA installed on the machine
//! works as it does for `mosquitto_pub`) unless a CA file is given, which then replaces
//! them, as `--cafile` does for mosquitto.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// TLS settings for `mqtts://` and `wss://`. The default trusts the operating system's
/// certificate store and presents no client certificate.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM certificates of the certificate authorities to trust. When set, they replace
    /// the system store unless [`system_roots`](Self::system_roots) is also set.
    /// Default: none.
    pub ca_pem: Option<Vec<u8>>,
    /// Trust the operating system's store in addition to `ca_pem`. Default: `false`
    /// (without `ca_pem` the system store is used regardless).
    pub system_roots: bool,
    /// Client certificate chain and private key, both PEM, for mutual TLS. Default:
    /// none.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to verify the server's certificate against and send as SNI. Default:
    /// the URL's host.
    pub server_name: Option<String>,
    /// **Testing only**: accept any server certificate, valid or not, for any name. The
    /// connection is encrypted but not authenticated, so anyone on the path can read
    /// and change it. Default: `false`.
    pub danger_accept_invalid_certs: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .field("system_roots", &self.system_roots)
            .field("client_auth", &self.client_auth.is_some())
            .field("server_name", &self.server_name)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .finish()
    }
}

impl TlsOptions {
    /// Trusts the certificate authorities in `pem` (instead of the system store).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents `cert_pem` (a chain, leaf first) with `key_pem` for mutual TLS.
    pub fn client_auth(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_auth = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Verifies the server certificate against `name` instead of the URL's host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// **Testing only**: see [`TlsOptions::danger_accept_invalid_certs`].
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Builds the rustls configuration (ALPN `mqtt` is not set: brokers do not need it
    /// on a dedicated port).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsConfigError::Rustls(err.to_string()))?;
        let builder = if self.danger_accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let config = match &self.client_auth {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| TlsConfigError::Pem("client certificate", err.to_string()))?;
                if chain.is_empty() {
                    return Err(TlsConfigError::Pem(
                        "client certificate",
                        "no CERTIFICATE block".into(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|err| TlsConfigError::Pem("client key", err.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| TlsConfigError::Rustls(err.to_string()))?
            }
        };
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        if let Some(pem) = &self.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|err| TlsConfigError::Pem("CA file", err.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|err| TlsConfigError::Pem("CA file", err.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsConfigError::Pem(
                    "CA file",
                    "no CERTIFICATE block".into(),
                ));
            }
        }
        if self.ca_pem.is_none() || self.system_roots {
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                tracing::debug!("system certificate store: {err}");
            }
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 && roots.is_empty() {
                return Err(TlsConfigError::NoSystemRoots);
            }
        }
        Ok(roots)
    }
}

/// Why [`TlsOptions`] cannot be turned into a TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM input (named) is unreadable.
    #[error("cannot read the {0}: {1}")]
    Pem(&'static str, String),
    /// The system has no usable trust anchors and no CA file was given.
    #[error("no trusted certificates: the system certificate store is empty; give a CA file")]
    NoSystemRoots,
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// The verifier behind [`TlsOptions::danger_accept_invalid_certs`]: any certificate is
/// accepted; handshake signatures are still checked so the connection is at least
/// consistent with the certificate presented.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
