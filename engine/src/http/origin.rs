//! Where requests go: origins (scheme, host, port) resolved once before the
//! run, and the TLS settings shared by every connection.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// An origin's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A resolved origin: every request to it goes to `addr`.
#[derive(Clone, Debug)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host as written in the URL (name or address).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The address the host resolved to, once, before the run.
    pub addr: SocketAddr,
    /// The `Host` header value (`host` or `host:port` for a non-default port).
    pub host_header: String,
    /// A path prefix from the URL (empty or starting with `/`, no trailing
    /// `/`), put before every request's path.
    pub base_path: String,
}

/// An origin URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// Not a URL.
    #[error("invalid URL {url:?}: {reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The host did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
}

impl Origin {
    /// Parses `url` (`http://host[:port][/base]`) and resolves its host.
    pub fn resolve(url: &str) -> Result<Origin, OriginError> {
        let invalid = |reason: &str| OriginError::Invalid {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        let scheme = match parsed.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(invalid(&format!("scheme {other:?} is not http or https"))),
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("a host URL takes no query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("credentials in the host URL are not supported"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => format!("[{a}]"),
            None => return Err(invalid("no host")),
        };
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| invalid("no port"))?;
        let lookup = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (lookup, port)
            .to_socket_addrs()
            .map_err(|e| OriginError::Resolve {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| OriginError::Resolve {
                host: host.clone(),
                reason: "no address".to_string(),
            })?;
        let host_header = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let base_path = parsed.path().trim_end_matches('/').to_string();
        Ok(Origin {
            scheme,
            host,
            port,
            addr,
            host_header,
            base_path,
        })
    }

    /// The origin as a URL prefix, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}{}", self.host_header, self.base_path)
    }

    /// The name the TLS handshake checks the certificate against.
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, String> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(bare.to_string()).map_err(|e| e.to_string())
    }
}

/// Builds the TLS client settings: the system's trust roots, or no
/// verification at all when `insecure`.
pub fn tls_config(insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A system store may hold certificates rustls cannot parse;
            // skipping them is what every client does.
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `--insecure`: accepts any certificate, still checking signatures so the
/// handshake itself is real.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_resolve() {
        let o = Origin::resolve("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (o.scheme, o.port, o.host_header.as_str()),
            (Scheme::Http, 8080, "127.0.0.1:8080")
        );
        assert_eq!(o.base_path, "");
        let o = Origin::resolve("https://localhost/api/").unwrap();
        assert_eq!(
            (o.scheme, o.port, o.host_header.as_str()),
            (Scheme::Https, 443, "localhost")
        );
        assert_eq!(o.base_path, "/api");
        assert_eq!(o.url(), "https://localhost/api");
        for bad in [
            "ftp://x",
            "127.0.0.1:80",
            "http://x?q=1",
            "http://",
            "http://u:p@h",
        ] {
            assert!(Origin::resolve(bad).is_err(), "{bad}");
        }
    }
}
