//! The BIMI Assertion Record (`<selector>._bimi.<domain>` TXT) and the
//! BIMI-Selector header field: tag=value lists as DKIM writes them
//! (RFC 6376 §3.2), `v=BIMI1` first.

/// A parsed BIMI Assertion Record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    /// `l=`: the indicator's location; `None` when empty (a declination,
    /// or an evidence document carries the indicator).
    pub location: Option<String>,
    /// `a=`: the evidence document (VMC/CMC) location, if any.
    pub authority: Option<String>,
}

impl Assertion {
    /// A record with empty `l=` and `a=`: the domain declines to publish.
    pub fn is_declination(&self) -> bool {
        self.location.is_none() && self.authority.is_none()
    }
}

/// Why a record is not a valid BIMI Assertion Record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Does not start with `v=BIMI1`: not a BIMI record at all.
    #[error("not a BIMI record")]
    NotBimi,
    /// Starts with `v=BIMI1` but breaks the syntax.
    #[error("{0}")]
    Invalid(String),
}

/// Splits a tag list into (name, value) pairs, names as written. Values are
/// trimmed of surrounding white space; folding white space inside a value is
/// kept as it is.
fn tags(text: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let parts: Vec<&str> = text.split(';').collect();
    for (i, part) in parts.iter().enumerate() {
        let trimmed = part.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if trimmed.is_empty() {
            // Only a trailing `;` (or nothing) may be empty.
            if i + 1 == parts.len() {
                continue;
            }
            return Err("empty tag".into());
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(format!(
                "tag without '=': {}",
                super::fetch::printable(trimmed)
            ));
        };
        let name = name.trim_end_matches([' ', '\t', '\r', '\n']);
        let value = value.trim_start_matches([' ', '\t', '\r', '\n']);
        let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(format!("bad tag name {}", super::fetch::printable(name)));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("tag {name}= given twice"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Whether a TXT string is meant as a BIMI record (`v=BIMI1` first). Such
/// records count when deciding whether a name has one or several.
pub fn looks_like_bimi(txt: &str) -> bool {
    let t = txt.trim_start_matches([' ', '\t']);
    let Some(rest) = t.strip_prefix('v') else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let Some(rest) = rest.strip_prefix('=') else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    rest.starts_with("BIMI1")
        && rest[5..]
            .trim_start_matches([' ', '\t'])
            .chars()
            .next()
            .is_none_or(|c| c == ';')
}

/// Parses a BIMI Assertion Record.
///
/// # Errors
///
/// [`RecordError::NotBimi`] without `v=BIMI1` first; `Invalid` for a
/// record that breaks the syntax or has a location that is not `https:`.
pub fn parse(txt: &str) -> Result<Assertion, RecordError> {
    if !looks_like_bimi(txt) {
        return Err(RecordError::NotBimi);
    }
    let list = tags(txt).map_err(RecordError::Invalid)?;
    let mut location = None;
    let mut authority = None;
    let mut has_l = false;
    for (name, value) in list.into_iter().skip(1) {
        match name {
            "l" => {
                has_l = true;
                location = uri_value("l", value)?;
            }
            "a" => authority = uri_value("a", value)?,
            // Tags not defined here are ignored (extensibility).
            _ => {}
        }
    }
    // §5.3: l= is required (empty for a declination, or with a= only).
    if !has_l {
        return Err(RecordError::Invalid("l= is missing".into()));
    }
    Ok(Assertion {
        location,
        authority,
    })
}

/// An `l=` or `a=` value: empty, or one `https:` URI (commas are not allowed
/// in it: a list of locations is no longer part of BIMI).
fn uri_value(tag: &str, value: &str) -> Result<Option<String>, RecordError> {
    let v = value.trim_end_matches([' ', '\t', '\r', '\n']);
    if v.is_empty() {
        return Ok(None);
    }
    if v.contains(',') {
        return Err(RecordError::Invalid(format!(
            "{tag}= holds more than one URI"
        )));
    }
    if !v.is_ascii()
        || v.chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(RecordError::Invalid(format!(
            "{tag}= has white space, control or non-ASCII characters in its URI"
        )));
    }
    if !v
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(RecordError::Invalid(format!(
            "{tag}= is not an https: URI: {}",
            super::fetch::printable(v)
        )));
    }
    Ok(Some(v.to_string()))
}

/// The selector a BIMI-Selector field asks for, lower case; `None` when the
/// field is not a valid `v=BIMI1; s=<selector>` value.
pub fn selector_from_header(value: &str) -> Option<String> {
    if !looks_like_bimi(value) {
        return None;
    }
    let list = tags(value).ok()?;
    let s = list.iter().find(|(n, _)| *n == "s")?.1;
    let s = s
        .trim_end_matches([' ', '\t', '\r', '\n'])
        .to_ascii_lowercase();
    is_selector(&s).then_some(s)
}

/// A selector: dot-separated DNS labels (RFC 6376 §3.1 syntax).
pub fn is_selector(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_location_and_authority() {
        let a = parse("v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem")
            .unwrap();
        assert_eq!(a.location.as_deref(), Some("https://example.com/logo.svg"));
        assert_eq!(a.authority.as_deref(), Some("https://example.com/vmc.pem"));
        // White space around the separators, a trailing `;`, unknown tags.
        let b = parse("v = BIMI1 ;l= https://e.test/l.svg ; x=y;").unwrap();
        assert_eq!(b.location.as_deref(), Some("https://e.test/l.svg"));
        assert_eq!(b.authority, None);
    }

    #[test]
    fn a_declination() {
        assert!(parse("v=BIMI1; l=; a=;").unwrap().is_declination());
        assert!(parse("v=BIMI1; l=").unwrap().is_declination());
        assert!(!parse("v=BIMI1; l=https://e.test/x.svg")
            .unwrap()
            .is_declination());
    }

    #[test]
    fn not_bimi_and_invalid_records() {
        for not in [
            "v=spf1 -all",
            "l=https://e.test/x.svg; v=BIMI1",
            "v=BIMI2; l=https://e.test/x.svg",
            "v=bimi1; l=https://e.test/x.svg",
            "",
        ] {
            assert_eq!(parse(not), Err(RecordError::NotBimi), "{not}");
        }
        for bad in [
            "v=BIMI1; l=http://e.test/x.svg",
            "v=BIMI1; l=https://a.test/x.svg,https://b.test/y.svg",
            "v=BIMI1; a=ftp://e.test/x.pem",
            "v=BIMI1; l=https://e.test/x.svg; l=https://e.test/y.svg",
            "v=BIMI1; l",
            "v=BIMI1;; l=https://e.test/x.svg",
            "v=BIMI1; 1x=y",
            "v=BIMI1;",
            "v=BIMI1; a=https://e.test/v.pem",
            "v=BIMI1; l=https://e.test/é.svg",
            "v=BIMI1; l=https://e.test/a\x07.svg",
        ] {
            assert!(matches!(parse(bad), Err(RecordError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn selector_header() {
        assert_eq!(
            selector_from_header(" v=BIMI1; s=Brand2;").as_deref(),
            Some("brand2")
        );
        assert_eq!(
            selector_from_header("v=BIMI1; s=a.b").as_deref(),
            Some("a.b")
        );
        assert_eq!(selector_from_header("s=brand; v=BIMI1"), None);
        assert_eq!(selector_from_header("v=BIMI1; s=../etc"), None);
        assert_eq!(selector_from_header("v=BIMI1; s=a b"), None);
        assert_eq!(selector_from_header("v=BIMI1"), None);
    }
}
