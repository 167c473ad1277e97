//! The BIMI header edits: the `bimi=` result in Authentication-Results and,
//! for a validated mark only, BIMI-Location and BIMI-Indicator.

use super::{
    auth_results::FOLD,
    sanitize::{comment_text, pvalue},
    Plan,
};
use crate::checks::bimi::{BimiEvidence, BimiResult};
use base64::Engine as _;

pub const LOCATION: &str = "BIMI-Location";
pub const INDICATOR: &str = "BIMI-Indicator";
/// The fields only the receiving MTA writes (draft §6.2–6.4).
const RECEIVER_FIELDS: [&str; 3] = [LOCATION, INDICATOR, "BIMI-Logo-Preference"];

/// Whether an incoming field is one that only the receiver may write.
pub fn is_receiver_field(name: &str) -> bool {
    RECEIVER_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
}
/// Characters of base64 per line of BIMI-Indicator.
const LINE: usize = 72;

/// The `bimi=` result: a comment with the reason when it is not a pass,
/// then `header.d`, `header.selector` and, with an evidence document,
/// `policy.authority` and `policy.authority-uri`; on a pass the
/// `policy.indicator-uri` (draft §8.7).
pub fn result_part(b: &BimiEvidence) -> String {
    let mut out = format!("bimi={}", b.result.as_str());
    if b.result != BimiResult::Pass {
        if let Some(r) = &b.reason {
            out.push_str(&format!(" ({})", comment_text(r)));
        }
    }
    if let Some(d) = &b.domain {
        out.push_str(&format!(" header.d={}", pvalue(d)));
        out.push_str(&format!(" header.selector={}", pvalue(&b.selector)));
    }
    if let Some(a) = b.authority_result {
        out.push_str(&format!(" policy.authority={a}"));
        if let Some(uri) = &b.authority {
            out.push_str(&format!(" policy.authority-uri={}", pvalue(uri)));
        }
    }
    if b.result == BimiResult::Pass {
        if let Some(uri) = &b.location {
            out.push_str(&format!(" policy.indicator-uri={}", pvalue(uri)));
        }
    }
    out
}

/// The BIMI-Location value: `v=BIMI1`, then `l=` and `a=` as the record
/// gave them (URIs the record parser checked: ASCII, no white space or `;`).
pub fn location_value(b: &BimiEvidence) -> String {
    let mut out = " v=BIMI1;".to_string();
    if let Some(l) = &b.location {
        out.push_str(&format!("{FOLD}l={l};"));
    }
    if let Some(a) = &b.authority {
        out.push_str(&format!("{FOLD}a={a};"));
    }
    out
}

/// The BIMI-Indicator value: the SVG in base64, folded.
pub fn indicator_value(svg: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(svg);
    let mut out = String::with_capacity(b64.len() + b64.len() / LINE * 2 + 2);
    for (i, chunk) in b64.as_bytes().chunks(LINE).enumerate() {
        out.push_str(if i == 0 { " " } else { FOLD });
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
    }
    out
}

/// Adds the BIMI result to our Authentication-Results and, on a pass, the
/// two BIMI fields right below it.
pub fn add(plan: &mut Plan, b: &BimiEvidence) {
    let Some(i) = plan
        .inserts
        .iter()
        .position(|(n, _)| n == "Authentication-Results")
    else {
        return;
    };
    plan.inserts[i]
        .1
        .push_str(&format!(";{FOLD}{}", result_part(b)));
    if b.result != BimiResult::Pass {
        return;
    }
    let Some(svg) = &b.indicator else {
        return;
    };
    plan.inserts
        .insert(i + 1, (LOCATION.to_string(), location_value(b)));
    plan.inserts
        .insert(i + 2, (INDICATOR.to_string(), indicator_value(svg)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pass() -> BimiEvidence {
        BimiEvidence {
            result: BimiResult::Pass,
            domain: Some("bank.test".into()),
            selector: "default".into(),
            location: Some("https://bank.test/logo.svg".into()),
            authority: Some("https://bank.test/vmc.pem".into()),
            authority_result: Some("pass"),
            indicator: Some(Arc::new(b"<svg/>".repeat(40))),
            reason: None,
        }
    }

    #[test]
    fn pass_result_and_fields() {
        let b = pass();
        assert_eq!(
            result_part(&b),
            "bimi=pass header.d=bank.test header.selector=default policy.authority=pass \
             policy.authority-uri=\"https://bank.test/vmc.pem\" \
             policy.indicator-uri=\"https://bank.test/logo.svg\""
        );
        assert_eq!(
            location_value(&b),
            " v=BIMI1;\n\tl=https://bank.test/logo.svg;\n\ta=https://bank.test/vmc.pem;"
        );
        let ind = indicator_value(b.indicator.as_deref().unwrap());
        let joined: String = ind.split("\n\t").collect::<Vec<_>>().concat();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(joined.trim())
                .unwrap(),
            *b.indicator.unwrap()
        );
        assert!(ind.split('\n').all(|l| l.len() <= LINE + 1));
    }

    #[test]
    fn failure_writes_only_the_result() {
        let mut plan = Plan {
            deletions: vec![],
            inserts: vec![(
                "Authentication-Results".into(),
                " mx.test;\n\tdmarc=pass".into(),
            )],
            verdict: crate::policy::Verdict::new(
                crate::policy::Action::Accept,
                None,
                String::new(),
            ),
        };
        let mut b = pass();
        b.result = BimiResult::Fail;
        b.authority_result = Some("fail");
        b.reason = Some("certificate expired\r\nX-Evil: 1".into());
        add(&mut plan, &b);
        assert_eq!(plan.inserts.len(), 1);
        let ar = &plan.inserts[0].1;
        assert!(ar.contains(";\n\tbimi=fail (certificate expired"), "{ar}");
        assert!(!ar.contains('\r') && !ar.contains("\nX-Evil"), "{ar}");
        b.result = BimiResult::Pass;
        b.reason = None;
        add(&mut plan, &b);
        let names: Vec<&str> = plan.inserts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Authentication-Results", LOCATION, INDICATOR]);
    }
}
