//! A deterministic synthetic population: every resident is a pure function of (seed, index).
//!
//! No table of residents exists. [`Population::new`] spreads the configured number of residents over the 7,285
//! districts of the region catalogue and cuts every district into households; that layout (one `u16` per household,
//! about 6 MB for 10 million residents) is all the population stores. A resident's record is computed on demand.
//!
//! # Layout
//! - **Districts.** Each province gets its share of the residents by its real population (BPS 2024 projections,
//!   compiled in); within a province, districts are weighted by their villages, a kelurahan counting four times a
//!   desa, so city districts are denser. No district holds more than 9,999 residents (see below): the excess of a
//!   full district goes to the others, and the capacity of the catalogue is 7,285 × 9,999 = 72.8 million.
//! - **Households.** Within a district, households follow one another; each has 1 to 8 members, a size drawn from
//!   (seed, district code, household number) with SUSENAS-like frequencies (mean 3.65). The last household of a
//!   district is cut short so the district holds exactly its share, and `len()` is exactly `residents`.
//! - **Numbers.** Residents are numbered consecutively through districts in code order, and through households in
//!   a district. The NIK serial of a resident is its position in its district plus one (so ≤ 9,999), the NIK
//!   region is the district, and the birth date and sex are the person's. The KK number is the district, the date
//!   the family card was issued, and the household's number in the district plus one.
//!
//! Hence look-ups are O(1): a NIK gives its district (binary search over 7,285 codes) and its serial gives the
//! resident; a KK serial gives the household. The resident is then generated and its NIK compared with the one
//! asked for, digit for digit: a NIK whose birth date or sex does not match the generated person is not found.
//!
//! # Generation
//! A household is planned from a stream keyed by (seed, district code, household number): village (kelurahan
//! weighted up), RT/RW, hamlet and address, religion by province, a naming culture by province and religion, and
//! the members with their roles (STAT_HBKEL), birth dates, marriages and divorces, names and parents. Attributes
//! that concern one person only (education, occupation, blood type, e-KTP, disability, birth deed, place of birth)
//! come from a stream keyed by the person's slot, and the status (deceased, duplicate, inactive) from another. A
//! household's content depends on its place and the seed, not on the population size: a small population's
//! households are the first households of each district of a larger one (statuses aside, whose rates the
//! calibration below may shift slightly).
//!
//! Rules the generator keeps: a family's timeline is drawn from its youngest child back (the child's age, the
//! spacing, the mother's age at her first birth), so children are born when the mother is 19 to 44, at least ten
//! months after the marriage and more than a year apart, and the father was at least 19 at the marriage; children's
//! NIK_AYAH/NIK_IBU are their parents' NIKs when the parents are in the household (else null, with a name); heads'
//! and spouses' parents are named, and a parent living in the household (ORANG TUA, MERTUA) is that very person,
//! NIK included; nobody is older than 97, so a NIK read against `as_of` gives back the birth year; education,
//! occupation and e-KTP follow age (SUDAH REKAM only from 17 or married). The resulting age pyramid is a young
//! Indonesian one (0–14 about 30%, 65+ about 5%).
//!
//! Region elements: codes as numbers, names upper case. KAB_NAME is the short name for a kabupaten ("ACEH
//! SELATAN") and "KOTA " + the short name for a city ("KOTA SEMARANG", "KOTA JAKARTA PUSAT"); PROP_NAME abbreviates
//! the special regions as Dukcapil does ("DKI JAKARTA", "DI YOGYAKARTA"). DUSUN is null in a kelurahan.
//!
//! # Status
//! The deceased fraction is spread over ages (older residents far more often) and normalised at start-up on a sample
//! of 4,096 residents, so the expected fraction is the configured one; duplicate and inactive are drawn
//! independently of age among the living. Status is per person: a household may hold a deceased head.

mod aggregate;
pub(crate) mod hash;
mod household;
mod labels;
mod layout;
mod names;
mod person;
mod sample;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use simpul_core::kk::KkNumber;
use simpul_core::nik::Nik;
use simpul_core::record::Record;
use simpul_core::wire::code::ResponseCode;

pub use aggregate::{AgeBand, AggregateRow};
pub use sample::{Sample, SampleKind};

use layout::Layout;
use person::Mortality;

/// What population to generate. Every field has a default, so a config file may name only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopulationConfig {
    pub seed: u64,
    pub residents: u64,
    /// Share of records of deceased residents (response code 11).
    pub deceased_fraction: f64,
    /// Share of duplicate records (code 12).
    pub duplicate_fraction: f64,
    /// Share of inactive records (code 14).
    pub inactive_fraction: f64,
    /// The consolidation the data is as of: every birth and event is before it, and ages are counted to it.
    #[serde(deserialize_with = "crate::toml_date::deserialize")]
    pub as_of: NaiveDate,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            seed: 1,
            residents: 10_000_000,
            deceased_fraction: 0.02,
            duplicate_fraction: 0.005,
            inactive_fraction: 0.01,
            // The last semester consolidation (June and December).
            as_of: NaiveDate::from_ymd_opt(2026, 6, 30).expect("a valid date"),
        }
    }
}

impl PopulationConfig {
    pub fn validate(&self) -> Result<(), PopulationError> {
        let fractions = [
            ("deceased_fraction", self.deceased_fraction),
            ("duplicate_fraction", self.duplicate_fraction),
            ("inactive_fraction", self.inactive_fraction),
        ];
        for (name, value) in fractions {
            if !(0.0..1.0).contains(&value) {
                return Err(PopulationError::Fraction { name, value });
            }
        }
        let sum: f64 = fractions.iter().map(|(_, v)| v).sum();
        if sum >= 1.0 {
            return Err(PopulationError::FractionSum(sum));
        }
        let max = Layout::max_residents();
        if !(1..=max).contains(&self.residents) {
            return Err(PopulationError::Residents { residents: self.residents, max });
        }
        // Births go back 97 years and must be writable in a NIK (1900–2099).
        if !(2000..=2099).contains(&chrono::Datelike::year(&self.as_of)) {
            return Err(PopulationError::AsOf(self.as_of));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PopulationError {
    #[error("{name} must be at least 0 and below 1, not {value}")]
    Fraction { name: &'static str, value: f64 },
    #[error("the deceased, duplicate and inactive fractions sum to {0}, which leaves no living residents")]
    FractionSum(f64),
    #[error("residents must be 1 to {max} (9,999 per district), not {residents}")]
    Residents { residents: u64, max: u64 },
    #[error("as_of {0} must be in the years 2000-2099")]
    AsOf(NaiveDate),
    #[error("no region {0} in the catalogue")]
    UnknownRegion(String),
    #[error("a district can only be selected within a regency")]
    DistrictWithoutRegency,
    #[error("unknown sample kind {0:?} (alive, deceased, duplicate, inactive, unknown)")]
    SampleKind(String),
}

/// How the warehouse answers for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResidentStatus {
    Alive,
    Deceased,
    Duplicate,
    Inactive,
}

impl ResidentStatus {
    /// The business code answered instead of the data, if any.
    pub fn response_code(self) -> Option<ResponseCode> {
        match self {
            ResidentStatus::Alive => None,
            ResidentStatus::Deceased => Some(ResponseCode::Deceased),
            ResidentStatus::Duplicate => Some(ResponseCode::Duplicate),
            ResidentStatus::Inactive => Some(ResponseCode::Inactive),
        }
    }
}

/// One resident with every element of their record filled where it applies (dates and deeds that do not apply,
/// the NIKs of parents outside the household and DUSUN in a kelurahan are null).
#[derive(Debug, Clone, PartialEq)]
pub struct Resident {
    /// Position in the population, `0..len()`.
    pub index: u64,
    pub status: ResidentStatus,
    pub nik: Nik,
    pub kk: KkNumber,
    pub record: Record,
}

/// Counts per (district, reference date): sex × age band.
type AggregateCache = HashMap<(usize, NaiveDate), [u32; aggregate::CELLS]>;

pub struct Population {
    config: PopulationConfig,
    layout: Layout,
    mortality: Mortality,
    aggregates: Mutex<AggregateCache>,
}

impl fmt::Debug for Population {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Population")
            .field("config", &self.config)
            .field("districts", &self.layout.districts.len())
            .field("layout_bytes", &self.layout.heap_bytes())
            .finish_non_exhaustive()
    }
}

impl Population {
    pub fn new(config: PopulationConfig) -> Result<Population, PopulationError> {
        config.validate()?;
        let layout = Layout::new(config.seed, config.residents);
        let mortality = Mortality::calibrate(&config, &layout);
        Ok(Population { config, layout, mortality, aggregates: Mutex::new(HashMap::new()) })
    }

    /// The number of residents, exactly the configured number.
    pub fn len(&self) -> u64 {
        self.layout.residents
    }

    /// Always false: a population has at least one resident.
    pub fn is_empty(&self) -> bool {
        self.layout.residents == 0
    }

    pub fn config(&self) -> &PopulationConfig {
        &self.config
    }

    /// Heap bytes held by the layout, the population's only sizeable state.
    pub fn layout_bytes(&self) -> usize {
        self.layout.heap_bytes()
    }

    /// The resident at `index` (`0..len()`).
    pub fn resident(&self, index: u64) -> Option<Resident> {
        let place = self.layout.place(index)?;
        Some(self.build(place))
    }

    /// The resident with this NIK; `None` is Dukcapil's code 13. O(1): the NIK's region and serial give the resident,
    /// whose NIK must then equal this one (birth date and sex included).
    pub fn find_nik(&self, nik: &Nik) -> Option<Resident> {
        let district = self.layout.district_by_code((nik.as_u64() / 10_000_000_000) as u32)?;
        let local = u32::from(nik.serial()).checked_sub(1)?;
        if local >= self.layout.districts[district].residents {
            return None;
        }
        let place = self.layout.local_place(district, local);
        let family = self.household(district, place.household);
        (family.nik(usize::from(place.slot)).as_u64() == nik.as_u64()).then(|| family.resident(usize::from(place.slot)))
    }

    /// The members of the household with this KK number, head first; `None` if there is no such family card.
    pub fn family(&self, kk: &KkNumber) -> Option<Vec<Resident>> {
        let district = self.layout.district_by_code((kk.as_u64() / 10_000_000_000) as u32)?;
        let household = u32::from(kk.serial()).checked_sub(1)?;
        if household >= self.layout.districts[district].households {
            return None;
        }
        let family = self.household(district, household);
        (family.kk().as_u64() == kk.as_u64())
            .then(|| (0..family.plan.members.len()).map(|slot| family.resident(slot)).collect())
    }

    /// `count` residents of a kind, distinct, in a pseudo-random order fixed by `seed`; or NIKs that are well formed
    /// but not in the population, for [`SampleKind::Unknown`]. Fewer if the population has fewer of that kind.
    pub fn sample(&self, kind: SampleKind, count: usize, seed: u64) -> impl Iterator<Item = Sample> + '_ {
        sample::Samples::new(self, kind, count, seed)
    }
}
