//! Institution and user commands. Every change is recorded with who made it; suspending an institution or
//! disabling a user takes effect on the next request, and an institution's devices join the firewall's drop set.

use chrono::NaiveDate;
use serde_json::{json, Value};
use simpul_core::device::Name;
use simpul_core::institution::{
    Agreement, Institution, InstitutionStatus, Secret, UpstreamCredentials, User, UserStatus,
};
use simpul_core::password::PasswordHash;
use simpul_ledger::Identifier;

use super::{directory_failure, internal, Gateway};
use crate::control::{Failure, FailureKind, InstitutionFields, Request, UserFields};
use crate::store::{identifiers_out_of, Actor, AdminEvent};

/// Overwrites each field whose new value was given.
macro_rules! set_given {
    ($($field:expr => $value:expr),* $(,)?) => { $(if let Some(v) = $value { $field = v; })* };
}

/// Passwords shorter than this are refused: users reach population data with them.
const PASSWORD_MIN: usize = 10;

fn missing(what: &str) -> Failure {
    Failure::new(FailureKind::Invalid, format!("{what} is required"))
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, Failure> {
    value.ok_or_else(|| missing(what))
}

/// What the CLI shows of an institution: never the upstream password.
fn institution_view(institution: &Institution, today: NaiveDate) -> Value {
    let mut value = serde_json::to_value(institution).expect("an institution serializes");
    value["upstream"]["password"] = "***".into();
    value["state"] = serde_json::to_value(institution.state(today)).expect("a state serializes");
    value
}

/// What the CLI shows of a user: never the password hash.
fn user_view(user: &User) -> Value {
    let mut value = serde_json::to_value(user).expect("a user serializes");
    if let Some(map) = value.as_object_mut() {
        map.remove("password_hash");
    }
    value
}

fn check_password(password: &Secret) -> Result<(), Failure> {
    if password.expose().chars().count() < PASSWORD_MIN {
        return Err(Failure::new(FailureKind::Invalid, format!("a password has at least {PASSWORD_MIN} characters")));
    }
    Ok(())
}

/// What an admin event records of user fields: everything but the operator's NIK and NIP, which the audit log
/// keeps only as commitments (and the user record, sealed).
fn user_detail(fields: &UserFields) -> (Value, Vec<Identifier>) {
    let mut detail = serde_json::to_value(fields).expect("fields serialize");
    let identifiers = identifiers_out_of(&mut detail);
    (detail, identifiers)
}

/// argon2 costs tens of milliseconds of CPU; off the async threads.
async fn hash(password: Secret) -> Result<PasswordHash, Failure> {
    tokio::task::spawn_blocking(move || PasswordHash::hash(password.expose())).await.map_err(|e| internal("hashing", e))
}

impl Gateway {
    pub(super) async fn directory_request(&self, request: Request, actor: Actor) -> Result<Value, Failure> {
        let today = self.today();
        match request {
            Request::InstitutionList => {
                let directory = self.directory();
                Ok(directory.institutions().map(|i| institution_view(i, today)).collect())
            }
            Request::InstitutionShow { id } => {
                let directory = self.directory();
                Ok(institution_view(directory.institution(&id).map_err(directory_failure)?, today))
            }
            Request::InstitutionAdd { id, fields } => self.put_institution(id, fields, true, actor).await,
            Request::InstitutionUpdate { id, fields } => self.put_institution(id, fields, false, actor).await,
            Request::InstitutionSuspend { id, reason } => {
                if reason.trim().is_empty() {
                    return Err(missing("a reason"));
                }
                let since = self.now();
                let status = InstitutionStatus::Suspended { reason, since };
                self.set_institution_status(id, status, "institution.suspend", actor).await
            }
            Request::InstitutionResume { id } => {
                self.set_institution_status(id, InstitutionStatus::Active, "institution.resume", actor).await
            }
            Request::UserList { institution } => {
                let directory = self.directory();
                if let Some(id) = &institution {
                    directory.institution(id).map_err(directory_failure)?;
                }
                let users = directory.users().filter(|u| institution.as_ref().is_none_or(|i| &u.institution == i));
                Ok(users.map(user_view).collect())
            }
            Request::UserShow { id } => Ok(user_view(self.directory().user(&id).map_err(directory_failure)?)),
            Request::UserAdd { id, fields, password } => {
                check_password(&password)?;
                let password_hash = hash(password).await?;
                self.put_user(id, fields, Some(password_hash), actor).await
            }
            Request::UserUpdate { id, fields } => self.put_user(id, fields, None, actor).await,
            Request::UserPasswd { id, password } => {
                check_password(&password)?;
                let password_hash = hash(password).await?;
                self.update_user(id, "user.passwd", actor, (json!({}), vec![]), |u| u.password_hash = password_hash)
                    .await
            }
            Request::UserDisable { id } => {
                let disabled = |u: &mut User| u.status = UserStatus::Disabled;
                self.update_user(id, "user.disable", actor, (json!({}), vec![]), disabled).await
            }
            Request::UserEnable { id } => {
                let enabled = |u: &mut User| u.status = UserStatus::Active;
                self.update_user(id, "user.enable", actor, (json!({}), vec![]), enabled).await
            }
            _ => unreachable!("device, status and log requests are routed elsewhere"),
        }
    }

    async fn put_institution(
        &self,
        id: Name,
        fields: InstitutionFields,
        new: bool,
        actor: Actor,
    ) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        let now = self.now();
        let mut detail = serde_json::to_value(&fields).expect("fields serialize");
        if fields.upstream_password.is_some() {
            detail["upstream_password"] = "***".into();
        }
        let institution = if new {
            let f = fields;
            Institution {
                id: id.clone(),
                name: required(f.name, "--name")?,
                region: required(f.region, "--region")?,
                agreement: Agreement {
                    number: required(f.agreement_number, "--agreement")?,
                    valid_from: required(f.valid_from, "--valid-from")?,
                    valid_until: required(f.valid_until, "--valid-until")?,
                    methods: required(f.methods, "--methods")?,
                    elements: f.elements.unwrap_or_default(),
                    daily_quota: required(f.daily_quota, "--daily-quota")?,
                    access_hours: f.access_hours.flatten(),
                    dialect: f.dialect.unwrap_or_default(),
                },
                method_names: f.method_names.unwrap_or_default(),
                consumer_aliases: f.consumer_aliases.unwrap_or_default(),
                upstream: UpstreamCredentials {
                    consumer_id: required(f.upstream_consumer, "--upstream-consumer")?,
                    user_id: required(f.upstream_user, "--upstream-user")?,
                    password: required(f.upstream_password, "the upstream password")?,
                },
                status: InstitutionStatus::Active,
                created_at: now,
                changed_at: now,
            }
        } else {
            let mut i = self.directory().institution(&id).map_err(directory_failure)?.clone();
            let f = fields;
            let a = &mut i.agreement;
            set_given! {
                i.name => f.name, i.region => f.region, a.number => f.agreement_number,
                a.valid_from => f.valid_from, a.valid_until => f.valid_until, a.methods => f.methods,
                a.elements => f.elements, a.daily_quota => f.daily_quota, a.access_hours => f.access_hours,
                a.dialect => f.dialect, i.method_names => f.method_names, i.consumer_aliases => f.consumer_aliases,
                i.upstream.consumer_id => f.upstream_consumer,
                i.upstream.user_id => f.upstream_user, i.upstream.password => f.upstream_password,
            }
            i.changed_at = now;
            i
        };
        let action = if new { "institution.add" } else { "institution.update" };
        let event = self.event(actor, action, &id, detail);
        self.directory_mut().put_institution(institution.clone(), new, &event).map_err(directory_failure)?;
        self.sync_firewall().await?;
        tracing::info!(institution = %id, action, "institution changed");
        Ok(institution_view(&institution, self.today()))
    }

    async fn set_institution_status(
        &self,
        id: Name,
        status: InstitutionStatus,
        action: &str,
        actor: Actor,
    ) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        let mut institution = self.directory().institution(&id).map_err(directory_failure)?.clone();
        let changed = std::mem::discriminant(&institution.status) != std::mem::discriminant(&status);
        if changed {
            institution.status = status;
            institution.changed_at = self.now();
            let detail = serde_json::to_value(&institution.status).expect("a status serializes");
            let event = self.event(actor, action, &id, detail);
            self.directory_mut().put_institution(institution.clone(), false, &event).map_err(directory_failure)?;
            self.sync_firewall().await?;
            tracing::info!(institution = %id, action, "institution status changed");
        }
        let mut value = institution_view(&institution, self.today());
        value["changed"] = changed.into();
        Ok(value)
    }

    async fn put_user(
        &self,
        id: Name,
        fields: UserFields,
        password_hash: Option<PasswordHash>,
        actor: Actor,
    ) -> Result<Value, Failure> {
        let new = password_hash.is_some();
        let (detail, subjects) = user_detail(&fields);
        let f = fields;
        if new {
            let _admin = self.admin.lock().await;
            let now = self.now();
            let user = User {
                id: id.clone(),
                institution: required(f.institution, "--institution")?,
                name: required(f.name, "--name")?,
                nik: required(f.nik, "--nik")?,
                nip: required(f.nip, "--nip")?,
                position: required(f.position, "--position")?,
                office_region: required(f.office_region, "--office-region")?,
                application_user: required(f.application_user, "--application-user")?,
                password_hash: password_hash.expect("a new user has a password"),
                status: UserStatus::Active,
                daily_quota: f.daily_quota.flatten(),
                created_at: now,
                changed_at: now,
            };
            let event = AdminEvent { subjects, ..self.event(actor, "user.add", &id, detail) };
            self.directory_mut().put_user(user.clone(), true, self.today(), &event).map_err(directory_failure)?;
            tracing::info!(user = %id, institution = %user.institution, "user added");
            return Ok(user_view(&user));
        }
        self.update_user(id, "user.update", actor, (detail, subjects), move |u| {
            set_given! {
                u.institution => f.institution, u.name => f.name, u.nik => f.nik, u.nip => f.nip,
                u.position => f.position, u.office_region => f.office_region,
                u.application_user => f.application_user, u.daily_quota => f.daily_quota,
            }
        })
        .await
    }

    async fn update_user(
        &self,
        id: Name,
        action: &str,
        actor: Actor,
        (detail, subjects): (Value, Vec<Identifier>),
        change: impl FnOnce(&mut User),
    ) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        let mut user = self.directory().user(&id).map_err(directory_failure)?.clone();
        change(&mut user);
        user.changed_at = self.now();
        let event = AdminEvent { subjects, ..self.event(actor, action, &id, detail) };
        self.directory_mut().put_user(user.clone(), false, self.today(), &event).map_err(directory_failure)?;
        tracing::info!(user = %id, action, "user changed");
        Ok(user_view(&user))
    }
}
