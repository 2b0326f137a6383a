//! HTML mail made safe to show (sans-IO): rebuilt from an allow-list of tags and
//! attributes, never passed through. No script, style, frame, form or event handler
//! survives; links keep only `http(s):` and `mailto:`; remote images keep their
//! address in `data-src` (loaded only when the agent asks); `cid:` and `data:image/`
//! pictures stay. The page also serves it in a sandboxed frame under a strict
//! Content-Security-Policy, so a sanitiser slip still runs nothing.

/// Tags kept (their attributes filtered); any other tag is dropped, its text kept.
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "center",
    "code",
    "dd",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
];

/// Tags dropped with everything inside them.
const DROP_WITH_CONTENT: &[&str] = &[
    "script",
    "style",
    "template",
    "svg",
    "math",
    "title",
    "head",
    "iframe",
    "object",
    "noscript",
    "textarea",
    "select",
    "xmp",
    "noembed",
    "noframes",
    "plaintext",
];

const ATTRIBUTES: &[&str] = &[
    "alt", "title", "colspan", "rowspan", "align", "valign", "width", "height", "dir",
];

/// Elements that never have content.
const VOID: &[&str] = &["br", "hr", "img"];

/// The tag's name, lower-cased, and its attributes (name lower-cased, value as
/// written, entities left in).
struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

/// Reads the tag starting at `s[0] == '<'`: the tag and the bytes it took, or `None`
/// when this `<` starts no tag (it is text).
fn tag(s: &str) -> Option<(Tag, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric()) {
        i += 1;
    }
    if i == start {
        return None;
    }
    let name = s[start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return Some((
                Tag {
                    name,
                    closing,
                    attrs,
                },
                b.len(),
            ));
        }
        if b[i] == b'>' {
            return Some((
                Tag {
                    name,
                    closing,
                    attrs,
                },
                i + 1,
            ));
        }
        let a0 = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !b"=>/".contains(&b[i]) {
            i += 1;
        }
        let an = s[a0..i].to_ascii_lowercase();
        if i == a0 {
            i += 1; // a stray character: skip it
            continue;
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let v0 = i + 1;
                    let end = s[v0..].find(q as char).map(|e| v0 + e).unwrap_or(b.len());
                    value = s[v0..end].to_string();
                    i = (end + 1).min(b.len());
                }
                _ => {
                    let v0 = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = s[v0..i].to_string();
                }
            }
        }
        attrs.push((an, value));
    }
}

/// `&` kept where it starts an entity (`&amp;`, `&#39;`), escaped elsewhere; `<`,
/// `>` and `"` always escaped.
fn escape(out: &mut String, text: &str) {
    let b = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '&' => {
                let rest = &b[i + 1..];
                let n = rest
                    .iter()
                    .take(32)
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
                    .count();
                if n > 0 && rest.get(n) == Some(&b';') {
                    out.push('&');
                } else {
                    out.push_str("&amp;");
                }
            }
            c => out.push(c),
        }
    }
}

/// Whether a link may be followed: `http(s):` or `mailto:`, written plainly (an
/// entity or a control character in the scheme is refused).
fn safe_link(v: &str) -> bool {
    let l = v.trim().to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://") || l.starts_with("mailto:"))
        && !l.chars().any(|c| c.is_control())
}

/// `html` rebuilt from the allow-list (see the module).
pub fn sanitise(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    let mut skip_until: Option<String> = None;
    while i < html.len() {
        let rest = &html[i..];
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                escape(&mut out, rest);
            }
            break;
        };
        if skip_until.is_none() {
            escape(&mut out, &rest[..lt]);
        }
        i += lt;
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map(|e| e + 3).unwrap_or(rest.len());
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i += rest.find('>').map(|e| e + 1).unwrap_or(rest.len());
            continue;
        }
        let Some((t, used)) = tag(rest) else {
            if skip_until.is_none() {
                out.push_str("&lt;");
            }
            i += 1;
            continue;
        };
        i += used;
        if let Some(s) = &skip_until {
            if t.closing && &t.name == s {
                skip_until = None;
            }
            continue;
        }
        if DROP_WITH_CONTENT.contains(&t.name.as_str()) {
            if !t.closing {
                skip_until = Some(t.name);
            }
            continue;
        }
        if !TAGS.contains(&t.name.as_str()) {
            continue;
        }
        if t.closing {
            if !VOID.contains(&t.name.as_str()) {
                out.push_str("</");
                out.push_str(&t.name);
                out.push('>');
            }
            continue;
        }
        out.push('<');
        out.push_str(&t.name);
        for (k, v) in &t.attrs {
            let keep = match (t.name.as_str(), k.as_str()) {
                ("a", "href") if safe_link(v) => Some("href"),
                ("img", "src") => {
                    let l = v.trim().to_ascii_lowercase();
                    if l.starts_with("cid:") || l.starts_with("data:image/") {
                        Some("src")
                    } else if safe_link(v) {
                        Some("data-src")
                    } else {
                        None
                    }
                }
                (_, a) if ATTRIBUTES.contains(&a) => Some(a),
                _ => None,
            };
            if let Some(k) = keep {
                out.push(' ');
                out.push_str(k);
                out.push_str("=\"");
                escape(&mut out, v);
                out.push('"');
            }
        }
        if t.name == "a" {
            out.push_str(" target=\"_blank\" rel=\"noopener noreferrer nofollow\"");
        }
        out.push('>');
    }
    out
}

/// The text of an HTML message, for the thread and the search: tags removed, blocks
/// and `<br>` as line breaks, the common entities decoded, script and style dropped.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    let mut skip_until: Option<String> = None;
    while i < html.len() {
        let rest = &html[i..];
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                out.push_str(rest);
            }
            break;
        };
        if skip_until.is_none() {
            out.push_str(&rest[..lt]);
        }
        i += lt;
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map(|e| e + 3).unwrap_or(rest.len());
            continue;
        }
        let Some((t, used)) = tag(rest) else {
            if skip_until.is_none() {
                out.push('<');
            }
            i += 1;
            continue;
        };
        i += used;
        if let Some(s) = &skip_until {
            if t.closing && &t.name == s {
                skip_until = None;
            }
            continue;
        }
        if DROP_WITH_CONTENT.contains(&t.name.as_str()) && !t.closing {
            skip_until = Some(t.name);
            continue;
        }
        if ["br", "p", "div", "tr", "li", "h1", "h2", "h3", "blockquote"].contains(&t.name.as_str())
        {
            out.push('\n');
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut lines: Vec<&str> = decoded.lines().map(str::trim_end).collect();
    lines.dedup_by(|a, b| a.is_empty() && b.is_empty());
    lines.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_html_keeps_its_text_and_loses_everything_that_runs() {
        let hostile = r#"<html><head><title>t</title><style>body{background:url(https://x/a)}</style>
<script>alert(1)</script></head><body onload="alert(2)">
<p onclick='alert(3)' style="x">Hello <b>Ada</b> &amp; co</p>
<img src=x onerror=alert(4)><img src="https://tracker.example/p.gif" width=1>
<img src="cid:logo@x"><a href="javascript:alert(5)">bad</a>
<a href=" JaVaScRiPt:alert(6)">bad2</a><a href="https://ok.example/?a=1&b=2">ok</a>
<iframe src="https://evil"></iframe><form action="https://evil"><input name=p><button>go</button></form>
<svg><script>alert(7)</script></svg><math><mi xlink:href="javascript:alert(8)">m</mi></math>
<scr<script>ipt>alert(9)</script><a href="jav&#x61;script:alert(10)">e</a>
<div/onmouseover="alert(11)">x</div><object data="x"></object><embed src="x">
<base href="https://evil/"><meta http-equiv="refresh" content="0;url=https://evil">"#;
        let s = sanitise(hostile);
        for bad in [
            "<script",
            "onload",
            "onclick",
            "onerror",
            "onmouseover",
            "javascript",
            "<iframe",
            "<form",
            "<input",
            "<button",
            "<svg",
            "<math",
            "<style",
            "<object",
            "<embed",
            "<base",
            "<meta",
            "style=",
            "alert(1)",
            "alert(7)",
            "https://evil",
        ] {
            assert!(!s.to_lowercase().contains(bad), "{bad} survived in {s}");
        }
        assert!(s.contains("<p>Hello <b>Ada</b> &amp; co</p>"), "{s}");
        assert!(
            s.contains(r#"<img data-src="https://tracker.example/p.gif" width="1">"#),
            "{s}"
        );
        assert!(s.contains(r#"<img src="cid:logo@x">"#), "{s}");
        assert!(
            s.contains(r#"href="https://ok.example/?a=1&amp;b=2""#),
            "{s}"
        );
        assert!(s.contains("rel=\"noopener noreferrer nofollow\""));
        // What is left is text, escaped: "ipt>" from the split tag.
        assert!(s.contains("ipt&gt;"), "{s}");
    }

    #[test]
    fn a_tag_left_open_or_broken_cannot_swallow_or_inject() {
        assert_eq!(sanitise("a < b and c > d"), "a &lt; b and c &gt; d");
        assert_eq!(sanitise("<b title=\"x"), "<b title=\"x\">");
        assert_eq!(sanitise("<script>never closed"), "");
        assert_eq!(
            sanitise("<p title='\"><script>'>x"),
            "<p title=\"&quot;&gt;&lt;script&gt;\">x"
        );
        assert_eq!(sanitise("<!-- <script> -->ok"), "ok");
    }

    #[test]
    fn html_reads_as_text_with_its_lines() {
        let t = to_text("<style>p{}</style><p>Hello&nbsp;Ada,</p><p>your order<br>is late &amp; sorry</p><script>x()</script>");
        assert_eq!(t, "Hello Ada,\n\nyour order\nis late & sorry");
    }
}
