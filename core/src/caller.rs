//! Who is calling, as the tunnel proved it: the device, its user and the user's institution, resolved from the
//! device before a byte of the request is read.
//!
//! What the gateway says to a device depends on this alone, never on what a request body claims: every answer on
//! the request (a refusal, a transport error, a body too large or too slow, a path it does not know) is written in
//! the dialect of the device's institution, so an application reads every answer it gets, and a body naming another
//! institution's user cannot change the dialect (which would tell the caller which user ids exist and where). The
//! same institution says which method names its applications use and which consumer names a path may carry.

use crate::device::{Device, Name};
use crate::institution::{Institution, User};
use crate::wire::code::Dialect;
use crate::wire::route::{MethodMap, Route};

/// A device and what the directory holds about whom it serves.
#[derive(Debug, Clone)]
pub struct Caller {
    pub device: Device,
    /// The device's user, if still on record.
    pub user: Option<User>,
    /// That user's institution, if on record (suspended or out of its agreement's period included: it still
    /// decides how its applications are answered).
    pub institution: Option<Institution>,
}

impl Caller {
    /// Resolves `device` through the directory's lookups.
    pub fn resolve(
        device: Device,
        user: impl FnOnce(&Name) -> Option<User>,
        institution: impl FnOnce(&Name) -> Option<Institution>,
    ) -> Caller {
        let user = user(&device.user);
        let institution = user.as_ref().and_then(|u| institution(&u.institution));
        Caller { device, user, institution }
    }

    /// The dialect of every answer to this caller: its institution's, else `fallback` (a device whose user or
    /// institution is no longer on record; nothing that reaches the web service is without a device).
    pub fn dialect(&self, fallback: Dialect) -> Dialect {
        self.institution.as_ref().map_or(fallback, |i| i.agreement.dialect)
    }

    /// The institution's own method names (the built-in names only, without an institution).
    pub fn method_names(&self) -> MethodMap {
        self.institution.as_ref().map(|i| i.method_names.clone()).unwrap_or_default()
    }

    /// Whether `route` names this caller's consumer; no consumer is a caller's without an institution.
    pub fn owns(&self, route: &Route) -> bool {
        self.institution.as_ref().is_some_and(|i| i.is_named_by(route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, device, institution as sample};
    use crate::institution::InstitutionStatus;
    use crate::wire::method::Method;
    use chrono::DateTime;

    fn user(id: &str, institution: &str) -> User {
        fixtures::user(id, institution, "x")
    }

    fn legacy() -> Institution {
        let mut i = sample();
        i.agreement.dialect = Dialect::Legacy;
        i.method_names = "cek_pasien=CALL_NIK".parse().unwrap();
        i.consumer_aliases = "DINSOS_LAMA".parse().unwrap();
        i
    }

    /// The directory: `budi` of the legacy DINSOS-3374, `rina` of an institution no longer on record.
    fn resolve(device_user: &str) -> Caller {
        Caller::resolve(
            device(device_user),
            |id| match id.as_str() {
                "budi" => Some(user("budi", "DINSOS-3374")),
                "rina" => Some(user("rina", "GONE-1")),
                _ => None,
            },
            |id| (id.as_str() == "DINSOS-3374").then(legacy),
        )
    }

    #[test]
    fn the_dialect_is_the_devices_institutions_or_the_fallback() {
        let suspended = {
            let mut caller = resolve("budi");
            let since = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
            caller.institution.as_mut().unwrap().status =
                InstitutionStatus::Suspended { reason: "monev".into(), since };
            caller
        };
        let table = [
            ("the institution's", resolve("budi"), Dialect::Coded, Dialect::Legacy),
            ("the institution's, whatever the fallback", resolve("budi"), Dialect::Legacy, Dialect::Legacy),
            ("a suspended institution's own", suspended, Dialect::Coded, Dialect::Legacy),
            ("no institution on record", resolve("rina"), Dialect::Legacy, Dialect::Legacy),
            ("no institution on record", resolve("rina"), Dialect::Coded, Dialect::Coded),
            ("no user on record", resolve("nobody"), Dialect::Legacy, Dialect::Legacy),
            ("no user on record", resolve("nobody"), Dialect::Coded, Dialect::Coded),
        ];
        for (what, caller, fallback, want) in table {
            assert_eq!(caller.dialect(fallback), want, "{what}");
        }
    }

    #[test]
    fn method_names_and_consumers_are_the_devices_institutions() {
        let budi = resolve("budi");
        assert_eq!(budi.method_names().resolve("cek_pasien"), Some(Method::CallNik));
        let central = |consumer: &str| Route::Central { consumer_id: consumer.into(), method: "CALL_NIK".into() };
        assert!(budi.owns(&central("DINSOS_3374")), "the upstream consumer id");
        assert!(budi.owns(&central("dinsos_lama")), "an alias");
        assert!(!budi.owns(&central("LAIN_3375")));
        for nobody in [resolve("rina"), resolve("nobody")] {
            assert_eq!(nobody.method_names().resolve("cek_pasien"), None);
            assert_eq!(nobody.method_names().resolve("CALL_NIK"), Some(Method::CallNik), "built-in names");
            assert!(!nobody.owns(&central("DINSOS_3374")), "no institution, no consumer");
        }
    }
}
