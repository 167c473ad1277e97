//! DNS data from zone files, answered without a network: `authmilter check
//! --dns-zone`, the tests' DNS server, and the replay of a DNS capture.
//!
//! Files are BIND master format. Names outside every zone are answered
//! SERVFAIL (a DNS failure, as a broken delegation would be); a name inside
//! a zone with no records is NXDOMAIN, one with other records (or with names
//! below it) is NODATA. CNAMEs are followed; a dangling CNAME answers
//! NXDOMAIN (RFC 6604).
//!
//! Comments starting with `;!` are directives that other tools ignore:
//!
//! ```text
//! ;! capture                           only what this file lists is answered, everything else SERVFAIL
//! ;! nxdomain NAME TYPE                NAME does not exist (for a TYPE query)
//! ;! nodata NAME TYPE                  NAME exists, without TYPE records
//! ;! temporary NAME TYPE TEXT          a temporary failure, with the resolver's error text
//! ```
//!
//! A DNS capture (`authmilter check --save-dns`, `[capture]` in the daemon)
//! is written in this form, so it replays to the same answers.

use hickory_resolver::proto::{
    op::ResponseCode,
    rr::{
        rdata::{SOA, TXT},
        LowerName, Name, RData, Record, RecordType,
    },
    serialize::txt::Parser,
};
use std::{collections::HashMap, path::Path, str::FromStr};

/// A failure instead of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer at all (the query times out).
    Timeout,
    /// A temporary failure with this error text.
    Temporary(String),
}

/// One entry at a name, in the order added.
#[derive(Clone, Debug)]
pub enum Entry {
    Rec(Box<Record>),
    /// Queries reaching this entry before a record of their type time out.
    Timeout,
    /// Every query for this name gets this response code (SERVFAIL, REFUSED…).
    Error(ResponseCode),
}

/// What a query gets: a response code with answer and authority sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

impl Response {
    fn code(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            answers: vec![],
            authority: vec![],
        }
    }
}

/// Per-(name, type) outcomes given by directives.
#[derive(Clone, Debug)]
enum Directed {
    NxDomain,
    NoData,
    Temporary(String),
}

/// The data served.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    names: HashMap<LowerName, Vec<Entry>>,
    /// Zone origins; `None` means every name is in zone.
    origins: Option<Vec<LowerName>>,
    soa: HashMap<LowerName, Record>,
    directed: HashMap<(LowerName, RecordType), Directed>,
    /// A capture: names and types not listed are a failure, not NXDOMAIN.
    capture: bool,
}

impl ZoneSet {
    /// Every name in zone, absent names NXDOMAIN (for generated data).
    pub fn open() -> Self {
        Self::default()
    }

    /// Zones added with [`Self::add_zone_text`]; names outside them get SERVFAIL.
    pub fn with_origins() -> Self {
        ZoneSet {
            origins: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// Whether this data is a capture (`;! capture`).
    pub fn is_capture(&self) -> bool {
        self.capture
    }

    /// Loads one zone file.
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not a valid zone file (the message
    /// names the file and, where the parser tells, the line).
    pub fn load(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        self.add_zone_text(&text, Some(path))
    }

    /// Adds one zone in BIND master format (with `;!` directives).
    ///
    /// # Errors
    ///
    /// The text is not a valid zone.
    pub fn add_zone_text(&mut self, text: &str, path: Option<&Path>) -> Result<(), String> {
        let label = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "zone".into());
        for (i, line) in text.lines().enumerate() {
            if let Some(d) = line.trim_start().strip_prefix(";!") {
                self.directive(d.trim())
                    .map_err(|e| format!("{label}:{}: {e}", i + 1))?;
            }
        }
        if self.capture && !text.lines().any(is_record_line) {
            return Ok(());
        }
        // hickory's zone parser reads `\DDD` escapes wrongly (`\064` as `4`):
        // protect them and restore the bytes in owner names afterwards.
        let text = protect_escapes(text);
        let (origin, sets) = Parser::new(text, path.map(Path::to_path_buf), None)
            .parse()
            .map_err(|e| format!("{label}: {e}"))?;
        let lo = LowerName::from(&origin);
        if let (Some(o), false) = (self.origins.as_mut(), self.capture) {
            o.push(lo.clone());
        }
        for (_, set) in sets {
            for r in set.records_without_rrsigs() {
                let mut r = r.clone();
                r.name = restore_escapes(&r.name);
                if let RData::TXT(t) = &r.data {
                    let strings: Vec<Vec<u8>> =
                        t.txt_data.iter().map(|s| restore_bytes(s)).collect();
                    r.data =
                        RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()));
                }
                if r.record_type() == RecordType::SOA {
                    self.soa.insert(lo.clone(), r.clone());
                }
                self.add(r);
            }
        }
        Ok(())
    }

    fn directive(&mut self, d: &str) -> Result<(), String> {
        let mut words = d.splitn(4, char::is_whitespace);
        let verb = words.next().unwrap_or("");
        if verb == "capture" {
            self.capture = true;
            return Ok(());
        }
        let (Some(name), Some(rtype)) = (words.next(), words.next()) else {
            return Err(format!("directive `{d}`: expected `{verb} NAME TYPE`"));
        };
        let name = LowerName::from(parse_name(name)?);
        let rtype =
            RecordType::from_str(rtype).map_err(|_| format!("`{rtype}` is not a record type"))?;
        let what = match verb {
            "nxdomain" => Directed::NxDomain,
            "nodata" => Directed::NoData,
            "temporary" => Directed::Temporary(words.next().unwrap_or("").trim().to_string()),
            _ => return Err(format!("unknown directive `{verb}`")),
        };
        self.directed.insert((name, rtype), what);
        Ok(())
    }

    /// Adds a record.
    pub fn add(&mut self, r: Record) {
        self.names
            .entry(LowerName::from(&r.name))
            .or_default()
            .push(Entry::Rec(Box::new(r)));
    }

    /// Queries reaching this point (types without records added so far) time out.
    pub fn add_timeout(&mut self, name: &Name) {
        self.names
            .entry(LowerName::from(name))
            .or_default()
            .push(Entry::Timeout);
    }

    /// Makes every query for `name` time out, whatever records it has.
    pub fn timeout_all(&mut self, name: &Name) {
        self.names
            .entry(LowerName::from(name))
            .or_default()
            .insert(0, Entry::Timeout);
    }

    /// Makes every query for `name` fail with `code`.
    pub fn add_error(&mut self, name: &Name, code: ResponseCode) {
        self.names
            .entry(LowerName::from(name))
            .or_default()
            .insert(0, Entry::Error(code));
    }

    /// Ensures a name exists (possibly with no records).
    pub fn touch(&mut self, name: &Name) {
        self.names.entry(LowerName::from(name)).or_default();
    }

    fn exists(&self, name: &LowerName) -> bool {
        if self.names.contains_key(name) {
            return true;
        }
        let suffix = format!(".{name}");
        self.names.keys().any(|k| k.to_string().ends_with(&suffix))
    }

    fn zone_of(&self, name: &LowerName) -> Option<Option<LowerName>> {
        match &self.origins {
            None => Some(None),
            Some(o) => o
                .iter()
                .filter(|z| z.zone_of(name))
                .max_by_key(|z| z.num_labels())
                .map(|z| Some(z.clone())),
        }
    }

    /// The answer to one question.
    ///
    /// # Errors
    ///
    /// A [`Failure`] where the data says the query fails without an answer.
    pub fn answer(&self, qname: &LowerName, qtype: RecordType) -> Result<Response, Failure> {
        match self.directed.get(&(qname.clone(), qtype)) {
            Some(Directed::NxDomain) => return Ok(Response::code(ResponseCode::NXDomain)),
            Some(Directed::NoData) => return Ok(Response::code(ResponseCode::NoError)),
            Some(Directed::Temporary(t)) => return Err(Failure::Temporary(t.clone())),
            None => {}
        }
        let zone = if self.capture {
            Some(None)
        } else {
            self.zone_of(qname)
        };
        let Some(zone) = zone else {
            return Ok(Response::code(ResponseCode::ServFail));
        };
        let soa: Vec<Record> = match zone {
            Some(z) => self.soa.get(&z).cloned().into_iter().collect(),
            // Generated data: a root SOA with a zero negative TTL.
            None if self.capture => vec![],
            None => vec![Record::from_rdata(
                Name::root(),
                0,
                RData::SOA(SOA::new(
                    fqdn("ns.test"),
                    fqdn("hostmaster.test"),
                    1,
                    3600,
                    600,
                    86400,
                    0,
                )),
            )],
        };
        let mut answers = Vec::new();
        let mut name = qname.clone();
        for _ in 0..8 {
            let entries = self.names.get(&name).cloned().unwrap_or_default();
            let mut found = Vec::new();
            let mut cname = None;
            for e in &entries {
                match e {
                    Entry::Error(code) => return Ok(Response::code(*code)),
                    Entry::Timeout if found.is_empty() => return Err(Failure::Timeout),
                    Entry::Timeout => {}
                    Entry::Rec(r) if r.record_type() == qtype => found.push((**r).clone()),
                    Entry::Rec(r) if r.record_type() == RecordType::CNAME => {
                        cname = Some((**r).clone())
                    }
                    Entry::Rec(_) => {}
                }
            }
            if !found.is_empty() {
                answers.extend(found);
                return Ok(Response {
                    rcode: ResponseCode::NoError,
                    answers,
                    authority: vec![],
                });
            }
            match cname {
                Some(c) if qtype != RecordType::CNAME => {
                    let RData::CNAME(target) = &c.data else {
                        unreachable!("a CNAME record holds CNAME data")
                    };
                    let next = LowerName::from(&target.0);
                    answers.push(c);
                    if answers.iter().any(|a| LowerName::from(&a.name) == next) {
                        return Ok(Response {
                            rcode: ResponseCode::NoError,
                            answers,
                            authority: vec![],
                        });
                    }
                    name = next;
                }
                // A capture holds every answer it saw: anything else is not known.
                _ if self.capture => {
                    return Err(Failure::Temporary(format!(
                        "{name} {qtype} is not in the DNS capture"
                    )))
                }
                _ => {
                    // RFC 6604: the RCODE is that of the last name in a CNAME
                    // chain, so a dangling CNAME answers NXDOMAIN.
                    let rcode = if self.exists(&name) {
                        ResponseCode::NoError
                    } else {
                        ResponseCode::NXDomain
                    };
                    return Ok(Response {
                        rcode,
                        answers,
                        authority: soa,
                    });
                }
            }
        }
        Ok(Response {
            rcode: ResponseCode::NoError,
            answers,
            authority: vec![],
        })
    }
}

fn is_record_line(l: &str) -> bool {
    let t = l.trim();
    !t.is_empty() && !t.starts_with(';') && !t.starts_with('$')
}

/// A name in zone-file syntax, `\DDD` and `\X` escapes decoded byte for byte.
fn parse_name(s: &str) -> Result<Name, String> {
    let bad = |why: &str| format!("`{s}` is not a domain name: {why}");
    let mut labels: Vec<Vec<u8>> = vec![Vec::new()];
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) => {
                let v: u16 = s[i + 1..i + 4].parse().map_err(|_| bad("bad escape"))?;
                labels
                    .last_mut()
                    .expect("one label")
                    .push(u8::try_from(v).map_err(|_| bad("escape over 255"))?);
                i += 4;
            }
            b'\\' if i + 1 < b.len() => {
                labels.last_mut().expect("one label").push(b[i + 1]);
                i += 2;
            }
            b'.' => {
                labels.push(Vec::new());
                i += 1;
            }
            c => {
                labels.last_mut().expect("one label").push(c);
                i += 1;
            }
        }
    }
    if labels.last().is_some_and(Vec::is_empty) {
        labels.pop();
    }
    let mut n =
        Name::from_labels(labels.iter().map(Vec::as_slice)).map_err(|e| bad(&e.to_string()))?;
    n.set_fqdn(true);
    Ok(n)
}

const ESC: &str = "zzesc";

fn protect_escapes(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            out.push_str(&format!("{ESC}{}zz", &text[i + 1..i + 4]));
            i += 4;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Bytes with the protected `\DDD` escapes turned back into the bytes.
fn restore_bytes(l: &[u8]) -> Vec<u8> {
    let esc = ESC.as_bytes();
    let mut out = Vec::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if l[i..].starts_with(esc) && l.len() >= i + esc.len() + 5 {
            let code = &l[i + esc.len()..i + esc.len() + 3];
            let v = std::str::from_utf8(code)
                .ok()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|v| u8::try_from(v).ok());
            out.push(v.unwrap_or(b'?'));
            i += esc.len() + 5;
        } else {
            out.push(l[i]);
            i += 1;
        }
    }
    out
}

fn restore_escapes(name: &Name) -> Name {
    let labels: Vec<Vec<u8>> = name.iter().map(restore_bytes).collect();
    let mut n =
        Name::from_labels(labels.iter().map(Vec::as_slice)).unwrap_or_else(|_| name.clone());
    n.set_fqdn(true);
    n
}

/// A fully qualified name; panics on a malformed name (for literals).
pub fn fqdn(name: &str) -> Name {
    parse_name(name).unwrap_or_else(|e| panic!("{e}"))
}
