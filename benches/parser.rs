//! The response parser on typical heads and bodies: what one response costs
//! the client before any I/O.
//!
//! Each case parses one whole response from a full buffer, as the client
//! does when a response arrives in one read, with the body discarded (as
//! for a request whose response the script does not read).

use std::hint::black_box;
use std::time::Duration;

use blast_engine::http::{BodyProgress, Limits, ResponseParser};
use blast_proto::Method;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// What nginx answers to `return 200 "hello\n"`, plus two common headers.
fn small() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\
Cache-Control: no-cache\r\n\r\nhello\n"
        .to_vec()
}

/// Eight chunks of about 120 bytes, then a trailer.
fn chunked() -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for i in 0..8 {
        let chunk = format!("{{\"chunk\":{i},\"pad\":\"{}\"}}", "x".repeat(100));
        r.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    r.extend_from_slice(b"0\r\nX-Checksum: 1234\r\n\r\n");
    r
}

/// 30 headers and a 2-byte body.
fn many_headers() -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..29 {
        r.extend_from_slice(format!("X-Header-{i}: value-{i}-abcdefghijklmnop\r\n").as_bytes());
    }
    r.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    r
}

/// Parses one whole response; returns the bytes it consumed.
fn parse(parser: &mut ResponseParser, input: &[u8]) -> usize {
    parser.reset(Method::Get);
    let head = parser
        .parse_head(input)
        .expect("a valid head")
        .expect("a complete head");
    let (used, progress) = parser
        .parse_body(&input[head..], None)
        .expect("a valid body");
    debug_assert_eq!(progress, BodyProgress::Done);
    head + used
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parser");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let mut parser = ResponseParser::new(Limits::default());
    for (name, input) in [
        ("small_200", small()),
        ("chunked_8_trailer", chunked()),
        ("headers_30", many_headers()),
    ] {
        // A case that stopped short would measure less than its bytes.
        assert_eq!(parse(&mut parser, &input), input.len(), "{name}");
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(parse(&mut parser, black_box(&input))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
