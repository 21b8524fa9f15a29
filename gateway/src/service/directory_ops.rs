//! Institution and user commands. Every change is recorded with who made it; suspending an institution or
//! disabling a user takes effect on the next request, and an institution's devices join the firewall's drop set.

use chrono::NaiveDate;
use serde_json::{json, Value};
use simpul_core::device::Name;
use simpul_core::institution::RecordError;
use simpul_core::institution::{
    Agreement, Institution, InstitutionStatus, Secret, UpstreamCredentials, User, UserStatus,
};
use simpul_core::nik::Nik;
use simpul_core::password::PasswordHash;
use simpul_ledger::Identifier;

use super::{directory_failure, internal, Gateway};
use crate::admin::institution::{InstitutionChange, InstitutionFields, InstitutionSuspend, InstitutionView};
use crate::admin::user::{UserAdd, UserFields, UserList, UserPasswd, UserUpdate, UserView};
use crate::admin::{Failure, FailureKind};
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

/// The NIK's form, checked as the directory checks it (`User::validate`) but before the password, so that a short
/// password never hides a wrong NIK.
fn check_forms(fields: &UserFields, today: NaiveDate) -> Result<(), Failure> {
    let invalid = |e: RecordError| Failure::new(FailureKind::Invalid, e);
    if let Some(nik) = &fields.nik {
        Nik::parse(nik, today).map_err(|e| invalid(RecordError::Nik(e.to_string())))?;
    }
    Ok(())
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
    pub(super) fn institution_list(&self) -> Vec<InstitutionView> {
        let today = self.today();
        self.directory().institutions().map(|i| InstitutionView::new(i, today)).collect()
    }

    pub(super) fn institution_show(&self, id: &Name) -> Result<InstitutionView, Failure> {
        let today = self.today();
        Ok(InstitutionView::new(self.directory().institution(id).map_err(directory_failure)?, today))
    }

    pub(super) async fn institution_suspend(
        &self,
        op: InstitutionSuspend,
        actor: Actor,
    ) -> Result<InstitutionView, Failure> {
        if op.reason.trim().is_empty() {
            return Err(missing("a reason"));
        }
        let status = InstitutionStatus::Suspended { reason: op.reason, since: self.now() };
        self.set_institution_status(op.id, status, "institution.suspend", actor).await
    }

    pub(super) fn user_list(&self, op: UserList) -> Result<Vec<UserView>, Failure> {
        let directory = self.directory();
        if let Some(id) = &op.institution {
            directory.institution(id).map_err(directory_failure)?;
        }
        let users = directory.users().filter(|u| op.institution.as_ref().is_none_or(|i| &u.institution == i));
        Ok(users.map(UserView::from).collect())
    }

    pub(super) fn user_show(&self, id: &Name) -> Result<UserView, Failure> {
        Ok(UserView::from(self.directory().user(id).map_err(directory_failure)?))
    }

    /// Refusals come in the order an admin fixes them: a missing field, then each field's form (the NIK first),
    /// then the password, then what the directory says (an unknown institution, a taken id).
    pub(super) async fn user_add(&self, op: UserAdd, actor: Actor) -> Result<UserView, Failure> {
        let (detail, subjects) = user_detail(&op.fields);
        check_forms(&op.fields, self.today())?;
        let user = self.new_user(op.id.clone(), op.fields)?;
        check_password(&op.password)?;
        let user = user(hash(op.password).await?);
        let _admin = self.admin.lock().await;
        let event = AdminEvent { subjects, ..self.event(actor, "user.add", &op.id, detail) };
        self.directory_mut().put_user(user.clone(), true, self.today(), &event).map_err(directory_failure)?;
        tracing::info!(user = %op.id, institution = %user.institution, "user added");
        Ok(UserView::from(&user))
    }

    pub(super) async fn user_update(&self, op: UserUpdate, actor: Actor) -> Result<UserView, Failure> {
        check_forms(&op.fields, self.today())?;
        let f = op.fields;
        self.update_user(op.id, "user.update", actor, user_detail(&f), move |u| {
            set_given! {
                u.institution => f.institution, u.name => f.name, u.nik => f.nik, u.nip => f.nip,
                u.position => f.position, u.office_region => f.office_region,
                u.application_user => f.application_user, u.daily_quota => f.daily_quota,
            }
        })
        .await
    }

    pub(super) async fn user_passwd(&self, op: UserPasswd, actor: Actor) -> Result<UserView, Failure> {
        // An unknown user is named before a bad password, like every other refusal about the user.
        self.user_show(&op.id)?;
        check_password(&op.password)?;
        let password_hash = hash(op.password).await?;
        self.update_user(op.id, "user.passwd", actor, (json!({}), vec![]), |u| u.password_hash = password_hash).await
    }

    pub(super) async fn set_user_status(
        &self,
        id: Name,
        status: UserStatus,
        action: &str,
        actor: Actor,
    ) -> Result<UserView, Failure> {
        self.update_user(id, action, actor, (json!({}), vec![]), |u| u.status = status).await
    }

    pub(super) async fn put_institution(
        &self,
        id: Name,
        fields: InstitutionFields,
        new: bool,
        actor: Actor,
    ) -> Result<InstitutionView, Failure> {
        let _admin = self.admin.lock().await;
        let now = self.now();
        let detail = serde_json::to_value(InstitutionChange::from(&fields)).expect("fields serialize");
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
        Ok(InstitutionView::new(&institution, self.today()))
    }

    pub(super) async fn set_institution_status(
        &self,
        id: Name,
        status: InstitutionStatus,
        action: &str,
        actor: Actor,
    ) -> Result<InstitutionView, Failure> {
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
        Ok(InstitutionView { changed: Some(changed), ..InstitutionView::new(&institution, self.today()) })
    }

    /// A new user's record from `fields`, once its password is hashed: every required field is checked here, before
    /// the password.
    fn new_user(&self, id: Name, f: UserFields) -> Result<impl FnOnce(PasswordHash) -> User, Failure> {
        let now = self.now();
        let institution = required(f.institution, "--institution")?;
        let name = required(f.name, "--name")?;
        let nik = required(f.nik, "--nik")?;
        let nip = required(f.nip, "--nip")?;
        let position = required(f.position, "--position")?;
        let office_region = required(f.office_region, "--office-region")?;
        let application_user = required(f.application_user, "--application-user")?;
        let daily_quota = f.daily_quota.flatten();
        Ok(move |password_hash| User {
            id,
            institution,
            name,
            nik,
            nip,
            position,
            office_region,
            application_user,
            password_hash,
            status: UserStatus::Active,
            daily_quota,
            created_at: now,
            changed_at: now,
        })
    }

    async fn update_user(
        &self,
        id: Name,
        action: &str,
        actor: Actor,
        (mut detail, subjects): (Value, Vec<Identifier>),
        change: impl FnOnce(&mut User),
    ) -> Result<UserView, Failure> {
        let _admin = self.admin.lock().await;
        let mut user = self.directory().user(&id).map_err(directory_failure)?.clone();
        let before = user.institution.clone();
        change(&mut user);
        // The user's institution (and the one it left), so that a search by institution finds the change.
        detail["institution"] = json!(user.institution);
        if before != user.institution {
            detail["moved_from"] = json!(before);
        }
        user.changed_at = self.now();
        let event = AdminEvent { subjects, ..self.event(actor, action, &id, detail) };
        self.directory_mut().put_user(user.clone(), false, self.today(), &event).map_err(directory_failure)?;
        tracing::info!(user = %id, action, "user changed");
        Ok(UserView::from(&user))
    }
}
