//! Stored rows → one aggregate report per policy domain and period
//! (RFC 9990 §3): equal records of different hours are summed, so a report
//! has one `record` per (source IP, results, identifiers) tuple, never one
//! per message.

use super::{store::Stored, DkimResult, Published, Reason, Row, SpfResult};
use std::collections::HashMap;

/// One `record` element of a report.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub source_ip: String,
    pub count: u64,
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub reasons: Vec<Reason>,
    pub header_from: String,
    pub envelope_from: Option<String>,
    pub dkim: Vec<DkimResult>,
    pub spf: Option<SpfResult>,
}

/// One aggregate report before it is written out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub id: String,
    pub domain: String,
    pub begin: i64,
    /// Inclusive, as in RFC 9990's sample.
    pub end: i64,
    /// The policy in force: the latest one seen in the period (RFC 9990
    /// §3: a policy changed during the period is reported as the final one).
    pub published: Published,
    pub records: Vec<Record>,
}

impl Report {
    /// Messages the report covers.
    pub fn messages(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }
}

type Key = (
    String,
    String,
    bool,
    bool,
    Vec<Reason>,
    String,
    Option<String>,
    Vec<DkimResult>,
    Option<(String, String, String)>,
);

fn key(r: &Row) -> Key {
    (
        r.source_ip.clone(),
        r.disposition.clone(),
        r.dkim_aligned,
        r.spf_aligned,
        r.reasons.clone(),
        r.header_from.clone(),
        r.envelope_from.clone(),
        r.dkim.clone(),
        r.spf
            .as_ref()
            .map(|s| (s.domain.clone(), s.scope.clone(), s.result.clone())),
    )
}

/// Builds the report `id` for `domain` over `begin..=end` from its rows;
/// `None` without rows.
pub fn build(id: &str, domain: &str, begin: i64, end: i64, rows: &[Stored]) -> Option<Report> {
    let latest = rows
        .iter()
        .max_by_key(|s| (s.bucket, s.count))?
        .row
        .published
        .clone();
    let mut sums: HashMap<Key, (Record, usize)> = HashMap::new();
    for (i, s) in rows.iter().enumerate() {
        let r = &s.row;
        sums.entry(key(r))
            .or_insert_with(|| {
                (
                    Record {
                        source_ip: r.source_ip.clone(),
                        count: 0,
                        disposition: r.disposition.clone(),
                        dkim_aligned: r.dkim_aligned,
                        spf_aligned: r.spf_aligned,
                        reasons: r.reasons.clone(),
                        header_from: r.header_from.clone(),
                        envelope_from: r.envelope_from.clone(),
                        dkim: r.dkim.clone(),
                        spf: r.spf.clone(),
                    },
                    i,
                )
            })
            .0
            .count += s.count;
    }
    let mut records: Vec<(Record, usize)> = sums.into_values().collect();
    // Most messages first; ties in the order first seen.
    records.sort_by(|a, b| b.0.count.cmp(&a.0.count).then(a.1.cmp(&b.1)));
    Some(Report {
        id: id.into(),
        domain: domain.into(),
        begin,
        end,
        published: latest,
        records: records.into_iter().map(|(r, _)| r).collect(),
    })
}
