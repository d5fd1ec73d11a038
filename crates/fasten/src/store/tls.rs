//! TLS for PostgreSQL connections, on rustls: libpq's `sslmode` and
//! `sslrootcert` ([`crate::dsn::split_tls`] reads them), a
//! `tokio_postgres` connector, and messages that say which rule refused a
//! connection.
//!
//! A small connector of our own rather than `tokio-postgres-rustls`: the
//! verifying modes need verifiers of their own anyway (`verify-ca` checks
//! the chain but not the name, `require` checks neither), and everything
//! else is a few lines over `tokio-rustls`, which the tree already holds.
//! The one thing left out is SCRAM channel binding (`tls-server-end-point`),
//! which would need an X.509 parser: connections authenticate with plain
//! SCRAM inside the TLS session.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::dsn::{PgTls, Roots, SslMode};

/// The client configuration for `tls`: which certificates it accepts.
/// Reads `sslrootcert` (or the system's CA certificates) for the verifying
/// modes; the error says what is wrong with them.
pub(crate) fn client_config(tls: &PgTls) -> std::result::Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if tls.mode.verifies() {
        let roots = Arc::new(root_store(tls)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| format!("{}: {e}", tls.roots))?;
        if tls.mode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        }
    } else {
        Arc::new(Unchecked(Arc::clone(&provider)))
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn root_store(tls: &PgTls) -> std::result::Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match &tls.roots {
        Roots::File(path) => {
            let shown = path.display();
            // Read first, so a missing or unreadable file says so plainly.
            let pem = std::fs::read(path)
                .map_err(|e| format!("sslrootcert={shown} cannot be read: {e}"))?;
            for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
                let cert = cert.map_err(|e| {
                    format!(
                        "sslrootcert={shown}: certificate {} is not valid PEM: {e}",
                        i + 1
                    )
                })?;
                store.add(cert).map_err(|e| {
                    format!(
                        "sslrootcert={shown}: certificate {} is not a usable CA: {e}",
                        i + 1
                    )
                })?;
            }
            if store.is_empty() {
                return Err(format!(
                    "sslrootcert={shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----): name the CA file that signed the server's certificate"
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(format!(
                    "sslmode={} without a sslrootcert file trusts the system's CA certificates, and none were found: set sslrootcert=/path/to/ca.pem",
                    tls.mode.as_str()
                ));
            }
        }
    }
    Ok(store)
}

/// Why a connection failed, in terms of the DSN's TLS settings, when TLS
/// (or its absence) is the reason; `None` otherwise.
pub(crate) fn explain(e: &tokio_postgres::Error, tls: &PgTls, host: &str) -> Option<String> {
    if let Some(db) = e.as_db_error()
        && *db.code() == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        && db.message().contains("no encryption")
    {
        return Some(match tls.mode {
            SslMode::Disable => "the server refuses connections without TLS and sslmode=disable forbids TLS: use sslmode=verify-full with sslrootcert (or require)".to_owned(),
            _ => "the server refuses connections without TLS: use sslmode=verify-full with sslrootcert (or require)".to_owned(),
        });
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string() == "server does not support TLS" {
            return Some(format!(
                "the server does not offer TLS, and sslmode={} requires it: enable ssl on the server, or use sslmode=prefer on a trusted network",
                tls.given.unwrap_or(tls.mode).as_str()
            ));
        }
        let rustls_error = s
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(rustls_error) = rustls_error {
            return Some(explain_rustls(rustls_error, tls, host));
        }
        source = s.source();
    }
    None
}

fn explain_rustls(e: &rustls::Error, tls: &PgTls, host: &str) -> String {
    let mode = tls.mode.as_str();
    let rule = match tls.given {
        Some(g) if g != tls.mode => {
            format!("sslmode={} with sslrootcert acts as {mode}", g.as_str())
        }
        _ => format!("sslmode={mode}"),
    };
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("the TLS handshake failed ({rule}): {e}");
    };
    match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the server's certificate is not trusted: no CA in {} signed it ({rule}: the chain must end at a trusted CA): set sslrootcert to the CA that signed the server's certificate",
            tls.roots
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the server's certificate is not valid for host {host:?} (sslmode=verify-full: the certificate must name the host): connect by a name the certificate holds, or use sslmode=verify-ca"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!(
                "the server's certificate has expired ({rule}: the certificate must be valid now)"
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
            "the server's certificate is not valid yet ({rule}: the certificate must be valid now)"
        ),
        other => format!("the server's certificate is refused ({rule}): {other:?}"),
    }
}

// === impl verifiers ===

/// `verify-ca`: the chain must end at a trusted CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last, so a name
        // error means the chain held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, but any certificate is accepted (the
/// handshake's signatures are still checked against it).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// === impl connector ===

/// The `tokio_postgres` connector: one per connection attempt.
#[derive(Clone)]
pub(crate) struct Rustls(Arc<ClientConfig>);

impl Rustls {
    pub(crate) fn new(config: ClientConfig) -> Self {
        Self(Arc::new(config))
    }
}

impl<S> MakeTlsConnect<S> for Rustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        // The name is checked when TLS is attempted: a Unix socket has
        // none, and never asks.
        Ok(Connect {
            config: Arc::clone(&self.0),
            domain: domain.to_owned(),
        })
    }
}

/// One TLS handshake to come, for the host `domain`.
pub(crate) struct Connect {
    config: Arc<ClientConfig>,
    domain: String,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.domain.clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("host {:?} is not a valid TLS server name: {e}", self.domain),
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(Stream(tls))
        })
    }
}

/// An encrypted connection.
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsn::split_tls;

    fn tls(query: &str) -> PgTls {
        split_tls(&format!("postgres://u@h/db{query}")).unwrap().1
    }

    #[test]
    fn an_unreadable_sslrootcert_is_named() {
        let err = client_config(&tls("?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"))
            .unwrap_err();
        insta::assert_snapshot!(err, @"sslrootcert=/nonexistent/ca.pem cannot be read: No such file or directory (os error 2)");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&tls(&format!(
            "?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        )))
        .unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn modes_that_do_not_verify_need_no_roots() {
        for query in [
            "",
            "?sslmode=prefer",
            "?sslmode=require",
            "?sslmode=disable",
        ] {
            client_config(&tls(query)).unwrap();
        }
    }
}
