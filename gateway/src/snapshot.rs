//! What one web-service request knows of the directory: read once, when the request arrives, and decided from to the
//! end. The device behind the connection, its user and their institution (with its agreement), and whichever user
//! the request's body names, all come from the same moment, so an admin change made while a request is under way
//! (an institution suspended, an agreement renewed, a password reset, a dialect switched) reaches the next request
//! whole and this one not at all: no request is answered from half of one state and half of another.

use std::sync::Arc;

use simpul_core::caller::Caller;
use simpul_core::device::Device;
use simpul_core::institution::{Institution, User};

use crate::directory::Records;

#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The device, its user and their institution: who every answer on this request is for.
    pub caller: Caller,
    records: Arc<Records>,
}

impl Snapshot {
    /// Resolves `device` in `records`, which the snapshot keeps for the body's user.
    pub fn new(device: Device, records: Arc<Records>) -> Self {
        let caller = Caller::resolve(
            device,
            |user| records.user(user).ok().cloned(),
            |institution| records.institution(institution).ok().cloned(),
        );
        Snapshot { caller, records }
    }

    /// The user a request's body names (by the free-text id it carries), and that user's institution, as they were
    /// when the snapshot was taken.
    pub fn named(&self, id: &str) -> (Option<&User>, Option<&Institution>) {
        let user = self.records.user_by_request_id(id);
        let institution = user.and_then(|u| self.records.institution(&u.institution).ok());
        (user, institution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;
    use crate::seal::Sealer;
    use crate::store::{Actor, AdminEvent, Store};
    use chrono::{DateTime, NaiveDate};
    use simpul_core::fixtures;
    use simpul_core::institution::InstitutionStatus;
    use simpul_core::wire::code::Dialect;

    fn today() -> NaiveDate {
        "2026-06-30".parse().unwrap()
    }

    fn event() -> AdminEvent {
        AdminEvent {
            at: DateTime::from_timestamp(1_782_000_000, 0).unwrap(),
            actor: Actor::Cli { uid: 0, pid: None },
            action: "test".into(),
            target: String::new(),
            detail: serde_json::Value::Null,
            subjects: Vec::new(),
        }
    }

    fn institution() -> Institution {
        fixtures::institution()
    }

    fn user(id: &str, password: &str) -> User {
        fixtures::user(id, "DINSOS-3374", password)
    }

    fn device() -> Device {
        fixtures::device("budi")
    }

    /// The directory: DINSOS-3374 with `budi` (the device's user) and `rina`, all as admins first made them.
    fn directory(path: &std::path::Path) -> Directory {
        let mut directory = Directory::load(Store::open(path, Sealer::new([5; 32])).unwrap()).unwrap();
        directory.put_institution(institution(), true, &event()).unwrap();
        directory.put_user(user("budi", "lama-budi"), true, today(), &event()).unwrap();
        directory.put_user(user("rina", "lama-rina"), true, today(), &event()).unwrap();
        directory
    }

    #[test]
    fn a_request_decides_from_the_state_it_arrived_in_whatever_admins_change_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let mut directory = directory(&dir.path().join("db"));
        let arrived = Snapshot::new(device(), directory.records());

        // While the request is under way (its body still being read, its password being checked), the population
        // office suspends the institution, moves it to the legacy dialect, ends its agreement and resets both users'
        // passwords.
        let mut changed = institution();
        changed.status = InstitutionStatus::Suspended { reason: "monev".into(), since: changed.created_at };
        changed.agreement.dialect = Dialect::Legacy;
        changed.agreement.valid_until = "2026-06-29".parse().unwrap();
        directory.put_institution(changed.clone(), false, &event()).unwrap();
        for (id, password) in [("budi", "baru-budi"), ("rina", "baru-rina")] {
            directory.put_user(user(id, password), false, today(), &event()).unwrap();
        }

        // The request sees none of it, whichever user its body names, looked up after the change.
        let caller = &arrived.caller;
        assert_eq!(caller.institution.as_ref(), Some(&institution()));
        assert_eq!(caller.dialect(Dialect::Legacy), Dialect::Coded);
        for (id, password) in [("budi", "lama-budi"), ("rina", "lama-rina")] {
            let (user, institution) = arrived.named(id);
            let user = user.unwrap_or_else(|| panic!("{id} is on record"));
            assert!(user.password_hash.verify(password), "{id}: the password of when the request arrived");
            assert!(institution.is_some_and(|i| i.status == InstitutionStatus::Active), "{id}");
        }
        assert_eq!(
            arrived.named("budi").0,
            caller.user.as_ref(),
            "the body's user is the device's, of the same moment"
        );
        assert_eq!(arrived.named("nobody"), (None, None));

        // The next request sees all of it.
        let next = Snapshot::new(device(), directory.records());
        assert_eq!(next.caller.institution.as_ref(), Some(&changed));
        assert_eq!(next.caller.dialect(Dialect::Coded), Dialect::Legacy);
        for (id, password) in [("budi", "baru-budi"), ("rina", "baru-rina")] {
            assert!(next.named(id).0.is_some_and(|u| u.password_hash.verify(password)), "{id}");
        }
        // And so does the directory the admin commands read.
        assert_eq!(directory.institution(&changed.id).unwrap(), &changed);
    }

    #[test]
    fn a_device_whose_user_or_institution_is_gone_resolves_to_what_remains() {
        let dir = tempfile::tempdir().unwrap();
        let directory = directory(&dir.path().join("db"));
        let mut stranger = device();
        stranger.user = "nobody".parse().unwrap();
        let snapshot = Snapshot::new(stranger, directory.records());
        assert!(snapshot.caller.user.is_none() && snapshot.caller.institution.is_none());
        // The body may still name a user on record: the policy then refuses the device (04), not the user.
        assert!(snapshot.named("budi").0.is_some());
    }
}
