//! Where requests go: origins (scheme, host, port), the run's table of
//! them ([`Origins`]: those resolved before the run, and any a script or a
//! redirect names later, resolved on first use off the shard threads), and
//! the TLS settings shared by every connection.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use blast_proto::FailureKind;

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
    /// The address the host resolved to, once (before the run, or on first
    /// use): its first IPv4 address, else its first.
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
        let mut origin = Origin::parse(url)?;
        origin.addr = lookup(&origin.host, origin.port)?;
        Ok(origin)
    }

    /// Parses `url` without resolving it: `addr` is unspecified.
    fn parse(url: &str) -> Result<Origin, OriginError> {
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
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
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

    /// The key [`Origins`] finds this origin by: scheme and `Host` header,
    /// in lower case.
    fn key(&self) -> String {
        key(self.scheme, &self.host_header)
    }

    /// The origin as a URL prefix, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            scheme_name(self.scheme),
            self.host_header,
            self.base_path
        )
    }

    /// The name the TLS handshake checks the certificate against.
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, String> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(bare.to_string()).map_err(|e| e.to_string())
    }
}

/// `host`'s address (its first IPv4 one, else its first: a name such as
/// `localhost` that also has an IPv6 address reaches a server listening on
/// 127.0.0.1). Blocks: only off the shard threads.
fn lookup(host: &str, port: u16) -> Result<SocketAddr, OriginError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolve = |reason: String| OriginError::Resolve {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| resolve(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| resolve("no address".to_string()))
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// `scheme://authority` in lower case, the authority without its scheme's
/// default port.
fn key(scheme: Scheme, authority: &str) -> String {
    let default_port = match scheme {
        Scheme::Http => ":80",
        Scheme::Https => ":443",
    };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    format!(
        "{}://{}",
        scheme_name(scheme),
        authority.to_ascii_lowercase()
    )
}

/// Most origins a run may use (request origins are `u16` indices).
const MAX_ORIGINS: usize = u16::MAX as usize;

/// Where an origin's resolution is.
enum Resolution {
    /// A lookup thread is on it; these wait for it.
    Pending(Vec<flume::Sender<()>>),
    Ready(Arc<Origin>),
    Failed,
}

/// The origins of a run, for every shard of a node: index 0 is the run's
/// host, then those resolved before the run, then any named later (an
/// absolute URL in a script, a redirect's target), in order of first use.
/// Indices mean the same on every shard. A name first used during the run
/// is resolved by a thread of its own, once per node; a name that does not
/// resolve stays failed for the run, and its requests fail as
/// [`FailureKind::Resolve`].
pub struct Origins {
    table: RwLock<Table>,
    insecure: bool,
    /// Built on first need: before the run when an origin is https, else
    /// by the lookup thread of the first https origin.
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Arc<Mutex<Resolution>>>,
    by_key: HashMap<String, u16>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Origins {
    /// A table of `resolved` origins (the run's host first); TLS
    /// certificates are checked unless `insecure`.
    pub fn new(resolved: Vec<Origin>, insecure: bool) -> Origins {
        let mut table = Table::default();
        for origin in resolved.into_iter().take(MAX_ORIGINS) {
            let index = table.slots.len() as u16;
            table.by_key.entry(origin.key()).or_insert(index);
            table
                .slots
                .push(Arc::new(Mutex::new(Resolution::Ready(Arc::new(origin)))));
        }
        Origins {
            table: RwLock::new(table),
            insecure,
            tls: OnceLock::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slot(&self, index: u16) -> Option<Arc<Mutex<Resolution>>> {
        self.read().slots.get(usize::from(index)).cloned()
    }

    /// How many origins the table holds.
    pub fn len(&self) -> usize {
        self.read().slots.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a resolved origin is https, so TLS is needed from the start.
    pub fn any_https(&self) -> bool {
        self.read()
            .slots
            .iter()
            .any(|s| matches!(&*lock(s), Resolution::Ready(o) if o.scheme == Scheme::Https))
    }

    /// The index of the origin `scheme://authority` (a default port may be
    /// given or not). A new one is added and its name looked up on a
    /// thread of its own: requests to it wait for that, wherever they are
    /// sent from. An authority that is not a host (and port) is an error.
    pub fn index_of(self: &Arc<Self>, scheme: Scheme, authority: &str) -> Result<u16, OriginError> {
        let key = key(scheme, authority);
        if let Some(&index) = self.read().by_key.get(&key) {
            return Ok(index);
        }
        let mut origin = Origin::parse(&format!("{key}/"))?;
        if origin.key() != key {
            // The URL parser read the authority differently (a path, a
            // user name): not a plain host and port.
            return Err(OriginError::Invalid {
                url: format!("{}://{authority}", scheme_name(scheme)),
                reason: "not a host and port".to_string(),
            });
        }
        let slot = Arc::new(Mutex::new(Resolution::Pending(Vec::new())));
        let index = {
            let mut table = self
                .table
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(&index) = table.by_key.get(&key) {
                return Ok(index);
            }
            if table.slots.len() >= MAX_ORIGINS {
                return Err(OriginError::Invalid {
                    url: key,
                    reason: format!("a run can use at most {MAX_ORIGINS} hosts"),
                });
            }
            let index = table.slots.len() as u16;
            table.slots.push(slot.clone());
            table.by_key.insert(key, index);
            index
        };
        let origins = self.clone();
        let spawned = std::thread::Builder::new()
            .name("blast-resolve".into())
            .spawn(move || {
                let resolved = lookup(&origin.host, origin.port).map(|addr| {
                    origin.addr = addr;
                    if origin.scheme == Scheme::Https {
                        // Ready for the shard that connects first.
                        let _ = origins.tls();
                    }
                    Arc::new(origin)
                });
                let state = resolved.map_or(Resolution::Failed, Resolution::Ready);
                let before = std::mem::replace(&mut *lock(&slot), state);
                if let Resolution::Pending(waiters) = before {
                    for waiter in waiters {
                        let _ = waiter.send(());
                    }
                }
            });
        if spawned.is_err() {
            let slot = self.slot(index).expect("added above");
            *lock(&slot) = Resolution::Failed;
        }
        Ok(index)
    }

    /// Origin `index`, when it is resolved.
    pub fn ready(&self, index: u16) -> Option<Arc<Origin>> {
        let slot = self.slot(index)?;
        match &*lock(&slot) {
            Resolution::Ready(origin) => Some(origin.clone()),
            _ => None,
        }
    }

    /// Origin `index`, once resolved: at once for one resolved already,
    /// else when its lookup thread is done.
    pub(crate) async fn get(&self, index: u16) -> Result<Arc<Origin>, FailureKind> {
        let slot = self.slot(index).ok_or(FailureKind::InvalidRequest)?;
        loop {
            let woken = match &mut *lock(&slot) {
                Resolution::Ready(origin) => return Ok(origin.clone()),
                Resolution::Failed => return Err(FailureKind::Resolve),
                Resolution::Pending(waiters) => {
                    let (tx, rx) = flume::bounded(1);
                    waiters.push(tx);
                    rx
                }
            };
            // The lookup thread always sends or drops the sender.
            let _ = woken.recv_async().await;
        }
    }

    /// The TLS settings, built on first call.
    pub fn tls(&self) -> Result<Arc<ClientConfig>, String> {
        self.tls.get_or_init(|| tls_config(self.insecure)).clone()
    }

    /// The TLS settings if they are built already (they are before any
    /// https origin is ready).
    pub(crate) fn tls_if_built(&self) -> Option<Arc<ClientConfig>> {
        self.tls.get().and_then(|t| t.as_ref().ok()).cloned()
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

    #[test]
    fn new_hosts_join_the_table_once_and_resolve_off_the_calling_thread() {
        use futures_lite::future::block_on;
        let origins = Arc::new(Origins::new(
            vec![Origin::resolve("http://127.0.0.1:8080").unwrap()],
            false,
        ));
        assert_eq!(origins.index_of(Scheme::Http, "127.0.0.1:8080").unwrap(), 0);
        // From several threads at once: one index per host.
        let indices: Vec<u16> = (0..4)
            .map(|_| {
                let origins = origins.clone();
                std::thread::spawn(move || origins.index_of(Scheme::Http, "LOCALHOST:9").unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(indices, [1, 1, 1, 1]);
        let local = block_on(origins.get(1)).unwrap();
        assert_eq!(local.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(local.url(), "http://localhost:9");
        assert_eq!(origins.index_of(Scheme::Http, "localhost:9").unwrap(), 1);
        // The default port is the same origin, written or not.
        let https = origins.index_of(Scheme::Https, "localhost:443").unwrap();
        assert_eq!(origins.index_of(Scheme::Https, "localhost").unwrap(), https);
        let nowhere = origins
            .index_of(Scheme::Http, "nonexistent.invalid")
            .unwrap();
        assert_eq!(
            block_on(origins.get(nowhere)).unwrap_err(),
            FailureKind::Resolve
        );
        assert!(origins.ready(nowhere).is_none());
        assert_eq!(
            block_on(origins.get(999)).unwrap_err(),
            FailureKind::InvalidRequest
        );
        for bad in ["a b", "user@host", "host/path", ""] {
            assert!(origins.index_of(Scheme::Http, bad).is_err(), "{bad:?}");
        }
        assert_eq!(origins.len(), 4);
    }
}
