//! Population tests against the real catalogue.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use chrono::{Datelike, NaiveDate};
use simpul_core::element::{Element, ElementSet};
use simpul_core::nik::{Nik, Sex};
use simpul_core::record::Value;
use simpul_core::region::catalogue;

use super::hash::Stream;
use super::*;

/// The default population (10 million residents), built once for the tests that need its scale.
fn national() -> &'static Population {
    static POPULATION: OnceLock<Population> = OnceLock::new();
    POPULATION.get_or_init(|| Population::new(PopulationConfig::default()).expect("the default config is valid"))
}

fn small(seed: u64, residents: u64) -> Population {
    Population::new(PopulationConfig { seed, residents, ..PopulationConfig::default() }).unwrap()
}

fn text(r: &Resident, e: Element) -> &str {
    match r.record.get(e) {
        Value::Text(s) => s,
        other => panic!("{e} is {other:?} in {}", r.nik),
    }
}

fn number(r: &Resident, e: Element) -> u64 {
    match r.record.get(e) {
        Value::Number(n) => *n,
        other => panic!("{e} is {other:?} in {}", r.nik),
    }
}

fn date(r: &Resident, e: Element) -> Option<NaiveDate> {
    match r.record.get(e) {
        Value::Date(d) => Some(*d),
        Value::Null => None,
        other => panic!("{e} is {other:?} in {}", r.nik),
    }
}

/// Indices spread pseudo-randomly over a population.
fn random_indices(population: &Population, count: usize, seed: u64) -> Vec<u64> {
    let mut rng = Stream::new(seed);
    (0..count).map(|_| rng.below(population.len())).collect()
}

fn years_between(earlier: NaiveDate, later: NaiveDate) -> f64 {
    (later - earlier).num_days() as f64 / 365.2425
}

#[test]
fn default_population_starts_fast_with_ten_million_residents() {
    let started = Instant::now();
    let population = Population::new(PopulationConfig::default()).unwrap();
    let elapsed = started.elapsed();
    println!(
        "Population::new(10M): {elapsed:?}, layout {:.1} MB, {population:?}",
        population.layout_bytes() as f64 / 1e6
    );
    assert_eq!(population.len(), 10_000_000);
    assert!(population.layout_bytes() < 20_000_000, "{}", population.layout_bytes());
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let rss = status.lines().find(|l| l.starts_with("VmRSS")).unwrap_or("VmRSS: unknown");
        println!("process {rss} (test harness, catalogue and all tests' populations included)");
    }
}

#[test]
fn same_seed_same_residents_other_seed_other_residents() {
    let (a, b, c) = (small(7, 300_000), small(7, 300_000), small(8, 300_000));
    let mut differing = 0;
    for index in random_indices(&a, 300, 1) {
        let (ra, rb, rc) = (a.resident(index).unwrap(), b.resident(index).unwrap(), c.resident(index).unwrap());
        assert_eq!(ra, rb);
        differing += usize::from(ra.record != rc.record);
    }
    assert!(differing > 290, "only {differing} of 300 residents differ between seeds");
}

#[test]
fn a_household_does_not_depend_on_the_population_size() {
    let (smaller, larger) = (small(3, 100_000), small(3, 1_000_000));
    // District 0's households in the smaller population are the first ones of the larger, but for the last one,
    // which is cut short to fit.
    let whole = smaller.layout.districts[0].households - 1;
    for h in 0..whole {
        assert_eq!(smaller.household(0, h).resident(0), larger.household(0, h).resident(0));
    }
}

#[test]
fn lookups_round_trip_by_nik_and_by_kk() {
    let population = national();
    let as_of = population.config().as_of;
    for index in random_indices(population, 2_000, 2) {
        let r = population.resident(index).unwrap();
        assert_eq!(r.index, index);
        assert_eq!(population.find_nik(&r.nik).as_ref(), Some(&r));
        let parsed = Nik::parse(&r.nik.to_string(), as_of).unwrap_or_else(|e| panic!("{}: {e}", r.nik));
        assert_eq!(parsed.as_u64(), r.nik.as_u64());
        assert_eq!(Some(parsed.birth_date()), date(&r, Element::TglLhr), "{}", r.nik);
        let sex = if parsed.sex() == Sex::Female { "Perempuan" } else { "Laki-Laki" };
        assert_eq!(text(&r, Element::JenisKlmin), sex);
        assert_eq!(number(&r, Element::Nik), r.nik.as_u64());
        assert_eq!(number(&r, Element::NoKk), r.kk.as_u64());
        let family = population.family(&r.kk).expect("a resident's KK is found");
        assert!(family.contains(&r), "{} not in its family", r.nik);
        assert_eq!(text(&family[0], Element::StatHbkel), "KEPALA KELUARGA");
        assert!(family[1..].iter().all(|m| text(m, Element::StatHbkel) != "KEPALA KELUARGA"));
        assert!(family.iter().all(|m| m.kk == r.kk));
    }
    assert!(population.resident(population.len()).is_none());
}

#[test]
fn nik_with_another_birth_date_sex_or_serial_is_not_found() {
    let population = national();
    let r = population.resident(1_234_567).unwrap();
    let d = r.nik.birth_date();
    let (p, k, c) = (r.nik.province(), r.nik.regency(), r.nik.district());
    let other_sex = if r.nik.sex() == Sex::Male { Sex::Female } else { Sex::Male };
    let variants = [
        Nik::compose(p, k, c, d.pred_opt().unwrap(), r.nik.sex(), r.nik.serial()).unwrap(),
        Nik::compose(p, k, c, d, other_sex, r.nik.serial()).unwrap(),
        Nik::compose(p, k, c, d, r.nik.sex(), 9_999).unwrap(),
        // A well-formed region that is not in the catalogue.
        Nik::compose(p, 69, c, d, r.nik.sex(), r.nik.serial()).unwrap(),
    ];
    for nik in variants {
        assert_eq!(population.find_nik(&nik), None, "{nik}");
    }
    let kk = r.kk;
    let other_date = KkNumber::compose(p, k, c, kk.record_date().pred_opt().unwrap(), kk.serial()).unwrap();
    assert_eq!(population.family(&other_date), None);
    assert_eq!(population.family(&KkNumber::compose(p, k, c, kk.record_date(), 9_999).unwrap()), None);
}

#[test]
fn region_elements_come_from_the_catalogue() {
    let population = national();
    let catalogue = catalogue();
    for index in random_indices(population, 1_500, 3) {
        let r = population.resident(index).unwrap();
        let (p, k, c, v) = (
            number(&r, Element::NoProp) as u8,
            number(&r, Element::NoKab) as u8,
            number(&r, Element::NoKec) as u8,
            number(&r, Element::NoKel) as u16,
        );
        assert_eq!((p, k, c), (r.nik.province(), r.nik.regency(), r.nik.district()));
        assert_eq!((p, k, c), (r.kk.province(), r.kk.regency(), r.kk.district()));
        let village = catalogue.village(p, k, c, v).unwrap_or_else(|| panic!("{p}.{k}.{c}.{v} not in the catalogue"));
        assert_eq!(number(&r, Element::KodePos), u64::from(village.postal_code));
        assert_eq!(text(&r, Element::KelName), village.name.to_uppercase());
        assert_eq!(text(&r, Element::KecName), catalogue.district(p, k, c).unwrap().name.to_uppercase());
        let regency = catalogue.regency(p, k).unwrap();
        let kab = text(&r, Element::KabName);
        assert!(kab.ends_with(&regency.short_name().to_uppercase()), "{kab}");
        assert_eq!(kab.starts_with("KOTA "), regency.is_city(), "{kab}");
        assert!(!text(&r, Element::PropName).is_empty());
        assert_eq!(r.record.get(Element::Dusun) == &Value::Null, village.is_urban(), "{}", r.nik);
        assert!((1..=30).contains(&number(&r, Element::NoRt)));
        assert!((1..=30).contains(&number(&r, Element::NoRw)));
        assert!(!text(&r, Element::Alamat).is_empty());
        assert!(!text(&r, Element::TmptLhr).is_empty());
    }
    let jakarta = population.sample(SampleKind::Alive, 20_000, 4).find(|s| s.nik.province() == 31).unwrap();
    assert_eq!(text(jakarta.resident.as_ref().unwrap(), Element::PropName), "DKI JAKARTA");
}

#[test]
fn households_are_consistent() {
    let population = national();
    let mut children = 0;
    let mut roles = HashMap::<String, usize>::new();
    for index in random_indices(population, 1_500, 5) {
        let r = population.resident(index).unwrap();
        let family = population.family(&r.kk).unwrap();
        let by_nik: HashMap<u64, &Resident> = family.iter().map(|m| (m.nik.as_u64(), m)).collect();
        let head = &family[0];
        let alamat = text(head, Element::Alamat);
        for m in &family {
            *roles.entry(text(m, Element::StatHbkel).to_owned()).or_default() += 1;
            assert_eq!(text(m, Element::Alamat), alamat);
            assert_eq!(number(m, Element::NoKel), number(head, Element::NoKel));
            let born = date(m, Element::TglLhr).unwrap();
            assert!(born < population.config().as_of && years_between(born, population.config().as_of) < 98.0);
            let kawin = text(m, Element::StatusKawin);
            assert_eq!(date(m, Element::TglKwn).is_some(), kawin != "BELUM KAWIN", "{}", m.nik);
            assert_eq!(date(m, Element::TglCrai).is_some(), kawin == "CERAI HIDUP", "{}", m.nik);
            if let Some(married) = date(m, Element::TglKwn) {
                assert!(years_between(born, married) >= 16.0, "{} married at {married}", m.nik);
            }
            for (nik_element, name_element, sex, min_gap) in [
                (Element::NikAyah, Element::NamaLgkpAyah, "Laki-Laki", 19.0),
                (Element::NikIbu, Element::NamaLgkpIbu, "Perempuan", 17.0),
            ] {
                assert!(!text(m, name_element).is_empty());
                let Value::Number(parent) = m.record.get(nik_element) else { continue };
                let parent = by_nik.get(parent).unwrap_or_else(|| panic!("{}'s parent is not in the family", m.nik));
                assert_eq!(text(parent, Element::NamaLgkp), text(m, name_element));
                assert_eq!(text(parent, Element::JenisKlmin), sex);
                let gap = years_between(date(parent, Element::TglLhr).unwrap(), born);
                assert!(gap >= min_gap, "{} is {gap:.1} years younger than its parent {}", m.nik, parent.nik);
            }
            if text(m, Element::StatHbkel) == "ANAK" {
                children += 1;
                // A couple's children are the head's and the spouse's.
                let spouse = family.iter().find(|s| ["ISTRI", "SUAMI"].contains(&text(s, Element::StatHbkel)));
                if let Some(spouse) = spouse {
                    let parents: HashSet<u64> = [m.record.get(Element::NikAyah), m.record.get(Element::NikIbu)]
                        .into_iter()
                        .filter_map(|v| if let Value::Number(n) = v { Some(*n) } else { None })
                        .collect();
                    assert_eq!(parents, HashSet::from([head.nik.as_u64(), spouse.nik.as_u64()]), "{}", m.nik);
                }
            }
        }
    }
    println!("roles: {roles:?}");
    assert!(children > 1_000, "{children}");
    for role in ["KEPALA KELUARGA", "ISTRI", "ANAK", "ORANG TUA", "MERTUA", "CUCU", "FAMILI LAIN", "SUAMI"] {
        assert!(roles.contains_key(role), "no {role} in {roles:?}");
    }
}

#[test]
fn status_fractions_match_the_config() {
    let population = Population::new(PopulationConfig {
        residents: 200_000,
        deceased_fraction: 0.05,
        duplicate_fraction: 0.02,
        inactive_fraction: 0.03,
        ..PopulationConfig::default()
    })
    .unwrap();
    let mut counts = HashMap::<ResidentStatus, u64>::new();
    let mut deceased_by_age = [[0u64; 2]; 2];
    for (d, slot) in population.layout.districts.iter().enumerate() {
        for h in 0..slot.households {
            let household = population.household(d, h);
            for (i, member) in household.plan.members.iter().enumerate() {
                let status = household.status(i);
                *counts.entry(status).or_default() += 1;
                let old = usize::from(member.age_years() >= 60);
                deceased_by_age[old][usize::from(status == ResidentStatus::Deceased)] += 1;
            }
        }
    }
    let share = |s| counts.get(&s).copied().unwrap_or(0) as f64 / 200_000.0;
    println!("status shares: {counts:?}");
    assert!((share(ResidentStatus::Deceased) - 0.05).abs() < 0.005, "{counts:?}");
    assert!((share(ResidentStatus::Duplicate) - 0.02).abs() < 0.002, "{counts:?}");
    assert!((share(ResidentStatus::Inactive) - 0.03).abs() < 0.003, "{counts:?}");
    let rate = |row: [u64; 2]| row[1] as f64 / (row[0] + row[1]) as f64;
    assert!(rate(deceased_by_age[1]) > 4.0 * rate(deceased_by_age[0]), "{deceased_by_age:?}");
    assert_eq!(ResidentStatus::Deceased.response_code(), Some(ResponseCode::Deceased));
    assert_eq!(ResidentStatus::Duplicate.response_code().unwrap().code(), "12");
    assert_eq!(ResidentStatus::Inactive.response_code().unwrap().code(), "14");
    assert_eq!(ResidentStatus::Alive.response_code(), None);
}

#[test]
fn high_deceased_fractions_are_still_met() {
    let population = Population::new(PopulationConfig {
        residents: 50_000,
        deceased_fraction: 0.6,
        duplicate_fraction: 0.0,
        inactive_fraction: 0.0,
        ..PopulationConfig::default()
    })
    .unwrap();
    let deceased =
        (0..50_000).step_by(5).filter(|&i| population.resident(i).unwrap().status == ResidentStatus::Deceased);
    let share = deceased.count() as f64 / 10_000.0;
    assert!((share - 0.6).abs() < 0.03, "{share}");
    assert_eq!(population.sample(SampleKind::Duplicate, 5, 1).count(), 0);
}

#[test]
fn samples_hold_only_their_kind_and_unknown_niks_are_not_found() {
    let population = national();
    let as_of = population.config().as_of;
    for kind in SampleKind::ALL {
        let samples: Vec<Sample> = population.sample(kind, 200, 9).collect();
        assert_eq!(samples.len(), 200, "{kind}");
        let distinct: HashSet<u64> = samples.iter().map(|s| s.nik.as_u64()).collect();
        assert_eq!(distinct.len(), 200, "{kind} samples repeat");
        for s in &samples {
            assert_eq!(s.kind, kind);
            let json = s.to_json();
            let object = json.as_object().unwrap();
            assert_eq!(object.keys().next().map(String::as_str), Some("kind"));
            assert_eq!(object["kind"], kind.as_str());
            assert_eq!(object["NIK"], s.nik.as_u64());
            let parsed = Nik::parse(&s.nik.to_string(), as_of).unwrap();
            match &s.resident {
                Some(r) => {
                    assert_eq!(SampleKind::from(r.status), kind);
                    assert_eq!(r.nik, s.nik);
                    assert_eq!(object.len(), 1 + Element::COUNT);
                    assert_eq!(population.find_nik(&parsed).as_ref(), Some(r));
                }
                None => {
                    assert_eq!(kind, SampleKind::Unknown);
                    assert_eq!(object.len(), 2);
                    assert_eq!(population.find_nik(&parsed), None);
                }
            }
        }
    }
    let again: Vec<u64> = population.sample(SampleKind::Alive, 20, 9).map(|s| s.nik.as_u64()).collect();
    let first: Vec<u64> = population.sample(SampleKind::Alive, 20, 9).map(|s| s.nik.as_u64()).collect();
    let other: Vec<u64> = population.sample(SampleKind::Alive, 20, 10).map(|s| s.nik.as_u64()).collect();
    assert_eq!(again, first);
    assert_ne!(first, other);
}

#[test]
fn a_sample_ends_when_the_kind_runs_out() {
    let population = small(1, 2_000);
    let deceased: Vec<Sample> = population.sample(SampleKind::Deceased, 10_000, 1).collect();
    let expected = (0..2_000).filter(|&i| population.resident(i).unwrap().status == ResidentStatus::Deceased).count();
    assert_eq!(deceased.len(), expected);
    assert!(expected > 10, "{expected}");
}

#[test]
fn sample_kinds_parse() {
    for kind in SampleKind::ALL {
        assert_eq!(kind.as_str().parse::<SampleKind>().unwrap(), kind);
        assert_eq!(kind.to_string().to_uppercase().parse::<SampleKind>().unwrap(), kind);
    }
    assert_eq!("dead".parse::<SampleKind>(), Err(PopulationError::SampleKind("dead".into())));
}

#[test]
fn labels_have_plausible_frequencies() {
    let population = national();
    let n = 20_000;
    let mut freq = HashMap::<(Element, String), usize>::new();
    let (mut single_names, mut long_names) = (0, 0);
    let mut names = HashSet::new();
    let allowed: &[(Element, &[&str])] = &[
        (Element::Agama, &["ISLAM", "KRISTEN", "KATHOLIK", "HINDU", "BUDHA", "KHONGHUCU"]),
        (Element::StatusKawin, &["BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI"]),
        (Element::JenisKlmin, &["Laki-Laki", "Perempuan"]),
        (Element::EktpStatus, &["SUDAH REKAM", "BELUM REKAM"]),
        (Element::GolDarah, &["A", "B", "AB", "O", "A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-", "TIDAK TAHU"]),
    ];
    for index in random_indices(population, n, 6) {
        let r = population.resident(index).unwrap();
        let age = years_between(date(&r, Element::TglLhr).unwrap(), population.config().as_of);
        for e in [
            Element::Agama,
            Element::StatusKawin,
            Element::JenisKlmin,
            Element::EktpStatus,
            Element::GolDarah,
            Element::PddkAkh,
            Element::JenisPkrjn,
            Element::PnydngCct,
            Element::StatHbkel,
        ] {
            *freq.entry((e, text(&r, e).to_owned())).or_default() += 1;
        }
        let kawin = text(&r, Element::StatusKawin);
        if text(&r, Element::EktpStatus) == "SUDAH REKAM" {
            assert!(age >= 17.0 || kawin != "BELUM KAWIN", "{} has an e-KTP at {age:.1}", r.nik);
        }
        if age < 5.0 {
            assert_eq!(text(&r, Element::PddkAkh), "TIDAK/BELUM SEKOLAH");
            assert_eq!(text(&r, Element::JenisPkrjn), "BELUM/TIDAK BEKERJA");
        }
        if age < 22.0 {
            assert!(!["DIPLOMA IV/STRATA I", "STRATA II", "STRATA III"].contains(&text(&r, Element::PddkAkh)));
            assert!(!["PENSIUNAN", "DOSEN", "DOKTER"].contains(&text(&r, Element::JenisPkrjn)), "{}", r.nik);
        }
        let name = text(&r, Element::NamaLgkp);
        assert_eq!(name, name.to_uppercase());
        single_names += usize::from(!name.contains(' '));
        long_names += usize::from(name.split(' ').count() >= 3);
        names.insert(name.to_owned());
    }
    let share = |e: Element, label: &str| freq.get(&(e, label.to_owned())).copied().unwrap_or(0) as f64 / n as f64;
    for (e, labels) in allowed {
        let total: f64 = labels.iter().map(|l| share(*e, l)).sum();
        assert!((total - 1.0).abs() < 1e-9, "{e} has labels outside {labels:?}");
    }
    let mut shares: Vec<_> = freq.iter().map(|((e, l), c)| (e.wire_name(), l.as_str(), *c)).collect();
    shares.sort();
    println!("{shares:?}");
    println!("names: {single_names} single, {long_names} of three parts or more, {} distinct of {n}", names.len());
    assert!((0.70..0.95).contains(&share(Element::Agama, "ISLAM")));
    assert!((0.03..0.15).contains(&(share(Element::Agama, "KRISTEN") + share(Element::Agama, "KATHOLIK"))));
    assert!((0.005..0.05).contains(&share(Element::Agama, "HINDU")));
    assert!((0.55..0.85).contains(&share(Element::GolDarah, "TIDAK TAHU")));
    assert!((0.45..0.55).contains(&share(Element::JenisKlmin, "Perempuan")));
    assert!((0.35..0.60).contains(&share(Element::StatusKawin, "KAWIN")));
    assert!((0.30..0.55).contains(&share(Element::StatusKawin, "BELUM KAWIN")));
    assert!((0.01..0.10).contains(&share(Element::StatusKawin, "CERAI HIDUP")));
    assert!((0.02..0.12).contains(&share(Element::StatusKawin, "CERAI MATI")));
    assert!((0.90..1.0).contains(&share(Element::PnydngCct, "TIDAK ADA")));
    assert!((0.15..0.35).contains(&share(Element::StatHbkel, "KEPALA KELUARGA")));
    assert!((0.15..0.35).contains(&share(Element::JenisPkrjn, "PELAJAR/MAHASISWA")));
    assert!(share(Element::JenisPkrjn, "MENGURUS RUMAH TANGGA") > 0.05);
    assert!(share(Element::PddkAkh, "SLTA/SEDERAJAT") > 0.15);
    assert!(share(Element::PddkAkh, "STRATA III") < 0.005);
    assert!(single_names > n / 20 && long_names > n / 10);
    assert!(names.len() > n / 2, "only {} distinct names", names.len());
}

#[test]
fn regional_flavour_shows() {
    let population = national();
    let mut by_province = HashMap::<u8, Vec<Resident>>::new();
    for s in population.sample(SampleKind::Alive, 60_000, 11) {
        let p = s.nik.province();
        if [51, 53, 12, 94].contains(&p) {
            by_province.entry(p).or_default().push(s.resident.unwrap());
        }
    }
    let share = |p: u8, f: &dyn Fn(&Resident) -> bool| {
        let rs = &by_province[&p];
        rs.iter().filter(|r| f(r)).count() as f64 / rs.len() as f64
    };
    let agama = |label: &'static str| move |r: &Resident| text(r, Element::Agama) == label;
    assert!(share(51, &agama("HINDU")) > 0.7);
    let balinese_name = |r: &Resident| {
        let name = text(r, Element::NamaLgkp);
        name.starts_with("I ") || name.starts_with("NI ")
    };
    assert!(share(51, &balinese_name) > 0.7);
    assert!(share(53, &agama("KATHOLIK")) > 0.35);
    assert!(share(94, &|r| agama("KRISTEN")(r) || agama("KATHOLIK")(r)) > 0.8);
    let marga = |r: &Resident| {
        ["SIREGAR", "NASUTION", "LUBIS", "SIMANJUNTAK", "HARAHAP", "SINAGA", "GINTING"]
            .iter()
            .any(|m| text(r, Element::NamaLgkp).ends_with(m))
    };
    assert!(share(12, &marga) > 0.05);
}

#[test]
fn aggregates_count_the_living_by_sex_and_age_band() {
    let population = small(4, 300_000);
    let as_of = population.config().as_of;
    let rows = population.aggregate(33, Some(74), Some(1), as_of).unwrap();
    assert_eq!(rows.len(), 32);
    assert!(rows.iter().all(|r| (r.province, r.regency, r.district) == (33, Some(74), Some(1))));
    assert_eq!(rows[0].age_band.label(), "0-4");
    assert_eq!((rows[15].sex, rows[15].age_band.label()), (Sex::Male, "75+"));
    assert_eq!(rows[16].sex, Sex::Female);
    // Recount the district resident by resident, through the public API.
    let district = population.layout.district_by_code(337_401).unwrap();
    let slot = &population.layout.districts[district];
    let mut expected = [0u64; 32];
    for i in slot.first_resident..slot.first_resident + u64::from(slot.residents) {
        let r = population.resident(i).unwrap();
        if r.status == ResidentStatus::Alive {
            let age = as_of.years_since(r.nik.birth_date()).unwrap();
            let sex = usize::from(r.nik.sex() == Sex::Female);
            expected[sex * 16 + (AgeBand::of_age(age).lowest_age() / 5) as usize] += 1;
        }
    }
    let counts: Vec<u64> = rows.iter().map(|r| r.count).collect();
    assert_eq!(counts, expected);
    assert!(counts.iter().sum::<u64>() > 100, "{counts:?}");
    // A regency is the sum of its districts; a province, of its regencies; the cache gives the same answer.
    let sum = |rows: &[AggregateRow]| rows.iter().map(|r| r.count).sum::<u64>();
    let regency = sum(&population.aggregate(33, Some(74), None, as_of).unwrap());
    let by_district: u64 = catalogue()
        .districts_of(catalogue().regency(33, 74).unwrap())
        .iter()
        .map(|d| sum(&population.aggregate(33, Some(74), Some(d.code), as_of).unwrap()))
        .sum();
    assert_eq!(regency, by_district);
    let started = Instant::now();
    let province = population.aggregate(33, None, None, as_of).unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    assert_eq!(population.aggregate(33, None, None, as_of).unwrap(), province);
    println!("aggregate(33) over {} residents: {first:?}, cached {:?}", sum(&province), started.elapsed());
    // Ten years earlier, the young were not born yet.
    let earlier = population.aggregate(33, Some(74), None, as_of.with_year(2016).unwrap()).unwrap();
    assert!(sum(&earlier) < regency);
}

#[test]
fn aggregate_rejects_unknown_areas() {
    let population = small(1, 10_000);
    let as_of = population.config().as_of;
    assert!(matches!(population.aggregate(20, None, None, as_of), Err(PopulationError::UnknownRegion(_))));
    assert!(matches!(population.aggregate(33, Some(70), None, as_of), Err(PopulationError::UnknownRegion(_))));
    assert!(matches!(population.aggregate(33, Some(74), Some(99), as_of), Err(PopulationError::UnknownRegion(_))));
    assert_eq!(population.aggregate(33, None, Some(1), as_of), Err(PopulationError::DistrictWithoutRegency));
}

#[test]
fn config_is_validated() {
    let ok = PopulationConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        PopulationConfig { deceased_fraction: -0.1, ..ok.clone() },
        PopulationConfig { duplicate_fraction: 1.0, ..ok.clone() },
        PopulationConfig { inactive_fraction: f64::NAN, ..ok.clone() },
        PopulationConfig { deceased_fraction: 0.5, duplicate_fraction: 0.3, inactive_fraction: 0.2, ..ok.clone() },
        PopulationConfig { residents: 0, ..ok.clone() },
        PopulationConfig { residents: 72_842_716, ..ok.clone() },
        PopulationConfig { as_of: NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(), ..ok.clone() },
    ];
    for config in cases {
        assert!(config.validate().is_err(), "{config:?}");
        assert!(Population::new(config).is_err());
    }
    assert_eq!(PopulationConfig { residents: 72_842_715, ..ok.clone() }.validate(), Ok(()));
    let parsed: PopulationConfig = toml::from_str("seed = 5\nresidents = 1000\nas_of = \"2025-12-31\"").unwrap();
    assert_eq!((parsed.seed, parsed.residents, parsed.deceased_fraction), (5, 1000, 0.02));
    assert!(toml::from_str::<PopulationConfig>("seeds = 5").is_err());
}

#[test]
fn lookups_per_second() {
    let population = national();
    let niks: Vec<Nik> =
        random_indices(population, 20_000, 12).iter().map(|&i| population.resident(i).unwrap().nik).collect();
    let started = Instant::now();
    let found = niks.iter().filter(|nik| population.find_nik(nik).is_some()).count();
    let elapsed = started.elapsed();
    assert_eq!(found, niks.len());
    let unknown: Vec<Nik> = population.sample(SampleKind::Unknown, 20_000, 12).map(|s| s.nik).collect();
    let started = Instant::now();
    assert!(unknown.iter().all(|nik| population.find_nik(nik).is_none()));
    let unknown_elapsed = started.elapsed();
    println!(
        "find_nik: {:.0} found/s, {:.0} unknown/s ({} build; run with --release for real numbers)",
        niks.len() as f64 / elapsed.as_secs_f64(),
        unknown.len() as f64 / unknown_elapsed.as_secs_f64(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
    let json = serde_json::to_string(&population.resident(5).unwrap().record.to_json(ElementSet::all())).unwrap();
    assert!(json.starts_with("{\"NIK\":"), "{json}");
}

#[test]
fn age_pyramid_is_plausible() {
    let population = small(2, 400_000);
    let as_of = population.config().as_of;
    let mut bands = [0u64; AgeBand::COUNT];
    for province in catalogue().provinces() {
        for row in population.aggregate(province.code, None, None, as_of).unwrap() {
            bands[(row.age_band.lowest_age() / 5) as usize] += row.count;
        }
    }
    let total: u64 = bands.iter().sum();
    let share = |range: std::ops::Range<usize>| bands[range].iter().sum::<u64>() as f64 / total as f64;
    let pyramid: Vec<String> =
        AgeBand::all().zip(bands).map(|(b, n)| format!("{} {:.1}%", b, 100.0 * n as f64 / total as f64)).collect();
    println!("living residents {total}: {pyramid:?}");
    // Indonesia 2020: 0-14 about 25%, 15-64 about 69%, 65+ about 6%.
    assert!((0.20..0.40).contains(&share(0..3)), "{pyramid:?}");
    assert!((0.55..0.75).contains(&share(3..13)), "{pyramid:?}");
    assert!((0.02..0.10).contains(&share(13..16)), "{pyramid:?}");
    assert!(bands.iter().all(|&n| n as f64 > 0.005 * total as f64), "{pyramid:?}");
}
