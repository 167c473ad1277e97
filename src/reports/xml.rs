//! The RFC 9990 XML document (namespace `urn:ietf:params:xml:ns:dmarc-2.0`),
//! elements in the order the schema requires.

use super::aggregate::Report;
use quick_xml::escape::escape;
use std::fmt::Write;

/// Who writes the report (`report_metadata`).
#[derive(Clone, Debug)]
pub struct Reporter<'a> {
    pub org_name: &'a str,
    pub email: &'a str,
}

/// Text as XML 1.0 allows it: markup escaped, control characters (which
/// no XML document may hold, and a DKIM selector could) replaced by `?`.
fn xml_text(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')
                || matches!(c, '\u{FFFE}' | '\u{FFFF}')
            {
                '?'
            } else {
                c
            }
        })
        .collect();
    escape(&clean).into_owned()
}

fn el(out: &mut String, depth: usize, name: &str, text: &str) {
    let _ = writeln!(
        out,
        "{:indent$}<{name}>{}</{name}>",
        "",
        xml_text(text),
        indent = depth * 2
    );
}

fn open(out: &mut String, depth: usize, name: &str) {
    let _ = writeln!(out, "{:indent$}<{name}>", "", indent = depth * 2);
}

fn close(out: &mut String, depth: usize, name: &str) {
    let _ = writeln!(out, "{:indent$}</{name}>", "", indent = depth * 2);
}

fn pass_fail(b: bool) -> &'static str {
    if b {
        "pass"
    } else {
        "fail"
    }
}

/// The report as an XML document.
pub fn render(report: &Report, by: &Reporter<'_>) -> String {
    let mut o = String::with_capacity(512 + report.records.len() * 600);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str("<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\n");
    el(&mut o, 1, "version", "1.0");
    open(&mut o, 1, "report_metadata");
    el(&mut o, 2, "org_name", by.org_name);
    el(&mut o, 2, "email", by.email);
    el(&mut o, 2, "report_id", &report.id);
    open(&mut o, 2, "date_range");
    el(&mut o, 3, "begin", &report.begin.to_string());
    el(&mut o, 3, "end", &report.end.to_string());
    close(&mut o, 2, "date_range");
    el(
        &mut o,
        2,
        "generator",
        concat!("authmilter ", env!("CARGO_PKG_VERSION")),
    );
    close(&mut o, 1, "report_metadata");
    let p = &report.published;
    open(&mut o, 1, "policy_published");
    el(&mut o, 2, "domain", &p.domain);
    el(&mut o, 2, "p", &p.p);
    if let Some(sp) = &p.sp {
        el(&mut o, 2, "sp", sp);
    }
    if let Some(np) = &p.np {
        el(&mut o, 2, "np", np);
    }
    el(&mut o, 2, "adkim", &p.adkim);
    el(&mut o, 2, "aspf", &p.aspf);
    el(&mut o, 2, "discovery_method", "treewalk");
    el(&mut o, 2, "fo", &p.fo);
    el(&mut o, 2, "testing", if p.testing { "y" } else { "n" });
    close(&mut o, 1, "policy_published");
    for r in &report.records {
        open(&mut o, 1, "record");
        open(&mut o, 2, "row");
        el(&mut o, 3, "source_ip", &r.source_ip);
        el(&mut o, 3, "count", &r.count.to_string());
        open(&mut o, 3, "policy_evaluated");
        el(&mut o, 4, "disposition", &r.disposition);
        el(&mut o, 4, "dkim", pass_fail(r.dkim_aligned));
        el(&mut o, 4, "spf", pass_fail(r.spf_aligned));
        for reason in &r.reasons {
            open(&mut o, 4, "reason");
            el(&mut o, 5, "type", &reason.kind);
            if let Some(c) = &reason.comment {
                el(&mut o, 5, "comment", c);
            }
            close(&mut o, 4, "reason");
        }
        close(&mut o, 3, "policy_evaluated");
        close(&mut o, 2, "row");
        open(&mut o, 2, "identifiers");
        el(&mut o, 3, "header_from", &r.header_from);
        if let Some(e) = &r.envelope_from {
            el(&mut o, 3, "envelope_from", e);
        }
        close(&mut o, 2, "identifiers");
        open(&mut o, 2, "auth_results");
        for d in &r.dkim {
            open(&mut o, 3, "dkim");
            el(&mut o, 4, "domain", &d.domain);
            el(&mut o, 4, "selector", &d.selector);
            el(&mut o, 4, "result", &d.result);
            close(&mut o, 3, "dkim");
        }
        if let Some(s) = &r.spf {
            open(&mut o, 3, "spf");
            el(&mut o, 4, "domain", &s.domain);
            if s.scope == "mfrom" {
                el(&mut o, 4, "scope", "mfrom");
            }
            el(&mut o, 4, "result", &s.result);
            close(&mut o, 3, "spf");
        }
        close(&mut o, 2, "auth_results");
        close(&mut o, 1, "record");
    }
    o.push_str("</feedback>\n");
    o
}
