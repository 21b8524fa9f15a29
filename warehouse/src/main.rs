//! `simpul-warehouse`: the national warehouse stand-in. Parses arguments and calls the library.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use simpul_core::password::PasswordHash;
use simpul_process::exit;
use simpul_warehouse::config::WarehouseConfig;
use simpul_warehouse::population::{Population, PopulationConfig, SampleKind};
use simpul_warehouse::serve::{serve_until_signal, FaultOverrides, ServeOptions};

const EXIT_CODES: &str = "Exit codes: 0 success; 1 runtime failure (cannot bind, TLS or I/O error); \
2 invalid arguments or an invalid config file.";

#[derive(Debug, Parser)]
#[command(name = "simpul-warehouse", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Dukcapil web service over HTTPS.
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Print an argon2 hash (PHC string) of a password, for `password_hash` in the config.
    ///
    /// The password is read from the terminal (asked twice, not echoed) or, with --password-stdin, from standard
    /// input; never from the command line, where other users could see it.
    #[command(after_help = EXIT_CODES)]
    HashPassword {
        /// Read the password from standard input (one trailing newline is dropped).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print residents of the population as JSON lines, with every element, so tests and benchmarks use real NIKs.
    #[command(after_help = EXIT_CODES)]
    Sample {
        /// The population's seed (the server's `[population] seed`; `serve --dev` uses 1).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// alive, deceased, duplicate, inactive, or unknown (well-formed NIKs that are not in the population).
        #[arg(long, default_value = "alive")]
        kind: SampleKind,
        /// The population's size (the server's `[population] residents`).
        #[arg(long)]
        residents: Option<u64>,
    },
    /// Validate a config file: exit 0 when it is valid, 2 when it is not.
    #[command(after_help = EXIT_CODES)]
    CheckConfig {
        file: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The config file (see configs/warehouse.toml).
    #[arg(long, conflicts_with = "dev", required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Zero configuration: consumer DEV, user dev, password dev, every method and element, population seed 1.
    #[arg(long)]
    dev: bool,
    /// Listen address [default: the config's, else 127.0.0.1:8100].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where the generated certificate is kept [default: the config's, else ~/.local/state/simpul-warehouse].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Population size [default: the config's, else 10000000].
    #[arg(long)]
    residents: Option<u64>,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Overrides of the config's `[faults]`.
#[derive(Debug, Args)]
struct FaultArgs {
    /// Milliseconds added to every request.
    #[arg(long)]
    fault_latency_ms: Option<u64>,
    /// Fraction of requests answered 502 or 503.
    #[arg(long)]
    fault_error_rate: Option<f64>,
    /// Fraction of requests never answered.
    #[arg(long)]
    fault_hang_rate: Option<f64>,
    /// Fraction of requests whose connection is reset.
    #[arg(long)]
    fault_reset_rate: Option<f64>,
    /// Seed of the fault sequence.
    #[arg(long)]
    fault_seed: Option<u64>,
}

/// An error that is the user's (exit 2) rather than the system's (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Invalid(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    simpul_process::logging::init("info");
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::HashPassword { password_stdin } => hash_password(password_stdin),
        Command::Sample { seed, count, kind, residents } => sample(seed, count, kind, residents),
        Command::CheckConfig { file, json } => return check_config(&file, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simpul-warehouse: {e:#}");
            if e.downcast_ref::<Invalid>().is_some() {
                ExitCode::from(exit::INVALID)
            } else {
                ExitCode::from(exit::NOT_STARTED)
            }
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let f = args.faults;
    let options = ServeOptions {
        config: args.config,
        listen: args.listen,
        state_dir: args.state_dir,
        residents: args.residents,
        faults: FaultOverrides {
            latency_ms: f.fault_latency_ms,
            error_rate: f.fault_error_rate,
            hang_rate: f.fault_hang_rate,
            reset_rate: f.fault_reset_rate,
            seed: f.fault_seed,
        },
    };
    serve_until_signal(options, std::io::stdout()).map_err(|e| {
        if e.is_invalid() {
            Invalid(e.to_string()).into()
        } else {
            e.into()
        }
    })
}

fn hash_password(from_stdin: bool) -> Result<()> {
    let password = if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the password from stdin")?;
        let trimmed = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        trimmed.to_owned()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!(Invalid(
                "standard input is not a terminal; pass --password-stdin to read the password from it".into()
            ));
        }
        let first = simpul_process::read_hidden_line("Password: ").context("reading the password")?;
        let again = simpul_process::read_hidden_line("Again: ").context("reading the password")?;
        if first != again {
            bail!(Invalid("the two passwords differ".into()));
        }
        first
    };
    if password.is_empty() {
        bail!(Invalid("the password is empty".into()));
    }
    println!("{}", PasswordHash::hash(&password).as_phc());
    Ok(())
}

fn sample(seed: u64, count: usize, kind: SampleKind, residents: Option<u64>) -> Result<()> {
    let mut config = PopulationConfig { seed, ..PopulationConfig::default() };
    if let Some(residents) = residents {
        config.residents = residents;
    }
    let population = Population::new(config).map_err(|e| Invalid(e.to_string()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for sample in population.sample(kind, count, seed) {
        serde_json::to_writer(&mut out, &sample.to_json())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn check_config(file: &std::path::Path, json: bool) -> ExitCode {
    ExitCode::from(simpul_process::config::check("simpul-warehouse", file, json, |file| {
        WarehouseConfig::from_file(file)?.check()
    }))
}
