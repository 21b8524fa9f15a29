//! Samples of the population, so that tests and benchmarks ask for NIKs that exist (or, on purpose, do not).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value as Json};
use simpul_core::element::ElementSet;
use simpul_core::nik::{Nik, Sex};
use simpul_core::region::catalogue;

use super::hash::{key, Stream};
use super::household::{years, Ago};
use super::{Population, PopulationError, Resident, ResidentStatus};

/// What a sample holds: residents with a status, or NIKs that answer code 13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleKind {
    Alive,
    Deceased,
    Duplicate,
    Inactive,
    Unknown,
}

impl SampleKind {
    pub const ALL: [SampleKind; 5] =
        [SampleKind::Alive, SampleKind::Deceased, SampleKind::Duplicate, SampleKind::Inactive, SampleKind::Unknown];

    pub const fn as_str(self) -> &'static str {
        match self {
            SampleKind::Alive => "alive",
            SampleKind::Deceased => "deceased",
            SampleKind::Duplicate => "duplicate",
            SampleKind::Inactive => "inactive",
            SampleKind::Unknown => "unknown",
        }
    }

    fn status(self) -> Option<ResidentStatus> {
        match self {
            SampleKind::Alive => Some(ResidentStatus::Alive),
            SampleKind::Deceased => Some(ResidentStatus::Deceased),
            SampleKind::Duplicate => Some(ResidentStatus::Duplicate),
            SampleKind::Inactive => Some(ResidentStatus::Inactive),
            SampleKind::Unknown => None,
        }
    }
}

impl From<ResidentStatus> for SampleKind {
    fn from(status: ResidentStatus) -> SampleKind {
        match status {
            ResidentStatus::Alive => SampleKind::Alive,
            ResidentStatus::Deceased => SampleKind::Deceased,
            ResidentStatus::Duplicate => SampleKind::Duplicate,
            ResidentStatus::Inactive => SampleKind::Inactive,
        }
    }
}

impl FromStr for SampleKind {
    type Err = PopulationError;

    fn from_str(s: &str) -> Result<SampleKind, PopulationError> {
        let s = s.trim();
        SampleKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| PopulationError::SampleKind(s.to_owned()))
    }
}

impl fmt::Display for SampleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sampled NIK, with its resident unless the kind is [`SampleKind::Unknown`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub kind: SampleKind,
    pub nik: Nik,
    pub resident: Option<Resident>,
}

impl Sample {
    /// `{"kind":"alive","NIK":...,...every element in wire order}`, or `{"kind":"unknown","NIK":...}`.
    pub fn to_json(&self) -> Json {
        let mut object = Map::new();
        object.insert("kind".to_owned(), Json::from(self.kind.as_str()));
        match &self.resident {
            Some(resident) => object.extend(resident.record.to_json(ElementSet::all())),
            None => {
                object.insert("NIK".to_owned(), Json::from(self.nik.as_u64()));
            }
        }
        Json::Object(object)
    }
}

/// Gives up on finding an unknown NIK after this many tries in a row (each almost always succeeds at once).
const UNKNOWN_TRIES: u32 = 1_000;

/// Walks the residents in the order `start, start + stride, ...` modulo the count, with the stride coprime to the
/// count: a pseudo-random order that visits every resident exactly once, so the sample is distinct and ends when
/// the population has no more of the kind.
pub(crate) struct Samples<'p> {
    population: &'p Population,
    kind: SampleKind,
    remaining: usize,
    rng: Stream,
    cursor: u64,
    stride: u64,
    visited: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl<'p> Samples<'p> {
    pub(crate) fn new(population: &'p Population, kind: SampleKind, count: usize, seed: u64) -> Samples<'p> {
        let mut rng = Stream::new(key(&[population.config.seed, seed, kind as u64]));
        let len = population.len();
        let cursor = rng.below(len);
        let mut stride = len / 3 + rng.below(len / 3 + 1);
        while gcd(stride, len) != 1 {
            stride += 1;
        }
        let c = &population.config;
        let possible = match kind {
            SampleKind::Deceased => c.deceased_fraction > 0.0,
            SampleKind::Duplicate => c.duplicate_fraction > 0.0,
            SampleKind::Inactive => c.inactive_fraction > 0.0,
            SampleKind::Alive | SampleKind::Unknown => true,
        };
        Samples { population, kind, remaining: if possible { count } else { 0 }, rng, cursor, stride, visited: 0 }
    }

    fn next_resident(&mut self, wanted: ResidentStatus) -> Option<Resident> {
        let population = self.population;
        let len = population.len();
        while self.visited < len {
            let index = self.cursor;
            self.cursor = (self.cursor + self.stride) % len;
            self.visited += 1;
            let place = population.layout.place(index)?;
            // The status draws alone often rule a resident out, without planning the household.
            let draws = population.status_draws(place);
            let candidate = match wanted {
                ResidentStatus::Deceased => population.may_be_deceased(draws),
                living => population.living_status(draws) == living,
            };
            if !candidate {
                continue;
            }
            let household = population.household(place.district, place.household);
            let slot = usize::from(place.slot);
            if household.status(slot) == wanted {
                return Some(household.resident(slot));
            }
        }
        None
    }

    /// A NIK of a real district, with a birth date at least a year before `as_of` and any serial, that is not in
    /// the population: nearly every such NIK, since the birth date and sex must match the resident of that serial.
    fn unknown_nik(&mut self) -> Option<Nik> {
        let population = self.population;
        let districts = catalogue().districts();
        for _ in 0..UNKNOWN_TRIES {
            let d = &districts[self.rng.below(districts.len() as u64) as usize];
            let born = Ago(365 + self.rng.below(years(80) as u64) as i64).date(population.config.as_of);
            let sex = if self.rng.chance(0.5) { Sex::Female } else { Sex::Male };
            let serial = 1 + self.rng.below(9_999) as u16;
            let nik = Nik::compose(d.province, d.regency, d.code, born, sex, serial)
                .expect("catalogue districts and recent births make valid NIKs");
            if population.find_nik(&nik).is_none() {
                return Some(nik);
            }
        }
        None
    }
}

impl Iterator for Samples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 {
            return None;
        }
        let sample = match self.kind.status() {
            Some(wanted) => {
                let resident = self.next_resident(wanted)?;
                Sample { kind: self.kind, nik: resident.nik, resident: Some(resident) }
            }
            None => Sample { kind: SampleKind::Unknown, nik: self.unknown_nik()?, resident: None },
        };
        self.remaining -= 1;
        Some(sample)
    }
}
