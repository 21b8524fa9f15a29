//! Institutions and their users, as the population office registers them: kept in memory for the request path (every
//! request looks up its user and institution) and written through to the store with an admin event.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use simpul_core::device::Name;
use simpul_core::institution::{Institution, RecordError, User};

use crate::store::{AdminEvent, Store, StoreError, Write};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("no institution {0}")]
    NoInstitution(Name),
    #[error("no user {0}")]
    NoUser(Name),
    #[error("institution {0} already exists")]
    InstitutionExists(Name),
    #[error("user {0} already exists")]
    UserExists(Name),
    #[error("user {user} belongs to institution {institution}; a user cannot move between institutions")]
    Moved { user: Name, institution: Name },
    #[error(transparent)]
    Invalid(#[from] RecordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The institutions and users at one moment. A request holds one of these for its whole course (see
/// [`crate::snapshot`]), so it is never changed in place: a change makes a new one, and requests that took the old one
/// finish with it.
#[derive(Debug, Clone, Default)]
pub struct Records {
    institutions: BTreeMap<Name, Institution>,
    users: BTreeMap<Name, User>,
}

impl Records {
    pub fn institution(&self, id: &Name) -> Result<&Institution, DirectoryError> {
        self.institutions.get(id).ok_or_else(|| DirectoryError::NoInstitution(id.clone()))
    }

    pub fn institutions(&self) -> impl Iterator<Item = &Institution> {
        self.institutions.values()
    }

    pub fn user(&self, id: &Name) -> Result<&User, DirectoryError> {
        self.users.get(id).ok_or_else(|| DirectoryError::NoUser(id.clone()))
    }

    /// A user by the id a request carries, which is free text until it is found.
    pub fn user_by_request_id(&self, id: &str) -> Option<&User> {
        id.parse::<Name>().ok().and_then(|name| self.users.get(&name))
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }
}

#[derive(Debug)]
pub struct Directory {
    store: Store,
    records: Arc<Records>,
}

impl std::ops::Deref for Directory {
    type Target = Records;

    fn deref(&self) -> &Records {
        &self.records
    }
}

impl Directory {
    pub fn load(store: Store) -> Result<Self, DirectoryError> {
        let institutions = store.institutions()?.into_iter().map(|i| (i.id.clone(), i)).collect();
        let users = store.users()?.into_iter().map(|u| (u.id.clone(), u)).collect();
        Ok(Self { store, records: Arc::new(Records { institutions, users }) })
    }

    /// The records as they are now, for as long as the holder needs them: later changes do not reach it.
    pub fn records(&self) -> Arc<Records> {
        self.records.clone()
    }

    /// Adds (`new`) or replaces an institution after validating it.
    pub fn put_institution(
        &mut self,
        institution: Institution,
        new: bool,
        event: &AdminEvent,
    ) -> Result<(), DirectoryError> {
        match (new, self.records.institutions.contains_key(&institution.id)) {
            (true, true) => return Err(DirectoryError::InstitutionExists(institution.id)),
            (false, false) => return Err(DirectoryError::NoInstitution(institution.id)),
            _ => {}
        }
        institution.validate()?;
        self.store.commit(&[Write::Institution(institution.clone())], Some(event))?;
        // Copied first only while a request still holds the current records.
        Arc::make_mut(&mut self.records).institutions.insert(institution.id.clone(), institution);
        Ok(())
    }

    /// Adds (`new`) or replaces a user after validating it against `today` (its NIK) and its institution.
    pub fn put_user(
        &mut self,
        user: User,
        new: bool,
        today: NaiveDate,
        event: &AdminEvent,
    ) -> Result<(), DirectoryError> {
        match (new, self.records.users.get(&user.id)) {
            (true, Some(_)) => return Err(DirectoryError::UserExists(user.id)),
            (false, None) => return Err(DirectoryError::NoUser(user.id)),
            (false, Some(old)) if old.institution != user.institution => {
                return Err(DirectoryError::Moved { user: user.id, institution: old.institution.clone() })
            }
            _ => {}
        }
        self.institution(&user.institution)?;
        user.validate(today)?;
        self.store.commit(&[Write::User(user.clone())], Some(event))?;
        Arc::make_mut(&mut self.records).users.insert(user.id.clone(), user);
        Ok(())
    }
}
