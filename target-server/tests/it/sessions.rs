//! The cookie session flow: login, me, logout.

use super::client::{Client, start};

#[test]
fn login_me_logout() {
    let target = start();
    let mut client = Client::connect(target.addr());
    assert_eq!(client.get("GET", "/me").status, 401);

    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = client.send("POST", "/login", &form, b"user=alice&password=secret");
    assert_eq!(login.status, 200);
    assert_eq!(login.json()["user"], "alice");
    assert_eq!(login.json()["token"], "tok-alice");
    let cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("session="), "{cookie}");
    assert!(
        cookie.contains("Path=/") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();

    let me = client.send("GET", "/me", &[("Cookie", session)], b"");
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"], "alice");
    assert_eq!(
        format!("session={}", me.json()["session"].as_str().unwrap()),
        session
    );

    let logout = client.send("POST", "/logout", &[("Cookie", session)], b"");
    assert_eq!(logout.status, 200);
    let cleared = logout.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(
        client
            .send("GET", "/me", &[("Cookie", "session=")], b"")
            .status,
        401
    );
}

#[test]
fn login_takes_json_and_each_login_is_a_new_session() {
    let target = start();
    let mut client = Client::connect(target.addr());
    let json = [("Content-Type", "application/json")];
    let first = client.send("POST", "/login", &json, br#"{"user":"bob"}"#);
    let second = client.send("POST", "/login", &json, br#"{"user":"bob"}"#);
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["token"], "tok-bob");
    assert_ne!(first.header("set-cookie"), second.header("set-cookie"));
    assert_eq!(
        client
            .send("POST", "/login", &json, br#"{"name":"bob"}"#)
            .status,
        400
    );
    assert_eq!(client.get("GET", "/login").status, 405);
}
