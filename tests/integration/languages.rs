//! Swahili everywhere: every page of the router (the sweep's `PAGES`), as an anonymous visitor,
//! a seller and an admin with `soko_lang=sw`, shows no English sentence of the catalogue;
//! form errors, error pages and the JSON API (when `Accept-Language` asks) speak Swahili; the
//! page cache never hands a Swahili page to an English reader. Against the running app (real
//! MariaDB and milvus-lite).

use reqwest::{Client, StatusCode};

use crate::common::{TestApp, browser, spawn_app};
use soko::market::i18n::{Lang, SAME_IN_BOTH, STRINGS};

/// `&amp;` and friends back to characters (Askama escapes `'`, `"`, `&`, `<`, `>`).
fn unescape(s: &str) -> String {
    s.replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What a person reads on a page: the text between tags and the attributes read out or
/// shown (placeholder, title, alt, aria-label, data-confirm), one piece per entry.
fn readable(html: &str) -> Vec<String> {
    const ATTRS: &[&str] = &["placeholder", "title", "alt", "aria-label", "data-confirm"];
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push(unescape(rest[..lt].trim()));
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        let tag = &rest[lt..lt + gt];
        for a in ATTRS {
            let pat = format!(" {a}=\"");
            if let Some(at) = tag.find(&pat) {
                let v = &tag[at + pat.len()..];
                out.push(unescape(&v[..v.find('"').unwrap_or(v.len())]));
            }
        }
        rest = &rest[lt + gt + 1..];
        // The chart's SVG titles are text too; scripts hold none.
        if tag.starts_with("<script") {
            rest = rest.find("</script>").map_or("", |e| &rest[e..]);
        }
    }
    out.push(unescape(rest.trim()));
    out.retain(|s| !s.is_empty());
    out
}

/// Data the test shop holds that happens to be an English word of the catalogue: the admin
/// account's name ("Admin"), shown in the header.
const DATA: &[&str] = &["Admin"];

/// The English of the catalogue a Swahili page must not show: every multi-word piece (between
/// placeholders) as a substring, and every one-word text as a whole piece of text.
fn english_leaks(html: &str) -> Vec<String> {
    let mut pieces = readable(html);
    pieces.retain(|p| !DATA.contains(&p.as_str()));
    let joined = pieces.join("\n");
    let mut leaks = Vec::new();
    for (key, en, sw) in STRINGS {
        if en == sw {
            continue;
        }
        for part in en.split(['{', '}']) {
            let part = part.trim_matches(|c: char| c.is_whitespace() || ",.:;()“”".contains(c));
            if part.is_empty() || part.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let words: Vec<&str> = part.split_whitespace().collect();
            if words.len() >= 2 {
                if joined.contains(part) && !sw.contains(part) {
                    leaks.push(format!("{key}: {part:?}"));
                }
            } else if !SAME_IN_BOTH.contains(&part)
                && part.chars().any(char::is_alphabetic)
                && pieces.iter().any(|p| p == part)
                && !sw.split_whitespace().any(|w| w == part)
            {
                leaks.push(format!("{key}: {part:?}"));
            }
        }
    }
    leaks
}

/// A browser that reads Swahili: the language switch sets the cookie (and, logged in, the
/// account's language).
async fn in_swahili(app: &TestApp, b: &Client) {
    let r = b
        .get(format!("{}/lang/sw?back=/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

async fn get_text(b: &Client, url: &str) -> (StatusCode, String, String) {
    let r = b.get(url).send().await.unwrap();
    let status = r.status();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, kind, r.text().await.unwrap())
}

fn assert_swahili(what: &str, status: StatusCode, html: &str) {
    assert!(!status.is_server_error(), "{what}: {status}\n{html}");
    assert!(
        html.contains("lang=\"sw\""),
        "{what}: not in Swahili\n{html}"
    );
    let leaks = english_leaks(html);
    assert!(
        leaks.is_empty(),
        "{what}: English on a Swahili page:\n{}\n{html}",
        leaks.join("\n")
    );
}

/// A shop with a seller (its product, a photo-less listing, a review and a lead), a buyer and
/// the admin, every one of them reading Swahili.
struct Shop {
    seller: Client,
    buyer: Client,
    admin: Client,
    anon: Client,
    product: u64,
    slug: String,
}

async fn shop(app: &TestApp) -> Shop {
    let seller = app.register("muuzaji@soko.test").await;
    let r = app.onboard(&seller, "Duka la Amani", "0712345678").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let product = app.add_product(&seller, "Kikapu cha Amani", "1200").await;
    let buyer = app.register("mnunuzi@soko.test").await;
    let r = app
        .post(
            &buyer,
            &format!("/p/{product}/reviews"),
            &[("rating", "5"), ("body", "Kizuri sana")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = buyer
        .get(format!("{}/p/{product}/whatsapp", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let slug = sqlx::query_scalar("SELECT slug FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let anon = browser();
    for b in [&seller, &buyer, &admin, &anon] {
        in_swahili(app, b).await;
    }
    Shop {
        seller,
        buyer,
        admin,
        anon,
        product,
        slug,
    }
}

/// The GET pages of the sweep's list that answer HTML to a person, with their parameters.
fn html_pages(s: &Shop) -> Vec<String> {
    const NOT_HTML: &[&str] = &[
        "/healthz",
        "/readyz",
        "/search/suggest",
        "/p/{id}/whatsapp",
        "/static/{file}",
        "/robots.txt",
        "/lang/{code}",
        "/sitemap.xml",
        "/img/{sha}/{variant}",
        "/sell/analytics.csv",
    ];
    crate::fuzz::PAGES
        .iter()
        .filter(|(path, methods)| methods.contains(&"GET") && !NOT_HTML.contains(path))
        .map(|(path, _)| {
            path.replace("{id}", &s.product.to_string())
                .replace("{slug}", &s.slug)
                .replace("{token}", &"ab".repeat(32))
        })
        .collect()
}

#[tokio::test]
async fn every_page_reads_in_swahili() {
    let app = spawn_app().await;
    let s = shop(&app).await;
    let mut pages = html_pages(&s);
    pages.extend([
        "/search?q=kikapu".to_owned(),
        "/search?q=hakunakitukamahiki".to_owned(),
        "/sell/analytics?days=7".to_owned(),
        "/login?registered=1".to_owned(),
        "/login?reset=1".to_owned(),
    ]);
    assert!(pages.len() >= 15, "{pages:?}");
    for (who, b) in [
        ("anonymous", &s.anon),
        ("buyer", &s.buyer),
        ("seller", &s.seller),
        ("admin", &s.admin),
    ] {
        for path in &pages {
            let (status, kind, body) = get_text(b, &format!("{}{path}", app.url)).await;
            if status.is_redirection() || status == StatusCode::NO_CONTENT {
                continue; // e.g. /sell for the admin, who has no shop
            }
            assert!(kind.starts_with("text/html"), "{who} {path}: {kind}");
            if path.starts_with("/fragment/") {
                let leaks = english_leaks(&body);
                assert!(leaks.is_empty(), "{who} {path}: {leaks:?}\n{body}");
                continue;
            }
            assert_swahili(&format!("{who} {path}"), status, &body);
        }
    }
    // The seller's pages say what they hold in Swahili, with numbers and dates in its form.
    let (_, _, dash) = get_text(&s.seller, &format!("{}/sell", app.url)).await;
    assert!(
        dash.contains("Dashibodi ya muuzaji") && dash.contains("KSh 1,200"),
        "{dash}"
    );
    assert!(dash.contains("Hali: imeidhinishwa") && dash.contains("Ongeza bidhaa"));
    let (_, _, product) = get_text(&s.anon, &format!("{}/p/{}", app.url, s.product)).await;
    assert!(product.contains("Wasiliana na muuzaji kwa WhatsApp") && product.contains("Zipo 3"));
    let (_, _, admin) = get_text(&s.admin, &format!("{}/admin", app.url)).await;
    assert!(
        admin.contains("Wauzaji wanaosubiri kuidhinishwa"),
        "{admin}"
    );
    // The check itself sees English: the same pages in English are full of it.
    let en = browser();
    for path in ["/login", "/register", "/search/photo"] {
        let (_, _, html) = get_text(&en, &format!("{}{path}", app.url)).await;
        assert!(english_leaks(&html).len() >= 3, "{path}: {html}");
    }
}

#[tokio::test]
async fn form_errors_and_error_pages_read_in_swahili() {
    let app = spawn_app().await;
    let s = shop(&app).await;
    // A product form with every field wrong: each message names its field, in Swahili.
    let r = app
        .post(
            &s.seller,
            "/sell/products/new",
            &[
                ("name", ""),
                ("price", "bei nafuu"),
                ("stock", "-1"),
                ("category", "hakuna"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert_swahili("product form errors", StatusCode::OK, &html);
    assert!(html.contains("Jina: inahitaji herufi 2 au zaidi"), "{html}");
    assert!(
        html.contains("Bei (KSh): lazima iwe namba kama 4500 au 4,500.50"),
        "{html}"
    );
    assert!(html.contains("Kundi: si mojawapo ya makundi"), "{html}");
    // Registration's rules, and a wrong password at login.
    let anon = browser();
    in_swahili(&app, &anon).await;
    let r = app
        .post(
            &anon,
            "/register",
            &[("name", ""), ("login", "si barua"), ("password", "fupi")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert_swahili("register errors", StatusCode::OK, &html);
    assert!(
        html.contains("Nenosiri (herufi 8 au zaidi): inahitaji herufi 8 au zaidi"),
        "{html}"
    );
    let r = app
        .post(
            &anon,
            "/login",
            &[
                ("login", "muuzaji@soko.test"),
                ("password", "si sahihi kabisa"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert_swahili("wrong login", StatusCode::OK, &html);
    assert!(html.contains("Barua pepe, simu au nenosiri si sahihi."));
    // The error pages.
    let (status, _, html) = get_text(&anon, &format!("{}/p/987654321", app.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_swahili("404", StatusCode::OK, &html);
    assert!(
        html.contains("haikupatikana") && html.contains("Rudi sokoni"),
        "{html}"
    );
    let r = anon
        .post(format!("{}/p/{}/favourite", app.url, s.product))
        .form(&[("csrf", "si sahihi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = r.text().await.unwrap();
    assert_swahili("csrf", StatusCode::OK, &html);
    assert!(html.contains("fomu imepitwa na wakati"), "{html}");
    // The same pages in English stay English.
    let en = browser();
    let (_, _, html) = get_text(&en, &format!("{}/p/987654321", app.url)).await;
    assert!(
        html.contains("not found") && html.contains("Back to the shop"),
        "{html}"
    );
}

#[tokio::test]
async fn a_swahili_page_is_never_served_to_an_english_reader() {
    let app = spawn_app().await;
    let s = shop(&app).await;
    let en = browser();
    for path in [
        "/".to_owned(),
        format!("/p/{}", s.product),
        format!("/s/{}", s.slug),
    ] {
        // Swahili first (rendered and cached), then English, then both again from the cache.
        for _ in 0..2 {
            let (_, _, sw) = get_text(&s.anon, &format!("{}{path}", app.url)).await;
            assert_swahili(&path, StatusCode::OK, &sw);
            let r = en.get(format!("{}{path}", app.url)).send().await.unwrap();
            let vary = r
                .headers()
                .get_all("vary")
                .iter()
                .map(|v| v.to_str().unwrap().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(",");
            assert!(vary.contains("cookie"), "{path}: Vary {vary}");
            let html = r.text().await.unwrap();
            assert!(html.contains("<html lang=\"en\">"), "{path}: {html}");
            for (_, en_text, sw_text) in STRINGS {
                if sw_text.split_whitespace().count() >= 2 && en_text != sw_text {
                    assert!(
                        !html.contains(sw_text),
                        "{path}: Swahili {sw_text:?} on the English page"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_api_answers_in_swahili_only_when_asked() {
    let app = spawn_app().await;
    let http = Client::new();
    let url = format!("{}/api/v1/products/search?q=", app.url);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.headers()["content-language"], "en");
    let body: serde_json::Value = r.json().await.unwrap();
    let english = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(english.contains("is required"), "{body}");
    let r = http
        .get(&url)
        .header("accept-language", "sw-KE, en;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.headers()["content-language"], "sw");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert_eq!(body["error"]["field"], "q", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("inahitajika"), "{body}");
    assert_eq!(
        Lang::from_accept_language("sw-KE, en;q=0.5"),
        Some(Lang::Sw)
    );
}
