//! The running gateway as the management socket and the API see it: devices, institutions and users joined to the
//! tunnel and the firewall. Admin changes are serialized (one at a time, in order), written to the database first
//! (with their admin event), then applied to the data plane; when the data plane refuses, the database is put back,
//! so the two agree.

mod audit_ops;
mod cache_ops;
mod device_ops;
mod directory_ops;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;
use simpul_core::clock::Clock;
use simpul_core::device::{AddressError, Device, DeviceStatus, StatusChange};
use simpul_core::institution::{InstitutionStatus, UserStatus};
use simpul_ledger::{Auditor, Notary};
use simpul_tunnel::{PeerConfig, PeerStatus, PublicKey, TunnelHandle};

use self::audit_ops::AuditView;
use crate::admin::gateway::{
    AdminEventView, AdminLog, AdminLogEntry, DeviceCounts, InstitutionCounts, StatusView, TunnelCounts, UpstreamStatus,
};
use crate::admin::{Answer, Failure, FailureKind, Request};
use crate::cache::{CacheHandle, CACHE_KEY};
use crate::config::GatewayConfig;
use crate::devices::{Registry, RegistryError};
use crate::directory::{Directory, DirectoryError};
use crate::firewall::Firewall;
use crate::snapshot::Snapshot;
use crate::store::{Actor, AdminEvent, Store};
use crate::upstream::{Upstream, UpstreamConfig};

/// Which face carries the tunnel's inner packets, once `Mode::Auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Tun,
    Userspace,
}

impl Face {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tun => "tun",
            Self::Userspace => "userspace",
        }
    }
}

/// Who opened a connection to the API, as the face tells it: TUN mode knows the inner source address (which the
/// tunnel's AllowedIPs check made trustworthy), userspace mode the peer's key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Address(IpAddr),
    Key(PublicKey),
}

#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    face: Face,
    zone: Tz,
    clock: Arc<dyn Clock>,
    store: Store,
    registry: RwLock<Registry>,
    directory: RwLock<Directory>,
    /// Serializes admin changes, which span the database, the tunnel and the firewall.
    admin: tokio::sync::Mutex<()>,
    tunnel: TunnelHandle,
    firewall: Option<Arc<Firewall>>,
    /// What the firewall's drop set holds now.
    blocked: Mutex<BTreeSet<Ipv4Addr>>,
    auditor: Arc<Auditor>,
    notary: Arc<Notary>,
    /// The warehouse cache: the web service answers from it, the admin switches, purges and rekeys it.
    cache: Arc<CacheHandle>,
}

fn peer_config(device: &Device) -> Result<PeerConfig, Failure> {
    let key: PublicKey = device.public_key.parse().map_err(|e| Failure::new(FailureKind::Internal, e))?;
    let address = IpNet::V4(Ipv4Net::new(device.address, 32).expect("/32 is a valid prefix"));
    Ok(PeerConfig::new(key, [address]))
}

fn registry_failure(error: RegistryError) -> Failure {
    let kind = match &error {
        RegistryError::NotFound(_) => FailureKind::NotFound,
        RegistryError::NameTaken(_)
        | RegistryError::KeyTaken(_)
        | RegistryError::KeyRevoked(_)
        | RegistryError::Status(_)
        | RegistryError::NoPrivateKey(_)
        | RegistryError::Address(AddressError::Taken(_) | AddressError::Exhausted(..)) => FailureKind::Conflict,
        RegistryError::GatewayKey | RegistryError::WeakKey | RegistryError::Address(_) => FailureKind::Invalid,
        RegistryError::Store(_) => FailureKind::Internal,
    };
    Failure::new(kind, error)
}

fn directory_failure(error: DirectoryError) -> Failure {
    let kind = match &error {
        DirectoryError::NoInstitution(_) | DirectoryError::NoUser(_) => FailureKind::NotFound,
        DirectoryError::InstitutionExists(_) | DirectoryError::UserExists(_) | DirectoryError::Moved { .. } => {
            FailureKind::Conflict
        }
        DirectoryError::Invalid(_) => FailureKind::Invalid,
        DirectoryError::Store(_) => FailureKind::Internal,
    };
    Failure::new(kind, error)
}

fn internal(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure::new(FailureKind::Internal, format!("{what}: {error}"))
}

/// The parts a gateway is made of, for [`Gateway::new`].
#[derive(Debug)]
pub struct Parts {
    pub config: GatewayConfig,
    pub face: Face,
    pub clock: Arc<dyn Clock>,
    pub store: Store,
    pub registry: Registry,
    pub directory: Directory,
    pub tunnel: TunnelHandle,
    pub firewall: Option<Arc<Firewall>>,
    /// What the firewall's drop set was loaded with.
    pub blocked: BTreeSet<Ipv4Addr>,
    pub auditor: Arc<Auditor>,
    pub notary: Arc<Notary>,
}

impl Gateway {
    pub fn new(parts: Parts) -> Self {
        let zone = parts.config.timezone.0;
        let today = parts.clock.now().with_timezone(&zone).date_naive();
        let cache = Arc::new(open_cache(&parts.config, parts.store.db(), today));
        Self {
            cache,
            zone,
            config: parts.config,
            face: parts.face,
            clock: parts.clock,
            store: parts.store,
            registry: RwLock::new(parts.registry),
            directory: RwLock::new(parts.directory),
            admin: Default::default(),
            tunnel: parts.tunnel,
            firewall: parts.firewall,
            blocked: Mutex::new(parts.blocked),
            auditor: parts.auditor,
            notary: parts.notary,
        }
    }

    /// Where requests are recorded before they are answered.
    pub fn auditor(&self) -> &Arc<Auditor> {
        &self.auditor
    }

    /// Peers for every device that may hold a tunnel, to load the engine with at start.
    pub fn peers(registry: &Registry) -> Vec<PeerConfig> {
        registry.list().filter(|d| d.in_tunnel()).filter_map(|d| peer_config(d).ok()).collect()
    }

    /// The addresses the firewall drops: suspended devices, and every device of an institution that may not be
    /// served today (suspended, or outside its agreement's period). Revoked devices hold no tunnel to drop.
    pub fn blocked(registry: &Registry, directory: &Directory, today: NaiveDate) -> BTreeSet<Ipv4Addr> {
        registry
            .list()
            .filter(|d| match d.status {
                DeviceStatus::Revoked => false,
                DeviceStatus::Suspended => true,
                DeviceStatus::Active => directory
                    .user(&d.user)
                    .and_then(|u| directory.institution(&u.institution))
                    .is_ok_and(|i| !i.active(today)),
            })
            .map(|d| d.address)
            .collect()
    }

    fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn directory_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Now in the gateway's zone: what access hours, agreement dates and quota days are counted in.
    pub fn local_now(&self) -> NaiveDateTime {
        self.now().with_timezone(&self.zone).naive_local()
    }

    pub fn today(&self) -> NaiveDate {
        self.local_now().date()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The active device behind a connection, or `None` if it must not be served: unknown, suspended or revoked.
    pub fn device_for(&self, source: Source) -> Option<Device> {
        self.known_device(source).filter(|device| device.status == DeviceStatus::Active)
    }

    /// The device behind a connection, whatever its state, and the directory as it is now, read in one go: all a
    /// request decides from (see [`Snapshot`]). The registry is held while the directory is read, so the two are
    /// of the same moment; no admin change holds one while waiting for the other.
    pub fn snapshot(&self, source: Source) -> Option<Snapshot> {
        let registry = self.registry();
        let device = Self::device_in(&registry, source)?.clone();
        let records = self.directory().records();
        drop(registry);
        Some(Snapshot::new(device, records))
    }

    fn known_device(&self, source: Source) -> Option<Device> {
        Self::device_in(&self.registry(), source).cloned()
    }

    fn device_in(registry: &Registry, source: Source) -> Option<&Device> {
        match source {
            Source::Address(IpAddr::V4(address)) => registry.by_address(address),
            Source::Address(IpAddr::V6(_)) => None,
            Source::Key(key) => registry.by_key(&key),
        }
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The warehouse cache.
    pub fn cache(&self) -> &CacheHandle {
        &self.cache
    }

    fn event(&self, actor: Actor, action: &str, target: impl ToString, detail: Value) -> AdminEvent {
        AdminEvent {
            at: self.now(),
            actor,
            action: action.into(),
            target: target.to_string(),
            detail,
            subjects: vec![],
        }
    }

    /// Carries out one admin operation for `actor`. Every operation has its arm here; the answer is its typed view.
    pub async fn handle(&self, request: Request, actor: Actor) -> Result<Answer, Failure> {
        use Answer as A;
        Ok(match request {
            Request::Status(_) => A::Status(self.status().await?),
            Request::AdminLog(op) => A::AdminLog(self.admin_log(op)?),
            Request::DeviceAdd(op) => A::DeviceAdd(self.audited(self.device_add(op, actor).await).await?),
            Request::DeviceList(_) => A::DeviceList(self.device_list().await),
            Request::DeviceShow(op) => A::DeviceShow(self.device_show(&op.name).await?),
            Request::DeviceSuspend(op) => {
                A::DeviceSuspend(self.audited(self.change_device(op.name, StatusChange::Suspend, actor).await).await?)
            }
            Request::DeviceResume(op) => {
                A::DeviceResume(self.audited(self.change_device(op.name, StatusChange::Resume, actor).await).await?)
            }
            Request::DeviceRevoke(op) => {
                A::DeviceRevoke(self.audited(self.change_device(op.name, StatusChange::Revoke, actor).await).await?)
            }
            Request::DeviceExport(op) => A::DeviceExport(self.device_export(op)?),
            Request::InstitutionAdd(op) => {
                A::InstitutionAdd(self.audited(self.put_institution(op.id, op.fields, true, actor).await).await?)
            }
            Request::InstitutionUpdate(op) => {
                A::InstitutionUpdate(self.audited(self.put_institution(op.id, op.fields, false, actor).await).await?)
            }
            Request::InstitutionSuspend(op) => {
                A::InstitutionSuspend(self.audited(self.institution_suspend(op, actor).await).await?)
            }
            Request::InstitutionResume(op) => {
                let resumed =
                    self.set_institution_status(op.id, InstitutionStatus::Active, "institution.resume", actor);
                A::InstitutionResume(self.audited(resumed.await).await?)
            }
            Request::InstitutionList(_) => A::InstitutionList(self.institution_list()),
            Request::InstitutionShow(op) => A::InstitutionShow(self.institution_show(&op.id)?),
            Request::UserAdd(op) => A::UserAdd(self.audited(self.user_add(op, actor).await).await?),
            Request::UserUpdate(op) => A::UserUpdate(self.audited(self.user_update(op, actor).await).await?),
            Request::UserDisable(op) => {
                let disable = self.set_user_status(op.id, UserStatus::Disabled, "user.disable", actor);
                A::UserDisable(self.audited(disable.await).await?)
            }
            Request::UserEnable(op) => {
                let enable = self.set_user_status(op.id, UserStatus::Active, "user.enable", actor);
                A::UserEnable(self.audited(enable.await).await?)
            }
            Request::UserPasswd(op) => A::UserPasswd(self.audited(self.user_passwd(op, actor).await).await?),
            Request::UserList(op) => A::UserList(self.user_list(op)?),
            Request::UserShow(op) => A::UserShow(self.user_show(&op.id)?),
            Request::AuditKey(_) => A::AuditKey(self.audit_key()),
            Request::AuditCheckpoint(_) => A::AuditCheckpoint(self.blocking(AuditView::audit_checkpoint).await?),
            Request::AuditVerify(op) => A::AuditVerify(self.blocking(move |g| Ok(g.audit_verify(op))).await?),
            Request::AuditProve(op) => A::AuditProve(self.blocking(move |g| g.audit_prove(op)).await?),
            Request::AuditRecords(op) => A::AuditRecords(self.blocking(move |g| g.audit_records(op)).await?),
            Request::AuditSubject(op) => A::AuditSubject(self.blocking(move |g| g.audit_subject(op)).await?),
            Request::AuditConsistency(op) => {
                A::AuditConsistency(self.blocking(move |g| g.audit_consistency(op)).await?)
            }
            Request::AuditReport(op) => A::AuditReport(self.blocking(move |g| g.audit_report(op)).await?),
            Request::AuditRetain(_) => A::AuditRetain(self.retain_personal_data(Some(actor)).await?),
            Request::CacheStats(_) => A::CacheStats(self.cache_stats()),
            Request::CachePurge(op) => A::CachePurge(self.audited(self.cache_purge(op, actor).await).await?),
            Request::CacheRekey(_) => A::CacheRekey(self.audited(self.cache_rekey(actor).await).await?),
            Request::CacheOn(_) => A::CacheOn(self.audited(self.cache_switch(true, actor).await).await?),
            Request::CacheOff(_) => A::CacheOff(self.audited(self.cache_switch(false, actor).await).await?),
        })
    }

    fn admin_log(&self, op: AdminLog) -> Result<Vec<AdminLogEntry>, Failure> {
        let events = self.store.admin_log(op.after, op.limit.min(10_000)).map_err(|e| internal("database", e))?;
        Ok(events
            .into_iter()
            .map(|(seq, e)| AdminLogEntry {
                seq,
                event: AdminEventView {
                    at: e.at,
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    detail: e.detail,
                    personal_identifiers: e.subjects.len(),
                },
            })
            .collect())
    }

    /// Copies the admin events an operation committed (its change, or a rollback) into the audit log before the
    /// operation's answer leaves. Should that fail, the change stands (it and its event are one transaction) and
    /// its event reaches the audit log at the next start; the admin is told.
    async fn audited<T>(&self, result: Result<T, Failure>) -> Result<T, Failure> {
        match self.auditor.mirror_admin().await {
            Ok(_) => result,
            Err(e) => Err(internal("the change was made, but its audit record is delayed until restart", e)),
        }
    }

    async fn live_peers(&self) -> Vec<PeerStatus> {
        self.tunnel.peers().await.unwrap_or_default()
    }

    async fn status(&self) -> Result<StatusView, Failure> {
        let stats = self.tunnel.stats().await.map_err(|e| internal("tunnel", e))?;
        let peers = self.live_peers().await.len();
        let upstream = match &self.config.upstream {
            Some(upstream) => Some(probe(upstream).await),
            None => None,
        };
        let audit = self.blocking(AuditView::audit_status).await?;
        let registry = self.registry();
        let count = |s: DeviceStatus| registry.list().filter(|d| d.status == s).count();
        let directory = self.directory();
        let today = self.today();
        let t = &self.config.tunnel;
        Ok(StatusView {
            public_key: self.tunnel.public_key().to_string(),
            listen: self.tunnel.local_addr().to_string(),
            mode: self.face.as_str().into(),
            interface: (self.face == Face::Tun).then(|| t.interface.clone()),
            firewall: self.firewall.is_some(),
            network: t.network.to_string(),
            address: t.address.to_string(),
            api: format!("http://{}:{}/", t.address, self.config.api.port),
            endpoint: t.endpoint.clone(),
            zone: self.zone.name().into(),
            local_time: self.local_now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            devices: DeviceCounts {
                active: count(DeviceStatus::Active),
                suspended: count(DeviceStatus::Suspended),
                revoked: count(DeviceStatus::Revoked),
                blocked: self.blocked.lock().unwrap_or_else(|e| e.into_inner()).len(),
            },
            institutions: InstitutionCounts {
                total: directory.institutions().count(),
                active: directory.institutions().filter(|i| i.active(today)).count(),
            },
            users: directory.users().count(),
            tunnel: TunnelCounts {
                peers,
                invalid: stats.engine.invalid,
                unknown_key: stats.engine.unknown_key,
                unknown_index: stats.engine.unknown_index,
                rejected: stats.engine.rejected,
                cookie_replies: stats.engine.cookie_replies,
                no_route: stats.engine.no_route,
                send_errors: stats.send_errors,
            },
            upstream,
            audit,
            cache: Box::new(self.cache_stats().status),
        })
    }

    /// Brings the firewall's drop set in line with the devices, institutions and today's date. Called after every
    /// admin change and every 30 seconds, so an agreement's end closes its tunnels without anyone acting.
    pub async fn sync_firewall(&self) -> Result<(), Failure> {
        let want = Self::blocked(&self.registry(), &self.directory(), self.today());
        let have = self.blocked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for &address in want.difference(&have) {
            self.firewall(move |f| f.suspend(address)).await?;
            self.blocked.lock().unwrap_or_else(|e| e.into_inner()).insert(address);
        }
        for &address in have.difference(&want) {
            self.firewall(move |f| f.resume(address)).await?;
            self.blocked.lock().unwrap_or_else(|e| e.into_inner()).remove(&address);
        }
        Ok(())
    }

    async fn firewall(
        &self,
        op: impl FnOnce(&Firewall) -> Result<(), crate::firewall::FirewallError> + Send + 'static,
    ) -> Result<(), Failure> {
        let Some(firewall) = self.firewall.clone() else { return Ok(()) };
        tokio::task::spawn_blocking(move || op(&firewall))
            .await
            .map_err(|e| internal("firewall", e))?
            .map_err(|e| internal("firewall", e))
    }
}

/// The cache `[cache]` describes, in the gateway's database with `cache.key` beside it.
fn open_cache(config: &GatewayConfig, db: &sled::Db, today: NaiveDate) -> CacheHandle {
    let validity = simpul_core::cache::Validity {
        consolidation: config.cache.consolidation.clone(),
        not_found_ttl: config.cache.not_found_ttl(),
        zone: config.timezone.0,
    };
    let key_file = config.state_dir().join(CACHE_KEY);
    CacheHandle::open(db, key_file, validity, config.cache.max_bytes, config.cache.enabled, today)
}

/// Whether the upstream takes a connection now, TCP and TLS with its certificate checked as every request checks it
/// (`Upstream::probe`), within two seconds at most, so that `status` stays quick.
async fn probe(config: &UpstreamConfig) -> UpstreamStatus {
    let outcome = match Upstream::new(config) {
        Ok(upstream) => upstream.probe(PROBE_LIMIT).await,
        Err(e) => Err(e.to_string()),
    };
    UpstreamStatus { url: config.url.clone(), reachable: outcome.is_ok(), error: outcome.err() }
}

const PROBE_LIMIT: Duration = Duration::from_secs(2);
