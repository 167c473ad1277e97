//! `authmilter migrate`: the OpenDKIM + OpenDMARC + policyd-spf
//! configuration as an `authmilter.toml`, with what changes (`src/migrate/`).

use crate::migrate::{self, Input, Sources};
use clap::Args;
use std::{path::PathBuf, process::ExitCode};

/// Options of `authmilter migrate`.
#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// OpenDKIM's configuration (verification settings; signing is reported as dropped).
    #[arg(long, value_name = "FILE")]
    pub opendkim: Option<PathBuf>,
    /// OpenDMARC's configuration.
    #[arg(long, value_name = "FILE")]
    pub opendmarc: Option<PathBuf>,
    /// policyd-spf's configuration (postfix-policyd-spf-python).
    #[arg(long = "policyd-spf", value_name = "FILE")]
    pub policyd_spf: Option<PathBuf>,
    /// Postfix's main.cf: the smtpd_milters and check_policy_service entries to replace.
    #[arg(long, value_name = "FILE")]
    pub postfix: Option<PathBuf>,
    /// Write the configuration to FILE (refused if it exists) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

const DEFAULTS: [(&str, &str); 4] = [
    ("opendkim", "/etc/opendkim.conf"),
    ("opendmarc", "/etc/opendmarc.conf"),
    (
        "policyd-spf",
        "/etc/postfix-policyd-spf-python/policyd-spf.conf",
    ),
    ("postfix", "/etc/postfix/main.cf"),
];

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("authmilter migrate: {e}");
    ExitCode::from(2)
}

/// Runs `authmilter migrate`: 0 written, 2 a file could not be read or written.
pub fn main(args: MigrateArgs) -> ExitCode {
    let given = [
        &args.opendkim,
        &args.opendmarc,
        &args.policyd_spf,
        &args.postfix,
    ];
    let none_given = given.iter().all(|g| g.is_none());
    let mut inputs: Vec<Option<Input>> = Vec::new();
    for (g, (_, default)) in given.iter().zip(DEFAULTS) {
        // Without any option, the Debian paths that exist.
        let path = match (g, none_given) {
            (Some(p), _) => p.clone(),
            (None, true) if std::path::Path::new(default).exists() => PathBuf::from(default),
            _ => {
                inputs.push(None);
                continue;
            }
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => inputs.push(Some(Input {
                path: path.display().to_string(),
                text,
            })),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        }
    }
    if inputs.iter().all(|i| i.is_none()) {
        return fail(
            "no configuration found: give --opendkim, --opendmarc, --policyd-spf or --postfix",
        );
    }
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let mut it = inputs.into_iter();
    let src = Sources {
        opendkim: it.next().flatten(),
        opendmarc: it.next().flatten(),
        policyd_spf: it.next().flatten(),
        postfix: it.next().flatten(),
        read: &read,
    };
    let names: Vec<&str> = [
        &src.opendkim,
        &src.opendmarc,
        &src.policyd_spf,
        &src.postfix,
    ]
    .into_iter()
    .flatten()
    .map(|i| i.path.as_str())
    .collect();
    let m = migrate::migrate(&src);
    let text = m.render(&names);
    match &args.write {
        None => print!("{text}"),
        Some(f) => {
            use std::io::Write;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(f);
            match file.and_then(|mut w| w.write_all(text.as_bytes())) {
                Ok(()) => eprintln!(
                    "wrote {}; check it with: authmilter config check -c {}",
                    f.display(),
                    f.display()
                ),
                Err(e) => return fail(format!("{}: {e}", f.display())),
            }
        }
    }
    ExitCode::SUCCESS
}
