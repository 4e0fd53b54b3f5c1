//! The HTTP/1.1 client: a sans-IO codec (request writer, response parser),
//! and the connection and client that drive it over the runtime's sockets.

mod client;
mod connection;
mod cookies;
mod origin;
mod redirect;
mod request;
mod response;

pub use client::Response;
pub(crate) use client::{ClientShared, HttpClient};
pub use cookies::CookieJar;
pub use origin::{Origin, OriginError, Origins, Scheme, tls_config};
pub use redirect::{MAX_REDIRECTS, follow, is_redirect};
pub use request::{Request, RequestError, write_request};
pub use response::{
    BodyProgress, CodecError, Framing, HeaderBlock, Limits, MAX_HEADERS_CEILING, ResponseHead,
    ResponseParser,
};
