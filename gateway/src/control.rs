//! The management socket: a unix socket in the state directory, mode 0600, where the CLI sends one JSON request per
//! line and reads one JSON reply per line. Only the gateway's own user (and root) may connect: the socket's mode keeps
//! others out, and the peer's credentials are checked again on every connection in case the directory's permissions
//! are loosened.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use simpul_core::device::Name;
use simpul_core::element::ElementSet;
use simpul_core::institution::{AccessHours, RegionCode, Secret};
use simpul_core::wire::code::Dialect;
use simpul_core::wire::method::Method;
use simpul_core::wire::route::{ConsumerAliases, MethodMap};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::service::Gateway;
use crate::store::Actor;

/// A request line longer than this is refused; no admin command comes near it.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    DeviceAdd {
        name: Name,
        user: Name,
        address: Option<Ipv4Addr>,
        public_key: Option<String>,
    },
    DeviceList,
    DeviceShow {
        name: Name,
    },
    DeviceSuspend {
        name: Name,
    },
    DeviceResume {
        name: Name,
    },
    DeviceRevoke {
        name: Name,
    },
    /// The device's wg-quick file; `endpoint` overrides the config's `tunnel.endpoint`.
    DeviceExport {
        name: Name,
        endpoint: Option<String>,
    },
    /// `add` needs every field but `access_hours`, `elements` and `dialect`; `update` takes any of them.
    InstitutionAdd {
        id: Name,
        fields: InstitutionFields,
    },
    InstitutionUpdate {
        id: Name,
        fields: InstitutionFields,
    },
    InstitutionSuspend {
        id: Name,
        reason: String,
    },
    InstitutionResume {
        id: Name,
    },
    InstitutionList,
    InstitutionShow {
        id: Name,
    },
    UserAdd {
        id: Name,
        fields: UserFields,
        password: Secret,
    },
    UserUpdate {
        id: Name,
        fields: UserFields,
    },
    UserDisable {
        id: Name,
    },
    UserEnable {
        id: Name,
    },
    UserPasswd {
        id: Name,
        password: Secret,
    },
    UserList {
        institution: Option<Name>,
    },
    UserShow {
        id: Name,
    },
    /// Admin changes recorded after sequence number `after`.
    AdminLog {
        after: u64,
        limit: usize,
    },
    /// The audit log's size, origin and public key.
    AuditKey,
    /// The newest signed checkpoint (signed now if the log grew since), for an auditor to keep.
    AuditCheckpoint,
    /// `checkpoint`: a checkpoint note exported earlier, which the log must still extend.
    AuditVerify {
        checkpoint: Option<String>,
    },
    AuditProve {
        seq: u64,
    },
    /// A page of records from sequence number `from`.
    AuditRecords {
        from: u64,
        limit: usize,
        filter: simpul_ledger::queries::Filter,
    },
    /// Every record still tied to a person, with proofs.
    AuditSubject {
        nik: String,
    },
    /// A proof that the log now extends `checkpoint`, a checkpoint note kept earlier (by an auditor or a witness).
    AuditConsistency {
        checkpoint: String,
    },
    /// The semester report (`2026-2`), for every institution or one.
    AuditReport {
        semester: String,
        institution: Option<String>,
    },
    /// Destroys personal data past `[audit] personal_data_days` now (it also runs every hour).
    AuditRetain,
}

/// An institution's fields as an admin gives them: all the required ones to add one, any of them to update one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstitutionFields {
    pub name: Option<String>,
    pub region: Option<RegionCode>,
    pub agreement_number: Option<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub methods: Option<BTreeSet<Method>>,
    pub elements: Option<ElementSet>,
    pub daily_quota: Option<u64>,
    /// `Some(None)` removes the restriction.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub access_hours: Option<Option<AccessHours>>,
    pub dialect: Option<Dialect>,
    /// Replaces the institution's own method names.
    pub method_names: Option<MethodMap>,
    /// Replaces the other names its applications give their consumer in the path.
    pub consumer_aliases: Option<ConsumerAliases>,
    pub upstream_consumer: Option<String>,
    pub upstream_user: Option<String>,
    pub upstream_password: Option<Secret>,
}

/// A user's fields as an admin gives them: all but `daily_quota` to add one, any of them to update one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserFields {
    pub institution: Option<Name>,
    pub name: Option<String>,
    pub nik: Option<String>,
    pub nip: Option<String>,
    pub position: Option<String>,
    pub office_region: Option<RegionCode>,
    pub application_user: Option<String>,
    /// `Some(None)` leaves only the institution's quota.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub daily_quota: Option<Option<u64>>,
}

/// A field that is present, even as `null`, is `Some`: so `null` can mean "remove" while absence means "keep".
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Why the gateway refused a request; the CLI turns it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request itself is wrong (a malformed key, an address outside the network).
    Invalid,
    NotFound,
    /// The request conflicts with what exists (a taken name, a revoked device).
    Conflict,
    /// The gateway could not carry it out (database, tunnel or firewall failure).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl ToString) -> Self {
        Self { kind, message: message.to_string() }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
}

impl From<Result<serde_json::Value, Failure>> for Reply {
    fn from(outcome: Result<serde_json::Value, Failure>) -> Self {
        match outcome {
            Ok(result) => Self { ok: true, result: Some(result), error: None },
            Err(error) => Self { ok: false, result: None, error: Some(error) },
        }
    }
}

/// Binds the socket at `path`, replacing a stale one left by a crash but never one a running gateway still answers on.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use: another simpul-gateway runs with this state directory", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, gateway: Arc<Gateway>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("management socket: accept: {e}");
                continue;
            }
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, gateway).await {
                tracing::debug!("management socket: {e}");
            }
        });
    }
}

async fn connection(stream: UnixStream, gateway: Arc<Gateway>) -> io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let credentials = stream.peer_cred()?;
    let uid = credentials.uid();
    if uid != me && uid != 0 {
        tracing::warn!("management socket: refused a connection from uid {uid}");
        return Ok(());
    }
    let actor = Actor::Cli { uid, pid: credentials.pid() };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bytes, not text: a line that is not UTF-8 gets an answer like any other malformed request.
        let n = (&mut lines).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let reply: Reply = if n > MAX_LINE {
            Err(Failure::new(FailureKind::Invalid, format!("a request is at most {MAX_LINE} bytes")))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => gateway.handle(request, actor.clone()).await,
                Err(e) => Err(Failure::new(FailureKind::Invalid, format!("not a request: {e}"))),
            }
        }
        .into();
        let mut text = serde_json::to_string(&reply).expect("a reply serializes");
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
        if n > MAX_LINE {
            return Ok(());
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway is not running, or this user may not use its socket.
    #[error("cannot reach the gateway at {0}: {1} (is `simpul-gateway run` running with this state directory, and are you root?)")]
    Connect(PathBuf, io::Error),
    #[error("the gateway closed the connection: {0}")]
    Io(#[from] io::Error),
    #[error("the gateway sent something unreadable: {0}")]
    Protocol(String),
    #[error(transparent)]
    Refused(#[from] Failure),
}

/// One connection to the management socket; requests go one at a time.
#[derive(Debug)]
pub struct Client {
    lines: BufReader<tokio::net::unix::OwnedReadHalf>,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|e| ClientError::Connect(path.to_owned(), e))?;
        let (read, write) = stream.into_split();
        Ok(Self { lines: BufReader::new(read), write })
    }

    pub async fn call(&mut self, request: &Request) -> Result<serde_json::Value, ClientError> {
        let mut text = serde_json::to_string(request).expect("a request serializes");
        text.push('\n');
        self.write.write_all(text.as_bytes()).await?;
        let mut line = String::new();
        if self.lines.read_line(&mut line).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let reply: Reply = serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
        match (reply.ok, reply.result, reply.error) {
            (true, Some(result), None) => Ok(result),
            (false, None, Some(error)) => Err(error.into()),
            _ => Err(ClientError::Protocol(line)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let cases = [
            (Request::Status, r#"{"op":"status"}"#),
            (
                Request::DeviceAdd {
                    name: "laptop-1".parse().unwrap(),
                    user: "budi".parse().unwrap(),
                    address: None,
                    public_key: None,
                },
                r#"{"op":"device_add","name":"laptop-1","user":"budi","address":null,"public_key":null}"#,
            ),
            (Request::DeviceRevoke { name: "x".parse().unwrap() }, r#"{"op":"device_revoke","name":"x"}"#),
        ];
        for (request, text) in cases {
            assert_eq!(serde_json::to_string(&request).unwrap(), text);
            assert_eq!(serde_json::from_str::<Request>(text).unwrap(), request);
        }
        // Names are checked at the boundary, so a bad one never reaches the gateway's logic.
        assert!(serde_json::from_str::<Request>(r#"{"op":"device_show","name":"../x"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"device_show","name":"x","extra":1}"#).is_err());
    }

    #[test]
    fn null_removes_and_absence_keeps() {
        let keep: UserFields = serde_json::from_str("{}").unwrap();
        assert_eq!(keep.daily_quota, None);
        let remove: UserFields = serde_json::from_str(r#"{"daily_quota":null}"#).unwrap();
        assert_eq!(remove.daily_quota, Some(None));
        let set: UserFields = serde_json::from_str(r#"{"daily_quota":5}"#).unwrap();
        assert_eq!(set.daily_quota, Some(Some(5)));
        for fields in [keep, remove, set] {
            let text = serde_json::to_string(&fields).unwrap();
            assert_eq!(serde_json::from_str::<UserFields>(&text).unwrap(), fields, "{text}");
        }
    }

    #[test]
    fn replies_carry_a_result_or_a_failure() {
        let ok: Reply = Ok(serde_json::json!({"a": 1})).into();
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":true,"result":{"a":1}}"#);
        let refused: Reply = Err(Failure::new(FailureKind::NotFound, "no device named x")).into();
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"ok":false,"error":{"kind":"not_found","message":"no device named x"}}"#
        );
    }
}
