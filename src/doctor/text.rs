//! The report as text for a terminal: findings grouped by area, errors
//! first within each, with what was read, why, the reply and the fix.

use super::{Report, Severity};
use std::fmt::Write;

/// The areas in the order printed, with their headings.
const AREAS: &[(&str, &str)] = &[
    ("dns", "Name servers and DNS"),
    ("mx", "MX"),
    ("spf", "SPF"),
    ("ip", "Sending addresses"),
    ("dkim", "DKIM"),
    ("dmarc", "DMARC"),
];

/// Renders `report`; `verbose` prints the explanation of ok findings too.
pub fn render(report: &Report, verbose: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "authmilter doctor {}", report.domain);
    for (area, heading) in AREAS {
        let mut found: Vec<_> = report.findings.iter().filter(|f| f.area == *area).collect();
        if found.is_empty() {
            continue;
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let _ = writeln!(s, "\n{heading}");
        for f in found {
            let _ = writeln!(s, "  {:<8} {}  [{}]", f.severity.as_str(), f.summary, f.id);
            if f.severity == Severity::Ok && !verbose {
                continue;
            }
            let mut field = |label: &str, v: &str| {
                let _ = writeln!(s, "           {label:<7} {v}");
            };
            if f.subject != report.domain {
                field("name:", &f.subject);
            }
            if let Some(r) = &f.record {
                field("record:", r);
            }
            for d in &f.details {
                field("", d);
            }
            if let Some(w) = &f.why {
                field("why:", w);
            }
            if let Some(r) = &f.smtp_reply {
                field("reply:", r);
            }
            if let Some(x) = &f.fix {
                field("fix:", x);
            }
        }
    }
    let c = report.counts;
    let _ = writeln!(
        s,
        "\n{}: {} error(s), {} warning(s), {} ok (exit {})",
        match report.status {
            "incomplete" => "The check could not run",
            "errors" => "Mistakes found",
            "warnings" => "No errors",
            _ => "Clean",
        },
        c.error,
        c.warning,
        c.ok,
        report.exit_code
    );
    s
}
