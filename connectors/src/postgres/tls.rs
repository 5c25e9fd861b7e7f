//! TLS to PostgreSQL, as libpq's `sslmode` means it (Debezium passes
//! `database.sslmode` to the JDBC driver, which follows libpq):
//!
//! | mode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `allow` | never (libpq tries plain first; a server that refuses plain connections is rare) | — |
//! | `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked; checked against `database.sslrootcert` when given, as libpq does |
//! | `verify-ca` | always | chain checked against `database.sslrootcert` |
//! | `verify-full` | always | chain and host name checked |
//!
//! `database.sslcert` and `database.sslkey` (PEM) give a client
//! certificate. TLS is rustls with the `ring` provider; both the SQL
//! connections (`tokio-postgres`) and the replication connection use the
//! same [`ClientConfig`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// `database.sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The mode named by a `database.sslmode` value.
    pub(crate) fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a TLS handshake is attempted at all.
    pub(crate) fn attempts_tls(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Allow)
    }

    /// Whether a server without TLS is refused.
    pub(crate) fn requires_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS keys of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    /// `database.sslrootcert`: PEM file of trusted CA certificates.
    pub(crate) root_cert: Option<PathBuf>,
    /// `database.sslcert`: PEM file of the client certificate (chain).
    pub(crate) client_cert: Option<PathBuf>,
    /// `database.sslkey`: PEM file of the client certificate's key.
    pub(crate) client_key: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings { mode: SslMode::Prefer, root_cert: None, client_cert: None, client_key: None }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key}: cannot read PEM certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key}: {} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

impl TlsSettings {
    /// The rustls configuration for this mode; `None` when TLS is not
    /// attempted.
    ///
    /// # Errors
    /// A message naming the key whose file cannot be read or used.
    pub(crate) fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, String> {
        if !self.mode.attempts_tls() {
            return Ok(None);
        }
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("database.sslmode: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match (&self.root_cert, self.mode) {
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                return Err(format!(
                    "database.sslrootcert: required by database.sslmode={} (the CA certificate to check the \
                     server's certificate against)",
                    self.mode.name()
                ))
            }
            (None, _) => Arc::new(AnyCertificate { provider: Arc::clone(&provider) }),
            (Some(path), mode) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path, "database.sslrootcert")? {
                    roots.add(cert).map_err(|e| {
                        format!(
                            "database.sslrootcert: {} is not a usable CA certificate: {e}",
                            path.display()
                        )
                    })?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                        .build()
                        .map_err(|e| format!("database.sslrootcert: {e}"))?;
                Arc::new(ChainVerifier { inner: webpki, check_name: mode == SslMode::VerifyFull })
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "database.sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!("database.sslkey: cannot read a PEM private key from {}: {e}", key.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("database.sslcert/database.sslkey: {e}"))?
            }
            (Some(_), None) => return Err("database.sslcert is set without database.sslkey".into()),
            (None, Some(_)) => return Err("database.sslkey is set without database.sslcert".into()),
        };
        Ok(Some(Arc::new(config)))
    }

    /// What a TLS failure means for the user, naming the keys involved.
    pub(crate) fn explain(&self, error: &str) -> String {
        let root = self.root_cert.as_ref().map(|p| format!(", database.sslrootcert={}", p.display()));
        format!(
            "TLS with PostgreSQL failed: {error} (database.sslmode={}{})",
            self.mode.name(),
            root.unwrap_or_default()
        )
    }
}

/// Whether an error (or one of its sources) is rustls refusing the
/// handshake — a certificate, a protocol version — which a retry will not
/// change, as opposed to the connection breaking during it.
pub(crate) fn is_handshake_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// The server name rustls is given: the host as a DNS name or an IP.
///
/// # Errors
/// When the host is neither.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}` is not a valid TLS server name: {e}"))
}

/// `prefer` and `require` without a root certificate: encryption without
/// checking who is at the other end (libpq's behaviour). The handshake's
/// signatures are still verified.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

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
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (chain only) and `verify-full` (chain and host name).
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_debezium_sslmode_parses_and_others_do_not() {
        for mode in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(mode).map(SslMode::name), Some(mode));
        }
        assert_eq!(SslMode::parse("verify_full"), None);
    }

    #[test]
    fn verifying_modes_need_a_root_certificate_and_name_the_key() {
        let settings = TlsSettings { mode: SslMode::VerifyFull, ..TlsSettings::default() };
        let error = settings.client_config().unwrap_err();
        assert!(error.contains("database.sslrootcert"), "{error}");
        let settings = TlsSettings {
            mode: SslMode::Require,
            root_cert: Some("/nonexistent/root.crt".into()),
            ..TlsSettings::default()
        };
        let error = settings.client_config().unwrap_err();
        assert!(error.contains("database.sslrootcert") && error.contains("/nonexistent/root.crt"), "{error}");
    }

    #[test]
    fn modes_without_tls_build_no_config() {
        for mode in [SslMode::Disable, SslMode::Allow] {
            let settings = TlsSettings { mode, ..TlsSettings::default() };
            assert!(settings.client_config().unwrap().is_none());
        }
        assert!(TlsSettings::default().client_config().unwrap().is_some());
    }
}
