//! SPF (RFC 7208): exactly one record, its syntax, how it was split into
//! strings, every include/redirect followed, DNS-mechanism and void lookups
//! counted against the §4.6.4 limits (with the chain that uses them), and
//! the risky terms (`+all`, `?all`, `ptr`, huge ranges).
//!
//! The record is walked statically: names built from macros depend on the
//! sender and are listed, not followed. Whether a given address passes is
//! the milter's own evaluation ([`super::ip`]).

use super::{dns_trouble, Finding, Severity};
use crate::dns::{Dns, LookupError};
use std::{future::Future, pin::Pin, str::FromStr};
use viaspf::record::{Mechanism, Modifier, Qualifier, SpfRecord, Term};

const AREA: &str = "spf";

/// RFC 7208 §4.6.4.
const MAX_LOOKUPS: usize = 10;
const MAX_VOID: usize = 2;
/// Records followed at most (a loop or a huge tree stops here).
const MAX_RECORDS: usize = 40;

/// The SPF findings, and whether the record can give a pass at all.
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// One record that parses and evaluates within the limits.
    pub usable: bool,
}

/// Whether a TXT record is an SPF record (RFC 7208 §4.5: `v=spf1`, then a
/// space or the end).
pub fn is_spf(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

fn text(strings: &[Vec<u8>]) -> String {
    String::from_utf8_lossy(&strings.concat()).into_owned()
}

/// Checks the SPF record of `domain` from its TXT records (`apex`).
pub async fn check(
    dns: &Dns,
    domain: &str,
    apex: &Result<Vec<Vec<Vec<u8>>>, LookupError>,
) -> Outcome {
    let bad = |findings| Outcome {
        findings,
        usable: false,
    };
    let txts = match apex {
        Ok(t) => t.clone(),
        Err(e @ LookupError::Temporary(_)) => {
            return bad(vec![dns_trouble(AREA, domain, "TXT", e)])
        }
        Err(_) => Vec::new(),
    };
    let records: Vec<&Vec<Vec<u8>>> = txts.iter().filter(|t| is_spf(&text(t))).collect();
    match records.as_slice() {
        [] => {
            let lookalike = txts.iter().map(|t| text(t)).find(|t| {
                let l = t.to_ascii_lowercase();
                l.starts_with("v=spf") || l.starts_with("spf1") || l.starts_with(" v=spf1")
            });
            if let Some(l) = lookalike {
                return bad(vec![Finding::new(
                    AREA,
                    "spf.bad_version",
                    Severity::Error,
                    domain,
                    "a TXT record looks like SPF but does not start with \"v=spf1 \"",
                )
                .record(l)
                .why("RFC 7208 §4.5: only records that begin with exactly \"v=spf1\" followed by a space are SPF; this one is ignored, so the domain has no SPF policy.")
                .reply("550 5.7.26 (Gmail: unauthenticated sender) when DKIM does not pass either")
                .fix("Start the record with \"v=spf1 \" (lower or upper case, one space after it); \"v=spf2.0\" is Sender ID, which nobody evaluates.")]);
            }
            bad(vec![Finding::new(
                AREA,
                "spf.missing",
                Severity::Warning,
                domain,
                "no SPF record",
            )
            .why("Without SPF (result none), DMARC relies on DKIM alone, and receivers that require SPF or DKIM for every message refuse mail that is not signed.")
            .reply("550 5.7.26 (Gmail: unauthenticated sender) when DKIM does not pass either")
            .fix(format!("Publish one TXT record at {domain}: \"v=spf1 mx -all\" lists the MX hosts; add ip4:/ip6:/include: for every other sender; \"v=spf1 -all\" if the domain sends no mail."))])
        }
        [one] => analyse(dns, domain, &txts, one).await,
        several => bad(vec![Finding::new(
            AREA,
            "spf.multiple_records",
            Severity::Error,
            domain,
            format!("{} SPF records at {domain}", several.len()),
        )
        .details(several.iter().map(|t| text(t)).collect())
        .why("RFC 7208 §4.5: with more than one \"v=spf1\" record the result is permerror for every message: no address is authorised.")
        .reply("550 5.7.24 SPF validation error (permerror); 550 5.7.1 under DMARC p=reject without DKIM")
        .fix("Merge them into one record: one \"v=spf1\", the mechanisms of both, one \"all\" at the end.")]),
    }
}

/// The DNS response size of the TXT RRset at `domain`, roughly (header,
/// question, and each record with name compression).
fn response_size(domain: &str, txts: &[Vec<Vec<u8>>]) -> usize {
    let question = domain.len() + 2 + 4;
    let answers: usize = txts
        .iter()
        .map(|strings| 12 + strings.iter().map(|s| s.len() + 1).sum::<usize>())
        .sum();
    12 + question + answers
}

async fn analyse(
    dns: &Dns,
    domain: &str,
    all_txt: &[Vec<Vec<u8>>],
    strings: &[Vec<u8>],
) -> Outcome {
    let record_text = text(strings);
    let mut findings: Vec<Finding> = super::long_strings(AREA, domain, strings)
        .into_iter()
        .collect();
    let parsed = SpfRecord::from_str(&record_text);
    if strings.len() > 1 && parsed.is_err() {
        let spaced = strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        if SpfRecord::from_str(&spaced).is_ok() {
            findings.push(
                Finding::new(
                    AREA,
                    "spf.split_without_space",
                    Severity::Error,
                    domain,
                    format!("the record is split into {} strings that join without a space", strings.len()),
                )
                .record(format!("\"{}\"", strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>().join("\" \"")))
                .why("RFC 7208 §3.3: receivers join the strings of a TXT record with nothing between them, so two terms run together and the record is a syntax error (permerror).")
                .reply("550 5.7.24 SPF validation error (permerror)")
                .fix("End each string but the last with a space (\"v=spf1 ip4:192.0.2.0/24 \" \"include:_spf.example.net -all\")."),
            );
            return Outcome {
                findings,
                usable: false,
            };
        }
    }
    let record = match parsed {
        Ok(r) => r,
        Err(_) => {
            let term = record_text
                .split(' ')
                .skip(1)
                .filter(|t| !t.is_empty())
                .find(|t| SpfRecord::from_str(&format!("v=spf1 {t}")).is_err())
                .unwrap_or_default()
                .to_string();
            findings.push(
                Finding::new(
                    AREA,
                    "spf.syntax",
                    Severity::Error,
                    domain,
                    if term.is_empty() {
                        "the SPF record does not parse".to_string()
                    } else {
                        format!("the SPF record does not parse at \"{term}\"")
                    },
                )
                .record(record_text)
                .why("RFC 7208 §4.6: a record with a syntax error is permerror for every message: no address is authorised.")
                .reply("550 5.7.24 SPF validation error (permerror)")
                .fix("Correct the term (mechanisms: all, include:, a, mx, ptr, ip4:, ip6:, exists:, each with an optional + - ~ ? qualifier; modifiers redirect= and exp=; terms separated by single spaces)."),
            );
            return Outcome {
                findings,
                usable: false,
            };
        }
    };
    let size = response_size(domain, all_txt);
    if size > 512 {
        findings.push(
            Finding::new(
                AREA,
                "spf.response_size",
                Severity::Warning,
                domain,
                format!("the TXT answer for {domain} is about {size} octets, over the 512 of plain UDP"),
            )
            .why("RFC 7208 §3.4: SPF records should fit a 512-octet UDP answer; larger ones need EDNS or a retry over TCP, which some resolvers and firewalls break, giving temperror.")
            .reply("451 4.7.24 SPF validation error (temporary), where TCP or EDNS is blocked")
            .fix("Shorten the record (include: a provider's record instead of listing its ranges) and remove TXT records at the apex that are no longer needed (old site verifications)."),
        );
    }
    let mut walk = Walk {
        dns,
        lookups: Vec::new(),
        voids: Vec::new(),
        findings: Vec::new(),
        records: 1,
        macros: Vec::new(),
        unfollowed: false,
        redirects: Vec::new(),
        ptr_seen: false,
    };
    ending(&record, domain, &record_text, &mut walk.findings);
    walk.visit(domain.to_string(), record, vec![domain.to_string()])
        .await;
    let lookups = walk.lookups.len();
    // §5.3: a and mx look up the family of the connecting address, so
    // IPv4 and IPv6 senders see different void counts; the worse one counts.
    let family_voids = |fam: Family| -> Vec<String> {
        walk.voids
            .iter()
            .filter(|(f, _)| *f == Family::Both || *f == fam)
            .map(|(f, v)| match f {
                Family::Both => v.clone(),
                Family::V4 => format!("{v} (for IPv4 senders)"),
                Family::V6 => format!("{v} (for IPv6 senders)"),
            })
            .collect()
    };
    let (v4, v6) = (family_voids(Family::V4), family_voids(Family::V6));
    let senders = match (v4.len() > MAX_VOID, v6.len() > MAX_VOID) {
        (true, true) => "",
        (true, false) => " for IPv4 senders",
        (false, true) => " for IPv6 senders",
        _ => "",
    };
    let worst = if v6.len() > v4.len() { v6 } else { v4 };
    let voids = worst.len();
    let at_least = if walk.unfollowed { "at least " } else { "" };
    if lookups > MAX_LOOKUPS {
        walk.findings.push(
            Finding::new(
                AREA,
                "spf.too_many_lookups",
                Severity::Error,
                domain,
                format!("evaluating the record takes {at_least}{lookups} DNS-mechanism lookups; the limit is {MAX_LOOKUPS}"),
            )
            .record(record_text.clone())
            .details(walk.lookups.clone())
            .why("RFC 7208 §4.6.4: include, a, mx, ptr, exists and redirect each count one lookup, across every included record; past 10 the result is permerror, so mail from senders listed late in the record fails.")
            .reply("550 5.7.24 SPF validation error (permerror)")
            .fix("Replace a and mx mechanisms by ip4:/ip6: ranges, drop include: of services you no longer use, or include a flattened record for one provider."),
        );
    } else if lookups >= MAX_LOOKUPS - 1 {
        walk.findings.push(
            Finding::new(
                AREA,
                "spf.near_lookup_limit",
                Severity::Warning,
                domain,
                format!("evaluating the record takes {at_least}{lookups} of the {MAX_LOOKUPS} DNS-mechanism lookups allowed"),
            )
            .details(walk.lookups.clone())
            .why("Included records change without notice (a provider adding one include pushes you over the limit, and every message gets permerror).")
            .fix("Leave room: replace a/mx mechanisms by ip4:/ip6: ranges."),
        );
    }
    if voids > MAX_VOID {
        walk.findings.push(
            Finding::new(
                AREA,
                "spf.too_many_void_lookups",
                Severity::Error,
                domain,
                format!("{voids} lookups of the record find nothing{senders}; the limit is {MAX_VOID}"),
            )
            .details(worst.clone())
            .why("RFC 7208 §4.6.4: more than two DNS lookups that return no records (NXDOMAIN or no data) make the result permerror. a and the hosts of mx are looked up in the sender's address family (§5.3), so hosts without AAAA records are void lookups for mail sent over IPv6.")
            .reply("550 5.7.24 SPF validation error (permerror)")
            .fix("Remove the mechanisms that name hosts that no longer exist; replace a:/mx that name hosts without AAAA (or A) records by ip4:/ip6: ranges."),
        );
    } else if voids > 0 {
        walk.findings.push(
            Finding::new(
                AREA,
                "spf.void_lookup",
                Severity::Warning,
                domain,
                format!("{voids} lookup(s) of the record find nothing"),
            )
            .details(worst.clone())
            .why("Each name that does not exist counts against the limit of two void lookups (RFC 7208 §4.6.4); one more and every message gets permerror.")
            .fix("Remove the mechanisms that name hosts that no longer exist."),
        );
    }
    if walk.unfollowed {
        walk.findings.push(
            Finding::new(
                AREA,
                "spf.macro_include",
                Severity::Warning,
                domain,
                "an include: or redirect= target is built from macros: its record could not be checked, and the lookup count is a minimum",
            )
            .details(walk.macros.clone())
            .why("Its target depends on each message (RFC 7208 §7), so what it includes, and whether it stays within the 10-lookup limit, is only known per message.")
            .fix("Check the records it can expand to by hand, or include a fixed name."),
        );
    } else if !walk.macros.is_empty() {
        walk.findings.push(
            Finding::ok(
                AREA,
                "spf.macros",
                domain,
                "terms built from macros depend on each message: each counted as one lookup, their names not looked up",
            )
            .details(walk.macros.clone()),
        );
    }
    let usable = !walk
        .findings
        .iter()
        .chain(&findings)
        .any(|f| f.severity == Severity::Error);
    if usable && !walk.unfollowed {
        walk.findings.push(
            Finding::ok(
                AREA,
                "spf.ok",
                domain,
                format!(
                    "one SPF record; {at_least}{lookups} of {MAX_LOOKUPS} DNS lookups, {voids} of {MAX_VOID} void lookups"
                ),
            )
            .record(record_text),
        );
    }
    findings.append(&mut walk.findings);
    Outcome { findings, usable }
}

/// How the evaluation ends: the top-level record, or the one a
/// `redirect=` hands the evaluation to (RFC 7208 §6.1).
fn ending(record: &SpfRecord, domain: &str, text: &str, out: &mut Vec<Finding>) {
    let all = record
        .terms
        .iter()
        .position(|t| matches!(t, Term::Directive(d) if d.mechanism == Mechanism::All));
    let redirect = record
        .modifiers()
        .any(|m| matches!(m, Modifier::Redirect(_)));
    match all.map(|i| &record.terms[i]) {
        Some(Term::Directive(d)) => match d.qualifier.unwrap_or_default() {
            Qualifier::Pass => out.push(
                Finding::new(AREA, "spf.pass_all", Severity::Error, domain, format!("the record of {domain} ends in \"+all\": every address on the Internet may send as the domain"))
                    .record(text)
                    .reply("250 for mail that spoofs the domain in MAIL FROM: SPF passes it")
                    .why("With +all SPF passes for anyone, so SPF authenticates nothing and DMARC passes for spoofed mail with your domain in the envelope; spam filters penalise such records.")
                    .fix("End the record with \"-all\" (or \"~all\" while you collect your senders)."),
            ),
            Qualifier::Neutral => out.push(
                Finding::new(AREA, "spf.neutral_all", Severity::Warning, domain, format!("the record of {domain} ends in \"?all\": addresses not listed are neutral"))
                    .record(text)
                    .why("Neutral (RFC 7208 §8.2) states no policy: receivers treat unlisted senders like no SPF at all, and DMARC cannot use an SPF failure.")
                    .fix("End the record with \"-all\" (or \"~all\")."),
            ),
            _ => {}
        },
        _ if !redirect => out.push(
            Finding::new(AREA, "spf.no_all", Severity::Warning, domain, format!("the record of {domain} has neither \"all\" nor \"redirect=\": unlisted addresses get neutral"))
                .record(text)
                .why("RFC 7208 §4.7: when nothing matches and there is no redirect, the result is neutral: no policy for unlisted senders.")
                .fix("End the record with \"-all\" (or \"~all\")."),
        ),
        _ => {}
    }
    if let Some(i) = all {
        let after: Vec<String> = record.terms[i + 1..]
            .iter()
            .filter(|t| matches!(t, Term::Directive(_)))
            .map(|t| t.to_string())
            .collect();
        if !after.is_empty() {
            out.push(
                Finding::new(
                    AREA,
                    "spf.terms_after_all",
                    Severity::Warning,
                    domain,
                    "mechanisms after \"all\" are never evaluated",
                )
                .record(text)
                .details(after)
                .why("RFC 7208 §5.1: mechanisms after \"all\" will never be tested.")
                .fix("Move them before \"all\", or remove them."),
            );
        }
        if redirect {
            out.push(
                Finding::new(AREA, "spf.redirect_ignored", Severity::Warning, domain, "redirect= is ignored because the record has \"all\"")
                    .record(text)
                    .why("RFC 7208 §6.1: a redirect= in a record that contains an \"all\" mechanism is ignored; the record it names is never used.")
                    .fix("Remove the \"all\" to hand unmatched senders to the redirect target, or remove the redirect=."),
            );
        }
    }
    for name in ["redirect", "exp"] {
        let n = record
            .modifiers()
            .filter(|m| match m {
                Modifier::Redirect(_) => name == "redirect",
                Modifier::Explanation(_) => name == "exp",
                Modifier::Unknown(_) => false,
            })
            .count();
        if n > 1 {
            out.push(
                Finding::new(AREA, "spf.duplicate_modifier", Severity::Error, domain, format!("\"{name}=\" appears {n} times"))
                    .record(text)
                    .why("RFC 7208 §6: redirect= and exp= may appear at most once; a second one is permerror.")
                    .reply("550 5.7.24 SPF validation error (permerror)")
                    .fix(format!("Keep one {name}=.")),
            );
        }
    }
}

/// The senders a void lookup counts for (§5.3: `a` and the hosts of `mx`
/// are looked up in the connection's address family; `exists` always A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Both,
    V4,
    V6,
}

/// The walk through the record and everything it includes.
struct Walk<'a> {
    dns: &'a Dns,
    /// Every term that counts against the lookup limit, with its chain.
    lookups: Vec<String>,
    /// Every lookup that found nothing, with the senders it counts for.
    voids: Vec<(Family, String)>,
    findings: Vec<Finding>,
    records: usize,
    macros: Vec<String>,
    /// An include:/redirect= target built from macros was not followed.
    unfollowed: bool,
    /// Records reached through redirect=, whose ending [`ending`] judges.
    redirects: Vec<String>,
    ptr_seen: bool,
}

type Step<'b> = Pin<Box<dyn Future<Output = ()> + Send + 'b>>;

impl<'a> Walk<'a> {
    fn visit<'b>(&'b mut self, domain: String, record: SpfRecord, chain: Vec<String>) -> Step<'b>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let path = chain.join(" → ");
            let has_all = record.directives().any(|d| d.mechanism == Mechanism::All);
            for term in &record.terms {
                match term {
                    // §5.1: mechanisms after "all" are never tested.
                    Term::Directive(d) if d.mechanism == Mechanism::All => {
                        let pass = d.qualifier.unwrap_or_default() == Qualifier::Pass;
                        if chain.len() > 1 && pass && !self.redirected(&chain) {
                            self.findings.push(
                                Finding::new(AREA, "spf.include_pass_all", Severity::Error, domain.clone(), format!("{domain}, included by the record, ends in \"+all\": every address passes"))
                                    .details(vec![path.clone()])
                                    .reply("250 for mail that spoofs the domain in MAIL FROM: SPF passes it")
                                    .why("RFC 7208 §5.2: an include whose record passes is a match, so an included \"+all\" authorises every address on the Internet.")
                                    .fix(format!("Remove the include of {domain}, or have its owner end it with \"-all\" or \"~all\".")),
                            );
                        }
                        break;
                    }
                    Term::Directive(d) => {
                        self.mechanism(&domain, &path, &chain, &d.mechanism).await
                    }
                    Term::Modifier(Modifier::Redirect(r)) if !has_all => {
                        self.lookups
                            .push(format!("{path}: redirect={}", r.domain_spec));
                        let target = r.domain_spec.to_string();
                        self.follow(&path, &chain, &target, "redirect").await;
                    }
                    Term::Modifier(_) => {}
                }
            }
        })
    }

    /// Whether the last step of `chain` was a redirect (its ending is
    /// judged by [`ending`] instead).
    fn redirected(&self, chain: &[String]) -> bool {
        self.redirects.iter().any(|r| Some(r) == chain.last())
    }

    async fn mechanism(&mut self, domain: &str, path: &str, chain: &[String], m: &Mechanism) {
        let counted = |m: &Mechanism| format!("{path}: {m}");
        match m {
            Mechanism::All => {}
            Mechanism::Include(i) => {
                self.lookups.push(counted(m));
                let target = i.domain_spec.to_string();
                self.follow(path, chain, &target, "include").await;
            }
            Mechanism::A(a) => {
                self.lookups.push(counted(m));
                self.dual_wide(domain, path, m, a.prefix_len);
                let target = a
                    .domain_spec
                    .as_ref()
                    .map_or(domain.to_string(), |d| d.to_string());
                if self.is_macro(path, m, &target) {
                    return;
                }
                self.host_voids(path, m, &target).await;
            }
            Mechanism::Mx(x) => {
                self.lookups.push(counted(m));
                self.dual_wide(domain, path, m, x.prefix_len);
                let target = x
                    .domain_spec
                    .as_ref()
                    .map_or(domain.to_string(), |d| d.to_string());
                if self.is_macro(path, m, &target) {
                    return;
                }
                match self.dns.mx(&target).await {
                    Ok(list) if list.len() > 10 => self.findings.push(
                        Finding::new(AREA, "spf.mx_too_many", Severity::Error, target.clone(), format!("\"{m}\" names {} MX hosts; at most 10 may be looked up", list.len()))
                            .why("RFC 7208 §4.6.4: an mx mechanism resolving more than 10 MX names is permerror.")
                            .reply("550 5.7.24 SPF validation error (permerror)")
                            .fix("List the mail servers' addresses with ip4:/ip6: instead of mx."),
                    ),
                    Ok(list) => {
                        for (_, host) in &list {
                            self.host_voids(path, m, host).await;
                        }
                    }
                    Err(e @ LookupError::Temporary(_)) => {
                        self.findings.push(dns_trouble(AREA, &target, "MX", &e))
                    }
                    Err(_) => self
                        .voids
                        .push((Family::Both, format!("{path}: {m} ({target} has no MX)"))),
                }
            }
            Mechanism::Ptr(_) => {
                self.lookups.push(counted(m));
                if !self.ptr_seen {
                    self.ptr_seen = true;
                    self.findings.push(
                        Finding::new(AREA, "spf.ptr_deprecated", Severity::Warning, domain, format!("\"{m}\" is used"))
                            .details(vec![path.to_string()])
                            .why("RFC 7208 §5.5: ptr SHOULD NOT be used: it is slow, unreliable, and large receivers skip it, so mail it should authorise fails.")
                            .fix("Replace ptr with the ip4:/ip6: ranges of the servers it was meant to match."),
                    );
                }
            }
            Mechanism::Ip4(i) => {
                if i.prefix_len.map_or(32, |l| l.get()) < 8 {
                    self.wide(domain, path, m);
                }
            }
            Mechanism::Ip6(i) => {
                if i.prefix_len.map_or(128, |l| l.get()) < 16 {
                    self.wide(domain, path, m);
                }
            }
            Mechanism::Exists(e) => {
                self.lookups.push(counted(m));
                let target = e.domain_spec.to_string();
                if self.is_macro(path, m, &target) {
                    return;
                }
                // exists: always an A query, whatever the sender's family.
                let v4 = self.dns.a(&target).await;
                self.family_void(path, m, &target, v4.map(|v| v.len()), Family::Both);
            }
        }
    }

    fn wide(&mut self, domain: &str, path: &str, m: &Mechanism) {
        self.findings.push(
            Finding::new(AREA, "spf.wide_range", Severity::Error, domain, format!("\"{m}\" authorises a large part of the Internet"))
                .details(vec![path.to_string()])
                .reply("250 for mail that spoofs the domain in MAIL FROM: SPF passes it")
                .why("A range this wide lets nearly anyone pass SPF as the domain; it is usually a typo in the prefix length.")
                .fix("Give the prefix length of your own network (ip4:192.0.2.0/24)."),
        );
    }

    /// a/32 and mx//64 are fine; a/0 or mx/4 authorise the Internet.
    fn dual_wide(
        &mut self,
        domain: &str,
        path: &str,
        m: &Mechanism,
        len: Option<viaspf::record::DualCidrLength>,
    ) {
        let Some(len) = len else { return };
        if len.ip4().is_some_and(|l| l.get() < 8) || len.ip6().is_some_and(|l| l.get() < 16) {
            self.wide(domain, path, m);
        }
    }

    fn is_macro(&mut self, path: &str, m: &Mechanism, target: &str) -> bool {
        let is = target.contains('%');
        if is {
            self.macros.push(format!("{path}: {m}"));
        }
        is
    }

    /// The A and AAAA lookups of an `a` target or an MX host: a void
    /// lookup for the senders of each family it has no address in.
    async fn host_voids(&mut self, path: &str, m: &Mechanism, host: &str) {
        let (v4, v6) = (self.dns.a(host).await, self.dns.aaaa(host).await);
        self.family_void(path, m, host, v4.map(|v| v.len()), Family::V4);
        self.family_void(path, m, host, v6.map(|v| v.len()), Family::V6);
    }

    /// One address lookup's outcome: no address is a void lookup for the
    /// senders of `fam`.
    fn family_void(
        &mut self,
        path: &str,
        m: &Mechanism,
        target: &str,
        found: Result<usize, LookupError>,
        fam: Family,
    ) {
        let rtype = if fam == Family::V6 { "AAAA" } else { "A" };
        match found {
            Err(e @ LookupError::Temporary(_)) => {
                self.findings.push(dns_trouble(AREA, target, rtype, &e))
            }
            Ok(n) if n > 0 => {}
            _ => self
                .voids
                .push((fam, format!("{path}: {m} ({target} has no {rtype} record)"))),
        }
    }

    /// Follows an include: or redirect= to `target`.
    async fn follow(&mut self, path: &str, chain: &[String], target: &str, kind: &str) {
        let shown = format!(
            "{kind}{}{target}",
            if kind == "include" { ":" } else { "=" }
        );
        // %{d} is the current domain (RFC 7208 §7.3), known here: expand it.
        let here = chain.last().map(String::as_str).unwrap_or_default();
        let target = target.replace("%{d}", here);
        if target.contains('%') {
            self.macros.push(format!("{path}: {shown}"));
            self.unfollowed = true;
            return;
        }
        let target = target.trim_end_matches('.').to_ascii_lowercase();
        if chain.contains(&target) {
            self.findings.push(
                Finding::new(AREA, "spf.loop", Severity::Error, target.clone(), format!("{shown} leads back to a record already on the path"))
                    .details(vec![format!("{path} → {target}")])
                    .why("A record that includes itself runs until the lookup limit: permerror for every message.")
                    .reply("550 5.7.24 SPF validation error (permerror)")
                    .fix("Remove the include: or redirect= that closes the loop."),
            );
            return;
        }
        if self.records >= MAX_RECORDS {
            return;
        }
        self.records += 1;
        let missing = |why: &str| {
            Finding::new(
                AREA,
                if kind == "include" { "spf.include_missing" } else { "spf.redirect_missing" },
                Severity::Error,
                target.clone(),
                format!("{shown}: {why}"),
            )
            .details(vec![path.to_string()])
            .why(if kind == "include" {
                "RFC 7208 §5.2: an include: whose target has no SPF record is permerror, so the whole record fails for every message."
            } else {
                "RFC 7208 §6.1: a redirect= whose target has no SPF record is permerror for every message."
            })
            .reply("550 5.7.24 SPF validation error (permerror)")
            .fix(format!("Correct the name (a typo?) or remove the {kind}; a provider's documentation gives the exact include: to use."))
        };
        let txts = match self.dns.txt(&target).await {
            Ok(t) => t,
            Err(e @ LookupError::Temporary(_)) => {
                self.findings.push(dns_trouble(AREA, &target, "TXT", &e));
                return;
            }
            Err(_) => {
                self.findings.push(missing("the name has no TXT records"));
                return;
            }
        };
        let spf: Vec<String> = txts
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .filter(|t| is_spf(t))
            .collect();
        let record: SpfRecord = match spf.as_slice() {
            [] => {
                self.findings.push(missing("no SPF record there"));
                return;
            }
            [one] => match SpfRecord::from_str(one) {
                Ok(r) => r,
                Err(_) => {
                    self.findings.push(
                        Finding::new(AREA, "spf.include_syntax", Severity::Error, target.clone(), format!("{shown}: its SPF record does not parse"))
                            .record(one.clone())
                            .details(vec![path.to_string()])
                            .why("A syntax error in an included or redirected record is permerror for the whole evaluation.")
                            .reply("550 5.7.24 SPF validation error (permerror)")
                            .fix(format!("Correct the record at {target}, or ask its owner to.")),
                    );
                    return;
                }
            },
            _ => {
                self.findings.push(missing("several SPF records there"));
                return;
            }
        };
        if kind == "redirect" {
            // §6.1: the redirect target's result is the record's result.
            ending(&record, &target, &spf[0], &mut self.findings);
            self.redirects.push(target.clone());
        }
        let mut chain = chain.to_vec();
        chain.push(target.clone());
        self.visit(target, record, chain).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_records_are_told_apart() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("v=spf2.0/pra -all"));
        assert!(!is_spf("spf1 -all"));
    }

    #[test]
    fn response_size_counts_every_string() {
        let one = vec![vec![b"v=spf1 -all".to_vec()]];
        assert_eq!(response_size("example.com", &one), 12 + 17 + 12 + 12);
        let big = vec![vec![vec![b'a'; 255], vec![b'b'; 255]]];
        assert!(response_size("example.com", &big) > 512);
    }
}
