//! `vigil`: the binary. It parses flags, builds the parts and wires them;
//! the work happens in the crates (see ARCHITECTURE.md).

mod commands;
mod generate;
mod load;
mod notify;
mod pipeline;
mod rules_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc: indexing allocates and frees many small buffers per event, and
/// glibc's allocator spent about a fifth of the server's time doing so.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

/// Security event log aggregator and SIEM-lite for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: ingest API, search API, rules and web UI.
    Serve(Box<serve::ServeArgs>),
    /// Import audit log or Falco files into a data directory (no server needed).
    Ingest(commands::IngestArgs),
    /// Search a data directory from the command line.
    Search(commands::SearchArgs),
    /// Write realistic Kubernetes audit events (an audit log) for load tests.
    Gen(generate::GenArgs),
    /// Send an audit log to a running server and measure ingest, freshness, queries.
    Load(load::LoadArgs),
    /// Check, test and run Sigma rules.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Compile and lint rule directories; exit 1 if any rule has an error.
    Validate(rules_cmd::ValidateArgs),
    /// Run the fixtures (NAME.tests.yaml beside NAME.yml); exit 1 if any fails.
    Test(rules_cmd::TestArgs),
    /// Evaluate rules over a file of newline-delimited events and print one
    /// JSON line per match: {"rule_id": "...", "line": N}.
    Eval(rules_cmd::EvalArgs),
    /// Run rules over the history stored in a data directory and print, per
    /// rule, how many alerts it would raise and on which entities (none is created).
    Backtest(rules_cmd::BacktestArgs),
}

/// Where rules come from, shared by the commands that load them.
#[derive(Debug, Clone, Args)]
pub struct RuleArgs {
    /// A directory (searched recursively for *.yml, *.yaml) or file of Sigma rules; repeatable.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,vigil=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Ingest(args) => commands::ingest(args),
        Command::Search(args) => commands::search(args),
        Command::Gen(args) => generate::run(args),
        Command::Load(args) => load::run(args),
        Command::Rules(RulesCommand::Validate(args)) => rules_cmd::validate(args),
        Command::Rules(RulesCommand::Test(args)) => rules_cmd::test(args),
        Command::Rules(RulesCommand::Eval(args)) => rules_cmd::eval(args),
        Command::Rules(RulesCommand::Backtest(args)) => rules_cmd::backtest(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vigil: {error:#}");
            ExitCode::FAILURE
        }
    }
}
