//! `simpul-gateway`: runs the appliance, and is the admin's CLI to the running one. Parses arguments and calls the
//! library.

mod audit_command;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;
use simpul_core::device::Name;
use simpul_gateway::cli::{self, exit};
use simpul_gateway::config::{GatewayConfig, Mode};
use simpul_gateway::control::{Client, ClientError, InstitutionFields, Request, UserFields};
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
    },
    /// Validate a config file: exit 0 when it is valid, 2 when it is not.
    CheckConfig {
        file: PathBuf,
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
    },
    /// What the running gateway is doing: its key, listeners, mode and device counts.
    Status {
        #[command(flatten)]
        place: Place,
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
    /// Every admin change (who, what, when), oldest first.
    AdminLog {
        #[command(flatten)]
        place: Place,
        /// Only changes after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum InstitutionCommand {
    /// Register an institution and its agreement. The upstream password is read from standard input or the terminal.
    Add {
        #[arg(long)]
        id: Name,
        #[command(flatten)]
        fields: InstitutionArgs,
        #[arg(long)]
        json: bool,
    },
    /// Change any of an institution's fields (a renewed agreement, more elements, another quota…).
    Update {
        id: Name,
        #[command(flatten)]
        fields: InstitutionArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop every request of the institution's users at once, and drop its devices at the firewall.
    Suspend {
        id: Name,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    Resume {
        id: Name,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: Name,
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
    #[arg(long)]
    upstream_user: Option<String>,
    /// Read the upstream password from standard input (else it is asked on the terminal; `update` asks only with
    /// this flag).
    #[arg(long)]
    upstream_password_stdin: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dialect {
    Coded,
    Legacy,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Register a user as the SOP asks: office region, NIK, NIP, name, position, application user id. The password is
    /// read from standard input or the terminal.
    Add {
        #[arg(long)]
        id: Name,
        #[command(flatten)]
        fields: UserArgs,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    Update {
        id: Name,
        #[command(flatten)]
        fields: UserArgs,
        #[arg(long)]
        json: bool,
    },
    /// Refuse the user's requests (code 17) until enabled again.
    Disable {
        id: Name,
        #[arg(long)]
        json: bool,
    },
    Enable {
        id: Name,
        #[arg(long)]
        json: bool,
    },
    /// Set a new password, read from standard input or the terminal.
    Passwd {
        id: Name,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        /// Only this institution's users.
        #[arg(long)]
        institution: Option<Name>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: Name,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct UserArgs {
    #[arg(long)]
    institution: Option<Name>,
    #[arg(long)]
    name: Option<String>,
    /// The user's own NIK.
    #[arg(long)]
    nik: Option<String>,
    /// Employee number (NIP), 18 digits.
    #[arg(long)]
    nip: Option<String>,
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
    /// The config file (see configs/gateway.toml) [default: built-in defaults].
    #[arg(long, global = true, env = "SIMPUL_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// The state directory [default: the config's, else /var/lib/simpul-gateway as root, else
    /// ~/.local/state/simpul-gateway].
    #[arg(long, global = true, env = "SIMPUL_GATEWAY_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

impl Place {
    fn config(&self) -> Result<GatewayConfig, u8> {
        let mut config = match &self.config {
            Some(path) => GatewayConfig::load(path).map_err(|e| fail(exit::INVALID, e))?,
            None => GatewayConfig::default(),
        };
        if let Some(dir) = &self.state_dir {
            config.state_dir = Some(dir.clone());
        }
        Ok(config)
    }

    async fn client(&self) -> Result<Client, u8> {
        let socket = self.config()?.state_dir().join(CONTROL_SOCKET);
        Client::connect(&socket).await.map_err(|e| fail(cli::exit_code(&e), e))
    }
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Add a device for a user; allocates its tunnel address and, unless --public-key is given, its key pair.
    Add {
        #[arg(long)]
        name: Name,
        #[arg(long)]
        user: Name,
        /// A tunnel address of your choosing [default: the lowest free one].
        #[arg(long)]
        address: Option<Ipv4Addr>,
        /// The device's own WireGuard public key; the gateway then never holds its private key.
        #[arg(long)]
        public_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List every device, revoked ones included.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One device, with its tunnel's live state.
    Show {
        name: Name,
        #[arg(long)]
        json: bool,
    },
    /// Drop everything the device sends (nftables in TUN mode) until it is resumed; its tunnel stays up.
    Suspend {
        name: Name,
        #[arg(long)]
        json: bool,
    },
    Resume {
        name: Name,
        #[arg(long)]
        json: bool,
    },
    /// Remove the device's key from the tunnel for good; the record stays for the audit log.
    Revoke {
        name: Name,
        #[arg(long)]
        json: bool,
    },
    /// The device's tunnel config for a stock WireGuard client: a wg-quick file, or a QR code for the mobile apps.
    Export {
        name: Name,
        #[arg(long, value_enum, default_value_t = Format::WgQuick)]
        format: Format,
        /// The host:port laptops dial [default: the config's tunnel.endpoint].
        #[arg(long)]
        endpoint: Option<String>,
        /// Where the file goes (mode 0600: it holds the device's private key): the wg-quick file [default: standard
        /// output], or with --format qr the PNG [default: NAME.png; the code is also drawn on standard output].
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    WgQuick,
    Qr,
}

fn fail(code: u8, error: impl std::fmt::Display) -> u8 {
    eprintln!("simpul-gateway: {error}");
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

fn print_json(value: &Value) {
    out(format!("{}\n", serde_json::to_string_pretty(value).expect("JSON prints")));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    simpul_process::logging::init("simpul_gateway=info");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    ExitCode::from(runtime.block_on(command(cli.command)).unwrap_or_else(|code| code))
}

async fn command(command: Command) -> Result<u8, u8> {
    match command {
        Command::Run { place, userspace } => {
            let mut config = place.config()?;
            if userspace {
                config.tunnel.mode = Mode::Userspace;
            }
            let shutdown = simpul_process::shutdown_signal().map_err(|e| fail(1, format!("signal handlers: {e}")))?;
            run::run(config, std::sync::Arc::new(simpul_core::clock::SystemClock), announce, shutdown)
                .await
                .map_err(|e| fail(1, e))?;
            Ok(exit::OK)
        }
        Command::CheckConfig { file, json } => Ok(check_config(&file, json)),
        Command::Nft { place, .. } => {
            let config = place.config()?;
            out(format!("{}\n", Firewall::new(run::firewall_plan(&config)).print(&[])));
            Ok(exit::OK)
        }
        Command::Status { place, json } => {
            let status = call(&mut place.client().await?, &Request::Status).await?;
            if json {
                print_json(&status);
            } else {
                for key in ["public_key", "listen", "mode", "address", "api", "endpoint"] {
                    out(format!("{key:<12}{}\n", status[key].as_str().unwrap_or("-")));
                }
                let d = &status["devices"];
                out(format!(
                    "{:<12}{} active, {} suspended, {} revoked\n",
                    "devices", d["active"], d["suspended"], d["revoked"]
                ));
            }
            Ok(exit::OK)
        }
        Command::Device { place, command } => device(&mut place.client().await?, command).await,
        Command::Institution { place, command } => institution(&mut place.client().await?, command).await,
        Command::User { place, command } => user(&mut place.client().await?, command).await,
        Command::Audit { place, command } => {
            let config = place.config()?;
            let mut client = match &command {
                audit_command::AuditCommand::CheckProof { .. }
                | audit_command::AuditCommand::CheckConsistency { .. } => None,
                // A gateway that is not running (or refused to start over its log) is verified from its database.
                audit_command::AuditCommand::Verify { .. } => place.client().await.ok(),
                _ => Some(place.client().await?),
            };
            audit_command::audit(client.as_mut(), &config, command).await
        }
        Command::AdminLog { place, after, limit, json } => {
            let log = call(&mut place.client().await?, &Request::AdminLog { after, limit }).await?;
            if json {
                print_json(&log);
            } else {
                out(cli::admin_log_lines(log.as_array().map(Vec::as_slice).unwrap_or_default()));
            }
            Ok(exit::OK)
        }
    }
}

/// Prints a record as JSON, or as `key  value` lines for people.
fn show(value: &Value, json: bool) {
    if json {
        print_json(value);
    } else {
        out(cli::record_lines(value));
    }
}

async fn institution(client: &mut Client, command: InstitutionCommand) -> Result<u8, u8> {
    let (request, json) = match command {
        InstitutionCommand::Add { id, fields, json } => {
            (Request::InstitutionAdd { id, fields: fields.fields(true)? }, json)
        }
        InstitutionCommand::Update { id, fields, json } => {
            (Request::InstitutionUpdate { id, fields: fields.fields(false)? }, json)
        }
        InstitutionCommand::Suspend { id, reason, json } => (Request::InstitutionSuspend { id, reason }, json),
        InstitutionCommand::Resume { id, json } => (Request::InstitutionResume { id }, json),
        InstitutionCommand::Show { id, json } => (Request::InstitutionShow { id }, json),
        InstitutionCommand::List { json } => {
            let columns = [
                ("ID", "/id"),
                ("STATE", "/state"),
                ("AGREEMENT", "/agreement/number"),
                ("UNTIL", "/agreement/valid_until"),
                ("QUOTA", "/agreement/daily_quota"),
                ("NAME", "/name"),
            ];
            return list(client, &Request::InstitutionList, json, &columns).await;
        }
    };
    show(&call(client, &request).await?, json);
    Ok(exit::OK)
}

async fn user(client: &mut Client, command: UserCommand) -> Result<u8, u8> {
    let (request, json) = match command {
        UserCommand::Add { id, fields, password_stdin, json } => {
            let password = cli::read_secret("password", password_stdin).map_err(|e| fail(exit::INVALID, e))?;
            (Request::UserAdd { id, fields: fields.fields(), password }, json)
        }
        UserCommand::Update { id, fields, json } => (Request::UserUpdate { id, fields: fields.fields() }, json),
        UserCommand::Disable { id, json } => (Request::UserDisable { id }, json),
        UserCommand::Enable { id, json } => (Request::UserEnable { id }, json),
        UserCommand::Passwd { id, password_stdin, json } => {
            let password = cli::read_secret("password", password_stdin).map_err(|e| fail(exit::INVALID, e))?;
            (Request::UserPasswd { id, password }, json)
        }
        UserCommand::Show { id, json } => (Request::UserShow { id }, json),
        UserCommand::List { institution, json } => {
            let columns = [
                ("ID", "/id"),
                ("INSTITUTION", "/institution"),
                ("STATUS", "/status"),
                ("QUOTA", "/daily_quota"),
                ("NAME", "/name"),
            ];
            return list(client, &Request::UserList { institution }, json, &columns).await;
        }
    };
    show(&call(client, &request).await?, json);
    Ok(exit::OK)
}

/// Prints a list as JSON, or as a table of `columns` (header, JSON pointer) for people.
async fn list(client: &mut Client, request: &Request, json: bool, columns: &[(&str, &str)]) -> Result<u8, u8> {
    let list = call(client, request).await?;
    if json {
        print_json(&list);
    } else {
        out(cli::table(list.as_array().map(Vec::as_slice).unwrap_or_default(), columns));
    }
    Ok(exit::OK)
}

async fn call(client: &mut Client, request: &Request) -> Result<Value, u8> {
    client.call(request).await.map_err(|e: ClientError| fail(cli::exit_code(&e), e))
}

async fn device(client: &mut Client, command: DeviceCommand) -> Result<u8, u8> {
    let (request, json) = match command {
        DeviceCommand::Add { name, user, address, public_key, json } => {
            (Request::DeviceAdd { name, user, address, public_key }, json)
        }
        DeviceCommand::List { json } => {
            let list = call(client, &Request::DeviceList).await?;
            if json {
                print_json(&list);
            } else {
                out(cli::device_table(list.as_array().map(Vec::as_slice).unwrap_or_default()));
            }
            return Ok(exit::OK);
        }
        DeviceCommand::Show { name, json } => (Request::DeviceShow { name }, json),
        DeviceCommand::Suspend { name, json } => (Request::DeviceSuspend { name }, json),
        DeviceCommand::Resume { name, json } => (Request::DeviceResume { name }, json),
        DeviceCommand::Revoke { name, json } => (Request::DeviceRevoke { name }, json),
        DeviceCommand::Export { name, format, endpoint, output } => {
            let exported = call(client, &Request::DeviceExport { name: name.clone(), endpoint }).await?;
            let text = exported["wg_quick"].as_str().unwrap_or_default();
            return export_to(&name, text, format, output);
        }
    };
    let device = call(client, &request).await?;
    if json {
        print_json(&device);
    } else {
        out(cli::device_details(&device));
    }
    Ok(exit::OK)
}

fn export_to(name: &Name, text: &str, format: Format, output: Option<PathBuf>) -> Result<u8, u8> {
    match format {
        Format::WgQuick => match output.as_deref() {
            Some(path) => {
                simpul_files::replace_private(path, text.as_bytes()).map_err(|e| fail(1, e))?;
                eprintln!("wrote {} (mode 0600: it holds the device's private key)", path.display());
            }
            None => out(text),
        },
        Format::Qr => {
            let terminal = export::qr_terminal(text).map_err(|e| fail(1, e))?;
            let image = export::qr_png(text).map_err(|e| fail(1, e))?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.png")));
            simpul_files::replace_private(&path, &image).map_err(|e| fail(1, e))?;
            out(terminal);
            eprintln!("scan it with the WireGuard app; the same code is in {} (mode 0600)", path.display());
        }
    }
    Ok(exit::OK)
}

fn check_config(file: &Path, json: bool) -> u8 {
    simpul_process::config::check("simpul-gateway", file, json, |file| GatewayConfig::load(file)?.check().map(drop))
}

fn announce(ready: &Ready) {
    let guard = match ready.face {
        simpul_gateway::service::Face::Tun => "tun mode, nftables table inet simpul",
        simpul_gateway::service::Face::Userspace => "userspace mode",
    };
    // Tests and scripts wait for the line starting with "ready:"; it comes last.
    let text = format!(
        "gateway public key: {}\nmanagement socket: {}\nready: WireGuard on udp {}, API http://{}/ inside the tunnel \
         ({guard})\n",
        ready.public_key,
        ready.control_socket.display(),
        ready.listen,
        ready.api
    );
    // Whoever started the gateway may have stopped reading; that must not stop the gateway.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
