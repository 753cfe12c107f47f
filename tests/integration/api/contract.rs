//! The API's contract: every answer the router gives an operation is declared in the OpenAPI
//! document it serves for that operation, errors with the `ErrorBody` schema. Each operation
//! gets the requests that provoke each error class: no token, a bad token, bad query values,
//! bad bodies, the right token, and one request over a rate limit of two per window.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use super::{Api, seller, spawn_api, user};

/// A client connecting from a loopback address no other client of this test uses: its own
/// rate-limit budget.
fn fresh_client() -> Client {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let addr = std::net::Ipv4Addr::new(127, 23, (n >> 8) as u8, (n & 0xff) as u8);
    Client::builder()
        .local_address(std::net::IpAddr::V4(addr))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One request to send to an operation.
struct Case {
    what: &'static str,
    token: Option<String>,
    query: String,
    body: Option<(&'static str, Vec<u8>)>,
}

/// One operation of the document.
struct Op {
    method: Method,
    template: String,
    doc: Value,
}

impl Op {
    fn query_params(&self) -> Vec<String> {
        self.params("query")
    }
    fn params(&self, place: &str) -> Vec<String> {
        self.doc["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn has_body(&self) -> bool {
        self.doc.get("requestBody").is_some()
    }
    /// A token is required: no requirement of the operation is the empty one.
    fn needs_token(&self) -> bool {
        self.doc["security"].as_array().is_some_and(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|r| r.as_object().is_some_and(|r| !r.is_empty()))
        })
    }
    fn declared(&self, status: StatusCode) -> Option<&Value> {
        let responses = &self.doc["responses"];
        responses
            .get(status.as_str())
            .or_else(|| responses.get("default"))
    }
}

fn cases(op: &Op, token: &str) -> Vec<Case> {
    let json = |s: &str| Some(("application/json", s.as_bytes().to_vec()));
    let plain_body = if op.has_body() { json("{}") } else { None };
    let mut out = vec![
        Case {
            what: "no token",
            token: None,
            query: String::new(),
            body: plain_body.clone(),
        },
        Case {
            what: "a bad token",
            token: Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.AAAA".into()),
            query: String::new(),
            body: plain_body.clone(),
        },
        Case {
            what: "the right token",
            token: Some(token.to_owned()),
            query: String::new(),
            body: plain_body,
        },
    ];
    let params = op.query_params();
    if !params.is_empty() {
        for (what, value) in [
            ("query values of the wrong kind", "abc"),
            ("negative query values", "-1"),
            ("huge query values", "18446744073709551616"),
            ("badly encoded query values", "%FF%FE"),
        ] {
            let query = params
                .iter()
                .map(|p| format!("{p}={value}"))
                .collect::<Vec<_>>()
                .join("&");
            out.push(Case {
                what,
                token: Some(token.to_owned()),
                query: format!("?{query}"),
                body: None,
            });
        }
        out.push(Case {
            what: "a malformed query string",
            token: Some(token.to_owned()),
            query: format!("?{}[]=1&{}[x]=2", params[0], params[0]),
            body: None,
        });
    }
    if op.has_body() {
        for (what, body) in [
            ("a body that is not JSON", json("{nope")),
            (
                "a body of the wrong shape",
                json(
                    r#"{"name":1,"price_minor":"x","stock":-1,"login":[],"password":null,"visitor":5,"status":{}}"#,
                ),
            ),
            ("a JSON array body", json("[1,2]")),
            (
                "a body of the wrong type",
                Some(("text/plain", b"hello".to_vec())),
            ),
            ("no body", None),
        ] {
            out.push(Case {
                what,
                token: Some(token.to_owned()),
                query: String::new(),
                body,
            });
        }
    }
    out
}

async fn send(
    api: &Api,
    client: &Client,
    op: &Op,
    path: &str,
    case: &Case,
) -> (StatusCode, Vec<u8>) {
    let mut req = client
        .request(
            op.method.clone(),
            format!("{}{path}{}", api.url, case.query),
        )
        .timeout(std::time::Duration::from_secs(120));
    if let Some(t) = &case.token {
        req = req.bearer_auth(t);
    }
    if let Some((ct, bytes)) = &case.body {
        req = req.header("content-type", *ct).body(bytes.clone());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.bytes().await.unwrap().to_vec())
}

/// The answer is declared for the operation, and an error's body has the error schema.
fn check(op: &Op, case: &str, status: StatusCode, body: &[u8]) -> Result<(), String> {
    let what = format!("{} {} [{case}]", op.method, op.template);
    let Some(declared) = op.declared(status) else {
        return Err(format!(
            "{what}: answered {status}, which the document does not declare (declared: {:?})",
            op.doc["responses"]
                .as_object()
                .map(|r| r.keys().cloned().collect::<Vec<_>>())
        ));
    };
    if status.is_client_error() || status.is_server_error() {
        let schema = &declared["content"]["application/json"]["schema"]["$ref"];
        if schema != "#/components/schemas/ErrorBody" {
            return Err(format!(
                "{what}: {status} is declared without the error schema"
            ));
        }
        let e: Value = serde_json::from_slice(body)
            .map_err(|e| format!("{what}: {status} with a body that is not JSON: {e}"))?;
        let ok = e["error"]["code"].is_string()
            && e["error"]["message"].is_string()
            && e["request_id"].is_string();
        if !ok {
            return Err(format!(
                "{what}: {status} with a body not of the error schema: {e}"
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_answer_of_every_operation_is_in_the_openapi_document() {
    let api = spawn_api(|c| {
        c.api.rate_limit.requests = 2;
        c.api.rate_limit.login_requests = 2;
    })
    .await;
    let (_, seller_id) = seller(&api, "contract-seller@soko.test", "Contract Crafts").await;
    user(&api, "contract-admin@soko.test", "admin").await;
    let login = |who: &'static str| {
        let api = &api;
        async move {
            let r = fresh_client()
                .post(format!("{}/auth/token", api.url))
                .json(&serde_json::json!({ "login": who, "password": super::PASSWORD }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let seller_token = login("contract-seller@soko.test").await;
    let admin_token = login("contract-admin@soko.test").await;
    let r = fresh_client()
        .post(format!("{}/seller/products", api.url))
        .bearer_auth(&seller_token)
        .json(&serde_json::json!({ "name": "Kiondo basket", "price_minor": 450000, "stock": 3, "description": "Woven" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let product = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let slug: String = sqlx::query_scalar("SELECT slug FROM sellers WHERE id = ?")
        .bind(seller_id)
        .fetch_one(&api.db)
        .await
        .unwrap();

    let doc: Value = fresh_client()
        .get(format!("{}/openapi.json", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["components"]["schemas"]["ErrorBody"].is_object(),
        "the error schema is in the document"
    );
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                ops.push(Op {
                    method: method.to_uppercase().parse().unwrap(),
                    template: template.clone(),
                    doc: op.clone(),
                });
            }
        }
    }
    assert!(ops.len() > 25, "{} operations", ops.len());
    // Last, what revokes the tokens or deletes the product the others use.
    ops.sort_by_key(|op| op.template.contains("logout") || op.method == Method::DELETE);

    let mut failures = Vec::new();
    let mut seen: BTreeSet<u16> = BTreeSet::new();
    for op in &ops {
        let id = if op.template.starts_with("/admin/sellers/") {
            seller_id
        } else {
            product
        };
        let path = op
            .template
            .replace("{id}", &id.to_string())
            .replace("{slug}", &slug);
        let token = if op.template.starts_with("/admin") {
            &admin_token
        } else {
            &seller_token
        };
        for case in cases(op, token) {
            let (status, body) = send(&api, &fresh_client(), op, &path, &case).await;
            seen.insert(status.as_u16());
            if case.token.is_none() && op.needs_token() && status != StatusCode::UNAUTHORIZED {
                failures.push(format!(
                    "{} {}: needs a token, yet answered {status} without one",
                    op.method, op.template
                ));
            }
            if let Err(e) = check(op, case.what, status, &body) {
                failures.push(e);
            }
        }
        // Path parameters naming nothing, or not of their kind.
        if !op.params("path").is_empty() {
            for (what, value) in [
                ("an unknown path value", "999999999"),
                ("a malformed path value", "0abc%FF"),
            ] {
                let mut bad = op.template.clone();
                for p in op.params("path") {
                    bad = bad.replace(&format!("{{{p}}}"), value);
                }
                let case = Case {
                    what,
                    token: Some(token.to_owned()),
                    query: String::new(),
                    body: cases(op, token)[2].body.clone(),
                };
                let (status, body) = send(&api, &fresh_client(), op, &bad, &case).await;
                seen.insert(status.as_u16());
                if let Err(e) = check(op, what, status, &body) {
                    failures.push(e);
                }
            }
        }
        // Over the rate limit: a third request from one address within the window.
        let client = fresh_client();
        let case = &cases(op, token)[0];
        let mut last = StatusCode::OK;
        for _ in 0..3 {
            let (status, body) = send(&api, &client, op, &path, case).await;
            if let Err(e) = check(op, "over the rate limit", status, &body) {
                failures.push(e);
            }
            last = status;
        }
        seen.insert(last.as_u16());
        if last != StatusCode::TOO_MANY_REQUESTS {
            failures.push(format!(
                "{} {}: the third request in a window of two answered {last}",
                op.method, op.template
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Each error class was provoked (the test would pass vacuously otherwise).
    for class in [400, 401, 404, 415, 422, 429] {
        assert!(
            seen.contains(&class),
            "no request was answered {class}: {seen:?}"
        );
    }
}
