//! The documentation stays true: the README's configuration table lists
//! exactly the keys `conf/authmilter.toml` documents, and the values that
//! file shows are the built-in defaults.

use authmilter::config::Config;
use std::{collections::BTreeSet, path::Path};

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// `section.key` for every key set or shown commented out (`# key = …`) in
/// the configuration file, outside the example tables.
fn conf_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in read("conf/authmilter.toml").lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            section = h.trim_matches(['[', ']']).to_string();
            continue;
        }
        let body = t.strip_prefix('#').map(str::trim).unwrap_or(t);
        let Some((key, value)) = body.split_once('=') else {
            continue;
        };
        // `# fail = { action = … }`: an example rule of the action table.
        if t.starts_with('#') && value.trim_start().starts_with('{') {
            continue;
        }
        let key = key.trim();
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
        // Commented lines of prose ("# a = b means …") have spaces or capitals.
        if plain && !section.starts_with("policy.rules") && section != "policy.overrides" {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

/// The keys named in the first column of the README's configuration table;
/// an undotted name continues the section of the dotted one before it.
fn readme_keys() -> BTreeSet<String> {
    let readme = read("README.md");
    let table = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut keys = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        let mut section = String::new();
        for name in first.split('`').skip(1).step_by(2) {
            match name.rsplit_once('.') {
                Some((s, _)) => {
                    section = s.to_string();
                    keys.insert(name.to_string());
                }
                None => {
                    keys.insert(format!("{section}.{name}"));
                }
            }
        }
    }
    keys
}

#[test]
fn readme_table_lists_every_documented_key() {
    let conf = conf_keys();
    let readme: BTreeSet<String> = readme_keys()
        .into_iter()
        .filter(|k| {
            !k.starts_with("policy.rules")
                && !k.contains("[[")
                && !k.starts_with("policy.overrides")
        })
        .collect();
    let missing: Vec<_> = conf.difference(&readme).collect();
    let extra: Vec<_> = readme.difference(&conf).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README table and conf/authmilter.toml differ:\n  not in the README: {missing:?}\n  not in conf/authmilter.toml: {extra:?}"
    );
    assert!(conf.len() > 40, "{conf:?}");
}

#[test]
fn shipped_file_shows_the_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/authmilter.toml");
    let shipped = Config::load(&path).unwrap().to_toml();
    let defaults = Config::default_config().to_toml();
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&shipped), body(&defaults));
}
