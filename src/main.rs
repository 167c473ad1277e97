//! The authmilter binary: every subcommand lives in `authmilter::cli`.

fn main() -> std::process::ExitCode {
    authmilter::cli::main()
}
