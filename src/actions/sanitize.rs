//! Making sender-controlled text safe inside header fields, and recognising
//! incoming headers that claim to come from us.

/// Longest value copied from the sender into a header.
pub const MAX_VALUE_LEN: usize = 256;

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

/// Renders an RFC 8601 `pvalue`: bare when it is a plain token, a
/// `local-part@domain` or a domain; otherwise a quoted-string. CR, LF and other
/// control characters are dropped and non-ASCII becomes `?`, so the result can
/// never break the header syntax.
pub fn pvalue(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_ascii() { c } else { '?' })
        .take(MAX_VALUE_LEN)
        .collect();
    if clean.is_empty() {
        return "\"\"".into();
    }
    let plain = match clean.rsplit_once('@') {
        Some((local, domain)) => {
            (local.is_empty()
                || (local
                    .split('.')
                    .all(|a| !a.is_empty() && a.chars().all(is_atext))))
                && !domain.is_empty()
                && domain.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        }
        None => clean.chars().all(is_token_char),
    };
    if plain {
        clean
    } else {
        quoted(&clean)
    }
}

/// An RFC 7208 §9.1 Received-SPF value: a `dot-atom` (RFC 5322 §3.2.3)
/// when it is one, otherwise a quoted-string. Control characters are
/// dropped and non-ASCII becomes `?`, as in [`pvalue`].
pub fn dot_atom_or_quoted(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_ascii() { c } else { '?' })
        .take(MAX_VALUE_LEN)
        .collect();
    let dot_atom = !clean.is_empty()
        && clean
            .split('.')
            .all(|a| !a.is_empty() && a.chars().all(is_atext));
    if dot_atom {
        clean
    } else {
        quoted(&clean)
    }
}

/// A quoted-string with `"` and `\` escaped and control characters removed.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().take(MAX_VALUE_LEN) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c if !c.is_ascii() => out.push('?'),
            // Legal in a quoted-string, but naive parsers split on it.
            ';' => out.push(','),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a header comment `( … )`: no parentheses, backslashes
/// or `;` (a `;` in a comment breaks naive Authentication-Results parsers,
/// OpenARC #33).
pub fn comment_text(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '(' | ')' | '\\' | ';'))
        .take(MAX_VALUE_LEN)
        .collect()
}

/// Skips folding white space and (nested) comments.
fn skip_cfws(s: &str) -> &str {
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('(') {
            let mut depth = 1;
            let mut end = r.len();
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match c {
                    '\\' => escaped = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &r[end.min(r.len())..];
        } else {
            return rest;
        }
    }
}

/// The authserv-id of an Authentication-Results value (RFC 8601 §2.2).
pub fn authserv_id(value: &str) -> Option<String> {
    let rest = skip_cfws(value);
    let rest = rest.strip_prefix('"').map_or(rest, |r| r);
    let id: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '(' | '"'))
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The `receiver=` of a Received-SPF value (RFC 7208 §9.1).
pub fn received_spf_receiver(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("receiver") {
        let start = from + pos;
        let before_ok = start == 0
            || !lower.as_bytes()[start - 1].is_ascii_alphanumeric()
                && lower.as_bytes()[start - 1] != b'-';
        let after = lower[start + 8..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start().trim_start_matches('"');
                let id: String = v
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '"' | '('))
                    .collect();
                if !id.is_empty() {
                    return Some(id);
                }
            }
        }
        from = start + 8;
    }
    None
}

/// Whether `id` is ours (case-insensitive, RFC 8601 §5).
pub fn is_ours(id: &str, ours: &str, aliases: &[String]) -> bool {
    let id = id.trim_end_matches('.');
    id.eq_ignore_ascii_case(ours.trim_end_matches('.'))
        || aliases
            .iter()
            .any(|a| id.eq_ignore_ascii_case(a.trim_end_matches('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvalue_plain_and_quoted() {
        assert_eq!(pvalue("alice@example.com"), "alice@example.com");
        assert_eq!(pvalue("example.com"), "example.com");
        assert_eq!(pvalue("a b"), "\"a b\"");
        assert_eq!(pvalue("x;dkim=pass"), "\"x,dkim=pass\"");
        assert_eq!(pvalue("2001:db8::1"), "\"2001:db8::1\"");
        assert_eq!(pvalue("192.0.2.1"), "192.0.2.1");
        assert_eq!(pvalue("\"evil\"@x.test"), "\"\\\"evil\\\"@x.test\"");
        assert_eq!(pvalue(""), "\"\"");
    }

    #[test]
    fn pvalue_never_contains_line_breaks() {
        for s in ["a\r\nX-Injected: 1", "\n", "é@ü.test", "a\0b", "(x)"] {
            let v = pvalue(s);
            assert!(
                !v.contains('\r') && !v.contains('\n') && !v.contains('\0'),
                "{v}"
            );
            assert!(v.is_ascii());
        }
    }

    #[test]
    fn received_spf_values() {
        assert_eq!(dot_atom_or_quoted("mail.example.com"), "mail.example.com");
        assert_eq!(dot_atom_or_quoted("-all"), "-all");
        assert_eq!(dot_atom_or_quoted("192.0.2.1"), "192.0.2.1");
        // `@` and `:` are not atext: quoted.
        assert_eq!(dot_atom_or_quoted("a@example.com"), "\"a@example.com\"");
        assert_eq!(dot_atom_or_quoted("2001:db8::1"), "\"2001:db8::1\"");
        assert_eq!(dot_atom_or_quoted("<>"), "\"<>\"");
        assert_eq!(dot_atom_or_quoted("a..b"), "\"a..b\"");
        assert_eq!(dot_atom_or_quoted(""), "\"\"");
        let hostile = dot_atom_or_quoted("x;\r\nX-Injected: 1 (y) \"z\" é");
        assert_eq!(hostile, "\"x,X-Injected: 1 (y) \\\"z\\\" ?\"");
    }

    #[test]
    fn comments_are_balanced() {
        assert_eq!(comment_text("a(b)c\\d;e\r\n"), "abcde");
    }

    #[test]
    fn authserv_id_parsing() {
        assert_eq!(
            authserv_id(" mx.example; dkim=pass").as_deref(),
            Some("mx.example")
        );
        assert_eq!(
            authserv_id(" (c (nested)) mx.example 1; none").as_deref(),
            Some("mx.example")
        );
        assert_eq!(
            authserv_id("\r\n\tMX.Example;spf=pass").as_deref(),
            Some("MX.Example")
        );
        assert_eq!(authserv_id(" ;").as_deref(), None);
    }

    #[test]
    fn receiver_parsing() {
        assert_eq!(
            received_spf_receiver(
                " pass (x) client-ip=1.2.3.4; receiver=mx.example; identity=mailfrom"
            )
            .as_deref(),
            Some("mx.example")
        );
        assert_eq!(received_spf_receiver(" pass (no receiver here)"), None);
    }

    #[test]
    fn ours_is_case_insensitive() {
        assert!(is_ours("MX.example.", "mx.example", &[]));
        assert!(is_ours(
            "old.example",
            "mx.example",
            &["old.example".into()]
        ));
        assert!(!is_ours("other.example", "mx.example", &[]));
    }
}
