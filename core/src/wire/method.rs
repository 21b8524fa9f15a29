//! The methods of the Dukcapil web service, under their wire names and the aliases seen in the field.
//!
//! - `CALL_NIK` (aliases `BYNIK`, `GET_NIK`): one person's record by NIK.
//! - `CALL_NIK_GET_KK`: the members of a family, by NIK or KK number; one `content` element per member.
//! - `CALL_VERIFY_BY_ELEMEN`: the client sends the elements it holds and gets `Sesuai` / `Tidak Sesuai` per element.
//! - `CALL_AGREGAT` (alias `AGREGAT`): Simpul's one aggregate method, for statistics and planning offices that need
//!   counts rather than people. It answers the number of living residents of a region by sex and 5-year age band.
//!   The request elements `NO_PROP` (required), `NO_KAB` and `NO_KEC` (optional, each narrowing the one before)
//!   choose the region; no NIK is sent and no personal data is returned.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A web-service method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    CallNik,
    CallNikGetKk,
    CallVerifyByElemen,
    CallAgregat,
}

/// Names that field applications use for a method besides its wire name.
const ALIASES: &[(&str, Method)] =
    &[("BYNIK", Method::CallNik), ("GET_NIK", Method::CallNik), ("AGREGAT", Method::CallAgregat)];

impl Method {
    pub const ALL: &'static [Method] =
        &[Method::CallNik, Method::CallNikGetKk, Method::CallVerifyByElemen, Method::CallAgregat];

    /// The canonical name, as in agreements and in the last path segment.
    pub const fn wire_name(self) -> &'static str {
        match self {
            Method::CallNik => "CALL_NIK",
            Method::CallNikGetKk => "CALL_NIK_GET_KK",
            Method::CallVerifyByElemen => "CALL_VERIFY_BY_ELEMEN",
            Method::CallAgregat => "CALL_AGREGAT",
        }
    }

    /// Looks a method up by wire name or alias, ignoring case and surrounding spaces.
    pub fn parse(name: &str) -> Option<Method> {
        let name = name.trim();
        Method::ALL
            .iter()
            .map(|m| (m.wire_name(), *m))
            .chain(ALIASES.iter().copied())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, m)| m)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// A name that is neither a method nor a known alias.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown method {0:?}")]
pub struct UnknownMethod(pub String);

impl FromStr for Method {
    type Err = UnknownMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::parse(s).ok_or_else(|| UnknownMethod(s.to_owned()))
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.wire_name())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_and_aliases_parse_case_insensitively() {
        let table = [
            ("CALL_NIK", Some(Method::CallNik)),
            ("call_nik", Some(Method::CallNik)),
            ("Call_Nik", Some(Method::CallNik)),
            (" CALL_NIK ", Some(Method::CallNik)),
            ("BYNIK", Some(Method::CallNik)),
            ("bynik", Some(Method::CallNik)),
            ("GET_NIK", Some(Method::CallNik)),
            ("get_nik", Some(Method::CallNik)),
            ("CALL_NIK_GET_KK", Some(Method::CallNikGetKk)),
            ("call_nik_get_kk", Some(Method::CallNikGetKk)),
            ("CALL_VERIFY_BY_ELEMEN", Some(Method::CallVerifyByElemen)),
            ("call_verify_by_elemen", Some(Method::CallVerifyByElemen)),
            ("CALL_AGREGAT", Some(Method::CallAgregat)),
            ("agregat", Some(Method::CallAgregat)),
            ("CALL_VERIFY_BY_ELEMENT", None),
            ("CALLNIK", None),
            ("cek_pasien", None),
            ("", None),
        ];
        for (name, want) in table {
            assert_eq!(Method::parse(name), want, "{name:?}");
            assert_eq!(name.parse::<Method>().ok(), want, "{name:?}");
        }
    }

    #[test]
    fn every_method_parses_from_its_wire_name_and_display() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.wire_name()), Some(*m));
            assert_eq!(m.to_string(), m.wire_name());
        }
        let names: std::collections::HashSet<_> = Method::ALL.iter().map(|m| m.wire_name()).collect();
        assert_eq!(names.len(), Method::ALL.len());
    }

    #[test]
    fn serde_uses_the_wire_name_and_accepts_aliases() {
        assert_eq!(serde_json::to_string(&Method::CallNikGetKk).unwrap(), r#""CALL_NIK_GET_KK""#);
        let back: Vec<Method> = serde_json::from_str(r#"["call_nik","BYNIK","CALL_AGREGAT"]"#).unwrap();
        assert_eq!(back, [Method::CallNik, Method::CallNik, Method::CallAgregat]);
        let err = serde_json::from_str::<Method>(r#""CALL_ALL""#).unwrap_err();
        assert!(err.to_string().contains("unknown method \"CALL_ALL\""), "{err}");
    }
}
