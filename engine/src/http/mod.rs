//! The HTTP/1.1 client: a sans-IO codec (request writer, response parser),
//! and the connection and client that drive it over the runtime's sockets.

mod request;
mod response;

pub use request::{Request, RequestError, write_request};
pub use response::{
    BodyProgress, CodecError, Framing, HeaderBlock, Limits, ResponseHead, ResponseParser,
};
