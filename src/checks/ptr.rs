//! HELO/PTR consistency, as authentication_milter's PTR handler records it
//! (`x-ptr`): is the HELO name one of the client's forward-confirmed PTR
//! names? Derived from the iprev evidence: no DNS queries of its own.

use super::evidence::{AuthResult, IprevEvidence, PtrEvidence};

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The x-ptr result for the client's iprev evidence and HELO name.
///
/// `pass`: the HELO name (case-insensitive, trailing dot ignored) is a
/// forward-confirmed PTR name; `fail`: it is not, or there is none (no PTR,
/// or PTR names that do not lead back); `none`: the client sent no HELO;
/// `temperror`: iprev could not finish because of DNS trouble.
pub fn check(iprev: &IprevEvidence, helo: Option<&str>) -> PtrEvidence {
    let helo = helo.unwrap_or("").trim();
    let result = if helo.is_empty() {
        AuthResult::None
    } else if iprev.confirmed.iter().any(|n| same_name(n, helo)) {
        AuthResult::Pass
    } else if iprev.result == AuthResult::TempError {
        AuthResult::TempError
    } else {
        AuthResult::Fail
    };
    PtrEvidence {
        result,
        helo: helo.to_string(),
        names: iprev.confirmed.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iprev(result: AuthResult, confirmed: &[&str]) -> IprevEvidence {
        IprevEvidence {
            result,
            ip: "192.0.2.1".parse().unwrap(),
            name: confirmed.first().map(|n| n.to_string()),
            reason: None,
            confirmed: confirmed.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn helo_against_confirmed_names() {
        let two = iprev(AuthResult::Pass, &["a.example", "mx.example"]);
        assert_eq!(check(&two, Some("MX.Example.")).result, AuthResult::Pass);
        assert_eq!(check(&two, Some("other.example")).result, AuthResult::Fail);
        assert_eq!(check(&two, None).result, AuthResult::None);
        assert_eq!(check(&two, Some(" ")).result, AuthResult::None);
        let none = iprev(AuthResult::PermError, &[]);
        assert_eq!(check(&none, Some("mx.example")).result, AuthResult::Fail);
        let temp = iprev(AuthResult::TempError, &[]);
        assert_eq!(
            check(&temp, Some("mx.example")).result,
            AuthResult::TempError
        );
        // A matching confirmed name decides even when another lookup failed.
        let mixed = iprev(AuthResult::TempError, &["mx.example"]);
        assert_eq!(check(&mixed, Some("mx.example")).result, AuthResult::Pass);
    }
}
