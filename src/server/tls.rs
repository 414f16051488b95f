//! HTTPS: the rustls server configuration read from PEM files, swapped for a fresh one on
//! SIGHUP. Each accepted connection takes the configuration current at that moment, so a reload
//! affects new connections only and never drops an open one.

use std::io;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::TlsFiles;

/// A reason the certificate or its key could not be used. Never shows key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("TLS certificate {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, an unsupported key).
    #[error("TLS certificate and key refused: {0}")]
    Refused(String),
}

/// The HTTPS acceptor, reloadable from its files.
pub(crate) struct Tls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate chain and key and builds the acceptor.
    pub(crate) fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(TlsAcceptor::from(config)),
        })
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files; on any error the current configuration stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = TlsAcceptor::from(config);
        Ok(())
    }
}

fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_error = |reason: String| TlsError::Cert {
        path: files.cert.display().to_string(),
        reason,
    };
    let key_error = |reason: String| TlsError::Key {
        path: files.key.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| cert_error(pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(cert_error("no CERTIFICATE section in the PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_error(pem_reason(&e)))?;
    // The provider is named here rather than taken from a process-wide default, so that nothing
    // else linked in can change it.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Refused(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Refused(e.to_string()))?;
    // HTTP/1.1 is all the server speaks.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A description of a PEM error that cannot carry file contents.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        pem::Error::NoItemsFound => {
            "no usable PEM section (expected CERTIFICATE or PRIVATE KEY)".into()
        }
        _ => "not a valid PEM file".into(),
    }
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// What a client that spoke plain HTTP to the HTTPS port is told.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 56\r\n\r\n{\"message\":\"This port speaks HTTPS; use https:// URLs\"}\n";

/// Whether the client opened with a TLS handshake. When it did not (plain HTTP on the HTTPS
/// port), it is answered a JSON 400 and `false` is returned; the caller drops the connection.
pub(super) async fn starts_with_tls(stream: &mut TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(false);
    }
    if first[0] == TLS_HANDSHAKE {
        return Ok(true);
    }
    stream.write_all(PLAIN_HTTP_ANSWER).await?;
    stream.shutdown().await?;
    // Read (a bounded amount of) what the client sent before closing, so that the close does
    // not turn into a reset that could destroy the answer before the client reads it.
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if stream.read(&mut sink).await? == 0 {
            break;
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::PLAIN_HTTP_ANSWER;

    #[test]
    fn plain_http_answer_has_the_right_content_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["message"].as_str().unwrap().contains("HTTPS"));
    }
}
