//! `authmilter config check` and `authmilter config show`.

use crate::config::Config;
use std::{path::Path, process::ExitCode};

/// Validates the file, prints warnings; exit 0 when valid, 2 when not.
pub fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for w in config.warnings() {
                eprintln!("authmilter: warning: {w}");
            }
            println!("{}: configuration OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("authmilter: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints the effective configuration of `path` (or the built-in defaults).
pub fn show(path: Option<&Path>) -> ExitCode {
    let config = match path {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("authmilter: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default_config(),
    };
    print!("{}", config.to_toml());
    ExitCode::SUCCESS
}
