//! The closed vocabularies of a record, spelled as Dukcapil stores them, with the frequencies the population draws
//! them with. Frequencies are rounded figures in the spirit of BPS publications (census 2020, SUSENAS); they only
//! need to look plausible to a tester, not to reproduce statistics.

use super::hash::Stream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Religion {
    Islam,
    Kristen,
    Katholik,
    Hindu,
    Budha,
    Khonghucu,
}

impl Religion {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Religion::Islam => "ISLAM",
            Religion::Kristen => "KRISTEN",
            Religion::Katholik => "KATHOLIK",
            Religion::Hindu => "HINDU",
            Religion::Budha => "BUDHA",
            Religion::Khonghucu => "KHONGHUCU",
        }
    }

    /// A household's religion, by province: per mille, from the 2020-2023 Kemendagri religion tables, rounded.
    pub(crate) fn draw(province: u8, rng: &mut Stream) -> Religion {
        use Religion::*;
        let table: &[(Religion, u32)] = match province {
            11 => &[(Islam, 985), (Kristen, 10), (Katholik, 1), (Budha, 4)],
            12 => &[(Islam, 640), (Kristen, 270), (Katholik, 60), (Budha, 25), (Hindu, 1), (Khonghucu, 4)],
            13 => &[(Islam, 978), (Kristen, 13), (Katholik, 7), (Budha, 2)],
            14 => &[(Islam, 880), (Kristen, 80), (Katholik, 10), (Budha, 28), (Khonghucu, 2)],
            19 => &[(Islam, 900), (Kristen, 15), (Katholik, 10), (Budha, 50), (Khonghucu, 25)],
            21 => &[(Islam, 790), (Kristen, 80), (Katholik, 30), (Budha, 90), (Khonghucu, 10)],
            31 => &[(Islam, 840), (Kristen, 90), (Katholik, 40), (Budha, 27), (Hindu, 2), (Khonghucu, 1)],
            51 => &[(Hindu, 865), (Islam, 100), (Kristen, 17), (Katholik, 10), (Budha, 8)],
            52 => &[(Islam, 968), (Hindu, 28), (Budha, 2), (Kristen, 1), (Katholik, 1)],
            53 => &[(Katholik, 535), (Kristen, 360), (Islam, 100), (Hindu, 5)],
            61 => &[(Islam, 600), (Katholik, 220), (Kristen, 110), (Budha, 60), (Khonghucu, 8), (Hindu, 2)],
            62 => &[(Islam, 740), (Kristen, 170), (Hindu, 60), (Katholik, 30)],
            64 => &[(Islam, 870), (Kristen, 90), (Katholik, 35), (Budha, 3), (Hindu, 2)],
            65 => &[(Islam, 720), (Kristen, 210), (Katholik, 60), (Budha, 10)],
            71 => &[(Kristen, 640), (Islam, 310), (Katholik, 45), (Hindu, 3), (Budha, 2)],
            72 => &[(Islam, 780), (Kristen, 170), (Hindu, 40), (Katholik, 10)],
            73 => &[(Islam, 900), (Kristen, 75), (Katholik, 15), (Hindu, 5), (Budha, 5)],
            74 => &[(Islam, 950), (Kristen, 20), (Hindu, 20), (Katholik, 10)],
            75 => &[(Islam, 970), (Kristen, 25), (Katholik, 5)],
            76 => &[(Islam, 830), (Kristen, 155), (Katholik, 10), (Hindu, 5)],
            81 => &[(Islam, 520), (Kristen, 410), (Katholik, 65), (Hindu, 5)],
            82 => &[(Islam, 760), (Kristen, 230), (Katholik, 10)],
            91 | 93 => &[(Kristen, 550), (Katholik, 250), (Islam, 195), (Hindu, 3), (Budha, 2)],
            92 | 96 => &[(Islam, 380), (Kristen, 530), (Katholik, 90)],
            94 | 95 => &[(Kristen, 700), (Katholik, 240), (Islam, 60)],
            _ => &[(Islam, 965), (Kristen, 20), (Katholik, 9), (Hindu, 2), (Budha, 3), (Khonghucu, 1)],
        };
        rng.weighted(table)
    }
}

/// STATUS_KAWIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marital {
    Single,
    Married,
    Divorced,
    Widowed,
}

impl Marital {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Marital::Single => "BELUM KAWIN",
            Marital::Married => "KAWIN",
            Marital::Divorced => "CERAI HIDUP",
            Marital::Widowed => "CERAI MATI",
        }
    }
}

/// STAT_HBKEL: the relationship to the head of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Head,
    Wife,
    Husband,
    Child,
    Parent,
    ParentInLaw,
    Grandchild,
    OtherRelative,
}

impl Role {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Role::Head => "KEPALA KELUARGA",
            Role::Wife => "ISTRI",
            Role::Husband => "SUAMI",
            Role::Child => "ANAK",
            Role::Parent => "ORANG TUA",
            Role::ParentInLaw => "MERTUA",
            Role::Grandchild => "CUCU",
            Role::OtherRelative => "FAMILI LAIN",
        }
    }
}

/// PDDK_AKH, in increasing order so that occupations can require a minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Education {
    None,
    PrimaryIncomplete,
    Primary,
    JuniorHigh,
    SeniorHigh,
    Diploma12,
    Diploma3,
    Bachelor,
    Master,
    Doctorate,
}

impl Education {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Education::None => "TIDAK/BELUM SEKOLAH",
            Education::PrimaryIncomplete => "BELUM TAMAT SD/SEDERAJAT",
            Education::Primary => "TAMAT SD/SEDERAJAT",
            Education::JuniorHigh => "SLTP/SEDERAJAT",
            Education::SeniorHigh => "SLTA/SEDERAJAT",
            Education::Diploma12 => "DIPLOMA I/II",
            Education::Diploma3 => "AKADEMI/DIPLOMA III/S. MUDA",
            Education::Bachelor => "DIPLOMA IV/STRATA I",
            Education::Master => "STRATA II",
            Education::Doctorate => "STRATA III",
        }
    }

    /// The youngest age at which the level can have been completed.
    const fn min_age(self) -> u32 {
        match self {
            Education::None | Education::PrimaryIncomplete => 0,
            Education::Primary => 12,
            Education::JuniorHigh => 15,
            Education::SeniorHigh => 18,
            Education::Diploma12 => 19,
            Education::Diploma3 => 21,
            Education::Bachelor => 22,
            Education::Master => 24,
            Education::Doctorate => 28,
        }
    }

    /// The last education completed at `age`, for someone born in `birth_year`: schooling by age for the young,
    /// then by cohort (older generations went to school far less).
    pub(crate) fn draw(age: u32, birth_year: i32, rng: &mut Stream) -> Education {
        use Education::*;
        let level = match age {
            0..=4 => None,
            5..=6 => rng.weighted(&[(None, 80), (PrimaryIncomplete, 20)]),
            7..=11 => rng.weighted(&[(PrimaryIncomplete, 97), (None, 3)]),
            12..=14 => rng.weighted(&[(Primary, 85), (PrimaryIncomplete, 15)]),
            15..=17 => rng.weighted(&[(JuniorHigh, 78), (Primary, 20), (PrimaryIncomplete, 2)]),
            _ => {
                let table: &[(Education, u32)] = if birth_year >= 1990 {
                    &[
                        (None, 20),
                        (PrimaryIncomplete, 30),
                        (Primary, 140),
                        (JuniorHigh, 200),
                        (SeniorHigh, 440),
                        (Diploma12, 10),
                        (Diploma3, 30),
                        (Bachelor, 120),
                        (Master, 8),
                        (Doctorate, 1),
                    ]
                } else if birth_year >= 1970 {
                    &[
                        (None, 40),
                        (PrimaryIncomplete, 80),
                        (Primary, 280),
                        (JuniorHigh, 190),
                        (SeniorHigh, 290),
                        (Diploma12, 15),
                        (Diploma3, 25),
                        (Bachelor, 70),
                        (Master, 8),
                        (Doctorate, 1),
                    ]
                } else {
                    &[
                        (None, 150),
                        (PrimaryIncomplete, 180),
                        (Primary, 350),
                        (JuniorHigh, 110),
                        (SeniorHigh, 140),
                        (Diploma12, 15),
                        (Diploma3, 15),
                        (Bachelor, 35),
                        (Master, 4),
                        (Doctorate, 1),
                    ]
                };
                rng.weighted(table)
            }
        };
        // Someone too young for the drawn degree is still studying for it: they hold the level below.
        [level, Bachelor, Diploma3, SeniorHigh, JuniorHigh, Primary, PrimaryIncomplete]
            .into_iter()
            .find(|l| *l <= level && l.min_age() <= age)
            .unwrap_or(None)
    }
}

const STUDENT: &str = "PELAJAR/MAHASISWA";
const NOT_WORKING: &str = "BELUM/TIDAK BEKERJA";
const HOUSEWORK: &str = "MENGURUS RUMAH TANGGA";
const RETIRED: &str = "PENSIUNAN";

/// Occupations of working adults: (label, weight for men, weight for women, minimum education, rural only).
const OCCUPATIONS: &[(&str, u32, u32, Education, bool)] = &[
    ("PETANI/PEKEBUN", 200, 80, Education::None, true),
    ("BURUH TANI/PERKEBUNAN", 50, 25, Education::None, true),
    ("NELAYAN/PERIKANAN", 30, 3, Education::None, true),
    ("PETERNAK", 10, 3, Education::None, true),
    ("PERANGKAT DESA", 6, 2, Education::SeniorHigh, true),
    ("WIRASWASTA", 200, 120, Education::None, false),
    ("KARYAWAN SWASTA", 180, 120, Education::JuniorHigh, false),
    ("BURUH HARIAN LEPAS", 120, 40, Education::None, false),
    ("PEDAGANG", 60, 70, Education::None, false),
    ("SOPIR", 30, 0, Education::Primary, false),
    ("TUKANG BATU", 20, 0, Education::None, false),
    ("TUKANG KAYU", 10, 0, Education::None, false),
    ("PEGAWAI NEGERI SIPIL", 40, 30, Education::SeniorHigh, false),
    ("GURU", 20, 35, Education::Diploma12, false),
    ("KARYAWAN HONORER", 15, 15, Education::SeniorHigh, false),
    ("KARYAWAN BUMN", 8, 4, Education::SeniorHigh, false),
    ("TENTARA NASIONAL INDONESIA", 8, 0, Education::SeniorHigh, false),
    ("KEPOLISIAN RI", 8, 1, Education::SeniorHigh, false),
    ("PERAWAT", 2, 10, Education::Diploma3, false),
    ("BIDAN", 0, 6, Education::Diploma3, false),
    ("DOKTER", 2, 2, Education::Bachelor, false),
    ("DOSEN", 2, 1, Education::Master, false),
    ("MENGURUS RUMAH TANGGA", 0, 450, Education::None, false),
    ("BELUM/TIDAK BEKERJA", 50, 50, Education::None, false),
];

/// JENIS_PKRJN, consistent with age, sex and education.
pub(crate) fn occupation(age: u32, female: bool, education: Education, rural: bool, rng: &mut Stream) -> &'static str {
    match age {
        0..=4 => NOT_WORKING,
        5..=17 => {
            if rng.chance(0.95) {
                STUDENT
            } else {
                NOT_WORKING
            }
        }
        18..=24 if education >= Education::SeniorHigh && rng.chance(0.45) => STUDENT,
        58.. => {
            let formal = education >= Education::SeniorHigh;
            if formal && rng.chance(0.4) {
                RETIRED
            } else if female && rng.chance(0.7) {
                HOUSEWORK
            } else if rng.chance(0.5) {
                NOT_WORKING
            } else {
                working(female, education, rural, rng)
            }
        }
        _ => working(female, education, rural, rng),
    }
}

fn working(female: bool, education: Education, rural: bool, rng: &mut Stream) -> &'static str {
    let mut table = [("", 0u32); OCCUPATIONS.len()];
    for (slot, &(label, men, women, min_education, rural_only)) in table.iter_mut().zip(OCCUPATIONS) {
        let weight = if female { women } else { men };
        let allowed = education >= min_education && (rural || !rural_only);
        *slot = (label, if allowed { weight } else { 0 });
    }
    rng.weighted(&table)
}

/// GOL_DARAH: most records say TIDAK TAHU, as in the real warehouse; the rest follow Indonesia's ABO mix.
pub(crate) fn blood_type(rng: &mut Stream) -> &'static str {
    rng.weighted(&[
        ("TIDAK TAHU", 700),
        ("O", 90),
        ("B", 66),
        ("A", 62),
        ("AB", 21),
        ("O+", 20),
        ("B+", 15),
        ("A+", 14),
        ("AB+", 5),
        ("O-", 3),
        ("A-", 1),
        ("B-", 2),
        ("AB-", 1),
    ])
}

/// PNYDNG_CCT, more frequent with age.
pub(crate) fn disability(age: u32, rng: &mut Stream) -> &'static str {
    let p = match age {
        0..=17 => 0.006,
        18..=59 => 0.015,
        _ => 0.06,
    };
    if !rng.chance(p) {
        return "TIDAK ADA";
    }
    rng.weighted(&[
        ("CACAT FISIK", 40),
        ("CACAT NETRA/BUTA", 20),
        ("CACAT RUNGU/WICARA", 15),
        ("CACAT MENTAL/JIWA", 15),
        ("CACAT FISIK DAN MENTAL", 5),
        ("CACAT LAINNYA", 5),
    ])
}

/// EKTP_STATUS: only residents of 17 and over (or married) can have had their e-KTP recorded.
pub(crate) fn ektp_status(age: u32, married: bool, rng: &mut Stream) -> &'static str {
    let p = match age {
        _ if age < 17 && !married => 0.0,
        0..=18 => 0.75,
        _ => 0.96,
    };
    if rng.chance(p) {
        "SUDAH REKAM"
    } else {
        "BELUM REKAM"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn education_never_exceeds_what_the_age_allows() {
        let mut rng = Stream::new(3);
        for age in 0..100 {
            for _ in 0..200 {
                let e = Education::draw(age, 2026 - age as i32, &mut rng);
                assert!(e.min_age() <= age, "{e:?} at {age}");
                if age < 5 {
                    assert_eq!(e, Education::None);
                }
            }
        }
    }

    #[test]
    fn occupations_follow_age_sex_and_education() {
        let mut rng = Stream::new(4);
        for _ in 0..5_000 {
            assert_eq!(occupation(3, false, Education::None, true, &mut rng), NOT_WORKING);
            let child = occupation(10, true, Education::PrimaryIncomplete, false, &mut rng);
            assert!([STUDENT, NOT_WORKING].contains(&child), "{child}");
            let low = occupation(40, false, Education::Primary, false, &mut rng);
            assert!(!["GURU", "PEGAWAI NEGERI SIPIL", "DOKTER", "PETANI/PEKEBUN"].contains(&low), "{low}");
            let man = occupation(35, false, Education::Doctorate, true, &mut rng);
            assert!(!["BIDAN", HOUSEWORK].contains(&man), "{man}");
        }
    }

    #[test]
    fn only_adults_or_married_have_a_recorded_ektp() {
        let mut rng = Stream::new(5);
        assert!((0..1_000).all(|_| ektp_status(16, false, &mut rng) == "BELUM REKAM"));
        assert!((0..1_000).any(|_| ektp_status(16, true, &mut rng) == "SUDAH REKAM"));
        assert!((0..1_000).any(|_| ektp_status(30, false, &mut rng) == "SUDAH REKAM"));
    }
}
