//! Records for tests, here once so that core's tests and the crates built on core (`features = ["fixtures"]` in
//! their dev-dependencies) start from the same institution, user and device. Tests change what they need.

use chrono::{DateTime, NaiveDate, Utc};

use crate::device::{Device, DeviceStatus};
use crate::element::Element;
use crate::institution::{Agreement, Institution, InstitutionStatus, Secret, UpstreamCredentials, User, UserStatus};
use crate::password::{Params, PasswordHash};
use crate::wire::code::Dialect;
use crate::wire::method::Method;
use crate::wire::route::{ConsumerAliases, MethodMap};

/// When every fixture was made and last changed: 2026-01-01T00:00:00Z.
pub fn made_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("a valid timestamp")
}

/// DINSOS-3374 under agreement 470/1234/PKS/2026, in force through 2026, CALL_NIK and CALL_VERIFY_BY_ELEMEN granted
/// with NIK and NAMA_LGKP, 1,000 a day, no access hours, the coded dialect; upstream consumer DINSOS_3374.
pub fn institution() -> Institution {
    let date = |s: &str| s.parse::<NaiveDate>().expect("a valid date");
    Institution {
        id: "DINSOS-3374".parse().expect("a valid name"),
        name: "Dinas Sosial Kota Semarang".into(),
        region: "33.74".parse().expect("a region"),
        agreement: Agreement {
            number: "470/1234/PKS/2026".into(),
            valid_from: date("2026-01-01"),
            valid_until: date("2026-12-31"),
            methods: [Method::CallNik, Method::CallVerifyByElemen].into_iter().collect(),
            elements: [Element::Nik, Element::NamaLgkp].into_iter().collect(),
            daily_quota: 1000,
            access_hours: None,
            dialect: Dialect::Coded,
        },
        method_names: MethodMap::default(),
        consumer_aliases: ConsumerAliases::default(),
        upstream: UpstreamCredentials {
            consumer_id: "DINSOS_3374".into(),
            user_id: "dinsos".into(),
            password: Secret::new("rahasia"),
        },
        status: InstitutionStatus::Active,
        created_at: made_at(),
        changed_at: made_at(),
    }
}

/// User `id` of `institution`, Budi by name and NIK, whose password is `password` (hashed at a cost meant for tests
/// only); their application knows them as `id`.
pub fn user(id: &str, institution: &str, password: &str) -> User {
    User {
        id: id.parse().expect("a valid name"),
        institution: institution.parse().expect("a valid name"),
        name: "Budi".into(),
        nik: "3374041003870006".into(),
        nip: "198703102010011001".into(),
        position: "Analis".into(),
        office_region: "33.74".parse().expect("a region"),
        application_user: id.into(),
        password_hash: PasswordHash::hash_with(password, Params::new(8, 1, 1, None).expect("valid parameters")),
        status: UserStatus::Active,
        daily_quota: None,
        created_at: made_at(),
        changed_at: made_at(),
    }
}

/// Device laptop-1 of `user` at 10.77.0.2, active, its key made by the gateway (left empty here).
pub fn device(user: &str) -> Device {
    Device {
        name: "laptop-1".parse().expect("a valid name"),
        user: user.parse().expect("a valid name"),
        address: "10.77.0.2".parse().expect("an address"),
        public_key: String::new(),
        status: DeviceStatus::Active,
        created_at: made_at(),
        changed_at: made_at(),
        generated_key: true,
    }
}
