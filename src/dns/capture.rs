//! A DNS capture: every answer one evaluation used, written as a zone file
//! that replays to the same answers (`authmilter check --dns-zone`).
//!
//! Positive answers are records (a CNAME chain is flattened to the records of
//! the type asked for, at the name asked for: that is all a check sees);
//! NXDOMAIN, NODATA and temporary failures are `;!` directives
//! ([`super::zones`]). Names the capture does not hold replay as failures,
//! never as NXDOMAIN.

use super::LookupError;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::{fmt::Write, sync::Mutex, time::Duration};

/// One answer as the evaluation saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Noted {
    Records(Vec<RData>, u32),
    NxDomain,
    NoData,
    Temporary(String),
}

/// Collects the answers of one evaluation, first answer per question kept.
#[derive(Debug, Default)]
pub struct Recorder {
    entries: Mutex<Vec<(String, RecordType, Noted)>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes one answer (a question already noted keeps its first answer).
    pub fn record(
        &self,
        name: &str,
        rtype: RecordType,
        res: &Result<Vec<RData>, LookupError>,
        ttl: Duration,
    ) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let noted = match res {
            Ok(data) => Noted::Records(data.clone(), ttl.as_secs().clamp(1, 86400) as u32),
            Err(LookupError::NxDomain) => Noted::NxDomain,
            Err(LookupError::NoData) => Noted::NoData,
            Err(LookupError::Temporary(t)) => Noted::Temporary(t.clone()),
        };
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if !e.iter().any(|(n, t, _)| *n == name && *t == rtype) {
            e.push((name, rtype, noted));
        }
    }

    /// Copies the answers of another recorder (those of the connection, at
    /// the start of each message).
    pub fn extend_from(&self, other: &Recorder) {
        let theirs = other.entries();
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for x in theirs {
            if !e.iter().any(|(n, t, _)| *n == x.0 && *t == x.1) {
                e.push(x);
            }
        }
    }

    /// The answers, in the order they were first asked for.
    pub fn entries(&self) -> Vec<(String, RecordType, Noted)> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The capture as a zone file; `about` lines become its leading comments.
    pub fn to_zone_file(&self, about: &[String]) -> String {
        let mut out = String::new();
        for line in about {
            let _ = writeln!(out, "; {line}");
        }
        out.push_str(";! capture\n$ORIGIN .\n");
        for (name, rtype, noted) in self.entries() {
            let owner = format!("{}.", escape_name(&name));
            match noted {
                Noted::Records(data, ttl) => {
                    for d in data {
                        let _ = writeln!(out, "{owner} {ttl} IN {rtype} {}", rdata_text(&d));
                    }
                }
                Noted::NxDomain => {
                    let _ = writeln!(out, ";! nxdomain {owner} {rtype}");
                }
                Noted::NoData => {
                    let _ = writeln!(out, ";! nodata {owner} {rtype}");
                }
                Noted::Temporary(t) => {
                    let t: String = t.chars().filter(|c| !c.is_control()).collect();
                    let _ = writeln!(out, ";! temporary {owner} {rtype} {t}");
                }
            }
        }
        out
    }
}

/// A name in zone-file syntax: bytes outside letters, digits, `-` and `_` escaped.
fn escape_name(name: &str) -> String {
    name.split('.')
        .map(|label| {
            label
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => {
                        (b as char).to_string()
                    }
                    _ => format!("\\{b:03}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Record data in zone-file syntax.
fn rdata_text(d: &RData) -> String {
    match d {
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| character_string(s))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// One quoted character-string, every byte outside printable ASCII (and `"`,
/// `\`) as `\DDD`.
fn character_string(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

/// An answer in words, for the decision trace.
pub fn describe(res: &Result<Vec<RData>, LookupError>) -> String {
    match res {
        Ok(data) => data.iter().map(rdata_text).collect::<Vec<_>>().join(" | "),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::zones::ZoneSet;
    use super::*;
    use hickory_resolver::proto::{
        op::ResponseCode,
        rr::{rdata::TXT, LowerName, Name},
    };
    use std::{net::Ipv4Addr, str::FromStr};

    fn lower(n: &str) -> LowerName {
        LowerName::from(Name::from_str(n).unwrap())
    }

    #[test]
    fn a_capture_replays_to_the_same_answers() {
        let rec = Recorder::new();
        let awkward = TXT::from_bytes(vec![b"v=spf1 \"quoted\" \\ back", b"\x00\xff\xc3\xa9 tail"]);
        let ttl = Duration::from_secs(300);
        rec.record(
            "Example.COM",
            RecordType::TXT,
            &Ok(vec![RData::TXT(awkward.clone())]),
            ttl,
        );
        rec.record(
            "mx.example.com",
            RecordType::A,
            &Ok(vec![RData::A(Ipv4Addr::new(192, 0, 2, 1).into())]),
            ttl,
        );
        rec.record(
            "_dmarc.sub.example.com",
            RecordType::TXT,
            &Err(LookupError::NxDomain),
            ttl,
        );
        rec.record(
            "example.com",
            RecordType::AAAA,
            &Err(LookupError::NoData),
            ttl,
        );
        rec.record(
            "s1._domainkey.example.com",
            RecordType::TXT,
            &Err(LookupError::Temporary("timed out".into())),
            ttl,
        );
        rec.record(
            "a@b.example.com",
            RecordType::TXT,
            &Err(LookupError::NxDomain),
            ttl,
        );
        let text = rec.to_zone_file(&["test".into()]);
        let mut z = ZoneSet::open();
        z.add_zone_text(&text, None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(z.is_capture());
        let txt = z.answer(&lower("example.com."), RecordType::TXT).unwrap();
        assert_eq!(txt.rcode, ResponseCode::NoError);
        assert_eq!(txt.answers.len(), 1, "{text}");
        assert_eq!(txt.answers[0].data, RData::TXT(awkward), "{text}");
        assert_eq!(txt.answers[0].ttl, 300);
        let a = z.answer(&lower("mx.example.com."), RecordType::A).unwrap();
        assert_eq!(
            a.answers[0].data,
            RData::A(Ipv4Addr::new(192, 0, 2, 1).into())
        );
        let nx = z
            .answer(&lower("_dmarc.sub.example.com."), RecordType::TXT)
            .unwrap();
        assert_eq!(nx.rcode, ResponseCode::NXDomain);
        let nodata = z.answer(&lower("example.com."), RecordType::AAAA).unwrap();
        assert_eq!(
            (nodata.rcode, nodata.answers.len()),
            (ResponseCode::NoError, 0)
        );
        assert_eq!(
            z.answer(&lower("s1._domainkey.example.com."), RecordType::TXT),
            Err(super::super::zones::Failure::Temporary("timed out".into()))
        );
        let odd = Name::from_labels([&b"a@b"[..], b"example", b"com"]).unwrap();
        assert_eq!(
            z.answer(&LowerName::from(odd), RecordType::TXT)
                .unwrap()
                .rcode,
            ResponseCode::NXDomain,
            "{text}"
        );
        // Whatever the capture does not hold is a failure, never NXDOMAIN.
        assert!(z
            .answer(&lower("other.example.com."), RecordType::TXT)
            .is_err());
        assert!(z
            .answer(&lower("mx.example.com."), RecordType::AAAA)
            .is_err());
    }
}
