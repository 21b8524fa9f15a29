//! The management socket: the admin API (`crate::admin`) as JSON lines on a unix socket in the state directory, mode
//! 0600. The CLI sends one operation per line (`{"op": …}`) and reads one reply per line (`{"ok": true, "result":
//! view}` or `{"ok": false, "error": {"kind", "message"}}`); this module only parses, hands the operation to
//! `Gateway::handle` and writes the answer. Only the gateway's own user (and root) may connect: the socket's mode keeps
//! others out, and the peer's credentials are checked again on every connection in case the directory's permissions
//! are loosened.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::admin::{Failure, FailureKind, Operation, Request};
use crate::service::Gateway;
use crate::store::Actor;

/// A request line longer than this is refused; no admin command comes near it.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
}

impl<T: Serialize> From<Result<T, Failure>> for Reply {
    fn from(outcome: Result<T, Failure>) -> Self {
        match outcome {
            Ok(result) => {
                let result = serde_json::to_value(result).expect("an answer serializes");
                Self { ok: true, result: Some(result), error: None }
            }
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

    /// Sends one operation and reads its typed answer.
    pub async fn call<O: Operation>(&mut self, op: O) -> Result<O::Answer, ClientError> {
        let request: Request = op.into();
        let mut text = serde_json::to_string(&request).expect("a request serializes");
        text.push('\n');
        self.write.write_all(text.as_bytes()).await?;
        let mut line = String::new();
        if self.lines.read_line(&mut line).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let reply: Reply = serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
        match (reply.ok, reply.result, reply.error) {
            (true, Some(result), None) => {
                serde_json::from_value(result).map_err(|e| ClientError::Protocol(e.to_string()))
            }
            (false, None, Some(error)) => Err(error.into()),
            _ => Err(ClientError::Protocol(line)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_a_result_or_a_failure() {
        let ok: Reply = Ok::<_, Failure>(serde_json::json!({"a": 1})).into();
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":true,"result":{"a":1}}"#);
        let refused: Reply = Err::<(), _>(Failure::new(FailureKind::NotFound, "no device named x")).into();
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"ok":false,"error":{"kind":"not_found","message":"no device named x"}}"#
        );
    }
}
