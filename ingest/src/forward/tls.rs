//! TLS for the forward server (Fluentd `out_forward` with `transport tls`,
//! Fluent Bit `forward` with `tls on`, the fluent-logger clients' `tls`
//! option), with rustls.
//!
//! [`server_config`] reads a PEM certificate chain and its private key, and,
//! when a client CA is given, requires every client to present a certificate
//! signed by it (Fluentd's `client_cert_auth`). Every failure names the file
//! and what is wrong with it, so that a bad path or a swapped key and
//! certificate stops `vigil serve` at start with a message a user can act on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// Where the server's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of the first certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("forward TLS: {0}")]
pub struct TlsError(String);

/// The rustls server configuration of `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| {
        TlsError(format!("no private key read from {}: {}", files.key.display(), pem_problem(&error)))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError(format!("protocol versions: {error}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(path)? {
                roots.add(certificate).map_err(|error| {
                    TlsError(format!("{} holds a CA certificate rustls refuses: {error}", path.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TlsError(format!("client CA {}: {error}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|error| {
        TlsError(format!(
            "the key in {} does not fit the certificate in {}: {error}",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            TlsError(format!("cannot read certificates from {}: {}", path.display(), pem_problem(&error)))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!("{} holds no PEM certificate (BEGIN CERTIFICATE)", path.display())));
    }
    Ok(chain)
}

fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(error) => error.to_string(),
        Error::NoItemsFound => "no PEM section of the expected kind".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = write(dir.path(), "empty.pem", "");
        let files = TlsFiles { cert: missing.clone(), key: missing.clone(), client_ca: None };
        let error = server_config(&files).unwrap_err().to_string();
        assert!(error.contains("missing.pem"), "{error}");
        let files = TlsFiles { cert: empty.clone(), key: empty, client_ca: None };
        let error = server_config(&files).unwrap_err().to_string();
        assert!(error.contains("empty.pem") && error.contains("no PEM certificate"), "{error}");
    }
}
