//! `pgha`: the operations runbook of a Patroni cluster on the command line. A thin layer over
//! `pgha-admin`: parse, call the library, render its report.

mod args;
mod commands;
mod exporter;
mod output;
mod render;
mod settings;
mod yaml;

use std::process::ExitCode;

use clap::CommandFactory;
use pgha_admin::exit_codes;

fn main() -> ExitCode {
    let cli = match args::Cli::parse_from_env() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit_codes::USAGE as u8 } else { 0 });
        }
    };
    // Generated from the command line's own definition; no configuration, no cluster.
    match &cli.command {
        args::Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut args::Cli::command(), "pgha", &mut script);
            return print_generated(Ok(script));
        }
        args::Command::Man => {
            let mut page = Vec::new();
            let rendered = clap_mangen::Man::new(args::Cli::command()).render(&mut page);
            return print_generated(rendered.map(|()| page));
        }
        _ => {}
    }
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

/// Prints a generated completion script or manual page. (Generated into memory first: the
/// generators panic on a write error, such as a closed pipe.) A closed pipe (`pgha man | head`)
/// is no error.
fn print_generated(generated: std::io::Result<Vec<u8>>) -> ExitCode {
    use std::io::Write;
    let written = generated.and_then(|bytes| {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).and_then(|()| out.flush())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgha: writing to stdout: {e}");
            ExitCode::from(exit_codes::INTERNAL as u8)
        }
    }
}
