//! Replays a corpus in the format of `../shared/corpus/FORMAT.md` through the
//! real milter protocol, its zones served by the in-process DNS server.
//!
//! Two optional case keys go beyond that format, for the project's own
//! corpus (`tests/own_corpus.rs`): `"config"`, extra TOML lines under
//! `[policy]` … or whole sections (a case gets its own milter), and
//! `"expect.reply"`, a prefix the SMTP reply must start with.

use super::{
    dns_server::{TestDns, Zones},
    *,
};
use serde_json::Value;
use std::{collections::BTreeMap, path::Path};

fn words(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// Replays every case of the corpus in `dir`; returns how many passed, or
/// the failures.
pub async fn replay(dir: &Path) -> Result<usize, Vec<String>> {
    let zones = Zones::from_dir(&dir.join("zones"));
    let dns = TestDns::start(zones).await;
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let mut by_config: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for case in &cases {
        let cfg = case["config"].as_str().unwrap_or("").to_string();
        by_config.entry(cfg).or_default().push(case);
    }
    let mut failures = Vec::new();
    for (cfg, cases) in by_config {
        let text = config_text(dns.addr, "") + &cfg;
        let config = authmilter::config::Config::parse(&text, "corpus case config")
            .unwrap_or_else(|e| panic!("case config {cfg:?}: {e}"));
        let milter = TestMilter::start(config).await;
        let work = tempfile::tempdir().unwrap();
        let cfg_file = work.path().join("authmilter.toml");
        std::fs::write(&cfg_file, &text).unwrap();
        for case in cases {
            if let Some(f) = replay_case(dir, milter.addr, case, &cfg_file).await {
                failures.push(f);
            }
        }
        milter.stop().await;
    }
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(failures)
    }
}

/// What `authmilter check` says of a case: (verdict, reply, A-R unfolded).
type Checked = (String, Option<String>, Option<String>);

/// The zone files of a corpus, sorted.
fn zone_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("zones"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zone"))
        .collect();
    files.sort();
    files
}

/// `authmilter check --json` on a case with `zone_files`, optionally saving
/// the DNS it used: its JSON report.
fn check_json(
    config: &Path,
    zone_files: &[std::path::PathBuf],
    env: &Envelope,
    msg: &Path,
    save: Option<&Path>,
) -> Result<Value, String> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authmilter"));
    cmd.arg("check").arg("-c").arg(config).arg("--json");
    for z in zone_files {
        cmd.arg("--dns-zone").arg(z);
    }
    cmd.arg("--client-ip")
        .arg(env.client_ip.to_string())
        .arg("--client-name")
        .arg(&env.client_name)
        .arg("--helo")
        .arg(&env.helo)
        .arg(format!("--mail-from={}", env.mail_from));
    for r in &env.rcpt {
        cmd.arg("--rcpt").arg(r);
    }
    if let Some(a) = env.macros.get("{auth_authen}") {
        cmd.arg("--auth").arg(a);
    }
    if let Some(p) = save {
        cmd.arg("--save-dns").arg(p);
    }
    let out = cmd.arg(msg).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "authmilter check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Runs `authmilter check --json` on a case with the corpus zones (or
/// `zone_files`), optionally saving the DNS it used.
fn run_check(
    config: &Path,
    zone_files: &[std::path::PathBuf],
    env: &Envelope,
    msg: &Path,
    save: Option<&Path>,
) -> Result<Checked, String> {
    let v = check_json(config, zone_files, env, msg, save)?;
    let verdict = match v["verdict"].as_str().unwrap_or("") {
        "tag" => "accept".to_string(),
        other => other.to_string(),
    };
    let reply = match verdict.as_str() {
        "reject" | "tempfail" => v["reply"].as_str().map(str::to_string),
        _ => None,
    };
    // A rejected or tempfailed message gets no header from the milter.
    let ar = v["authentication_results"]
        .as_str()
        .filter(|_| reply.is_none())
        .map(|a| format!(" {a}").replace("\n\t", " "));
    Ok((verdict, reply, ar))
}

/// The Authentication-Results `authmilter check` computes for a case,
/// unfolded, whatever the verdict.
fn check_ar(dir: &Path, config: &Path, env: &Envelope, msg: &Path) -> Option<String> {
    let v = check_json(config, &zone_files(dir), env, msg, None).ok()?;
    v["authentication_results"]
        .as_str()
        .map(|a| format!(" {a}").replace("\n\t", " "))
}

/// `authmilter check` on the case gives what the milter gave, and its DNS
/// capture replays to the very same result.
fn compare_with_check(
    dir: &Path,
    config: &Path,
    env: &Envelope,
    msg: &Path,
    milter: &Checked,
) -> Vec<String> {
    let zone_files = zone_files(dir);
    let work = tempfile::tempdir().unwrap();
    let capture = work.path().join("capture.zone");
    let mut problems = Vec::new();
    match run_check(config, &zone_files, env, msg, Some(&capture)) {
        Err(e) => problems.push(e),
        Ok(checked) => {
            if &checked != milter {
                problems.push(format!(
                    "authmilter check differs from the milter:\n      check:  {checked:?}\n      milter: {milter:?}"
                ));
            }
            match run_check(config, std::slice::from_ref(&capture), env, msg, None) {
                Err(e) => problems.push(format!("replay of the DNS capture: {e}")),
                Ok(replayed) if replayed != checked => problems.push(format!(
                    "the DNS capture replays differently:\n      replay: {replayed:?}\n      check:  {checked:?}\n{}",
                    std::fs::read_to_string(&capture).unwrap_or_default()
                )),
                Ok(_) => {}
            }
        }
    }
    problems
}

async fn replay_case(
    dir: &Path,
    addr: std::net::SocketAddr,
    case: &Value,
    config: &Path,
) -> Option<String> {
    let id = case["id"].as_str().unwrap();
    let mut env = Envelope::new(
        case["client_ip"].as_str().unwrap(),
        case["helo"].as_str().unwrap(),
        case["mail_from"].as_str().unwrap(),
    );
    env.client_name = case["client_name"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    if let Some(m) = case["macros"].as_object() {
        for (k, v) in m {
            env.macros
                .insert(k.clone(), v.as_str().unwrap().to_string());
        }
    }
    if let Some(rcpt) = case["rcpt"].as_array() {
        env.rcpt = rcpt
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
    }
    if let Some(c) = case["chunk"].as_u64() {
        env.body_chunk = c as usize;
    }
    let msg_path = dir.join(case["msg"].as_str().unwrap());
    let raw = std::fs::read(&msg_path).unwrap();
    let out = send(addr, &env, &raw).await;
    let expect = &case["expect"];
    let alt = &case["alt"];
    let mut problems = Vec::new();
    let seen: Checked = (out.verdict().to_string(), out.reply(), out.auth_results());
    problems.extend(compare_with_check(dir, config, &env, &msg_path, &seen));
    let verdict = expect["verdict"].as_str().unwrap();
    if out.verdict() != verdict {
        problems.push(format!(
            "verdict {} (want {verdict}) reply {:?}",
            out.verdict(),
            out.reply()
        ));
    }
    if let Some(prefix) = expect["reply"].as_str() {
        if !out.reply().is_some_and(|r| r.starts_with(prefix)) {
            problems.push(format!("reply {:?} (want {prefix}…)", out.reply()));
        }
    }
    // A rejected or tempfailed message gets no header from the milter: its
    // results are read from `authmilter check` (which the comparison above
    // holds to the milter's verdict).
    let ar = out.auth_results().or_else(|| {
        if matches!(out.verdict(), "reject" | "tempfail") {
            check_ar(dir, config, &env, &msg_path)
        } else {
            None
        }
    });
    if out.auth_results().is_none() && !matches!(out.verdict(), "reject" | "tempfail") {
        problems.push("no Authentication-Results inserted".into());
    }
    if let Some(ar) = ar {
        let res = ar_results(&ar);
        let get = |m: &str, prop: &str| {
            res.iter()
                .filter(|(mm, _, rest)| mm == m && rest.contains(prop))
                .map(|(_, r, _)| r.clone())
                .collect::<Vec<_>>()
        };
        let mut check = |what: &str, got: Vec<String>, want: &Value, alts: &Value| {
            if want.is_null() {
                return;
            }
            let mut ok_words = words(want);
            ok_words.extend(words(alts));
            let got1 = got.first().cloned().unwrap_or_else(|| "absent".into());
            if !ok_words.contains(&got1) {
                problems.push(format!("{what}={got1} (want {ok_words:?})"));
            }
        };
        // spf: the MAIL FROM check, or the HELO check for the null sender.
        let spf = if env.mail_from.is_empty() {
            get("spf", "smtp.helo")
        } else {
            get("spf", "smtp.mailfrom")
        };
        check("spf", spf, &expect["spf"], &alt["spf"]);
        check(
            "spf_helo",
            get("spf", "smtp.helo"),
            &expect["spf_helo"],
            &alt["spf_helo"],
        );
        check("iprev", get("iprev", ""), &expect["iprev"], &alt["iprev"]);
        check("dmarc", get("dmarc", ""), &expect["dmarc"], &alt["dmarc"]);
        check("arc", get("arc", ""), &expect["arc"], &alt["arc"]);
        let dkim: Vec<String> = res
            .iter()
            .filter(|(m, _, _)| m == "dkim")
            .map(|(_, r, _)| r.clone())
            .collect();
        if let Some(want_dkim) = expect["dkim"].as_array() {
            let got_dkim: Vec<String> = if want_dkim.is_empty() && dkim == ["none"] {
                vec![]
            } else {
                dkim
            };
            if got_dkim.len() != want_dkim.len() {
                problems.push(format!("dkim={got_dkim:?} (want {want_dkim:?})"));
            } else {
                for (i, w) in want_dkim.iter().enumerate() {
                    let mut ok = words(w);
                    if let Some(a) = alt["dkim"].as_array().and_then(|a| a.get(i)) {
                        ok.extend(words(a));
                    }
                    if !ok.contains(&got_dkim[i]) {
                        problems.push(format!("dkim[{i}]={} (want {ok:?})", got_dkim[i]));
                    }
                }
            }
        }
        if !expect["dmarc_policy"].is_null() {
            let pol = res
                .iter()
                .find(|(m, _, _)| m == "dmarc")
                .and_then(|(_, _, rest)| {
                    rest.split("policy.dmarc=")
                        .nth(1)
                        .map(|p| p.split_whitespace().next().unwrap_or("").to_string())
                })
                .unwrap_or_else(|| "absent".to_string());
            let mut ok = words(&expect["dmarc_policy"]);
            ok.extend(words(&alt["dmarc_policy"]));
            let absent_ok =
                pol == "absent" && ok.contains(&"none".to_string()) && expect["dmarc"] == "none";
            if !ok.contains(&pol) && !absent_ok {
                problems.push(format!("dmarc_policy={pol} (want {ok:?})"));
            }
        }
        if expect["forged_ar_removed"].as_bool() == Some(true)
            && out.auth_results().is_some()
            && out.deleted().is_empty()
        {
            problems.push("forged Authentication-Results not removed".into());
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{id}: {}\n    A-R: {:?}",
            problems.join("; "),
            out.auth_results()
        )
    })
}
