//! Request paths: the central `/dukcapil/get_json/{CONSUMER_ID}/{METHOD}` and the older regional
//! `/dukcapil/get_json/{PP-KK or PP}/{USERSET}/{METHOD}`, and the per-institution names for the last segment.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::method::Method;
use crate::wire::request::percent_decode;

const PREFIX: [&str; 2] = ["dukcapil", "get_json"];

/// A parsed path. The method stays the segment as sent, because some institutions put their own names there;
/// [`MethodMap::resolve`] turns it into a [`Method`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/dukcapil/get_json/BPS/CALL_NIK`: a consumer name or a 15-digit consumer number.
    Central { consumer_id: String, method: String },
    /// `/dukcapil/get_json/32-76/rsud_3276/call_nik`: the region (`PP-KK` or `PP`) and the user set.
    Regional { region: String, userset: String, method: String },
}

impl Route {
    /// The last path segment, as sent.
    pub fn method_segment(&self) -> &str {
        match self {
            Route::Central { method, .. } | Route::Regional { method, .. } => method,
        }
    }

    /// The path for this route, with each segment percent-encoded where needed; [`parse_path`] reads it back.
    pub fn path(&self) -> String {
        let segments: Vec<&str> = match self {
            Route::Central { consumer_id, method } => vec![consumer_id, method],
            Route::Regional { region, userset, method } => vec![region, userset, method],
        };
        let mut path = String::new();
        for segment in PREFIX.iter().copied().chain(segments) {
            path.push('/');
            percent_encode_into(segment, &mut path);
        }
        path
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Why a path is not a web-service route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("path does not start with /dukcapil/get_json/")]
    NotWebService,
    #[error("expected /dukcapil/get_json/{{CONSUMER_ID}}/{{METHOD}} or /dukcapil/get_json/{{REGION}}/{{USERSET}}/{{METHOD}}, got {0} segments after the prefix")]
    SegmentCount(usize),
    #[error("region {0:?} is not a province code (PP) or province-regency code (PP-KK)")]
    Region(String),
    #[error("path segment {0:?} is not UTF-8 after percent-decoding")]
    NotUtf8(String),
}

/// Parses a request path (without the query string). The prefix is matched ignoring case; a trailing slash and
/// doubled slashes are tolerated, since client applications build URLs by joining a configured base with a method.
pub fn parse_path(path: &str) -> Result<Route, RouteError> {
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false).ok_or_else(|| RouteError::NotUtf8(s.to_owned())))
        .collect::<Result<Vec<String>, RouteError>>()?;
    let starts = segments.len() >= PREFIX.len()
        && PREFIX.iter().zip(&segments).all(|(want, got)| want.eq_ignore_ascii_case(got));
    if !starts {
        return Err(RouteError::NotWebService);
    }
    match &segments[PREFIX.len()..] {
        [consumer_id, method] => Ok(Route::Central { consumer_id: consumer_id.clone(), method: method.clone() }),
        [region, userset, method] => {
            if parse_region(region).is_none() {
                return Err(RouteError::Region(region.clone()));
            }
            Ok(Route::Regional { region: region.clone(), userset: userset.clone(), method: method.clone() })
        }
        other => Err(RouteError::SegmentCount(other.len())),
    }
}

/// The region segment of the regional route style: a province, or a province and one of its regencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionPrefix {
    pub province: u8,
    pub regency: Option<u8>,
}

/// The canonical form, `PP-KK` or `PP`, zero-padded: the forms [`parse_region`] accepts all print the same.
impl fmt::Display for RegionPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.province)?;
        match self.regency {
            Some(regency) => write!(f, "-{regency:02}"),
            None => Ok(()),
        }
    }
}

/// Reads a region as the regional route writes it: `PP` or `PP-KK`, each code exactly two digits; `PP.KK` (the
/// Kepmendagri notation) and `PPKK` are accepted too. Only the form is checked: the codes are not looked up in the
/// region catalogue.
pub fn parse_region(s: &str) -> Option<RegionPrefix> {
    let code =
        |part: &str| if part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()) { part.parse().ok() } else { None };
    let (province, regency) = match s.split_once(['-', '.']) {
        Some((province, regency)) => (province, Some(regency)),
        // Checked split: four bytes may not be four characters.
        None if s.len() == 4 => s.split_at_checked(2).map(|(province, regency)| (province, Some(regency)))?,
        None => (s, None),
    };
    let regency = match regency {
        Some(regency) => Some(code(regency)?),
        None => None,
    };
    Some(RegionPrefix { province: code(province)?, regency })
}

fn percent_encode_into(segment: &str, out: &mut String) {
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The last path segments an institution has chosen for methods (`cek_pasien` -> `CALL_NIK`), on top of the
/// built-in names and aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodMap {
    /// Keyed by the lower-cased, trimmed name.
    custom: BTreeMap<String, Method>,
}

impl MethodMap {
    pub fn new(custom: impl IntoIterator<Item = (String, Method)>) -> Self {
        MethodMap { custom: custom.into_iter().map(|(name, m)| (name.trim().to_lowercase(), m)).collect() }
    }

    /// The institution's own names first (ignoring case), then the built-in names and aliases.
    pub fn resolve(&self, segment: &str) -> Option<Method> {
        self.custom.get(&segment.trim().to_lowercase()).copied().or_else(|| Method::parse(segment))
    }
}

/// From a TOML/JSON table such as `{ cek_pasien = "CALL_NIK" }`.
impl<'de> Deserialize<'de> for MethodMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MethodMap::new(BTreeMap::<String, Method>::deserialize(d)?))
    }
}

impl Serialize for MethodMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.custom.serialize(s)
    }
}

impl MethodMap {
    pub fn is_empty(&self) -> bool {
        self.custom.is_empty()
    }
}

/// `cek_pasien=CALL_NIK`, as the CLI takes one name.
impl FromStr for MethodMap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let pairs = s.split(',').filter(|p| !p.trim().is_empty()).map(|pair| {
            let (name, method) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not NAME=METHOD"))?;
            let method = method.parse::<Method>().map_err(|e| e.to_string())?;
            if name.trim().is_empty() || name.contains('/') {
                return Err(format!("{name:?} cannot be a path segment"));
            }
            Ok((name.to_string(), method))
        });
        pairs.collect::<Result<Vec<_>, _>>().map(MethodMap::new)
    }
}

/// The names an institution's applications may put in the path for their consumer, besides the upstream consumer id
/// the ministry registered: a central consumer id (`DINSOS_3374`) or a regional region and user set
/// (`33-74/dinsos_3374`). Applications send the name they were configured with, unchanged; a path naming any other
/// consumer is refused, as the warehouse refuses a consumer that is not the caller's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerAliases(Vec<ConsumerAlias>);

/// One name a path may give for the caller's consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerAlias {
    Central(String),
    Regional { region: RegionPrefix, userset: String },
}

impl ConsumerAlias {
    fn matches(&self, route: &Route) -> bool {
        match (self, route) {
            (ConsumerAlias::Central(name), Route::Central { consumer_id, .. }) => {
                name.eq_ignore_ascii_case(consumer_id)
            }
            (ConsumerAlias::Regional { region, userset: set }, Route::Regional { region: r, userset, .. }) => {
                parse_region(r) == Some(*region) && set.eq_ignore_ascii_case(userset)
            }
            _ => false,
        }
    }
}

impl fmt::Display for ConsumerAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsumerAlias::Central(name) => f.write_str(name),
            ConsumerAlias::Regional { region, userset } => write!(f, "{region}/{userset}"),
        }
    }
}

/// What a consumer name may hold: what applications put in one path segment without encoding it.
fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromStr for ConsumerAlias {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once('/') {
            None if name_ok(s) => Ok(ConsumerAlias::Central(s.to_owned())),
            None => Err(format!("consumer name {s:?} must be 1 to 100 letters, digits, '.', '_' or '-'")),
            Some((region, userset)) => {
                let region =
                    parse_region(region).ok_or_else(|| format!("{region:?} in {s:?} is not a region (PP or PP-KK)"))?;
                if !name_ok(userset) {
                    return Err(format!(
                        "user set {userset:?} in {s:?} must be 1 to 100 letters, digits, '.', '_' or '-'"
                    ));
                }
                Ok(ConsumerAlias::Regional { region, userset: userset.to_owned() })
            }
        }
    }
}

impl ConsumerAliases {
    /// Whether `route` names the caller's consumer: `consumer_id` (the institution's upstream consumer, central
    /// routes only) or one of these names. Names are compared ignoring case, as the warehouse compares consumer
    /// ids; regions by their codes (`33-74`, `33.74` and `3374` are one region).
    pub fn admit(&self, route: &Route, consumer_id: &str) -> bool {
        let own = matches!(route, Route::Central { consumer_id: named, .. } if named.eq_ignore_ascii_case(consumer_id));
        own || self.0.iter().any(|name| name.matches(route))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[ConsumerAlias] {
        &self.0
    }
}

/// `DINSOS_3374,33-74/dinsos_3374`, as the CLI takes them; an empty string is no names.
impl FromStr for ConsumerAliases {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let names = s
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(str::parse::<ConsumerAlias>)
            .collect::<Result<Vec<_>, _>>()?;
        let mut unique: Vec<ConsumerAlias> = Vec::new();
        for name in names {
            if unique.iter().any(|u| u.to_string().eq_ignore_ascii_case(&name.to_string())) {
                return Err(format!("consumer name {name} is given twice"));
            }
            unique.push(name);
        }
        Ok(ConsumerAliases(unique))
    }
}

/// A list of strings in JSON and TOML.
impl<'de> Deserialize<'de> for ConsumerAliases {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d)?.join(",").parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ConsumerAliases {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_maps_parse_from_the_cli_and_survive_json() {
        let map: MethodMap = "cek_pasien=CALL_NIK,Verifikasi=call_verify_by_elemen".parse().unwrap();
        assert_eq!(map.resolve("CEK_PASIEN"), Some(Method::CallNik));
        assert_eq!(map.resolve("verifikasi"), Some(Method::CallVerifyByElemen));
        assert_eq!(map.resolve("BYNIK"), Some(Method::CallNik), "built-in aliases still work");
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(serde_json::from_str::<MethodMap>(&json).unwrap(), map);
        assert!("cek_pasien".parse::<MethodMap>().is_err());
        assert!("a/b=CALL_NIK".parse::<MethodMap>().is_err());
        assert!("x=CALL_ALL".parse::<MethodMap>().is_err());
    }

    fn central(consumer_id: &str, method: &str) -> Route {
        Route::Central { consumer_id: consumer_id.into(), method: method.into() }
    }

    fn regional(region: &str, userset: &str, method: &str) -> Route {
        Route::Regional { region: region.into(), userset: userset.into(), method: method.into() }
    }

    #[test]
    fn paths_parse_in_both_styles() {
        let table = [
            ("/dukcapil/get_json/BPS/CALL_NIK", Ok(central("BPS", "CALL_NIK"))),
            (
                "/dukcapil/get_json/IDINSOS_3374/call_verify_by_elemen",
                Ok(central("IDINSOS_3374", "call_verify_by_elemen")),
            ),
            ("/dukcapil/get_json/123456789012345/CALL_NIK_GET_KK", Ok(central("123456789012345", "CALL_NIK_GET_KK"))),
            ("/dukcapil/get_json/BPS/CALL_NIK/", Ok(central("BPS", "CALL_NIK"))),
            ("//dukcapil//get_json/BPS/CALL_NIK", Ok(central("BPS", "CALL_NIK"))),
            ("/Dukcapil/GET_JSON/BPS/bynik", Ok(central("BPS", "bynik"))),
            ("dukcapil/get_json/BPS/CALL_NIK", Ok(central("BPS", "CALL_NIK"))),
            ("/dukcapil/get_json/DINAS%20SOSIAL/CALL_NIK", Ok(central("DINAS SOSIAL", "CALL_NIK"))),
            ("/dukcapil/get_json/32-76/rsud_3276/call_nik", Ok(regional("32-76", "rsud_3276", "call_nik"))),
            ("/dukcapil/get_json/32/dinsos_32/CALL_NIK/", Ok(regional("32", "dinsos_32", "CALL_NIK"))),
            ("/dukcapil/get_json/32.76/rsud/cek_pasien", Ok(regional("32.76", "rsud", "cek_pasien"))),
            ("/dukcapil/get_json/3276/rsud/cek_pasien", Ok(regional("3276", "rsud", "cek_pasien"))),
            ("/dukcapil/get_json/ab-cd/rsud/call_nik", Err(RouteError::Region("ab-cd".into()))),
            ("/dukcapil/get_json/327/rsud/call_nik", Err(RouteError::Region("327".into()))),
            ("/dukcapil/get_json/3-76/rsud/call_nik", Err(RouteError::Region("3-76".into()))),
            ("/dukcapil/get_json/1%C3%A91/rsud/call_nik", Err(RouteError::Region("1é1".into()))),
            ("/dukcapil/get_json/CALL_NIK", Err(RouteError::SegmentCount(1))),
            ("/dukcapil/get_json/", Err(RouteError::SegmentCount(0))),
            ("/dukcapil/get_json/32/76/rsud/call_nik", Err(RouteError::SegmentCount(4))),
            ("/dukcapil/get_json/BPS//CALL_NIK", Ok(central("BPS", "CALL_NIK"))),
            ("/dukcapil/BPS/CALL_NIK", Err(RouteError::NotWebService)),
            ("/api/dukcapil/get_json/BPS/CALL_NIK", Err(RouteError::NotWebService)),
            ("/", Err(RouteError::NotWebService)),
            ("", Err(RouteError::NotWebService)),
            ("/dukcapil/get_json/BPS/%FF", Err(RouteError::NotUtf8("%FF".into()))),
        ];
        for (path, want) in table {
            assert_eq!(parse_path(path), want, "{path:?}");
        }
    }

    #[test]
    fn regions_parse_to_one_canonical_form() {
        let valid = [
            ("32-76", 32, Some(76), "32-76"),
            ("32.76", 32, Some(76), "32-76"),
            ("3276", 32, Some(76), "32-76"),
            ("32-07", 32, Some(7), "32-07"),
            ("32", 32, None, "32"),
            ("03-00", 3, Some(0), "03-00"),
        ];
        for (input, province, regency, canonical) in valid {
            let region = parse_region(input);
            assert_eq!(region, Some(RegionPrefix { province, regency }), "{input:?}");
            assert_eq!(region.unwrap().to_string(), canonical);
            assert_eq!(parse_region(canonical), region, "the canonical form parses back");
        }
        let invalid = [
            "32-7", "3-76", "3", "327", "32767", "32-", "-76", "32-76-01", "32--76", " 32", "+3-76", "ab-cd", "1é1", "",
        ];
        for input in invalid {
            assert_eq!(parse_region(input), None, "{input:?}");
        }
    }

    #[test]
    fn rendered_paths_parse_back() {
        let table = [
            (central("BPS", "CALL_NIK"), "/dukcapil/get_json/BPS/CALL_NIK"),
            (central("DINAS SOSIAL/2", "cek pasien"), "/dukcapil/get_json/DINAS%20SOSIAL%2F2/cek%20pasien"),
            (regional("32-76", "rsud_3276", "call_nik"), "/dukcapil/get_json/32-76/rsud_3276/call_nik"),
        ];
        for (route, path) in table {
            assert_eq!(route.path(), path);
            assert_eq!(route.to_string(), path);
            assert_eq!(parse_path(path), Ok(route));
        }
        assert_eq!(regional("32", "u", "m").method_segment(), "m");
        assert_eq!(central("c", "CALL_NIK").method_segment(), "CALL_NIK");
    }

    #[test]
    fn institution_names_resolve_before_built_in_names() {
        let map = MethodMap::new([
            ("Cek_Pasien".to_owned(), Method::CallNik),
            (" verifikasi ".to_owned(), Method::CallVerifyByElemen),
            ("call_nik".to_owned(), Method::CallNikGetKk),
        ]);
        let table = [
            ("cek_pasien", Some(Method::CallNik)),
            ("CEK_PASIEN", Some(Method::CallNik)),
            ("verifikasi", Some(Method::CallVerifyByElemen)),
            ("CALL_NIK", Some(Method::CallNikGetKk)),
            ("bynik", Some(Method::CallNik)),
            ("call_agregat", Some(Method::CallAgregat)),
            ("cek_keluarga", None),
        ];
        for (segment, want) in table {
            assert_eq!(map.resolve(segment), want, "{segment:?}");
        }
        let builtin = MethodMap::default();
        assert_eq!(builtin.resolve("cek_pasien"), None);
        assert_eq!(builtin.resolve("Call_Nik"), Some(Method::CallNik));
    }

    #[test]
    fn method_map_reads_from_a_config_table() {
        let map: MethodMap = serde_json::from_str(r#"{"cek_pasien":"CALL_NIK","cek_kk":"call_nik_get_kk"}"#).unwrap();
        assert_eq!(map.resolve("CEK_KK"), Some(Method::CallNikGetKk));
        assert_eq!(map.resolve("cek_pasien"), Some(Method::CallNik));
        assert!(serde_json::from_str::<MethodMap>(r#"{"cek":"CALL_SEMUA"}"#).is_err());
    }

    #[test]
    fn the_path_must_name_the_callers_consumer() {
        let names: ConsumerAliases = "DINSOS_3374, 33-74/dinsos_3374".parse().unwrap();
        let none = ConsumerAliases::default();
        let table = [
            // The upstream consumer id, in any case, with or without names.
            (&none, central("DEV", "CALL_NIK"), true),
            (&none, central("dev", "CALL_NIK"), true),
            (&names, central("DEV", "CALL_NIK"), true),
            // The names, ignoring case; a region in any of its forms.
            (&none, central("DINSOS_3374", "CALL_NIK"), false),
            (&names, central("DINSOS_3374", "CALL_NIK"), true),
            (&names, central("dinsos_3374", "call_nik"), true),
            (&names, regional("33-74", "dinsos_3374", "call_nik"), true),
            (&names, regional("33.74", "DINSOS_3374", "call_nik"), true),
            (&names, regional("3374", "dinsos_3374", "call_nik"), true),
            // Anything else: another institution's consumer, a prefix, a longer name, a NUL, the other style.
            (&names, central("LAIN_3375", "CALL_NIK"), false),
            (&names, central("BPS", "CALL_NIK"), false),
            (&names, central("DINSOS", "CALL_NIK"), false),
            (&names, central("DINSOS_33745", "CALL_NIK"), false),
            (&names, central("DINSOS_3374\0", "CALL_NIK"), false),
            (&names, central("DEV\0", "CALL_NIK"), false),
            (&names, central(&"D".repeat(300), "CALL_NIK"), false),
            (&names, regional("33-75", "dinsos_3374", "call_nik"), false),
            (&names, regional("33", "dinsos_3374", "call_nik"), false),
            (&names, regional("33-74", "dinsos", "call_nik"), false),
            (&none, regional("33-74", "DEV", "call_nik"), false),
        ];
        for (names, route, want) in table {
            assert_eq!(names.admit(&route, "DEV"), want, "{route} with {names:?}");
        }
    }

    #[test]
    fn consumer_aliases_parse_from_the_cli_and_survive_json() {
        let names: ConsumerAliases = "DINSOS_3374,3374/dinsos_3374,".parse().unwrap();
        assert_eq!(names.names().len(), 2);
        let json = serde_json::to_string(&names).unwrap();
        assert_eq!(json, r#"["DINSOS_3374","33-74/dinsos_3374"]"#);
        assert_eq!(serde_json::from_str::<ConsumerAliases>(&json).unwrap(), names);
        assert_eq!("".parse::<ConsumerAliases>().unwrap(), ConsumerAliases::default());
        for (bad, says) in [
            ("DINAS SOSIAL", "must be 1 to 100"),
            ("33/b/c", "user set"),
            ("3x-74/rsud", "not a region"),
            ("33-74/", "user set"),
            ("DEV%00", "must be 1 to 100"),
            ("dinsos,DINSOS", "given twice"),
            ("33-74/rsud,33.74/RSUD", "given twice"),
        ] {
            let err = bad.parse::<ConsumerAliases>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<ConsumerAliases>(r#"["a b"]"#).is_err());
        let long = "N".repeat(101);
        assert!(long.parse::<ConsumerAliases>().is_err());
    }
}
