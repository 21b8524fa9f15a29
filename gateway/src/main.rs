//! `simpul-gateway`: runs the appliance, and is the admin's CLI to the running one. Parses arguments and calls the
//! library.

mod audit_command;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};
use simpul_core::device::Name;
use simpul_gateway::admin::cache::{CacheOff, CacheOn, CachePurge, CacheRekey, CacheStats, PurgeTarget};
use simpul_gateway::admin::device::{
    DeviceAdd, DeviceExport, DeviceList, DeviceResume, DeviceRevoke, DeviceShow, DeviceSuspend,
};
use simpul_gateway::admin::gateway::{AdminLog, Status};
use simpul_gateway::admin::institution::{
    InstitutionAdd, InstitutionFields, InstitutionList, InstitutionResume, InstitutionShow, InstitutionSuspend,
    InstitutionUpdate,
};
use simpul_gateway::admin::user::{
    UserAdd, UserDisable, UserEnable, UserFields, UserList, UserPasswd, UserShow, UserUpdate,
};
use simpul_gateway::admin::Operation;
use simpul_gateway::cli::{self, exit};
use simpul_gateway::config::{GatewayConfig, Mode};
use simpul_gateway::control::{Client, ClientError};
use simpul_gateway::export;
use simpul_gateway::firewall::Firewall;
use simpul_gateway::run::{self, Ready};
use simpul_gateway::state_dir::CONTROL_SOCKET;

#[derive(Debug, Parser)]
#[command(name = "simpul-gateway", version, about, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: WireGuard, the API on the tunnel address, and the management socket.
    Run {
        #[command(flatten)]
        place: Place,
        /// Use the userspace data plane (no TUN device, no nftables, no root needed).
        #[arg(long)]
        userspace: bool,
        /// Announce readiness as one JSON line (public key, listen address, API, socket, mode) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file: exit 0 when it is valid, 2 when it is not.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Show the nftables ruleset (JSON, as applied with `nft -j -f`) that TUN mode installs.
    Nft {
        #[command(flatten)]
        place: Place,
        /// Print the ruleset instead of doing anything.
        #[arg(long, required = true)]
        print_ruleset: bool,
        /// Print the ruleset as one compact JSON value (it is JSON either way; without this, indented).
        #[arg(long)]
        json: bool,
    },
    /// What the running gateway is doing: its key, listeners, mode, device counts, whether the upstream answers, and
    /// the audit log's size and newest checkpoint.
    Status {
        #[command(flatten)]
        place: Place,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Manage operator devices (each holds one WireGuard tunnel); changes apply live.
    Device {
        #[command(flatten)]
        place: Place,
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Manage institutions (lembaga pengguna) and their agreements (PKS); changes apply to the next request.
    Institution {
        #[command(flatten)]
        place: Place,
        #[command(subcommand)]
        command: InstitutionCommand,
    },
    /// Manage the users the SOP registers for each institution.
    User {
        #[command(flatten)]
        place: Place,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The audit log: verify it, prove records to auditors, search it, a person's trail, export, semester report.
    Audit {
        #[command(flatten)]
        place: Place,
        #[command(subcommand)]
        command: audit_command::AuditCommand,
    },
    /// The warehouse cache: its figures, a person's erasure, a new key, on and off (changes apply to the next
    /// request and are audited).
    Cache {
        #[command(flatten)]
        place: Place,
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Every admin change (who, what, when), oldest first.
    AdminLog {
        #[command(flatten)]
        place: Place,
        /// Only changes after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many changes (at most 10000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Entries, bytes against `[cache] max_bytes`, and hit ratios since the start and today, in all and per
    /// institution.
    Stats {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Remove every cached answer about a person (every answer whose request or content names the NIK or KK number,
    /// a family's answer and a child's included), every answer fetched for an institution's requests, or all, then
    /// replace `cache.key` as `rekey` does. Audited; the NIK or KK number is recorded as the audit log records
    /// people, so `audit subject --nik` finds the erasure.
    Purge {
        #[command(flatten)]
        target: PurgeArgs,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Replace `cache.key`: entries are re-sealed under the new key (or dropped when they do not open) while requests
    /// go on being answered.
    Rekey {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Answer repeat requests from the cache (kept across restarts; overrides `[cache] enabled`).
    On {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Send every request to the warehouse (kept across restarts; overrides `[cache] enabled`).
    Off {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct PurgeArgs {
    /// A resident's NIK; `-` reads it from standard input, so that it is in neither the shell's history nor the
    /// process list.
    #[arg(long)]
    nik: Option<String>,
    /// A family card (KK) number; `-` reads it from standard input.
    #[arg(long)]
    kk: Option<String>,
    /// An institution: the answers fetched for its requests.
    #[arg(long)]
    institution: Option<Name>,
    /// Everything.
    #[arg(long)]
    all: bool,
}

impl PurgeArgs {
    fn target(self) -> Result<PurgeTarget, String> {
        Ok(match (self.nik, self.kk, self.institution) {
            (Some(nik), _, _) => PurgeTarget::Nik(cli::read_value("NIK", nik)?),
            (_, Some(kk), _) => PurgeTarget::Kk(cli::read_value("KK number", kk)?),
            (_, _, Some(institution)) => PurgeTarget::Institution(institution),
            (None, None, None) => PurgeTarget::All,
        })
    }
}

#[derive(Debug, Subcommand)]
enum InstitutionCommand {
    /// Register an institution and its agreement. The upstream password is read from standard input or the terminal.
    Add {
        /// The institution's short handle (`DINSOS-3374`).
        #[arg(long)]
        id: Name,
        #[command(flatten)]
        fields: InstitutionArgs,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Change any of an institution's fields (a renewed agreement, more elements, another quota…).
    Update {
        /// The institution to change.
        id: Name,
        #[command(flatten)]
        fields: InstitutionArgs,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Stop every request of the institution's users at once, and drop its devices at the firewall.
    Suspend {
        /// The institution to suspend.
        id: Name,
        /// Why, for the admin log (required).
        #[arg(long)]
        reason: String,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Serve the institution's users again (within its agreement's period) and stop dropping its devices.
    Resume {
        /// The institution to resume.
        id: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Every institution, with its state today (active, suspended, not_yet_valid, expired).
    List {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// One institution and its agreement (the upstream password is never shown).
    Show {
        /// The institution to show.
        id: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct InstitutionArgs {
    /// The institution's full name.
    #[arg(long)]
    name: Option<String>,
    /// Its office's region code, down to the district at most (33, 33.74, 33.74.01).
    #[arg(long)]
    region: Option<simpul_core::institution::RegionCode>,
    /// The agreement (PKS) number.
    #[arg(long = "agreement")]
    agreement_number: Option<String>,
    /// First day the agreement is in force (YYYY-MM-DD).
    #[arg(long)]
    valid_from: Option<chrono::NaiveDate>,
    /// Last day the agreement is in force (YYYY-MM-DD).
    #[arg(long)]
    valid_until: Option<chrono::NaiveDate>,
    /// Granted methods, comma-separated (CALL_NIK,CALL_NIK_GET_KK,CALL_VERIFY_BY_ELEMEN,CALL_AGREGAT).
    #[arg(long, value_parser = cli::parse_methods)]
    methods: Option<std::collections::BTreeSet<simpul_core::wire::method::Method>>,
    /// Granted data elements, comma-separated (NIK,NAMA_LGKP,…) or `all`.
    #[arg(long, value_parser = cli::parse_elements)]
    elements: Option<simpul_core::element::ElementSet>,
    /// Requests a day for the whole institution.
    #[arg(long)]
    daily_quota: Option<u64>,
    /// Local hours requests are served (HH:MM-HH:MM), or `none`.
    #[arg(long)]
    access_hours: Option<cli::OrNone<simpul_core::institution::AccessHours>>,
    /// How refusals are written for its applications: coded (RESPONSE_CODE) or legacy (RESPON).
    #[arg(long)]
    dialect: Option<Dialect>,
    /// The institution's applications' own names for methods in the URL's last segment, e.g.
    /// `cek_pasien=CALL_NIK,verifikasi=CALL_VERIFY_BY_ELEMEN` (replaces the previous names; `--method-names ""` clears).
    #[arg(long)]
    method_names: Option<simpul_core::wire::route::MethodMap>,
    /// Other names the institution's applications put in the URL for their consumer, besides the upstream consumer
    /// id: central ids or REGION/USERSET for the regional route, e.g. `DINSOS_3374,33-74/dinsos_3374` (replaces the
    /// previous ones; `--consumer-aliases ""` clears). A URL naming any other consumer is refused (404).
    #[arg(long)]
    consumer_aliases: Option<simpul_core::wire::route::ConsumerAliases>,
    /// The consumer id the ministry registered for this agreement upstream.
    #[arg(long)]
    upstream_consumer: Option<String>,
    /// The user id the ministry registered for this agreement upstream.
    #[arg(long)]
    upstream_user: Option<String>,
    /// Read the upstream password from standard input (else it is asked on the terminal; `update` asks only with
    /// this flag).
    #[arg(long)]
    upstream_password_stdin: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dialect {
    /// `RESPONSE_CODE` and `RESPONSE_DESC`.
    Coded,
    /// `RESPON`, as older applications expect.
    Legacy,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Register a user as the SOP asks: office region, NIK, NIP, name, position, application user id. The password is
    /// read from standard input or the terminal.
    Add {
        /// The user id the institution's application sends (`user_id`).
        #[arg(long)]
        id: Name,
        #[command(flatten)]
        fields: UserArgs,
        /// Read the password from standard input (else it is asked on the terminal).
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Change any of a user's fields (another position, another institution, a quota…).
    Update {
        /// The user to change.
        id: Name,
        #[command(flatten)]
        fields: UserArgs,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Refuse the user's requests (code 17) until enabled again.
    Disable {
        /// The user to disable.
        id: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Serve the user's requests again.
    Enable {
        /// The user to enable.
        id: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Set a new password, read from standard input or the terminal.
    Passwd {
        /// The user whose password changes.
        id: Name,
        /// Read the password from standard input (else it is asked on the terminal).
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Every user, or one institution's.
    List {
        /// Only this institution's users.
        #[arg(long)]
        institution: Option<Name>,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// One user (the password hash is never shown).
    Show {
        /// The user to show.
        id: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct UserArgs {
    /// The institution the user works for.
    #[arg(long)]
    institution: Option<Name>,
    /// The user's full name.
    #[arg(long)]
    name: Option<String>,
    /// The user's own NIK.
    #[arg(long)]
    nik: Option<String>,
    /// Employee number (NIP), 18 digits.
    #[arg(long)]
    nip: Option<String>,
    /// The user's position (jabatan).
    #[arg(long)]
    position: Option<String>,
    /// The user's office region code, down to the district.
    #[arg(long)]
    office_region: Option<simpul_core::institution::RegionCode>,
    /// The user's id in the institution's own application.
    #[arg(long)]
    application_user: Option<String>,
    /// The user's own requests a day, or `none` for the institution's quota only.
    #[arg(long)]
    daily_quota: Option<cli::OrNone<u64>>,
}

impl UserArgs {
    fn fields(self) -> UserFields {
        UserFields {
            institution: self.institution,
            name: self.name,
            nik: self.nik,
            nip: self.nip,
            position: self.position,
            office_region: self.office_region,
            application_user: self.application_user,
            daily_quota: self.daily_quota.map(|q| q.0),
        }
    }
}

impl InstitutionArgs {
    /// The fields to send; the upstream password is read when `ask` (adding) or when its flag says so.
    fn fields(self, ask: bool) -> Result<InstitutionFields, u8> {
        let upstream_password = if ask || self.upstream_password_stdin {
            Some(
                cli::read_secret("upstream password", self.upstream_password_stdin)
                    .map_err(|e| fail(exit::INVALID, e))?,
            )
        } else {
            None
        };
        Ok(InstitutionFields {
            name: self.name,
            region: self.region,
            agreement_number: self.agreement_number,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            methods: self.methods,
            elements: self.elements,
            daily_quota: self.daily_quota,
            access_hours: self.access_hours.map(|h| h.0),
            dialect: self.dialect.map(|d| match d {
                Dialect::Coded => simpul_core::wire::code::Dialect::Coded,
                Dialect::Legacy => simpul_core::wire::code::Dialect::Legacy,
            }),
            method_names: self.method_names,
            consumer_aliases: self.consumer_aliases,
            upstream_consumer: self.upstream_consumer,
            upstream_user: self.upstream_user,
            upstream_password,
        })
    }
}

/// Where the gateway's config and state are; the admin commands find the management socket from them.
#[derive(Debug, Args)]
struct Place {
    /// The config file (see configs/gateway.toml) [default: /etc/simpul/gateway.toml if it exists, else built-in
    /// defaults].
    #[arg(long, global = true, env = "SIMPUL_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// The state directory [default: the config's, else /var/lib/simpul-gateway as root, else
    /// ~/.local/state/simpul-gateway].
    #[arg(long, global = true, env = "SIMPUL_GATEWAY_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

impl Place {
    fn config(&self) -> Result<GatewayConfig, u8> {
        let mut config = match self.config_file() {
            Some(path) => GatewayConfig::load(&path).map_err(|e| fail(exit::INVALID, e))?,
            None => GatewayConfig::default(),
        };
        if let Some(dir) = &self.state_dir {
            config.state_dir = Some(dir.clone());
        }
        Ok(config)
    }

    /// `--config`, else the default file when it exists; says on standard error which, when it was not given.
    fn config_file(&self) -> Option<PathBuf> {
        if let Some(path) = &self.config {
            return Some(path.clone());
        }
        let default = std::env::var_os(DEFAULT_CONFIG_ENV).map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from);
        if default.exists() {
            eprintln!("simpul-gateway: config {} (the default; --config overrides)", default.display());
            Some(default)
        } else {
            eprintln!("simpul-gateway: no --config and no {}: built-in defaults", default.display());
            None
        }
    }

    async fn client(&self) -> Result<Client, u8> {
        let socket = self.config()?.state_dir().join(CONTROL_SOCKET);
        Client::connect(&socket).await.map_err(|e| fail(cli::exit_code(&e), e))
    }
}

/// The config file the CLI reads when `--config` is not given and the file exists.
const DEFAULT_CONFIG: &str = "/etc/simpul/gateway.toml";
/// Moves the default config file elsewhere, for tests that must not write to /etc.
const DEFAULT_CONFIG_ENV: &str = "SIMPUL_GATEWAY_DEFAULT_CONFIG";

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Add a device for a user; allocates its tunnel address and, unless --public-key is given, its key pair.
    Add {
        /// The device's name (`laptop-1`).
        #[arg(long)]
        name: Name,
        /// The user the device belongs to.
        #[arg(long)]
        user: Name,
        /// A tunnel address of your choosing [default: the lowest free one].
        #[arg(long)]
        address: Option<Ipv4Addr>,
        /// The device's own WireGuard public key; the gateway then never holds its private key.
        #[arg(long)]
        public_key: Option<String>,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// List every device, revoked ones included.
    List {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// One device, with its tunnel's live state.
    Show {
        /// The device.
        name: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Drop everything the device sends (nftables in TUN mode) until it is resumed; its tunnel stays up.
    Suspend {
        /// The device.
        name: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Let the device's traffic through again.
    Resume {
        /// The device.
        name: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Remove the device's key from the tunnel for good; the record stays for the audit log.
    Revoke {
        /// The device.
        name: Name,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// The device's tunnel config for a stock WireGuard client: a wg-quick file, or a QR code for the mobile apps.
    Export {
        /// The device (its key pair must be the gateway's: no --public-key at add).
        name: Name,
        /// A wg-quick file, or a QR code for the mobile apps.
        #[arg(long, value_enum, default_value_t = Format::WgQuick)]
        format: Format,
        /// The host:port laptops dial [default: the config's tunnel.endpoint].
        #[arg(long)]
        endpoint: Option<String>,
        /// Where the file goes (mode 0600: it holds the device's private key): the wg-quick file [default: standard
        /// output], or with --format qr the PNG [default: NAME.png; the code is also drawn on standard output].
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print JSON: `{"name", "wg_quick"}` (it holds the private key), or with --output where the file went.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A wg-quick configuration file.
    WgQuick,
    /// A QR code of the same file, as a PNG and drawn on the terminal.
    Qr,
}

/// Whether `--json` is on the command line: then errors, too, are JSON.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reports an error and gives its exit code: one line on standard error, or with `--json` one JSON object on standard
/// output, `{"error": "…", "exit": N}`.
fn fail(code: u8, error: impl std::fmt::Display) -> u8 {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        out(format!("{}\n", json!({ "error": error.to_string(), "exit": code })));
    } else {
        eprintln!("simpul-gateway: {error}");
    }
    code
}

/// Writes to standard output. A reader that went away (`| head`) ends the command quietly, as Unix tools do; any
/// other failure to write is exit 5.
fn out(text: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_ref().as_bytes()).and_then(|()| stdout.flush()) {
        std::process::exit(if e.kind() == std::io::ErrorKind::BrokenPipe { i32::from(exit::OK) } else { 5 });
    }
}

fn print_json(value: &impl Serialize) {
    out(format!("{}\n", serde_json::to_string_pretty(value).expect("JSON prints")));
}

fn main() -> ExitCode {
    JSON.store(std::env::args().any(|a| a == "--json"), std::sync::atomic::Ordering::Relaxed);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are not errors; usage errors are JSON too when asked for.
        Err(e) if !e.use_stderr() || !JSON.load(std::sync::atomic::Ordering::Relaxed) => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            return ExitCode::from(fail(exit::INVALID, first));
        }
    };
    simpul_process::logging::init("simpul_gateway=info");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    ExitCode::from(runtime.block_on(command(cli.command)).unwrap_or_else(|code| code))
}

async fn command(command: Command) -> Result<u8, u8> {
    match command {
        Command::Run { place, userspace, json } => {
            let mut config = place.config()?;
            if userspace {
                config.tunnel.mode = Mode::Userspace;
            }
            let shutdown = simpul_process::shutdown_signal()
                .map_err(|e| fail(exit::NOT_STARTED, format!("signal handlers: {e}")))?;
            let announce = move |ready: &Ready| announce(ready, json);
            run::run(config, std::sync::Arc::new(simpul_core::clock::SystemClock), announce, shutdown)
                .await
                .map_err(|e| fail(exit::NOT_STARTED, e))?;
            Ok(exit::OK)
        }
        Command::CheckConfig { file, json } => Ok(check_config(&file, json)),
        Command::Nft { place, json, .. } => {
            let config = place.config()?;
            let ruleset = Firewall::new(run::firewall_plan(&config)).print(&[]);
            if json {
                let value: Value = serde_json::from_str(&ruleset).map_err(|e| fail(exit::INTERNAL, e))?;
                out(format!("{value}\n"));
            } else {
                out(format!("{ruleset}\n"));
            }
            Ok(exit::OK)
        }
        Command::Status { place, json } => {
            let status = call(&mut place.client().await?, Status {}).await?;
            if json {
                print_json(&status);
            } else {
                out(cli::status_lines(&status));
            }
            Ok(exit::OK)
        }
        Command::Device { place, command } => device(&mut place.client().await?, command).await,
        Command::Institution { place, command } => institution(&mut place.client().await?, command).await,
        Command::User { place, command } => user(&mut place.client().await?, command).await,
        Command::Audit { place, command } => {
            use audit_command::AuditCommand;
            let config = place.config()?;
            match command {
                AuditCommand::CheckProof { file, key, json } => audit_command::check_proof(&file, key.as_deref(), json),
                AuditCommand::CheckConsistency { file, key, json } => {
                    audit_command::check_consistency(&file, key.as_deref(), json)
                }
                AuditCommand::Verify { from_checkpoint, json } => {
                    // A gateway that is not running (or refused to start over its log) is verified from its database.
                    let socket = config.state_dir().join(CONTROL_SOCKET);
                    let mut client = Client::connect(&socket).await.ok();
                    audit_command::verify(client.as_mut(), &config, from_checkpoint, json).await
                }
                AuditCommand::Gateway(command) => {
                    audit_command::audit(&mut place.client().await?, &config, command).await
                }
            }
        }
        Command::Cache { place, command } => cache(&mut place.client().await?, command).await,
        Command::AdminLog { place, after, limit, json } => {
            let log = call(&mut place.client().await?, AdminLog { after, limit }).await?;
            if json {
                print_json(&log);
            } else {
                out(cli::admin_log_lines(&log));
            }
            Ok(exit::OK)
        }
    }
}

/// Prints an answer as JSON, or as `key  value` lines for people.
fn show(answer: &impl Serialize, json: bool) {
    if json {
        print_json(answer);
    } else {
        out(cli::record_lines(&serde_json::to_value(answer).expect("an answer serializes")));
    }
}

async fn cache(client: &mut Client, command: CacheCommand) -> Result<u8, u8> {
    let (answer, json) = match command {
        CacheCommand::Stats { json } => {
            let stats = call(client, CacheStats {}).await?;
            if json {
                print_json(&stats);
            } else {
                out(cli::cache_stats_lines(&stats));
            }
            return Ok(exit::OK);
        }
        CacheCommand::On { json } | CacheCommand::Off { json } => {
            let status = match command {
                CacheCommand::On { .. } => call(client, CacheOn {}).await?,
                _ => call(client, CacheOff {}).await?,
            };
            if json {
                print_json(&status);
            } else {
                out(format!("cache  {}\n", cli::cache_line(&status)));
            }
            return Ok(exit::OK);
        }
        CacheCommand::Purge { target, json } => {
            let target = target.target().map_err(|e| fail(exit::INVALID, e))?;
            (json!(call(client, CachePurge { target }).await?), json)
        }
        CacheCommand::Rekey { json } => (json!(call(client, CacheRekey {}).await?), json),
    };
    show(&answer, json);
    Ok(exit::OK)
}

async fn institution(client: &mut Client, command: InstitutionCommand) -> Result<u8, u8> {
    let (answer, json) = match command {
        InstitutionCommand::Add { id, fields, json } => {
            (call(client, InstitutionAdd { id, fields: fields.fields(true)? }).await?, json)
        }
        InstitutionCommand::Update { id, fields, json } => {
            (call(client, InstitutionUpdate { id, fields: fields.fields(false)? }).await?, json)
        }
        InstitutionCommand::Suspend { id, reason, json } => {
            (call(client, InstitutionSuspend { id, reason }).await?, json)
        }
        InstitutionCommand::Resume { id, json } => (call(client, InstitutionResume { id }).await?, json),
        InstitutionCommand::Show { id, json } => (call(client, InstitutionShow { id }).await?, json),
        InstitutionCommand::List { json } => {
            let columns = [
                ("ID", "/id"),
                ("STATE", "/state"),
                ("AGREEMENT", "/agreement/number"),
                ("UNTIL", "/agreement/valid_until"),
                ("QUOTA", "/agreement/daily_quota"),
                ("NAME", "/name"),
            ];
            return list(client, InstitutionList {}, json, &columns).await;
        }
    };
    show(&answer, json);
    Ok(exit::OK)
}

async fn user(client: &mut Client, command: UserCommand) -> Result<u8, u8> {
    let (answer, json) = match command {
        UserCommand::Add { id, fields, password_stdin, json } => {
            let password = cli::read_secret("password", password_stdin).map_err(|e| fail(exit::INVALID, e))?;
            (call(client, UserAdd { id, fields: fields.fields(), password }).await?, json)
        }
        UserCommand::Update { id, fields, json } => {
            (call(client, UserUpdate { id, fields: fields.fields() }).await?, json)
        }
        UserCommand::Disable { id, json } => (call(client, UserDisable { id }).await?, json),
        UserCommand::Enable { id, json } => (call(client, UserEnable { id }).await?, json),
        UserCommand::Passwd { id, password_stdin, json } => {
            let password = cli::read_secret("password", password_stdin).map_err(|e| fail(exit::INVALID, e))?;
            (call(client, UserPasswd { id, password }).await?, json)
        }
        UserCommand::Show { id, json } => (call(client, UserShow { id }).await?, json),
        UserCommand::List { institution, json } => {
            let columns = [
                ("ID", "/id"),
                ("INSTITUTION", "/institution"),
                ("STATUS", "/status"),
                ("QUOTA", "/daily_quota"),
                ("NAME", "/name"),
            ];
            return list(client, UserList { institution }, json, &columns).await;
        }
    };
    show(&answer, json);
    Ok(exit::OK)
}

/// Prints a list as JSON, or as a table of `columns` (header, JSON pointer) for people.
async fn list<O: Operation>(client: &mut Client, op: O, json: bool, columns: &[(&str, &str)]) -> Result<u8, u8>
where
    O::Answer: IntoIterator,
    <O::Answer as IntoIterator>::Item: Serialize,
{
    let list = call(client, op).await?;
    if json {
        print_json(&list);
    } else {
        let rows: Vec<Value> =
            list.into_iter().map(|row| serde_json::to_value(row).expect("an answer serializes")).collect();
        out(cli::table(&rows, columns));
    }
    Ok(exit::OK)
}

async fn call<O: Operation>(client: &mut Client, op: O) -> Result<O::Answer, u8> {
    client.call(op).await.map_err(|e: ClientError| fail(cli::exit_code(&e), e))
}

async fn device(client: &mut Client, command: DeviceCommand) -> Result<u8, u8> {
    let (device, json) = match command {
        DeviceCommand::Add { name, user, address, public_key, json } => {
            (call(client, DeviceAdd { name, user, address, public_key }).await?, json)
        }
        DeviceCommand::List { json } => {
            let list = call(client, DeviceList {}).await?;
            if json {
                print_json(&list);
            } else {
                out(cli::device_table(&list));
            }
            return Ok(exit::OK);
        }
        DeviceCommand::Show { name, json } => (call(client, DeviceShow { name }).await?, json),
        DeviceCommand::Suspend { name, json } => (call(client, DeviceSuspend { name }).await?, json),
        DeviceCommand::Resume { name, json } => (call(client, DeviceResume { name }).await?, json),
        DeviceCommand::Revoke { name, json } => (call(client, DeviceRevoke { name }).await?, json),
        DeviceCommand::Export { name, format, endpoint, output, json } => {
            let exported = call(client, DeviceExport { name: name.clone(), endpoint }).await?;
            return export_to(&name, &exported.wg_quick, format, output, json);
        }
    };
    if json {
        print_json(&device);
    } else {
        out(cli::device_details(&device));
    }
    Ok(exit::OK)
}

fn export_to(name: &Name, text: &str, format: Format, output: Option<PathBuf>, json: bool) -> Result<u8, u8> {
    match format {
        Format::WgQuick => match output.as_deref() {
            Some(path) => {
                simpul_files::replace_private(path, text.as_bytes()).map_err(|e| fail(exit::INTERNAL, e))?;
                if json {
                    print_json(&json!({ "name": name, "format": "wg-quick", "output": path }));
                }
                eprintln!("wrote {} (mode 0600: it holds the device's private key)", path.display());
            }
            None if json => print_json(&json!({ "name": name, "wg_quick": text })),
            None => out(text),
        },
        Format::Qr => {
            let terminal = export::qr_terminal(text).map_err(|e| fail(exit::INTERNAL, e))?;
            let image = export::qr_png(text).map_err(|e| fail(exit::INTERNAL, e))?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.png")));
            simpul_files::replace_private(&path, &image).map_err(|e| fail(exit::INTERNAL, e))?;
            if json {
                print_json(&json!({ "name": name, "format": "qr", "output": path }));
            } else {
                out(terminal);
            }
            eprintln!("scan it with the WireGuard app; the same code is in {} (mode 0600)", path.display());
        }
    }
    Ok(exit::OK)
}

fn check_config(file: &Path, json: bool) -> u8 {
    simpul_process::config::check("simpul-gateway", file, json, |file| GatewayConfig::load(file)?.check().map(drop))
}

fn announce(ready: &Ready, json: bool) {
    let mode = ready.face.as_str();
    let text = if json {
        // One line, so that a script reads it whole as soon as it comes.
        let value = json!({
            "ready": true,
            "public_key": ready.public_key,
            "listen": ready.listen,
            "api": format!("http://{}/", ready.api),
            "control_socket": ready.control_socket,
            "mode": mode,
        });
        format!("{value}\n")
    } else {
        let guard = match ready.face {
            simpul_gateway::service::Face::Tun => "tun mode, nftables table inet simpul",
            simpul_gateway::service::Face::Userspace => "userspace mode",
        };
        // Tests and scripts wait for the line starting with "ready:"; it comes last.
        format!(
            "gateway public key: {}\nmanagement socket: {}\nready: WireGuard on udp {}, API http://{}/ inside the \
             tunnel ({guard})\n",
            ready.public_key,
            ready.control_socket.display(),
            ready.listen,
            ready.api
        )
    };
    // Whoever started the gateway may have stopped reading; that must not stop the gateway.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
