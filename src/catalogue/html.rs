//! A small, forgiving HTML tokenizer for the parts of a page the importer reads: start tags and
//! their attributes (`<meta>`, `<a>`, `<link>`, `<title>`), the raw text of `<script>` and
//! `<title>`, and the visible text. It never fails: whatever the page is, it gives what it
//! could read. Hostile input is bounded by the fetcher's body cap; the scan is linear.

/// A start tag: its lowercase name and attributes (lowercase names, entity-decoded values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    /// For `<script>`, `<style>` and `<title>`: the raw text up to its end tag.
    pub text: Option<String>,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The tags of a page, in order, and its visible text (whitespace collapsed).
#[derive(Debug, Default)]
pub struct Doc {
    pub tags: Vec<Tag>,
    pub text: String,
}

const RAW: [&str; 4] = ["script", "style", "title", "textarea"];
/// Tags kept at most (a hostile page of a million tags is still only read so far).
const MAX_TAGS: usize = 50_000;

pub fn parse(html: &str) -> Doc {
    let b = html.as_bytes();
    let mut doc = Doc::default();
    let mut text = String::new();
    let mut i = 0;
    while i < b.len() {
        let Some(lt) = memchr(b'<', &b[i..]).map(|p| p + i) else {
            text.push_str(&html[i..]);
            break;
        };
        text.push_str(&html[i..lt]);
        i = lt;
        let rest = &html[i..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            i = comment.find("-->").map_or(b.len(), |p| i + 4 + p + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") || rest.starts_with("</") {
            // Doctype, processing instruction, end tag: skipped.
            i = memchr(b'>', &b[i..]).map_or(b.len(), |p| i + p + 1);
            text.push(' ');
            continue;
        }
        let name_len = rest[1..]
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b':')
            .count();
        if name_len == 0 {
            text.push('<');
            i += 1;
            continue;
        }
        let name = rest[1..1 + name_len].to_ascii_lowercase();
        let (attrs, end) = attributes(html, i + 1 + name_len);
        i = end;
        text.push(' ');
        let mut tag = Tag {
            name,
            attrs,
            text: None,
        };
        if RAW.contains(&tag.name.as_str()) {
            let close = format!("</{}", tag.name);
            let body_end = find_ci(&html[i..], &close).map_or(b.len(), |p| i + p);
            let raw = &html[i..body_end];
            if tag.name == "title" || tag.name == "textarea" {
                text.push_str(raw);
            }
            tag.text = Some(raw.to_owned());
            i = memchr(b'>', &b[body_end..]).map_or(b.len(), |p| body_end + p + 1);
        }
        if doc.tags.len() < MAX_TAGS {
            doc.tags.push(tag);
        }
    }
    doc.text = collapse(&decode_entities(&text));
    doc
}

fn memchr(c: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|x| *x == c)
}

/// `needle` (ASCII) in `hay`, ignoring ASCII case.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Attributes from `at` (just after the tag name) to the tag's `>`; where the tag ends.
fn attributes(html: &str, mut at: usize) -> (Vec<(String, String)>, usize) {
    let b = html.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while at < b.len() && (b[at].is_ascii_whitespace() || b[at] == b'/') {
            at += 1;
        }
        if at >= b.len() {
            return (attrs, b.len());
        }
        if b[at] == b'>' {
            return (attrs, at + 1);
        }
        let start = at;
        while at < b.len() && !b[at].is_ascii_whitespace() && !matches!(b[at], b'=' | b'>' | b'/') {
            at += 1;
        }
        if at == start {
            // A lone `=` or such: step over it.
            at += 1;
            continue;
        }
        let name = html[start..at].to_ascii_lowercase();
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = String::new();
        if at < b.len() && b[at] == b'=' {
            at += 1;
            while at < b.len() && b[at].is_ascii_whitespace() {
                at += 1;
            }
            if at < b.len() && (b[at] == b'"' || b[at] == b'\'') {
                let q = b[at];
                let vstart = at + 1;
                let vend = memchr(q, &b[vstart..]).map_or(b.len(), |p| vstart + p);
                value = decode_entities(&html[vstart..vend]);
                at = (vend + 1).min(b.len());
            } else {
                let vstart = at;
                while at < b.len() && !b[at].is_ascii_whitespace() && b[at] != b'>' {
                    at += 1;
                }
                value = decode_entities(&html[vstart..at]);
            }
        }
        if attrs.len() < 64 {
            attrs.push((name, value));
        }
    }
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;` and numeric references decoded; other
/// text left as it is.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest[1..]
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i + 1);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code).filter(|c| *c != '\0')
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Runs of whitespace as one space, trimmed.
pub fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text with any markup removed (a JSON-LD description may carry HTML).
pub fn strip_tags(s: &str) -> String {
    parse(s).text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_attributes_raw_text_and_visible_text() {
        let d = parse(
            "<!doctype html><html><head><title>Kikoy &amp; more</title>\
             <meta property=\"og:title\" content='Red &quot;kikoy&quot;'>\
             <META NAME=description CONTENT=plain>\
             <script type=\"application/ld+json\">{\"a\": \"</p>\"}</script>\
             <!-- <a href=\"/hidden\"> --></head><body><p>KES 1,200</p><a href=\"/p/2\">next</a></body></html>",
        );
        let og = d
            .tags
            .iter()
            .find(|t| t.attr("property") == Some("og:title"))
            .unwrap();
        assert_eq!(og.attr("content"), Some("Red \"kikoy\""));
        let meta = d
            .tags
            .iter()
            .find(|t| t.attr("name") == Some("description"))
            .unwrap();
        assert_eq!(meta.attr("content"), Some("plain"));
        let script = d.tags.iter().find(|t| t.name == "script").unwrap();
        assert_eq!(script.text.as_deref(), Some("{\"a\": \"</p>\"}"));
        let hrefs: Vec<_> = d.tags.iter().filter_map(|t| t.attr("href")).collect();
        assert_eq!(hrefs, ["/p/2"]);
        assert!(d.text.contains("Kikoy & more"), "{}", d.text);
        assert!(d.text.contains("KES 1,200"), "{}", d.text);
        assert!(!d.text.contains("</p>"), "{}", d.text);
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a &amp; b &#39;c&#x27; &bogus; &"),
            "a & b 'c' &bogus; &"
        );
        assert_eq!(decode_entities("&#0;"), "&#0;");
    }
}
