//! The SVG Tiny Portable/Secure profile (draft-svg-tiny-ps-abrotman) that a
//! BIMI indicator must follow: SVG Tiny 1.2 with `baseProfile="tiny-ps"`, a
//! `<title>`, and nothing that runs, moves, or reaches outside the document.

use quick_xml::{
    events::{BytesStart, Event},
    name::ResolveResult,
    NsReader,
};

const SVG_NS: &[u8] = b"http://www.w3.org/2000/svg";
const XLINK_NS: &[u8] = b"http://www.w3.org/1999/xlink";

/// The elements SVG Tiny PS allows (the profile's schema): SVG Tiny 1.2
/// without scripting, animation, media, linking, conditional processing,
/// `image`, `foreignObject` and `style`.
const ALLOWED: &[&str] = &[
    "svg",
    "title",
    "desc",
    "metadata",
    "g",
    "defs",
    "use",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "textArea",
    "linearGradient",
    "radialGradient",
    "stop",
    "solidColor",
    "font",
    "font-face",
    "glyph",
    "hkern",
];

/// Attributes that SHOULD NOT appear and, when they do, must have this value.
const FIXED: &[(&str, &str)] = &[
    ("zoomAndPan", "disable"),
    ("externalResourcesRequired", "false"),
    ("focusable", "false"),
    ("snapshotTime", "none"),
    ("playbackOrder", "all"),
    ("timelineBegin", "onLoad"),
];

/// Why an SVG document is not SVG Tiny PS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not SVG Tiny PS: {0}")]
pub struct SvgError(pub String);

/// Checks `svg` against the profile; `max_bytes` bounds its size.
///
/// # Errors
///
/// The first rule the document breaks.
pub fn validate(svg: &[u8], max_bytes: usize) -> Result<(), SvgError> {
    let err = |s: String| Err(SvgError(s));
    if svg.len() > max_bytes {
        return err(format!("larger than {max_bytes} bytes"));
    }
    let text = std::str::from_utf8(svg).map_err(|_| SvgError("not UTF-8".into()))?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    // The open elements: (local name, in the SVG namespace).
    let mut open: Vec<(String, bool)> = Vec::new();
    let mut seen_root = false;
    let mut titles = 0usize;
    // The root's children so far (the title must come first).
    let mut root_children = 0usize;
    let mut in_title = false;
    let mut title_text = String::new();
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| SvgError(format!("XML: {e}")))?;
        let ns_is_svg = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SVG_NS);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if open.is_empty() {
                    if seen_root {
                        return err("more than one root element".into());
                    }
                    seen_root = true;
                    if local != "svg" || !ns_is_svg {
                        return err("the root element is not svg in the SVG namespace".into());
                    }
                    root_attributes(&reader, e)?;
                } else {
                    let in_metadata = open.iter().any(|(n, svg)| *svg && n == "metadata");
                    if !ns_is_svg {
                        // Other vocabularies (RDF, Dublin Core) only as metadata.
                        if !in_metadata {
                            return err(format!("<{local}> outside the SVG namespace"));
                        }
                    } else if !ALLOWED.contains(&local.as_str()) || local == "svg" {
                        return err(format!("<{local}> is not allowed"));
                    }
                    if open.len() == 1 {
                        root_children += 1;
                        if ns_is_svg && local == "title" {
                            titles += 1;
                            if root_children != 1 {
                                return err("<title> is not the first child of <svg>".into());
                            }
                            in_title = !empty;
                        }
                    }
                }
                attributes(&reader, e)?;
                if !empty {
                    open.push((local, ns_is_svg));
                }
            }
            Event::End(_) => {
                if open.len() == 2 && in_title {
                    in_title = false;
                }
                open.pop();
            }
            Event::Text(t) => {
                if in_title {
                    title_text.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Event::DocType(d) => {
                // An internal subset can declare entities (expansion bombs,
                // external entities): only a plain DOCTYPE line is taken.
                if d.contains(&b'[') {
                    return err("a DOCTYPE with an internal subset".into());
                }
            }
            Event::PI(_) => return err("a processing instruction (stylesheet)".into()),
            Event::Eof if !open.is_empty() => {
                return err("the document ends inside an element".into())
            }
            Event::Eof => break,
            Event::GeneralRef(r) => {
                // Only the predefined and character references; nothing
                // declared can exist without an internal subset anyway.
                let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                let predefined = matches!(name.as_str(), "lt" | "gt" | "amp" | "apos" | "quot")
                    || name.starts_with('#');
                if !predefined {
                    return err(format!("an undeclared entity &{name};"));
                }
                if in_title {
                    title_text.push('x');
                }
            }
            Event::CData(_) | Event::Comment(_) | Event::Decl(_) => {}
        }
    }
    if !seen_root {
        return err("no root element".into());
    }
    match titles {
        0 => return err("no <title> child of <svg>".into()),
        1 => {}
        _ => return err("more than one <title>".into()),
    }
    if title_text.trim().is_empty() {
        return err("the <title> is empty".into());
    }
    Ok(())
}

fn root_attributes(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<(), SvgError> {
    let mut version = None;
    let mut profile = None;
    for a in e.attributes() {
        let a = a.map_err(|e| SvgError(format!("XML: {e}")))?;
        let (ns, local) = reader.resolve_attribute(a.key);
        if !matches!(ns, ResolveResult::Unbound) {
            continue;
        }
        let value = String::from_utf8_lossy(&a.value).into_owned();
        match local.as_ref() {
            b"version" => version = Some(value),
            b"baseProfile" => profile = Some(value),
            b"x" | b"y" => return Err(SvgError("the svg element has an x or y attribute".into())),
            _ => {}
        }
    }
    if version.as_deref() != Some("1.2") {
        return Err(SvgError("the svg element is not version=\"1.2\"".into()));
    }
    if profile.as_deref() != Some("tiny-ps") {
        return Err(SvgError(
            "the svg element is not baseProfile=\"tiny-ps\"".into(),
        ));
    }
    Ok(())
}

/// Attributes of any element: no event handlers, no references outside the
/// document (`xlink:href`, `href` and `url(...)` only to `#fragment`s).
fn attributes(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<(), SvgError> {
    for a in e.attributes() {
        let a = a.map_err(|e| SvgError(format!("XML: {e}")))?;
        let (ns, local) = reader.resolve_attribute(a.key);
        let local = String::from_utf8_lossy(local.as_ref()).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&a.value).into_owned();
        let is_xlink = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == XLINK_NS);
        let unbound = matches!(ns, ResolveResult::Unbound);
        if unbound && local.starts_with("on") {
            return Err(SvgError(format!("event attribute {local}")));
        }
        if unbound && local == "style" {
            return Err(SvgError(
                "a style attribute (presentation attributes only)".into(),
            ));
        }
        if unbound {
            if let Some((name, fixed)) = FIXED.iter().find(|(n, _)| n.eq_ignore_ascii_case(&local))
            {
                if value.trim() != *fixed {
                    return Err(SvgError(format!("{name} must be \"{fixed}\"")));
                }
            }
        }
        if (is_xlink || unbound) && local == "href" && !value.trim().starts_with('#') {
            return Err(SvgError("a reference outside the document".into()));
        }
        if let Some(i) = value.to_ascii_lowercase().find("url(") {
            let target = value[i + 4..].trim_start_matches([' ', '\'', '"']);
            if !target.starts_with('#') {
                return Err(SvgError("a url() outside the document".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100">
  <title>Bank</title>
  <defs><linearGradient id="g"><stop offset="0" stop-color="#000"/></linearGradient></defs>
  <rect width="100" height="100" fill="url(#g)"/>
  <use xlink:href="#g"/>
</svg>"##;

    fn with(change: &str, to: &str) -> String {
        assert!(GOOD.contains(change), "{change}");
        GOOD.replacen(change, to, 1)
    }

    #[test]
    fn a_profile_document_passes() {
        validate(GOOD.as_bytes(), 32 * 1024).unwrap();
    }

    #[test]
    fn the_title_comes_first_and_says_something() {
        let late = with("<title>Bank</title>", "<desc>d</desc><title>Bank</title>");
        assert!(validate(late.as_bytes(), 1 << 20).is_err());
        let empty = with("<title>Bank</title>", "<title> </title>");
        assert!(validate(empty.as_bytes(), 1 << 20).is_err());
        // Metadata may use other vocabularies; fixed attributes with their value pass.
        let meta = with(
            "<title>Bank</title>",
            r#"<title>Bank &amp; Co</title><metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata><g zoomAndPan="disable"/>"#,
        );
        validate(meta.as_bytes(), 1 << 20).unwrap();
    }

    #[test]
    fn the_root_needs_version_profile_and_title() {
        for (from, to) in [
            (r#"version="1.2""#, r#"version="1.1""#),
            (r#"baseProfile="tiny-ps""#, r#"baseProfile="tiny""#),
            (r#" baseProfile="tiny-ps""#, ""),
            ("<title>Bank</title>", ""),
            (r#"viewBox="0 0 100 100""#, r#"x="0" viewBox="0 0 100 100""#),
            (r#"viewBox="0 0 100 100""#, r#"y="0" viewBox="0 0 100 100""#),
            (r#"xmlns="http://www.w3.org/2000/svg""#, r#"xmlns="urn:x""#),
        ] {
            assert!(
                validate(with(from, to).as_bytes(), 1 << 20).is_err(),
                "{to}"
            );
        }
    }

    #[test]
    fn scripts_animation_and_outside_references_are_refused() {
        for inner in [
            "<script>alert(1)</script>",
            r#"<animate attributeName="x" from="0" to="1"/>"#,
            r#"<set attributeName="x" to="1"/>"#,
            r#"<image xlink:href="https://tracker.test/p.png"/>"#,
            r#"<use xlink:href="https://e.test/x.svg#a"/>"#,
            r#"<rect fill="url(https://e.test/p)"/>"#,
            r#"<rect onclick="x()"/>"#,
            r#"<foreignObject/>"#,
            r#"<a xlink:href="https://phish.test/"><rect/></a>"#,
            "<style>rect{fill:red}</style>",
            r#"<rect style="fill:red"/>"#,
            "<filter/>",
            "<tspan>x</tspan>",
            r#"<x:evil xmlns:x="urn:x"/>"#,
            "<title>Second</title>",
            r#"<g zoomAndPan="magnify"/>"#,
            "<rect>&ext;</rect>",
        ] {
            let doc = with(
                "<title>Bank</title>",
                &format!("<title>Bank</title>{inner}"),
            );
            assert!(validate(doc.as_bytes(), 1 << 20).is_err(), "{inner}");
        }
    }

    #[test]
    fn entities_stylesheets_size_and_bad_xml_are_refused() {
        let bomb = GOOD.replacen("<svg", "<!DOCTYPE svg [<!ENTITY a \"aaaa\">]>\n<svg", 1);
        assert!(validate(bomb.as_bytes(), 1 << 20).is_err());
        let pi = GOOD.replacen(
            "<svg",
            "<?xml-stylesheet href=\"https://e.test/s.css\"?>\n<svg",
            1,
        );
        assert!(validate(pi.as_bytes(), 1 << 20).is_err());
        assert!(validate(GOOD.as_bytes(), GOOD.len() - 1).is_err());
        assert!(validate(&GOOD.as_bytes()[..GOOD.len() - 7], 1 << 20).is_err());
        assert!(validate(b"\xff\xfe", 100).is_err());
        assert!(validate(b"", 100).is_err());
        // A plain DOCTYPE line is allowed.
        let plain = GOOD.replacen(
            "<svg",
            "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.2 Tiny//EN\" \"http://www.w3.org/Graphics/SVG/1.2/DTD/svg12.dtd\">\n<svg",
            1,
        );
        validate(plain.as_bytes(), 1 << 20).unwrap();
    }
}
