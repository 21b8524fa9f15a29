//! From a household plan to residents: NIK and KK numbers, status, and the full record of each member.

use chrono::{Datelike, NaiveDate};
use simpul_core::element::Element;
use simpul_core::kk::KkNumber;
use simpul_core::nik::{Nik, Sex};
use simpul_core::record::{Record, Value};
use simpul_core::region::{catalogue, Regency};

use super::hash::{key, Stream};
use super::household::{self, Ago, Event, Household, Member, Parent};
use super::labels::{self, Education, Marital, Role};
use super::layout::{Layout, Place};
use super::{Population, PopulationConfig, Resident, ResidentStatus};

/// Key tags of the per-person streams.
const PERSON_TAG: u64 = 0x9E_4503;
const STATUS_TAG: u64 = 0x57_A7_05;

/// Relative chance of a deceased record by age class (under 40, 40–59, 60–74, 75 and over).
const DEATH_WEIGHTS: [f64; 4] = [0.2, 1.0, 4.0, 10.0];

fn age_class(age: u32) -> usize {
    match age {
        0..=39 => 0,
        40..=59 => 1,
        60..=74 => 2,
        _ => 3,
    }
}

/// The probability of a deceased record for each age class.
#[derive(Debug, Clone)]
pub(crate) struct Mortality {
    by_class: [f64; 4],
}

impl Mortality {
    /// Scales the age weights so that the expected share of deceased records is the configured fraction, measured on
    /// up to 4,096 residents spread over the population. When the oldest class would need a probability above 1, the
    /// weights are blended with a uniform rate just enough to stay below it, keeping the expectation.
    pub(crate) fn calibrate(config: &PopulationConfig, layout: &Layout) -> Mortality {
        let f = config.deceased_fraction;
        if f == 0.0 {
            return Mortality { by_class: [0.0; 4] };
        }
        let n = layout.residents.min(4_096);
        let mut sum = 0.0;
        for i in 0..n {
            let place = layout.place(i * layout.residents / n).expect("sampled indices are below the count");
            let (_, size) = layout.household(place.district, place.household);
            let plan =
                household::plan(config.seed, &layout.districts[place.district], place.household, size, config.as_of);
            sum += DEATH_WEIGHTS[age_class(plan.members[usize::from(place.slot)].age_years())];
        }
        let mean = sum / n as f64;
        let top = DEATH_WEIGHTS[3] / mean;
        let blend = if f * top <= 1.0 { 1.0 } else { (1.0 - f) / (f * (top - 1.0)) };
        Mortality { by_class: DEATH_WEIGHTS.map(|w| f * (blend * w / mean + (1.0 - blend))) }
    }

    fn deceased(&self, age: u32) -> f64 {
        self.by_class[age_class(age)]
    }

    pub(crate) fn highest(&self) -> f64 {
        self.by_class.iter().cloned().fold(0.0, f64::max)
    }
}

/// The two uniform draws that decide a person's status: the first against the age-dependent deceased rate, the
/// second, independent of age, against the duplicate and inactive shares among the living.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusDraws {
    death: f64,
    record: f64,
}

/// A household, planned, with its place: what every member's resident is built from.
pub(crate) struct HouseholdView<'p> {
    population: &'p Population,
    district: usize,
    household: u32,
    /// Local index (in the district) of the first member.
    start: u32,
    pub(crate) plan: Household,
}

impl Population {
    pub(crate) fn household(&self, district: usize, household: u32) -> HouseholdView<'_> {
        let (start, size) = self.layout.household(district, household);
        let plan =
            household::plan(self.config.seed, &self.layout.districts[district], household, size, self.config.as_of);
        HouseholdView { population: self, district, household, start, plan }
    }

    pub(crate) fn build(&self, place: Place) -> Resident {
        self.household(place.district, place.household).resident(usize::from(place.slot))
    }

    pub(crate) fn status_draws(&self, place: Place) -> StatusDraws {
        let code = self.layout.districts[place.district].code;
        let mut rng = Stream::new(key(&[
            self.config.seed,
            u64::from(code),
            u64::from(place.household),
            u64::from(place.slot),
            STATUS_TAG,
        ]));
        StatusDraws { death: rng.unit(), record: rng.unit() }
    }

    /// The status a living person would have: alive, duplicate or inactive. Dividing by the living share makes the
    /// overall shares the configured ones, since the draw is independent of whether the person died.
    pub(crate) fn living_status(&self, draws: StatusDraws) -> ResidentStatus {
        let c = &self.config;
        let living = 1.0 - c.deceased_fraction;
        if draws.record < c.duplicate_fraction / living {
            ResidentStatus::Duplicate
        } else if draws.record < (c.duplicate_fraction + c.inactive_fraction) / living {
            ResidentStatus::Inactive
        } else {
            ResidentStatus::Alive
        }
    }

    /// Whether the deceased draw can succeed at any age: lets sampling skip the household plan.
    pub(crate) fn may_be_deceased(&self, draws: StatusDraws) -> bool {
        draws.death < self.mortality.highest()
    }

    pub(crate) fn status(&self, draws: StatusDraws, age: u32) -> ResidentStatus {
        if draws.death < self.mortality.deceased(age) {
            ResidentStatus::Deceased
        } else {
            self.living_status(draws)
        }
    }
}

impl HouseholdView<'_> {
    fn as_of(&self) -> NaiveDate {
        self.population.config.as_of
    }

    fn place(&self, slot: usize) -> Place {
        Place { district: self.district, household: self.household, slot: slot as u8 }
    }

    pub(crate) fn nik(&self, slot: usize) -> Nik {
        let d = self.population.layout.districts[self.district].district;
        let m = &self.plan.members[slot];
        let serial = (self.start as usize + slot + 1) as u16;
        Nik::compose(d.province, d.regency, d.code, m.born.date(self.as_of()), m.sex, serial)
            .expect("catalogue districts, births within a century and serials up to 9,999 make valid NIKs")
    }

    pub(crate) fn kk(&self) -> KkNumber {
        let d = self.population.layout.districts[self.district].district;
        let date = self.plan.record_date.date(self.as_of());
        KkNumber::compose(d.province, d.regency, d.code, date, (self.household + 1) as u16)
            .expect("catalogue districts and at most 9,999 households a district make valid KK numbers")
    }

    pub(crate) fn status(&self, slot: usize) -> ResidentStatus {
        let draws = self.population.status_draws(self.place(slot));
        self.population.status(draws, self.plan.members[slot].age_years())
    }

    pub(crate) fn resident(&self, slot: usize) -> Resident {
        let district = &self.population.layout.districts[self.district];
        let (nik, kk) = (self.nik(slot), self.kk());
        Resident {
            index: district.first_resident + u64::from(self.start) + slot as u64,
            status: self.status(slot),
            nik,
            kk,
            record: self.record(slot, nik, kk),
        }
    }

    fn parent(&self, parent: Parent) -> (Value, Value) {
        match parent {
            Parent::Member(slot) => {
                let slot = usize::from(slot);
                (Value::Number(self.nik(slot).as_u64()), Value::Text(self.plan.members[slot].name.to_string()))
            }
            Parent::Outside(name) => (Value::Null, Value::Text(name.to_string())),
        }
    }

    fn record(&self, slot: usize, nik: Nik, kk: KkNumber) -> Record {
        let as_of = self.as_of();
        let seed = self.population.config.seed;
        let district = &self.population.layout.districts[self.district];
        let d = district.district;
        let (regency, province) = (district.regency, district.province);
        let plan = &self.plan;
        let village = plan.village;
        let m: &Member = &plan.members[slot];
        let mut rng =
            Stream::new(key(&[seed, u64::from(district.code), u64::from(self.household), slot as u64, PERSON_TAG]));
        let born = m.born.date(as_of);
        let age = m.age_years();
        let education = Education::draw(age, born.year(), &mut rng);
        let female = m.sex == Sex::Female;
        let occupation = labels::occupation(age, female, education, !village.is_urban(), &mut rng);
        let region_code = u32::from(d.province) * 100 + u32::from(d.regency);
        let deed = |kind: &str, on: NaiveDate, serial: u16| -> Value {
            Value::Text(format!("{region_code:04}-{kind}-{:02}{:02}{:04}-{serial:04}", on.day(), on.month(), on.year()))
        };
        let birth_deed = {
            let p = match born.year() {
                2010.. => 0.92,
                1990..=2009 => 0.65,
                _ => 0.25,
            };
            if rng.chance(p) {
                let issued = Ago((m.born.0 - rng.between(7, 180)).max(1));
                deed("LT", issued.date(as_of), 1 + rng.below(9_999) as u16)
            } else {
                Value::Null
            }
        };
        let event = |e: Option<Event>, kind: &str| -> (Value, Value) {
            match e {
                Some(Event { on, deed: serial }) => {
                    let date = on.date(as_of);
                    (Value::Date(date), serial.map_or(Value::Null, |s| deed(kind, date, s)))
                }
                None => (Value::Null, Value::Null),
            }
        };
        let (married_on, marriage_deed) = event(m.marriage, "KW");
        let (divorced_on, divorce_deed) = event(m.divorce, "CR");
        let (father_nik, father_name) = self.parent(m.father);
        let (mother_nik, mother_name) = self.parent(m.mother);
        let text = |s: &str| Value::Text(s.to_owned());
        let number = |n: u32| Value::Number(u64::from(n));
        Record::default()
            .with(Element::Nik, Value::Number(nik.as_u64()))
            .with(Element::NoKk, Value::Number(kk.as_u64()))
            .with(Element::NamaLgkp, Value::Text(m.name.to_string()))
            .with(Element::JenisKlmin, text(nik.sex().wire_label()))
            .with(Element::TmptLhr, Value::Text(birth_place(regency, m, &mut rng)))
            .with(Element::TglLhr, Value::Date(born))
            .with(Element::NoAktaLhr, birth_deed)
            .with(Element::GolDarah, text(labels::blood_type(&mut rng)))
            .with(Element::Agama, text(plan.religion.label()))
            .with(Element::StatusKawin, text(m.marital.label()))
            .with(Element::TglKwn, married_on)
            .with(Element::NoAktaKwn, marriage_deed)
            .with(Element::TglCrai, divorced_on)
            .with(Element::NoAktaCrai, divorce_deed)
            .with(Element::PddkAkh, text(education.label()))
            .with(Element::JenisPkrjn, text(occupation))
            .with(Element::StatHbkel, text(m.role.label()))
            .with(Element::Alamat, Value::Text(plan.alamat()))
            .with(Element::Dusun, plan.dusun.map_or(Value::Null, text))
            .with(Element::NoRt, number(plan.rt.into()))
            .with(Element::NoRw, number(plan.rw.into()))
            .with(Element::NoKel, number(village.code.into()))
            .with(Element::NoKec, number(d.code.into()))
            .with(Element::NoKab, number(d.regency.into()))
            .with(Element::NoProp, number(d.province.into()))
            .with(Element::KelName, Value::Text(village.name.to_uppercase()))
            .with(Element::KecName, Value::Text(d.name.to_uppercase()))
            .with(Element::KabName, Value::Text(kab_name(regency)))
            .with(Element::PropName, Value::Text(prop_name(&province.name)))
            .with(Element::NikAyah, father_nik)
            .with(Element::NamaLgkpAyah, father_name)
            .with(Element::NikIbu, mother_nik)
            .with(Element::NamaLgkpIbu, mother_name)
            .with(Element::EktpStatus, text(labels::ektp_status(age, m.marital != Marital::Single, &mut rng)))
            .with(Element::KodePos, number(village.postal_code))
            .with(Element::PnydngCct, text(labels::disability(age, &mut rng)))
    }
}

/// KAB_NAME: "KOTA SEMARANG" for a city, the bare name for a kabupaten ("ACEH SELATAN").
pub(crate) fn kab_name(regency: &Regency) -> String {
    let short = regency.short_name().to_uppercase();
    if regency.is_city() {
        format!("KOTA {short}")
    } else {
        short
    }
}

/// PROP_NAME, with the special regions abbreviated as Dukcapil writes them.
pub(crate) fn prop_name(name: &str) -> String {
    let name = name.to_uppercase();
    if let Some(rest) = name.strip_prefix("DAERAH KHUSUS IBUKOTA ") {
        format!("DKI {rest}")
    } else if let Some(rest) = name.strip_prefix("DAERAH ISTIMEWA ") {
        format!("DI {rest}")
    } else {
        name
    }
}

/// Large cities people were born in before moving.
const BIG_CITIES: &[&str] =
    &["JAKARTA", "SURABAYA", "BANDUNG", "MEDAN", "SEMARANG", "MAKASSAR", "YOGYAKARTA", "PALEMBANG", "MALANG", "SOLO"];

/// TMPT_LHR: the regency of residence for most, especially children; otherwise another regency of the province
/// or a big city. Written as people write it: the regency's short name, Jakarta's cities as JAKARTA.
fn birth_place(regency: &Regency, m: &Member, rng: &mut Stream) -> String {
    let grown_up = !matches!(m.role, Role::Child | Role::Grandchild) || m.age_years() >= 25;
    let local = if grown_up { 0.7 } else { 0.93 };
    let x = rng.unit();
    let place = if x < local {
        regency
    } else if x < local + (1.0 - local) * 0.7 {
        let catalogue = catalogue();
        let province = catalogue.province(regency.province).expect("a regency's province is in the catalogue");
        let regencies = catalogue.regencies_of(province);
        &regencies[rng.below(regencies.len() as u64) as usize]
    } else {
        return rng.pick(BIG_CITIES).to_owned();
    };
    if place.province == 31 {
        "JAKARTA".to_owned()
    } else {
        place.short_name().to_uppercase()
    }
}
