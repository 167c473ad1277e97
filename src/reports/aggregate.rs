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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{Published, Row};

    fn row(p: &str, ip: &str) -> Row {
        Row {
            published: Published {
                domain: "example.com".into(),
                p: p.into(),
                sp: None,
                np: None,
                adkim: "r".into(),
                aspf: "r".into(),
                fo: "0".into(),
                testing: false,
                psd: None,
                rua: vec!["mailto:d@example.com".into()],
            },
            source_ip: ip.into(),
            header_from: "example.com".into(),
            envelope_from: None,
            disposition: "none".into(),
            dkim_aligned: false,
            spf_aligned: false,
            reasons: vec![],
            dkim: vec![],
            spf: None,
        }
    }

    #[test]
    fn one_record_per_tuple_and_the_final_policy() {
        let rows = vec![
            Stored {
                bucket: 0,
                row: row("none", "192.0.2.1"),
                count: 2,
            },
            Stored {
                bucket: 3600,
                row: row("none", "192.0.2.1"),
                count: 3,
            },
            Stored {
                bucket: 3600,
                row: row("none", "192.0.2.2"),
                count: 9,
            },
            // The policy changed in the last hour: the report shows the final one.
            Stored {
                bucket: 7200,
                row: row("reject", "192.0.2.1"),
                count: 1,
            },
        ];
        let r = build("id", "example.com", 0, 10_799, &rows).unwrap();
        assert_eq!(r.published.p, "reject");
        assert_eq!(r.messages(), 15);
        let counts: Vec<(&str, u64)> = r
            .records
            .iter()
            .map(|x| (x.source_ip.as_str(), x.count))
            .collect();
        // Hours and policies merge; most messages first.
        assert_eq!(counts, [("192.0.2.2", 9), ("192.0.2.1", 6)]);
        assert!(
            build("id", "example.com", 0, 1, &[]).is_none(),
            "a report needs a record"
        );
    }

    #[test]
    fn xml_has_version_order_and_escaping() {
        let mut odd = row("none", "192.0.2.1");
        odd.dkim.push(crate::reports::DkimResult {
            domain: "example.com".into(),
            selector: "a<b>&\u{1}".into(),
            result: "fail".into(),
        });
        let rows = vec![Stored {
            bucket: 0,
            row: odd,
            count: 1,
        }];
        let r = build("id1", "example.com", 0, 86_399, &rows).unwrap();
        let x = crate::reports::xml::render(
            &r,
            &crate::reports::xml::Reporter {
                org_name: "Org & Co",
                email: "d@example.net",
            },
        );
        assert!(x.contains("<version>1.0</version>"));
        assert!(x.contains("<org_name>Org &amp; Co</org_name>"));
        assert!(x.contains("<selector>a&lt;b&gt;&amp;?</selector>"), "{x}");
        let order = [
            "<version>",
            "<report_metadata>",
            "<policy_published>",
            "<record>",
            "<row>",
            "<identifiers>",
            "<auth_results>",
        ];
        let pos: Vec<usize> = order.iter().map(|t| x.find(t).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{x}");
        assert!(x.contains("<begin>0</begin>") && x.contains("<end>86399</end>"));
    }
}
