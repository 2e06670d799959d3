//! `pgha`: the operations runbook of a Patroni cluster on the command line. A thin layer over
//! `pgha-admin`: parse, call the library, render its report.

mod args;
mod commands;
mod output;
mod render;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use pgha_admin::exit_codes;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit_codes::USAGE as u8 } else { 0 });
        }
    };
    let level = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgha: cannot start the async runtime: {e}");
            return ExitCode::from(exit_codes::INTERNAL as u8);
        }
    };
    let code = runtime.block_on(commands::run(cli));
    ExitCode::from(u8::try_from(code).unwrap_or(exit_codes::INTERNAL as u8))
}
