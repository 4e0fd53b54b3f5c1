//! What each endpoint answers, checked on the wire.

use std::time::{Duration, Instant};

use super::client::{Client, pattern_byte, request, start};

#[test]
fn root_answers_get_and_head() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let get = client.get("GET", "/");
    assert_eq!(get.status, 200);
    assert!(get.header("content-type").unwrap().starts_with("text/html"));
    assert!(get.text().contains("blast target"));
    assert_eq!(
        get.header("content-length"),
        Some(&*get.body.len().to_string())
    );
    // HEAD gets the same length and no body: the next response on the
    // connection would be garbled otherwise.
    let head = client.get("HEAD", "/");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(client.get("GET", "/").body, get.body);
}

#[test]
fn bytes_with_content_length() {
    let target = start();
    let mut client = Client::connect(target.addr());
    for len in [0usize, 1, 26, 1000, 200_000] {
        let response = client.get("GET", &format!("/bytes/{len}"));
        assert_eq!(response.status, 200, "len {len}");
        assert_eq!(
            response.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(response.header("content-length"), Some(&*len.to_string()));
        assert_eq!(response.chunks, None);
        assert_eq!(response.body.len(), len);
        assert!(
            response
                .body
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern_byte(i))
        );
    }
    let head = client.get("HEAD", "/bytes/67108864");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("67108864"));
}

#[test]
fn bytes_chunked() {
    let target = start();
    let mut client = Client::connect(target.addr());
    for len in [1usize, 10, 1000, 300_000] {
        let response = client.get("GET", &format!("/bytes/{len}?chunked=1"));
        assert_eq!(response.status, 200);
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
        assert_eq!(response.header("content-length"), None);
        let chunks = response.chunks.unwrap();
        assert!(
            chunks >= 1 && (len < 4 || chunks >= 4),
            "{len} bytes in {chunks} chunks"
        );
        assert_eq!(response.body.len(), len);
        assert!(
            response
                .body
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern_byte(i))
        );
    }
    let empty = client.get("GET", "/bytes/0?chunked=1");
    assert_eq!((empty.chunks, empty.body.len()), (Some(0), 0));
}

#[test]
fn bad_numbers_are_400() {
    let target = start();
    let mut client = Client::connect(target.addr());
    for path in [
        "/bytes/67108865",
        "/bytes/abc",
        "/bytes/-5",
        "/delay/60001",
        "/delay/soon",
        "/status/101",
        "/status/1000",
        "/status/ok",
        "/items/x",
    ] {
        assert_eq!(client.get("GET", path).status, 400, "{path}");
    }
}

#[test]
fn delay_waits() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let start = Instant::now();
    let response = client.get("GET", "/delay/200");
    assert_eq!(response.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.json()["delay_ms"], 200);
}

#[test]
fn status_answers_the_code_asked_for() {
    let target = start();
    let mut client = Client::connect(target.addr());
    for (method, code) in [
        ("GET", 200),
        ("POST", 201),
        ("GET", 404),
        ("PUT", 503),
        ("GET", 599),
    ] {
        let response = client.send(method, &format!("/status/{code}"), &[], b"ignored");
        assert_eq!(response.status, code);
        assert_eq!(response.header("content-length"), Some("0"));
    }
    let no_content = client.get("DELETE", "/status/204");
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("content-length"), None);
    // Still in step after a bodiless response.
    assert_eq!(client.get("GET", "/status/304").status, 304);
    assert_eq!(client.get("GET", "/").status, 200);
}

#[test]
fn items() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let list = client.get("GET", "/items");
    assert_eq!(list.header("content-type"), Some("application/json"));
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 20);
    let item = client.get("GET", "/items/42").json();
    assert_eq!(item["id"], 42);
    assert!(item["name"].is_string() && item["price"].is_number() && item["stock"].is_number());
    assert_eq!(client.get("GET", "/items/1001").status, 404);
    assert_eq!(client.get("GET", "/items/0").status, 404);

    let json = [("Content-Type", "application/json")];
    let created = client.send("POST", "/items", &json, br#"{"name":"new","price":2.5}"#);
    assert_eq!(created.status, 201);
    assert_eq!(created.body, br#"{"name":"new","price":2.5}"#);
    assert_eq!(client.send("POST", "/items", &json, b"{oops").status, 400);
    assert_eq!(client.send("PUT", "/items/3", &json, b"{}").status, 200);
    assert_eq!(client.send("PATCH", "/items/3", &json, b"{}").status, 200);
    assert_eq!(client.get("DELETE", "/items/3").status, 204);
    let wrong = client.get("POST", "/items/3");
    assert_eq!(wrong.status, 405);
    assert!(wrong.header("allow").unwrap().contains("DELETE"));
}

#[test]
fn echo_describes_the_request() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let headers = [("X-One", "1"), ("X-Two", "a"), ("X-Two", "b")];
    let echo = client.send("PUT", "/echo?q=1&r", &headers, b"hello").json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "q=1&r");
    assert_eq!(echo["body_len"], 5);
    assert_eq!(echo["headers"]["x-one"], "1");
    assert_eq!(echo["headers"]["x-two"], "a, b");
    assert_eq!(echo["headers"]["host"], "test");
    let bare = client.get("GET", "/echo").json();
    assert_eq!(bare["query"], serde_json::Value::Null);
    assert_eq!(bare["body_len"], 0);
}

#[test]
fn echo_echoes_the_body() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let json = br#"{"name":"ann","tags":["a","b"]}"#;
    let echo = client
        .send(
            "POST",
            "/echo",
            &[("Content-Type", "application/json")],
            json,
        )
        .json();
    assert_eq!(echo["body"], std::str::from_utf8(json).unwrap());
    assert_eq!(echo["body_len"], json.len());
    assert_eq!(echo["headers"]["content-type"], "application/json");
    let form = client.send("PATCH", "/echo", &[], b"a=1&b=two").json();
    assert_eq!(
        (form["method"].as_str(), form["body"].as_str()),
        (Some("PATCH"), Some("a=1&b=two"))
    );
    // Bytes that are not UTF-8 come back replaced; body_len counts them.
    let binary = client.send("PUT", "/echo", &[], &[b'o', b'k', 0xff]).json();
    assert_eq!(binary["body"], "ok\u{fffd}");
    assert_eq!(binary["body_len"], 3);
    assert_eq!(client.get("GET", "/echo").json()["body"], "");
}

#[test]
fn every_documented_endpoint_answers_its_example() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let help = blast_target::endpoints_help();
    for endpoint in blast_target::ENDPOINTS {
        let (method, path, body, status) = endpoint.example;
        let response = client.send(method, path, &[], body.as_bytes());
        assert_eq!(
            response.status, status,
            "{} ({method} {path})",
            endpoint.path
        );
        let prefix = endpoint
            .path
            .split(|c: char| c.is_ascii_uppercase())
            .next()
            .unwrap();
        assert!(
            path.starts_with(prefix),
            "{}: example {path}",
            endpoint.path
        );
        assert!(
            help.contains(endpoint.path) && help.contains(endpoint.answer),
            "{help}"
        );
    }
    // And every path of the target is documented.
    for path in [
        "/",
        "/bytes/N",
        "/delay/MS",
        "/status/CODE",
        "/redirect/N",
        "/echo",
        "/login",
        "/me",
        "/logout",
        "/items",
        "/items/ID",
        "/_blast/counts",
        "/_blast/reset",
    ] {
        assert!(
            blast_target::ENDPOINTS.iter().any(|e| e.path == path),
            "{path}"
        );
    }
}

#[test]
fn unknown_paths_are_404() {
    let target = start();
    let mut client = Client::connect(target.addr());
    for path in ["/nowhere", "/bytes", "/items/1/2/3x", "/_blast/other"] {
        let response = client.get("GET", path);
        assert!(
            matches!(response.status, 404 | 400),
            "{path}: {}",
            response.status
        );
    }
    assert_eq!(client.get("GET", "/nowhere").status, 404);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.extend(request("GET", &format!("/bytes/{i}"), &[], b""));
    }
    client.write(&batch);
    for i in 0..10 {
        assert_eq!(client.read("GET").body.len(), i);
    }
    assert_eq!(target.counts().total, 10);
}

#[test]
fn http10_clients_get_their_body_and_a_close() {
    use std::io::{Read, Write};
    let target = start();
    let mut stream = std::net::TcpStream::connect(target.addr()).unwrap();
    stream
        .write_all(b"GET /bytes/5?chunked=1 HTTP/1.0\r\n\r\n")
        .unwrap();
    // HTTP/1.0 has no chunked encoding: the body ends when the server closes.
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nabcde"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
}

#[test]
fn oversized_request_bodies_are_413() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let len = (16 << 20) + 1;
    let head = format!("POST /items HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n");
    client.write(head.as_bytes());
    let mut writer = client.try_clone_writer();
    // The server may answer before the body is all sent; keep writing on the
    // side so neither end blocks on a full socket buffer.
    let sender = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut writer, &vec![b'x'; len]);
    });
    let response = client.read("POST");
    assert_eq!(response.status, 413);
    sender.join().unwrap();
    assert_eq!(target.counts().path("/items"), 1);
}
