//! A strict parser for the value of an RFC 5322 `From:` header field.
//!
//! [`parse_address_list`] takes the bytes after the colon (unfolded or not)
//! and returns the addr-spec of every mailbox, groups flattened. It is a
//! recursive-descent parser over a byte cursor; each function is named after
//! the production of RFC 5322 §3.2–§3.4 (and §4, obsolete syntax) it reads.
//! DMARC uses the domain of each address, so the parser never guesses: any
//! input that is not in the grammar is an error.
//!
//! Accepted:
//! - `address-list` with `obs-addr-list` empty elements (`, , a@b.example,`),
//!   `group` (`Undisclosed:;`, `team: a@x.example, b@y.example;`) with
//!   `obs-group-list` / `obs-mbox-list` empty elements;
//! - `name-addr` with a `phrase` display-name (including `obs-phrase` with
//!   `.`), `angle-addr`, `obs-angle-addr` with an `obs-route`
//!   (`<@relay1,@relay2:user@domain>`; the route is discarded), bare
//!   `addr-spec`;
//! - `dot-atom`, `quoted-string` and `obs-local-part` local-parts;
//!   `dot-atom`, `obs-domain` (CFWS around the dots) and `domain-literal`
//!   domains;
//! - CFWS wherever the grammar allows it: nested comments (at most
//!   [`MAX_COMMENT_DEPTH`] deep) with quoted-pairs, FWS folded with CRLF or a
//!   bare LF followed by WSP (`obs-FWS` included), trailing CFWS;
//! - UTF-8 (RFC 6532 §3.2): any non-ASCII character is atext, qtext and
//!   ctext. Bytes that are not valid UTF-8 (legacy 8-bit display names,
//!   still common) are tolerated as text; they come out as U+FFFD, so a
//!   domain holding them is not a domain name to the caller.
//!
//! Rejected (deliberately stricter than the obsolete grammar):
//! - control characters anywhere (NUL, `obs-NO-WS-CTL`, `obs-qp`, DEL), a CR
//!   not followed by LF, a line break not followed by WSP (so a trailing CRLF
//!   is an error: pass the value without its terminating CRLF);
//! - in a domain-literal, anything but ASCII letters, digits, `.`, `:` and
//!   `-` (that is: IPv4, IPv6 and RFC 5321 tagged literals such as
//!   `[IPv6:::1]`), quoted-pairs, and whitespace between its characters
//!   (leading and trailing FWS inside the brackets is allowed and dropped);
//! - nested groups, a group outside the top level, an empty `<>`;
//! - values over [`MAX_INPUT`] bytes and more than [`MAX_MAILBOXES`]
//!   mailboxes.
//!
//! Output: [`Address::local`] is the local-part in its *semantic* form:
//! comments and CFWS removed, quoted-strings unquoted and unescaped (folding
//! line breaks removed, their WSP kept), words joined by `.`. It may
//! therefore contain `@`, `"`, spaces and so on; never re-parse
//! `local@domain`. [`Address::domain`] is the domain with CFWS removed and
//! labels joined by `.`, case preserved; a domain-literal keeps its brackets
//! (`[192.0.2.1]`). A domain never contains whitespace, `(`, `)`, `@` or `"`.

/// Longest value accepted, in bytes.
pub const MAX_INPUT: usize = 64 * 1024;
/// Most mailboxes accepted in one value.
pub const MAX_MAILBOXES: usize = 1000;
/// Deepest comment nesting accepted.
pub const MAX_COMMENT_DEPTH: usize = 64;

/// One mailbox's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Local-part, semantic form (unquoted, unescaped, CFWS removed).
    pub local: String,
    /// Domain, CFWS removed, case preserved; domain-literals keep brackets.
    pub domain: String,
}

/// Why a From value could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Every mailbox in an address-list / mailbox-list (groups flattened; an
/// empty group contributes nothing, so `Undisclosed:;` is `Ok(vec![])`).
pub fn parse_address_list(value: &[u8]) -> Result<Vec<Address>, ParseError> {
    if value.len() > MAX_INPUT {
        return Err(ParseError(format!(
            "value is {} bytes, over the {MAX_INPUT} byte limit",
            value.len()
        )));
    }
    check_bytes(value)?;
    let mut p = Parser { s: value, i: 0 };
    let mut out = Vec::new();
    p.address_list(&mut out)?;
    Ok(out)
}

/// Rejects control characters and line breaks that are not folding
/// (RFC 5322 §2.2, §3.2.2).
fn check_bytes(s: &[u8]) -> Result<(), ParseError> {
    for (i, &c) in s.iter().enumerate() {
        let next = s.get(i + 1).copied();
        let bad = match c {
            b'\r' => (next != Some(b'\n')).then_some("CR not followed by LF"),
            b'\n' => (!matches!(next, Some(b' ' | b'\t')))
                .then_some("line break not followed by whitespace"),
            b'\t' => None,
            0..=0x1f | 0x7f => Some("control character"),
            _ => None,
        };
        if let Some(msg) = bad {
            return Err(ParseError(format!("{msg} at byte {i}")));
        }
    }
    Ok(())
}

/// A word or a dot, as read by [`Parser::words_and_dots`].
#[derive(Debug)]
enum Piece {
    Word(String),
    Dot,
}

/// atext (RFC 5322 §3.2.3, RFC 6532 §3.2).
fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c) || c >= 0x80
}

/// qtext (RFC 5322 §3.2.4 without obs-qtext, RFC 6532 §3.2).
fn is_qtext(c: u8) -> bool {
    matches!(c, 33 | 35..=91 | 93..=126) || c >= 0x80
}

/// ctext (RFC 5322 §3.2.2 without obs-ctext, RFC 6532 §3.2).
fn is_ctext(c: u8) -> bool {
    matches!(c, 33..=39 | 42..=91 | 93..=126) || c >= 0x80
}

/// The characters accepted inside a domain-literal (see the module doc).
fn is_literal_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'-')
}

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn to_string(bytes: Vec<u8>) -> Result<String, ParseError> {
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.i + n).copied()
    }

    fn bump(&mut self) {
        if self.i < self.s.len() {
            self.i += 1;
        }
    }

    fn err<T>(&self, msg: &str) -> Result<T, ParseError> {
        let what = match self.peek() {
            None => "end of input".to_string(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        };
        Err(ParseError(format!("{msg} at byte {} ({what})", self.i)))
    }

    fn expect(&mut self, c: u8, msg: &str) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            self.err(msg)
        }
    }

    /// The length of the folding line break at the cursor (CRLF or bare LF
    /// followed by WSP), or 0.
    fn fold_len(&self) -> usize {
        match (self.peek(), self.peek_at(1), self.peek_at(2)) {
            (Some(b'\r'), Some(b'\n'), Some(w)) if is_wsp(w) => 2,
            (Some(b'\n'), Some(w), _) if is_wsp(w) => 1,
            _ => 0,
        }
    }

    /// FWS / obs-FWS (§3.2.2, §4.2). Returns whether anything was consumed.
    fn fws(&mut self) -> bool {
        let start = self.i;
        loop {
            match self.peek() {
                Some(c) if is_wsp(c) => self.bump(),
                _ => match self.fold_len() {
                    0 => break,
                    n => self.i += n,
                },
            }
        }
        self.i != start
    }

    /// CFWS (§3.2.2), possibly empty.
    fn cfws(&mut self) -> Result<(), ParseError> {
        loop {
            self.fws();
            if self.peek() == Some(b'(') {
                self.comment(1)?;
            } else {
                return Ok(());
            }
        }
    }

    /// comment (§3.2.2): `"(" *([FWS] ccontent) [FWS] ")"`, discarded.
    fn comment(&mut self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_COMMENT_DEPTH {
            return self.err("comments nested too deeply");
        }
        self.bump(); // "("
        loop {
            self.fws();
            match self.peek() {
                None => return self.err("unterminated comment"),
                Some(b')') => {
                    self.bump();
                    return Ok(());
                }
                Some(b'(') => self.comment(depth + 1)?,
                Some(b'\\') => {
                    self.quoted_pair()?;
                }
                Some(c) if is_ctext(c) => self.bump(),
                Some(_) => return self.err("invalid character in comment"),
            }
        }
    }

    /// quoted-pair (§3.2.1): `"\" (VCHAR / WSP)`; returns the quoted byte.
    /// A non-ASCII character's continuation bytes follow as ordinary text.
    fn quoted_pair(&mut self) -> Result<u8, ParseError> {
        self.bump(); // "\"
        match self.peek() {
            Some(c) if c.is_ascii_graphic() || is_wsp(c) || c >= 0x80 => {
                self.bump();
                Ok(c)
            }
            _ => self.err("invalid quoted-pair"),
        }
    }

    /// quoted-string (§3.2.4) without its surrounding CFWS; returns the
    /// unescaped content with folding line breaks removed.
    fn quoted_string(&mut self) -> Result<String, ParseError> {
        self.bump(); // DQUOTE
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated quoted-string"),
                Some(b'"') => {
                    self.bump();
                    return to_string(out);
                }
                Some(b'\\') => out.push(self.quoted_pair()?),
                Some(c) if is_wsp(c) => {
                    out.push(c);
                    self.bump();
                }
                Some(c) if is_qtext(c) => {
                    out.push(c);
                    self.bump();
                }
                Some(_) => match self.fold_len() {
                    0 => return self.err("invalid character in quoted-string"),
                    n => self.i += n,
                },
            }
        }
    }

    /// 1*atext (§3.2.3); possibly empty.
    fn atext_run(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        while self.peek().is_some_and(is_atext) {
            self.bump();
        }
        to_string(self.s.get(start..self.i).unwrap_or_default().to_vec())
    }

    /// A run of words (atom / quoted-string, §3.2.5) and dots with CFWS
    /// between them. What it must look like is decided by what follows it:
    /// a local-part before `@`, a display-name before `<` or `:`.
    fn words_and_dots(&mut self) -> Result<Vec<Piece>, ParseError> {
        let mut pieces = Vec::new();
        loop {
            self.cfws()?;
            match self.peek() {
                Some(b'.') => {
                    self.bump();
                    pieces.push(Piece::Dot);
                }
                Some(b'"') => pieces.push(Piece::Word(self.quoted_string()?)),
                Some(c) if is_atext(c) => pieces.push(Piece::Word(self.atext_run()?)),
                _ => return Ok(pieces),
            }
        }
    }

    /// phrase / obs-phrase (§3.2.5, §4.1): `word *(word / "." / CFWS)`.
    fn phrase(&self, pieces: &[Piece]) -> Result<(), ParseError> {
        match pieces.first() {
            Some(Piece::Word(_)) => Ok(()),
            Some(Piece::Dot) => self.err("display-name starts with '.'"),
            None => self.err("missing display-name"),
        }
    }

    /// local-part (§3.4.1, §4.4): dot-atom / quoted-string /
    /// obs-local-part, all of the form `word *("." word)`.
    fn local_part(&self, pieces: &[Piece]) -> Result<String, ParseError> {
        let mut local = String::new();
        let mut want_word = true;
        for piece in pieces {
            match (piece, want_word) {
                (Piece::Word(w), true) => local.push_str(w),
                (Piece::Dot, false) => local.push('.'),
                (Piece::Word(_), false) => return self.err("words without '.' in local-part"),
                (Piece::Dot, true) => return self.err("empty word around '.' in local-part"),
            }
            want_word = !want_word;
        }
        if pieces.is_empty() {
            self.err("missing local-part")
        } else if want_word {
            self.err("local-part ends with '.'")
        } else {
            Ok(local)
        }
    }

    /// domain (§3.4.1, §4.4): dot-atom / domain-literal / obs-domain, with
    /// surrounding CFWS.
    fn domain(&mut self) -> Result<String, ParseError> {
        self.cfws()?;
        if self.peek() == Some(b'[') {
            let d = self.domain_literal()?;
            self.cfws()?;
            return Ok(d);
        }
        let mut domain = String::new();
        loop {
            let label = self.atext_run()?;
            if label.is_empty() {
                return self.err("empty domain label");
            }
            domain.push_str(&label);
            self.cfws()?;
            if self.peek() != Some(b'.') {
                return Ok(domain);
            }
            self.bump();
            domain.push('.');
            self.cfws()?;
        }
    }

    /// domain-literal (§3.4.1) without its surrounding CFWS, restricted as
    /// described in the module doc.
    fn domain_literal(&mut self) -> Result<String, ParseError> {
        self.bump(); // "["
        let mut out = String::from("[");
        loop {
            let had_fws = self.fws();
            match self.peek() {
                None => return self.err("unterminated domain-literal"),
                Some(b']') => {
                    self.bump();
                    break;
                }
                Some(c) if is_literal_char(c) => {
                    if had_fws && out.len() > 1 {
                        return self.err("whitespace inside domain-literal");
                    }
                    out.push(char::from(c));
                    self.bump();
                }
                Some(_) => return self.err("unsupported character in domain-literal"),
            }
        }
        if out.len() == 1 {
            return self.err("empty domain-literal");
        }
        out.push(']');
        Ok(out)
    }

    /// The rest of an addr-spec (§3.4.1) after its local-part: `"@" domain`.
    fn addr_spec_rest(&mut self, local_pieces: &[Piece]) -> Result<Address, ParseError> {
        let local = self.local_part(local_pieces)?;
        self.expect(b'@', "expected '@'")?;
        let domain = self.domain()?;
        Ok(Address { local, domain })
    }

    /// addr-spec (§3.4.1) with surrounding CFWS.
    fn addr_spec(&mut self) -> Result<Address, ParseError> {
        let pieces = self.words_and_dots()?;
        if self.peek() != Some(b'@') {
            return self.err("expected '@' in addr-spec");
        }
        self.addr_spec_rest(&pieces)
    }

    /// angle-addr / obs-angle-addr (§3.4, §4.4), from the "<".
    fn angle_addr(&mut self) -> Result<Address, ParseError> {
        self.bump(); // "<"
        self.cfws()?;
        if matches!(self.peek(), Some(b'@' | b',')) {
            self.obs_route()?;
        }
        let addr = self.addr_spec()?;
        self.expect(b'>', "expected '>'")?;
        self.cfws()?;
        Ok(addr)
    }

    /// obs-route (§4.4): `obs-domain-list ":"`, discarded.
    /// obs-domain-list = `*(CFWS / ",") "@" domain *("," [CFWS] ["@" domain])`.
    fn obs_route(&mut self) -> Result<(), ParseError> {
        loop {
            self.cfws()?;
            if self.peek() != Some(b',') {
                break;
            }
            self.bump();
        }
        self.expect(b'@', "expected '@' in obs-route")?;
        self.domain()?;
        while self.peek() == Some(b',') {
            self.bump();
            self.cfws()?;
            if self.peek() == Some(b'@') {
                self.bump();
                self.domain()?;
            }
        }
        self.expect(b':', "expected ':' after obs-route")
    }

    /// address (§3.4): mailbox / group. Inside a group only a mailbox.
    fn address(&mut self, out: &mut Vec<Address>, in_group: bool) -> Result<(), ParseError> {
        let pieces = self.words_and_dots()?;
        let addr = match self.peek() {
            // mailbox = addr-spec
            Some(b'@') => self.addr_spec_rest(&pieces)?,
            // mailbox = name-addr = [display-name] angle-addr
            Some(b'<') => {
                if !pieces.is_empty() {
                    self.phrase(&pieces)?;
                }
                self.angle_addr()?
            }
            Some(b':') if !in_group => {
                self.phrase(&pieces)?;
                return self.group(out);
            }
            Some(b':') => return self.err("group inside a group"),
            _ if pieces.is_empty() => return self.err("expected an address"),
            _ => return self.err("expected '@', '<' or ':' after words"),
        };
        if out.len() >= MAX_MAILBOXES {
            return self.err("too many mailboxes");
        }
        out.push(addr);
        Ok(())
    }

    /// group (§3.4) from the ":": `":" [group-list] ";" [CFWS]`.
    fn group(&mut self, out: &mut Vec<Address>) -> Result<(), ParseError> {
        self.bump(); // ":"
        self.list(out, true)?;
        self.expect(b';', "expected ';' ending the group")?;
        self.cfws()
    }

    /// address-list / mailbox-list (§3.4) including obs-addr-list,
    /// obs-mbox-list and obs-group-list (§4.4): elements separated by ",",
    /// any of them empty. Stops before ";" in a group, at the end otherwise.
    /// Returns the number of non-empty elements.
    fn list(&mut self, out: &mut Vec<Address>, in_group: bool) -> Result<usize, ParseError> {
        let mut elements = 0;
        loop {
            self.cfws()?;
            match self.peek() {
                None if in_group => return self.err("unterminated group"),
                None => return Ok(elements),
                Some(b';') if in_group => return Ok(elements),
                Some(b',') => {
                    self.bump();
                    continue;
                }
                Some(_) => {}
            }
            self.address(out, in_group)?;
            elements += 1;
            self.cfws()?;
            match self.peek() {
                Some(b',') => self.bump(),
                None if !in_group => return Ok(elements),
                Some(b';') if in_group => return Ok(elements),
                _ => return self.err("expected ',' or the end of the list"),
            }
        }
    }

    /// address-list (§3.4): at least one address, then the end of input.
    fn address_list(&mut self, out: &mut Vec<Address>) -> Result<(), ParseError> {
        if self.list(out, false)? == 0 {
            return self.err("no address");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<Address>, ParseError> {
        parse_address_list(s.as_bytes())
    }

    fn addrs(s: &str) -> Vec<(String, String)> {
        match parse(s) {
            Ok(v) => v.into_iter().map(|a| (a.local, a.domain)).collect(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn one(s: &str) -> (String, String) {
        let v = addrs(s);
        assert_eq!(v.len(), 1, "{s:?}: {v:?}");
        v.into_iter().next().unwrap_or_default()
    }

    fn domain(s: &str) -> String {
        one(s).1
    }

    fn local(s: &str) -> String {
        one(s).0
    }

    fn bad(s: &str) {
        assert!(
            parse(s).is_err(),
            "{s:?} should be rejected: {:?}",
            parse(s)
        );
    }

    // RFC 5322 §3.4.1: addr-spec = local-part "@" domain.
    #[test]
    fn plain_addr_spec() {
        assert_eq!(one("a@b.example"), ("a".into(), "b.example".into()));
        assert_eq!(
            one(" user.name+tag@Mail.Example.COM "),
            ("user.name+tag".into(), "Mail.Example.COM".into())
        );
        assert_eq!(domain("x@localhost"), "localhost");
        assert_eq!(
            local("!#$%&'*+-/=?^_`{|}~@b.example"),
            "!#$%&'*+-/=?^_`{|}~"
        );
    }

    // RFC 5322 §3.2.3: dot-atom-text = 1*atext *("." 1*atext).
    #[test]
    fn dot_atom_errors() {
        bad(".a@b.example");
        bad("a.@b.example");
        bad("a..b@b.example");
        bad("a@.b.example");
        bad("a@b.example.");
        bad("a@b..example");
        bad("a@");
        bad("@b.example");
        bad("a b@c.example");
        bad("a@b c.example");
    }

    // RFC 5322 §3.2.2: comments, nested, with quoted-pairs; CFWS.
    #[test]
    fn comments() {
        assert_eq!(domain("(c)a@b.example(c)"), "b.example");
        assert_eq!(
            domain("a@b.example (a (nested (deeply)) comment)"),
            "b.example"
        );
        assert_eq!(domain("a@b.example (with \\) and \\( quoted)"), "b.example");
        assert_eq!(domain("(\u{e9}t\u{e9}) a@b.example"), "b.example");
        assert_eq!(domain("a(c)@(c)b.example"), "b.example");
        bad("a@b.example (unbalanced");
        bad("a@b.example )");
        bad("a@b.example ((x)");
        bad("a@b.example (bad \\\u{1} pair)");
    }

    #[test]
    fn comment_depth_limit() {
        let ok = format!("a@b.example {}{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(domain(&ok), "b.example");
        let deep = format!("a@b.example {}{}", "(".repeat(65), ")".repeat(65));
        bad(&deep);
        let huge = format!("a@b.example {}", "(".repeat(60_000));
        bad(&huge);
    }

    // RFC 5322 §3.2.2 FWS and §4.2 obs-FWS: CRLF (or bare LF) then WSP.
    #[test]
    fn folding() {
        assert_eq!(domain("\r\n a@b.example"), "b.example");
        assert_eq!(
            one("Name\r\n <a@b.example>\r\n\t"),
            ("a".into(), "b.example".into())
        );
        assert_eq!(domain("Name\n <a@b.example>"), "b.example");
        assert_eq!(addrs("a@b.example,\r\n \r\n c@d.example").len(), 2);
        assert_eq!(domain("a@b.example\r\n\t\r\n (c)\n "), "b.example");
    }

    #[test]
    fn bad_line_breaks() {
        bad("a@b.example\r\n");
        bad("a@b.example\r");
        bad("a@b\r.example");
        bad("a@b.example\n");
        bad("a@b.example\r\nX: y");
        bad("a@b.example,\r\nc@d.example");
        bad("a@b.example \r \n");
    }

    // RFC 5322 §3.2.4: quoted-string with quoted-pairs and FWS.
    #[test]
    fn quoted_strings() {
        assert_eq!(local("\"a b\"@c.example"), "a b");
        assert_eq!(local("\"a\\\"b\\\\c\"@c.example"), "a\"b\\c");
        assert_eq!(local("\"a\r\n b\"@c.example"), "a b");
        assert_eq!(local("\"\"@c.example"), "");
        assert_eq!(local("\"a(b)c\"@c.example"), "a(b)c");
        bad("\"a@c.example");
        bad("\"a\"b\"@c.example");
        bad("\"a\u{1}\"@c.example");
        bad("\"a\\\r\n \"@c.example");
    }

    // RFC 5322 §3.2.5 phrase and §3.4 name-addr = [display-name] angle-addr.
    #[test]
    fn name_addr() {
        assert_eq!(
            one("Joe Q. Public <john.q.public@example.com>"),
            ("john.q.public".into(), "example.com".into())
        );
        assert_eq!(
            domain("\"Joe Q. Public\" <john@example.com>"),
            "example.com"
        );
        assert_eq!(domain("<a@b.example>"), "b.example");
        assert_eq!(domain("  < a@b.example >  "), "b.example");
        assert_eq!(domain("Name<a@b.example>"), "b.example");
        assert_eq!(domain("\"a\" b \"c\" <a@b.example>"), "b.example");
        assert_eq!(
            domain("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            "silly.test"
        );
        bad("<a@b.example");
        bad("a@b.example>");
        bad("<>");
        bad("Name <>");
        bad("Name <a>");
        bad("Name <a@b.example> trailing");
        bad("Name <a@b.example> <c@d.example>");
        bad("<<a@b.example>>");
    }

    // RFC 5322 §4.1: obs-phrase = word *(word / "." / CFWS).
    #[test]
    fn obs_phrase() {
        assert_eq!(domain("Joe Q. Public <a@b.example>"), "b.example");
        assert_eq!(domain("J. R. R. Tolkien. <a@b.example>"), "b.example");
        assert_eq!(domain("a..b <a@b.example>"), "b.example");
        bad(". Joe <a@b.example>");
        bad("Joe <a@b.example> .");
    }

    // RFC 5322 §3.4 group = display-name ":" [group-list] ";" [CFWS].
    #[test]
    fn groups() {
        assert_eq!(addrs("Undisclosed:;"), vec![]);
        assert_eq!(addrs("Undisclosed recipients: ; (none)"), vec![]);
        assert_eq!(addrs("Undisclosed: (nobody) ;"), vec![]);
        assert_eq!(
            addrs("team: a@x.example, Bee <b@y.example>;"),
            vec![
                ("a".into(), "x.example".into()),
                ("b".into(), "y.example".into())
            ]
        );
        assert_eq!(addrs("g1: a@x.example;, g2:;, c@z.example").len(), 2);
        bad("team: a@x.example");
        bad(": a@x.example;");
        bad("team: inner: a@x.example;;");
        bad("team: a@x.example; b@y.example");
        bad("a@x.example;");
        bad("team: a@x.example;;");
    }

    // RFC 5322 §4.4 obs-group-list, obs-mbox-list, obs-addr-list.
    #[test]
    fn obs_lists() {
        assert_eq!(
            addrs(", , a@b.example,"),
            vec![("a".into(), "b.example".into())]
        );
        assert_eq!(
            addrs("a@b.example,,c@d.example , "),
            vec![
                ("a".into(), "b.example".into()),
                ("c".into(), "d.example".into())
            ]
        );
        assert_eq!(addrs("g: , ,;"), vec![]);
        assert_eq!(addrs("g: ,a@b.example, ,;").len(), 1);
        bad(",");
        bad(" , , ");
        bad("");
        bad("   ");
        bad("(only a comment)");
        bad("a@b.example c@d.example");
    }

    // RFC 5322 §4.4 obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS].
    #[test]
    fn obs_route() {
        assert_eq!(domain("<@relay.example:ceo@bank.example>"), "bank.example");
        assert_eq!(
            domain("Boss <@r1.example,@r2.example:ceo@bank.example>"),
            "bank.example"
        );
        assert_eq!(
            domain("< , @r1.example, ,@r2.example : ceo@bank.example>"),
            "bank.example"
        );
        assert_eq!(domain("<@r1.example,:ceo@bank.example>"), "bank.example");
        bad("<@relay.example ceo@bank.example>");
        bad("<@relay.example:>");
        bad("<@:ceo@bank.example>");
        bad("<,:ceo@bank.example>");
        bad("<relay.example:ceo@bank.example>");
    }

    // RFC 5322 §4.4 obs-local-part = word *("." word), obs-domain = atom *("." atom).
    #[test]
    fn obs_local_part_and_domain() {
        assert_eq!(one("a . b@c . example"), ("a.b".into(), "c.example".into()));
        assert_eq!(local("\"a\".b.\"c d\"@x.example"), "a.b.c d");
        assert_eq!(domain("a@(x) bank (y) . (z) example (w)"), "bank.example");
        assert_eq!(domain("a@bank\r\n .\r\n example"), "bank.example");
        bad("a@\"bank.example\"");
        bad("a@bank.\"example\"");
        bad("a@bank . . example");
        bad("a . . b@c.example");
    }

    // RFC 5322 §3.4.1 domain-literal = [CFWS] "[" *([FWS] dtext) [FWS] "]" [CFWS].
    #[test]
    fn domain_literals() {
        assert_eq!(domain("a@[192.0.2.1]"), "[192.0.2.1]");
        assert_eq!(domain("a@ (c) [ 192.0.2.1 ] (c)"), "[192.0.2.1]");
        assert_eq!(domain("<a@[IPv6:2001:db8::1]>"), "[IPv6:2001:db8::1]");
        bad("a@[]");
        bad("a@[ ]");
        bad("a@[192.0.2.1");
        bad("a@[192.0.2.1]]");
        bad("a@[192.0.2.1].example");
        bad("a@x.[192.0.2.1]");
        bad("a@[1.2 .3.4]");
        bad("a@[a\\]b]");
        bad("a@[a@b]");
        bad("a@[(x)]");
    }

    // RFC 6532 §3.2: UTF8-non-ascii is atext, qtext and ctext.
    #[test]
    fn utf8() {
        assert_eq!(
            one("Jos\u{e9} <j\u{f6}rg@b\u{fc}cher.example>"),
            ("j\u{f6}rg".into(), "b\u{fc}cher.example".into())
        );
        assert_eq!(
            local("\"\u{65e5}\u{672c} \u{8a9e}\"@x.example"),
            "\u{65e5}\u{672c} \u{8a9e}"
        );
        assert_eq!(local("\"\\\u{e9}\"@x.example"), "\u{e9}");
        assert_eq!(
            domain("\u{65e5}\u{672c}@\u{4f8b}\u{3048}.\u{30c6}\u{30b9}\u{30c8}"),
            "\u{4f8b}\u{3048}.\u{30c6}\u{30b9}\u{30c8}"
        );
        // Invalid UTF-8 is tolerated as text; in a domain it is U+FFFD.
        assert!(parse_address_list(b"a@b\xff.example").unwrap()[0]
            .domain
            .contains('\u{fffd}'));
        assert_eq!(
            parse_address_list(b"\"\xc3\" <a@b.example>").unwrap()[0].domain,
            "b.example"
        );
        assert_eq!(
            parse_address_list(b"J\xf6rg <a@b.example> (\xe2\x82)").unwrap()[0].domain,
            "b.example"
        );
    }

    // RFC 5322 §3.2.3 specials are not atext: an "@" cannot be in a phrase.
    #[test]
    fn spoofs() {
        assert_eq!(domain("security@(comment)bank.example"), "bank.example");
        assert_eq!(domain("a@bank.example(comment)"), "bank.example");
        assert_eq!(
            one("\"quoted@x.example\"@bank.example"),
            ("quoted@x.example".into(), "bank.example".into())
        );
        assert_eq!(domain("<@relay.example:ceo@bank.example>"), "bank.example");
        assert_eq!(
            addrs("Team: a@x.example, b@bank.example;"),
            vec![
                ("a".into(), "x.example".into()),
                ("b".into(), "bank.example".into())
            ]
        );
        assert_eq!(
            domain("\"evil@attacker.example\" <ceo@bank.example>"),
            "bank.example"
        );
        assert_eq!(
            domain("(evil@attacker.example) <ceo@bank.example>"),
            "bank.example"
        );
        assert_eq!(
            domain("ceo@bank.example (evil@attacker.example)"),
            "bank.example"
        );
        bad("evil@attacker.example <ceo@bank.example>");
        bad("ceo@bank.example <evil@attacker.example>");
        bad("<ceo@bank.example> evil@attacker.example");
        bad("ceo@bank.example@attacker.example");
        bad("ceo@bank.example\0@attacker.example");
        bad("ceo@bank.example\r@attacker.example");
        bad("Name <ceo@bank.example\r\n>");
        bad("ceo@bank.example\r\nFrom: evil@attacker.example");
        bad("ceo@[bank.example]attacker.example");
        bad("ceo@bank.example\\@attacker.example");
    }

    // RFC 5322 §3.2.3 / §3.6: control characters are never allowed here.
    #[test]
    fn control_characters() {
        bad("a\0@b.example");
        bad("a@b.ex\u{1}ample");
        bad("a@b.example\u{7f}");
        bad("\"a\u{7f}\"@b.example");
        bad("a@b.example (\u{0})");
        bad("\u{b} a@b.example");
    }

    #[test]
    fn limits() {
        let at_limit = vec!["a@b.example"; MAX_MAILBOXES].join(",");
        assert_eq!(addrs(&at_limit).len(), MAX_MAILBOXES);
        let over = vec!["a@b.example"; MAX_MAILBOXES + 1].join(",");
        bad(&over);
        let grouped = format!("g: {};", vec!["a@b.example"; MAX_MAILBOXES + 1].join(","));
        bad(&grouped);
        let long = format!("a@b.example ({})", "x".repeat(MAX_INPUT));
        bad(&long);
        let fits = format!("a@b.example ({})", "x".repeat(MAX_INPUT - 14));
        assert_eq!(fits.len(), MAX_INPUT);
        assert_eq!(domain(&fits), "b.example");
        let many_commas = ",".repeat(MAX_INPUT - 12) + "a@b.example";
        assert_eq!(domain(&many_commas), "b.example");
    }

    #[test]
    fn error_messages_say_where() {
        let e = parse("a@b.example x").unwrap_err();
        assert!(e.0.contains("byte 12"), "{e}");
        assert!(!e.to_string().is_empty());
    }

    /// Deterministic fuzzing over a grammar-relevant alphabet: never panics,
    /// and every domain returned is non-empty and free of whitespace,
    /// "(", ")", "@" and '"'.
    #[test]
    fn fuzz() {
        const TOKENS: &[&[u8]] = &[
            b"@",
            b".",
            b",",
            b";",
            b":",
            b"<",
            b">",
            b"(",
            b")",
            b"\"",
            b"\\",
            b"[",
            b"]",
            b" ",
            b"\t",
            b"\r",
            b"\n",
            b"\r\n ",
            b"\n\t",
            b"a",
            b"b",
            b"x",
            b"Z",
            b"0",
            b"\xc3\xa9",
            b"\xe6\x97\xa5",
            b"\xc3",
            b"\xa9",
            b"\xff",
            b"\0",
            b"a@b.example",
            b"example",
            b"Name ",
            b"g:",
            b"@r.example:",
            b"1.2.3.4",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Half the inputs are random token strings, half are valid values
        // with a few tokens inserted, so that deep paths are reached too.
        const SEEDS: &[&[u8]] = &[
            b"Name <a@b.example>",
            b"g: a@b.example, \"q\" <@r.example:c@d.example>;",
            b"a.b (c) @ (d) e . f, [x] <y@[1.2.3.4]>",
        ];
        let mut ok = 0;
        for round in 0..20_000 {
            let mut input = Vec::new();
            if round % 2 == 0 {
                for _ in 0..next() % 24 {
                    let t = TOKENS.get((next() % TOKENS.len() as u64) as usize).copied();
                    input.extend_from_slice(t.unwrap_or(b""));
                }
            } else {
                let seed = SEEDS.get((next() % SEEDS.len() as u64) as usize).copied();
                input.extend_from_slice(seed.unwrap_or(b""));
                for _ in 0..1 + next() % 2 {
                    let t = TOKENS.get((next() % TOKENS.len() as u64) as usize).copied();
                    let at = (next() % (input.len() as u64 + 1)) as usize;
                    let tail = input.split_off(at.min(input.len()));
                    input.extend_from_slice(t.unwrap_or(b""));
                    input.extend_from_slice(&tail);
                }
            }
            if let Ok(list) = parse_address_list(&input) {
                ok += 1;
                for a in list {
                    assert!(!a.domain.is_empty(), "{input:?}");
                    assert!(
                        !a.domain
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control() || "()@\"".contains(c)),
                        "{input:?} gave domain {:?}",
                        a.domain
                    );
                }
            }
        }
        eprintln!("fuzz: {ok} of 20000 inputs parsed");
        assert!(
            ok > 1000,
            "only {ok} inputs parsed: the fuzz alphabet is too hostile"
        );
    }
}
