//! Property tests of what the API reads from a request before any handler logic: JSON bodies
//! (random bytes, and JSON of random shape, for every request type), query strings (every
//! query type, from random and percent-encoded bytes) and the query values' own parsers (price
//! ranges, cursors, limits). Each gives a value or a 4xx naming what to fix; never a panic.
//! And the multipart reader of photo uploads (pages and API): any body, cut anywhere, gives the
//! `image` field's bytes or a refusal; and bearer tokens: any string, or a real token with any
//! character changed, is refused (401) or reads as exactly the claims that were signed.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, Uri};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::admin::{SellerStatusRequest, SellersQuery};
use super::auth::{LoginRequest, RegisterRequest};
use super::catalogue::{FeedQuery, SearchQuery};
use super::events::EventRequest;
use super::extract::{limit, parse, parse_opt};
use super::insights::{AnalyticsQuery, LeadsQuery};
use super::recommend::{LimitQuery, RecQuery};
use super::seller::ProductInput;
use super::visual::{ImageSearchQuery, SimilarQuery};

/// Field names the request types have, and names they do not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_owned()),
        Just("login".to_owned()),
        Just("password".to_owned()),
        Just("description".to_owned()),
        Just("price_minor".to_owned()),
        Just("currency".to_owned()),
        Just("stock".to_owned()),
        Just("category".to_owned()),
        Just("status".to_owned()),
        Just("reason".to_owned()),
        Just("visitor".to_owned()),
        Just("referrer".to_owned()),
        Just("__proto__".to_owned()),
        any::<String>(),
    ]
}

/// Any JSON value: numbers at the edges of every integer type, long strings, deep nesting.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(serde_json::json!(u32::MAX as u64 + 1)),
        Just(serde_json::json!(-1)),
        any::<String>().prop_map(Value::String),
        "[0-9]{1,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON body refused: 400 when it is not JSON, else 422 naming a field.
fn refused_well<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = parse::<T>(bytes) {
        match e.status {
            StatusCode::BAD_REQUEST => prop_assert_eq!(e.code, "malformed_json"),
            StatusCode::UNPROCESSABLE_ENTITY => {
                prop_assert!(!e.fields.is_empty(), "422 without a field: {}", e.message);
                prop_assert!(
                    e.fields
                        .iter()
                        .all(|f| !f.field.is_empty() && !f.message.is_empty())
                );
            }
            other => prop_assert!(false, "{other} for a body: {}", e.message),
        }
    }
    Ok(())
}

fn every_body(bytes: &[u8]) -> Result<(), TestCaseError> {
    refused_well::<ProductInput>(bytes)?;
    refused_well::<LoginRequest>(bytes)?;
    refused_well::<RegisterRequest>(bytes)?;
    refused_well::<SellerStatusRequest>(bytes)?;
    refused_well::<EventRequest>(bytes)?;
    Ok(())
}

/// Query strings: random printable text, and random bytes percent-encoded.
fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[ -~]{0,24}",
        proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
        any::<i128>().prop_map(|n| n.to_string()),
        Just("%".to_owned()),
        Just("%zz".to_owned()),
        Just("%C3%28".to_owned()),
    ];
    let name = prop_oneof![
        Just("q"),
        Just("category"),
        Just("min"),
        Just("max"),
        Just("city"),
        Just("limit"),
        Just("before"),
        Just("days"),
        Just("status"),
        Just("visitor"),
        Just("k"),
        Just(""),
    ];
    proptest::collection::vec((name, value), 0..8).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn every_query(uri: &Uri) {
    type Q<T> = axum::extract::Query<T>;
    let _ = Q::<FeedQuery>::try_from_uri(uri);
    let _ = Q::<SearchQuery>::try_from_uri(uri);
    let _ = Q::<SellersQuery>::try_from_uri(uri);
    let _ = Q::<LeadsQuery>::try_from_uri(uri);
    let _ = Q::<AnalyticsQuery>::try_from_uri(uri);
    let _ = Q::<RecQuery>::try_from_uri(uri);
    let _ = Q::<LimitQuery>::try_from_uri(uri);
    let _ = Q::<ImageSearchQuery>::try_from_uri(uri);
    let _ = Q::<SimilarQuery>::try_from_uri(uri);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_as_a_body_are_refused_by_name(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        every_body(&bytes)?;
    }

    #[test]
    fn json_of_any_shape_is_read_or_refused_by_name(v in json()) {
        let text = serde_json::to_vec(&v).unwrap();
        every_body(&text)?;
        // Cut short, it is not JSON any more: 400, never a panic.
        if text.len() > 1 {
            every_body(&text[..text.len() / 2])?;
        }
    }

    #[test]
    fn an_object_with_any_fields_is_read_or_refused_by_name(
        fields in proptest::collection::btree_map(key(), json(), 0..8),
    ) {
        let text = serde_json::to_vec(&fields).unwrap();
        every_body(&text)?;
    }

    #[test]
    fn any_query_string_parses_or_is_refused(q in query()) {
        if let Ok(uri) = format!("/x?{q}").parse::<Uri>() {
            every_query(&uri);
        }
    }

    #[test]
    fn query_values_are_in_range_or_name_their_parameter(v in proptest::option::of(prop_oneof![
        any::<String>(),
        any::<i128>().prop_map(|n| n.to_string()),
        "[ +0-9-]{0,24}",
    ])) {
        match limit(&v, 100, 40) {
            Ok(n) => prop_assert!((1..=100).contains(&n)),
            Err(e) => prop_assert_eq!(e.field, "limit"),
        }
        match parse_opt::<u64>("before", &v, "a product id") {
            Ok(n) => prop_assert_eq!(n.is_some(), v.as_deref().is_some_and(|s| !s.trim().is_empty())),
            Err(e) => prop_assert_eq!(e.field, "before"),
        }
        if let Err(e) = parse_opt::<i64>("min", &v, "a whole number of minor units") {
            prop_assert_eq!(e.field, "min");
        }
    }
}

/// One part of a multipart body: its name, its bytes.
fn part() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        prop_oneof![
            Just("image".to_owned()),
            Just("photo".to_owned()),
            Just("csrf".to_owned()),
            "[a-z\"; =]{0,8}",
        ],
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
}

/// A multipart body of `parts` with `boundary`, and its Content-Type.
fn multipart_body(boundary: &str, parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in parts {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// `read_image_field` on `body` sent as `content_type`, then the rest drained as the handlers
/// do; `None` when axum refused the request before (no boundary).
fn read_upload(
    content_type: &str,
    body: Vec<u8>,
) -> Option<Result<Vec<u8>, crate::imaging::codec::Refusal>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let req = Request::builder()
            .method("POST")
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .unwrap();
        let mut form = Multipart::from_request(req, &()).await.ok()?;
        let read = crate::web::images::read_image_field(&mut form).await;
        crate::web::images::drain(&mut form).await;
        Some(read)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_intact_upload_gives_the_image_field(
        boundary in "[A-Za-z0-9'()+_,./:=?-]{1,70}",
        parts in proptest::collection::vec(part(), 0..5),
    ) {
        let body = multipart_body(&boundary, &parts);
        let delimiter = format!("\r\n--{boundary}");
        // Data that happens to contain the delimiter ends its part early: not an intact body.
        prop_assume!(parts.iter().all(|(_, d)| !d.windows(delimiter.len()).any(|w| w == delimiter.as_bytes())));
        prop_assume!(parts.iter().all(|(n, _)| !n.contains('"')));
        // Quoted: a boundary may hold characters the header's syntax reserves.
        let read = read_upload(&format!("multipart/form-data; boundary=\"{boundary}\""), body)
            .expect("a boundary was given");
        match parts.iter().find(|(n, _)| n == "image") {
            Some((_, data)) => prop_assert_eq!(read.ok(), Some(data.clone())),
            None => prop_assert!(read.is_err()),
        }
    }

    #[test]
    fn a_damaged_upload_is_refused_or_read_never_a_panic(
        boundary in "[A-Za-z0-9-]{1,20}",
        claimed in prop_oneof![Just(None), "[ -~]{0,20}".prop_map(Some)],
        parts in proptest::collection::vec(part(), 0..4),
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut body = multipart_body(&boundary, &parts);
        for (at, byte) in &noise {
            let i = at.index(body.len());
            body[i] = *byte;
        }
        body.truncate(cut.index(body.len() + 1));
        let content_type = match &claimed {
            None => format!("multipart/form-data; boundary={boundary}"),
            Some(b) => format!("multipart/form-data; boundary={b}"),
        };
        if let Some(Ok(bytes)) = read_upload(&content_type, body.clone()) {
            prop_assert!(bytes.len() <= body.len());
        }
    }
}

fn keys_and_token() -> (super::jwt::Keys, String) {
    let keys = super::jwt::Keys::new(b"a secret of thirty-two bytes or more, for tests", 3600);
    let user = crate::store::users::User {
        id: 42,
        email: Some("buyer@soko.test".into()),
        phone: None,
        name: "Wanjiru".into(),
        password_hash: String::new(),
        role: crate::market::states::Role::User,
        status: crate::market::states::UserStatus::Active,
        token_version: 3,
        locale: "en".into(),
    };
    let token = keys.issue(&user).unwrap();
    (keys, token)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_string_as_a_bearer_token_is_refused(token in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,50}",
        // {"alg":"none"} and {"alg":"HS512"} headers with any payload.
        "[A-Za-z0-9_-]{0,80}".prop_map(|p| format!("eyJhbGciOiJub25lIn0.{p}.")),
        "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,50}".prop_map(|p| format!("eyJhbGciOiJIUzUxMiJ9.{p}")),
    ]) {
        let (keys, _) = keys_and_token();
        let e = keys.verify(&token).unwrap_err();
        prop_assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_token_with_any_character_changed_is_refused_or_unchanged(
        at in any::<prop::sample::Index>(),
        to in "[A-Za-z0-9_.=+/-]",
    ) {
        let (keys, token) = keys_and_token();
        let original = keys.verify(&token).unwrap();
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        chars[i] = to.chars().next().unwrap();
        let tampered: String = chars.into_iter().collect();
        match keys.verify(&tampered) {
            Err(e) => prop_assert_eq!(e.status, StatusCode::UNAUTHORIZED),
            // Only a change the encoding ignores (the same character, or a last character's
            // unused bits) may pass, and then it says exactly what was signed.
            Ok(c) => {
                prop_assert_eq!(c.sub, original.sub);
                prop_assert_eq!(c.role, original.role);
                prop_assert_eq!(c.ver, original.ver);
                prop_assert_eq!(c.exp, original.exp);
            }
        }
    }
}
