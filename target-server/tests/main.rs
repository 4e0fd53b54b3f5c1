//! blast-target from the outside: a real server on 127.0.0.1:0 and a tiny
//! raw HTTP/1.1 client written here, so that the server is checked against
//! the bytes on the wire and not against another HTTP library.

mod it {
    mod client;
    mod counting;
    mod endpoints;
    mod lifecycle;
    mod sessions;
    mod stalls;
}
