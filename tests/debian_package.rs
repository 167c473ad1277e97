//! The Debian packaging (Cargo.toml [package.metadata.deb], debian/, the
//! systemd unit) stays consistent with the crate and its default configuration.

use authmilter::config::Config;
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn changelog_names_the_crate_version() {
    let changelog = read("debian/changelog");
    let first = changelog.lines().next().unwrap_or_default();
    let want = format!("authmilter ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&want),
        "debian/changelog starts with {first:?}: add an entry for {want:?} (cargo deb uses the crate version)"
    );
}

/// The unit starts the daemon as `authmilter`, so the packaged configuration
/// must not ask for a user switch (an unprivileged process cannot switch).
#[test]
fn packaged_config_runs_as_the_units_user() {
    let unit = read("conf/authmilter.service");
    assert!(unit.lines().any(|l| l == "User=authmilter"), "{unit}");
    assert!(unit.lines().any(|l| l == "Type=notify"), "{unit}");
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/authmilter.toml");
    let config = Config::load(&conf).expect("the packaged configuration is valid");
    assert_eq!(config.milter.user, None);
    assert_eq!(config.milter.group, None);
    for line in unit.lines().filter(|l| l.starts_with("ExecStart")) {
        assert!(
            line.contains("/usr/bin/authmilter ")
                && line.ends_with(" -c /etc/authmilter/authmilter.toml"),
            "{line}"
        );
    }
}
