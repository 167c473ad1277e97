//! A message file (`.eml`, as saved by a mail client or an MTA) split into
//! what an MTA hands a milter: header fields one by one, then the body, with
//! CRLF line ends.

/// One header field: its name and its value as the MTA sends it with
/// `SMFIP_HDR_LEADSPC` (everything after the colon, folding kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: Vec<u8>,
}

/// A message as milter stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eml {
    pub fields: Vec<Field>,
    /// The body with CRLF line ends.
    pub body: Vec<u8>,
}

/// Splits `raw` at the first empty line; LF or CRLF line ends. A leading
/// mbox `From ` line is skipped. Lines in the header block that are neither
/// fields nor continuations are skipped, as an MTA would not pass them on.
pub fn parse(raw: &[u8]) -> Eml {
    let mut lines = raw.split_inclusive(|&b| b == b'\n').peekable();
    if lines.peek().is_some_and(|l| l.starts_with(b"From ")) {
        lines.next();
    }
    let mut fields: Vec<Field> = Vec::new();
    let mut body = Vec::new();
    let mut in_body = false;
    for line in lines {
        if in_body {
            body.extend_from_slice(strip_eol(line));
            if line.ends_with(b"\n") {
                body.extend_from_slice(b"\r\n");
            }
            continue;
        }
        let text = strip_eol(line);
        if text.is_empty() {
            in_body = true;
        } else if text[0] == b' ' || text[0] == b'\t' {
            if let Some(f) = fields.last_mut() {
                f.value.extend_from_slice(b"\r\n");
                f.value.extend_from_slice(text);
            }
        } else if let Some(colon) = text.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&text[..colon])
                .trim_end()
                .to_string();
            if !name.is_empty() && !name.contains(' ') {
                fields.push(Field {
                    name,
                    value: text[colon + 1..].to_vec(),
                });
            }
        }
    }
    Eml { fields, body }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let l = line.strip_suffix(b"\n").unwrap_or(line);
    l.strip_suffix(b"\r").unwrap_or(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_folding_and_body_line_ends() {
        let m = parse(b"From: a@example.com\nSubject: one\n two\nX: y\r\n\nbody\nline\n");
        assert_eq!(m.fields.len(), 3);
        assert_eq!(m.fields[0].value, b" a@example.com");
        assert_eq!(m.fields[1].value, b" one\r\n two");
        assert_eq!(m.body, b"body\r\nline\r\n");
    }

    #[test]
    fn mbox_line_and_no_body() {
        let m = parse(b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\r\nFrom: x@y\r\n");
        assert_eq!(m.fields.len(), 1);
        assert!(m.body.is_empty());
    }
}
