//! `/items` and `/items/ID`: a fixed, stateless catalogue to exercise JSON
//! and every method. Writes are answered but change nothing, so any run sees
//! the same data.

use std::sync::LazyLock;

use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::body::ResponseBody;
use crate::reply;

/// Items `1..=ITEM_COUNT` exist.
const ITEM_COUNT: u32 = 1000;

/// How many items `GET /items` lists.
const PAGE_LEN: u32 = 20;

/// One catalogue entry, derived from its id.
#[derive(Debug, Serialize, PartialEq)]
struct Item {
    id: u32,
    name: String,
    price: f64,
    stock: u32,
}

impl Item {
    fn new(id: u32) -> Self {
        Item {
            id,
            name: format!("item-{id}"),
            price: f64::from(id * 7919 % 100_000) / 100.0,
            stock: id * 37 % 500,
        }
    }
}

/// The list never changes, so it is serialized once.
static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    let items: Vec<Item> = (1..=PAGE_LEN).map(Item::new).collect();
    Bytes::from(serde_json::to_vec(&items).unwrap_or_default())
});

/// Answers a request to `/items` (`id` is `None`) or `/items/{id}`.
pub(crate) fn respond(method: &Method, id: Option<&str>, body: &Bytes) -> Response<ResponseBody> {
    let Some(id) = id else {
        return match *method {
            Method::GET | Method::HEAD => reply::with_body(
                StatusCode::OK,
                reply::JSON,
                ResponseBody::full(PAGE.clone()),
            ),
            Method::POST => create(body),
            _ => reply::method_not_allowed("GET, HEAD, POST"),
        };
    };
    let Ok(id) = id.parse::<u32>() else {
        return reply::error(StatusCode::BAD_REQUEST, "item id must be a number\n");
    };
    if !(1..=ITEM_COUNT).contains(&id) {
        return reply::not_found();
    }
    match *method {
        Method::GET | Method::HEAD => reply::json(StatusCode::OK, &Item::new(id)),
        Method::PUT | Method::PATCH => reply::json(
            StatusCode::OK,
            &serde_json::json!({ "id": id, "updated": true }),
        ),
        Method::DELETE => reply::empty(StatusCode::NO_CONTENT),
        _ => reply::method_not_allowed("GET, HEAD, PUT, PATCH, DELETE"),
    }
}

/// `POST /items`: echoes a valid JSON body with 201.
fn create(body: &Bytes) -> Response<ResponseBody> {
    // Validated without building a value, and echoed as sent.
    match serde_json::from_slice::<IgnoredAny>(body) {
        Ok(_) => reply::with_body(
            StatusCode::CREATED,
            reply::JSON,
            ResponseBody::full(body.clone()),
        ),
        Err(_) => reply::error(StatusCode::BAD_REQUEST, "body must be JSON\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body;

    fn status(method: Method, id: Option<&str>, body: &str) -> StatusCode {
        respond(&method, id, &Bytes::from(body.to_owned())).status()
    }

    #[test]
    fn statuses() {
        let table = [
            (Method::GET, None, "", 200),
            (Method::HEAD, None, "", 200),
            (Method::POST, None, r#"{"name":"x"}"#, 201),
            (Method::POST, None, "[1,2]", 201),
            (Method::POST, None, "{not json", 400),
            (Method::POST, None, "", 400),
            (Method::DELETE, None, "", 405),
            (Method::GET, Some("1"), "", 200),
            (Method::GET, Some("1000"), "", 200),
            (Method::GET, Some("0"), "", 404),
            (Method::GET, Some("1001"), "", 404),
            (Method::GET, Some("99999999999"), "", 400),
            (Method::GET, Some("abc"), "", 400),
            (Method::GET, Some(""), "", 400),
            (Method::GET, Some("-1"), "", 400),
            (Method::GET, Some("3/extra"), "", 400),
            (Method::PUT, Some("3"), "{}", 200),
            (Method::PATCH, Some("3"), "{}", 200),
            (Method::DELETE, Some("3"), "", 204),
            (Method::DELETE, Some("3000"), "", 404),
            (Method::POST, Some("3"), "{}", 405),
        ];
        for (method, id, body, want) in table {
            assert_eq!(
                status(method.clone(), id, body).as_u16(),
                want,
                "{method} {id:?} {body:?}"
            );
        }
    }

    #[test]
    fn list_has_twenty_items_with_all_fields() {
        let items: serde_json::Value = serde_json::from_slice(&PAGE).unwrap();
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), 20);
        assert_eq!(items[0]["id"], 1);
        for field in ["id", "name", "price", "stock"] {
            assert!(items[19].get(field).is_some(), "{field}");
        }
    }

    #[test]
    fn create_echoes_the_body() {
        let body = Bytes::from_static(br#"{"name":"new","price":1.5}"#);
        let response = respond(&Method::POST, None, &body);
        assert_eq!(response.body().size_hint().exact(), Some(body.len() as u64));
    }

    #[test]
    fn items_are_derived_from_their_id() {
        assert_eq!(Item::new(7), Item::new(7));
        assert_eq!(Item::new(7).name, "item-7");
    }
}
