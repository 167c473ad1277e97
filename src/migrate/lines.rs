//! The line formats of the old stack's files.

/// One setting line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub no: usize,
    pub key: String,
    pub value: String,
    /// `path:no: the line`, for comments and notes.
    pub origin: String,
}

/// `Keyword value` lines (opendkim.conf(5), opendmarc.conf(5)): `#` starts
/// a comment line; a keyword alone is an error line (returned in `Err`).
pub fn keyword_lines(path: &str, text: &str) -> (Vec<Line>, Vec<Line>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let origin = format!("{path}:{}: {t}", i + 1);
        let (k, v) = t
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((t, ""));
        let line = Line {
            no: i + 1,
            key: k.to_string(),
            value: v.to_string(),
            origin,
        };
        if v.is_empty() {
            bad.push(line);
        } else {
            ok.push(line);
        }
    }
    (ok, bad)
}

/// `key = value` lines (policyd-spf.conf(5)); main.cf's continuation lines
/// (starting with white space) join the line before when `continued`.
pub fn assignment_lines(path: &str, text: &str, continued: bool) -> (Vec<Line>, Vec<Line>) {
    let mut joined: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        if continued && raw.starts_with(char::is_whitespace) {
            if let Some(last) = joined.last_mut() {
                last.1.push(' ');
                last.1.push_str(raw.trim());
                continue;
            }
        }
        joined.push((i + 1, raw.trim().to_string()));
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (no, t) in joined {
        let origin = format!("{path}:{no}: {t}");
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !k.trim().contains(char::is_whitespace) => ok
                .push(Line {
                    no,
                    key: k.trim().to_string(),
                    value: v.trim().to_string(),
                    origin,
                }),
            _ => bad.push(Line {
                no,
                key: String::new(),
                value: t,
                origin,
            }),
        }
    }
    (ok, bad)
}

/// A boolean in the old stack's spelling (`yes`, `true`, `1`, `on`).
pub fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" | "y" | "t" => Some(true),
        "no" | "false" | "0" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// A milter socket in the old stack's form (`local:/path`, `unix:/path`,
/// `inet:PORT@HOST`, `inet6:PORT@HOST`) in Postfix's (`unix:/path`,
/// `inet:HOST:PORT`).
pub fn postfix_socket(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(p) = s.strip_prefix("local:").or_else(|| s.strip_prefix("unix:")) {
        return Some(format!("unix:{p}"));
    }
    if s.starts_with('/') {
        return Some(format!("unix:{s}"));
    }
    let (fam, rest) = s.split_once(':')?;
    if fam != "inet" && fam != "inet6" {
        return None;
    }
    let (port, host) = rest.split_once('@').unwrap_or((rest, "localhost"));
    port.parse::<u16>().ok()?;
    Some(format!("{fam}:{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let (ok, bad) = keyword_lines(
            "f",
            "# c\nSocket  local:/run/x.sock\nMode\n\nAuthservID  mx.example.com\n",
        );
        assert_eq!(ok.len(), 2);
        assert_eq!(
            (ok[0].no, ok[0].key.as_str(), ok[0].value.as_str()),
            (2, "Socket", "local:/run/x.sock")
        );
        assert_eq!(ok[1].origin, "f:5: AuthservID  mx.example.com");
        assert_eq!(bad[0].no, 3);
        let (ok, bad) = assignment_lines("m", "smtpd_milters = a,\n   b\nnot a setting\n", true);
        assert_eq!(ok[0].value, "a, b");
        assert_eq!(bad[0].no, 3);
        assert_eq!(
            postfix_socket("local:/run/opendkim/opendkim.sock").unwrap(),
            "unix:/run/opendkim/opendkim.sock"
        );
        assert_eq!(
            postfix_socket("inet:8891@localhost").unwrap(),
            "inet:localhost:8891"
        );
        assert_eq!(postfix_socket("inet:8893").unwrap(), "inet:localhost:8893");
        assert_eq!(postfix_socket("tcp:1"), None);
        assert_eq!(boolean("Yes"), Some(true));
        assert_eq!(boolean("maybe"), None);
    }
}
