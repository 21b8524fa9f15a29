//! Indonesian personal names, compiled in: regional naming cultures (Javanese single names, Sundanese, Acehnese,
//! Minang, Bugis with ANDI, Sasak with LALU/BAIQ, Batak and Mandailing marga, Balinese birth-order names, Minahasa,
//! Maluku, NTT and Papuan family names, Chinese-Indonesian surnames), an older and a younger generation of given
//! names, single names (SUPARMAN) and multi-part ones (MUHAMMAD RIZKY PRATAMA), upper case as Dukcapil stores them.

use std::fmt;

use super::hash::Stream;
use super::labels::Religion;

/// The naming culture of a household.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Culture {
    /// Malay and other Muslim naming without family names: most of Sumatra, Kalimantan, Sulawesi, Maluku.
    Malay,
    Javanese,
    Sundanese,
    Acehnese,
    Minang,
    Bugis,
    Sasak,
    /// Christian Batak (Toba, Karo, Simalungun): given name and marga.
    Batak,
    /// Muslim Batak (Mandailing, Angkola): Muslim given name and marga.
    Mandailing,
    Balinese,
    Chinese,
    Minahasa,
    Maluku,
    Ntt,
    Papua,
    /// Christians elsewhere: a Christian given name, often with a regional second name.
    Christian,
}

impl Culture {
    /// The culture of a household from its province and religion. Shares are rough, but the point is that a Balinese
    /// Hindu is called I WAYAN and a Toba Christian carries a marga.
    pub(crate) fn draw(province: u8, religion: Religion, rng: &mut Stream) -> Culture {
        use Culture::*;
        match religion {
            Religion::Hindu => return Balinese,
            Religion::Budha | Religion::Khonghucu => return Chinese,
            Religion::Kristen | Religion::Katholik => {
                return match province {
                    12 => rng.weighted(&[(Batak, 85), (Chinese, 10), (Christian, 5)]),
                    53 => Ntt,
                    71 => rng.weighted(&[(Minahasa, 90), (Christian, 10)]),
                    81 | 82 => rng.weighted(&[(Maluku, 90), (Christian, 10)]),
                    91..=96 => rng.weighted(&[(Papua, 85), (Christian, 10), (Maluku, 5)]),
                    31 | 21 | 61 | 19 => rng.weighted(&[(Christian, 45), (Chinese, 30), (Batak, 25)]),
                    14 | 15 | 16 | 18 | 32 | 36 => rng.weighted(&[(Christian, 55), (Batak, 30), (Chinese, 15)]),
                    _ => Christian,
                }
            }
            Religion::Islam => {}
        }
        match province {
            11 => rng.weighted(&[(Acehnese, 90), (Malay, 5), (Javanese, 5)]),
            12 => rng.weighted(&[(Mandailing, 35), (Malay, 35), (Javanese, 30)]),
            13 => rng.weighted(&[(Minang, 95), (Malay, 5)]),
            18 => rng.weighted(&[(Javanese, 60), (Malay, 35), (Sundanese, 5)]),
            14 | 15 | 16 | 17 | 19 | 21 => rng.weighted(&[(Malay, 65), (Javanese, 25), (Minang, 10)]),
            31 => rng.weighted(&[(Malay, 45), (Javanese, 35), (Sundanese, 20)]),
            32 => rng.weighted(&[(Sundanese, 85), (Javanese, 10), (Malay, 5)]),
            36 => rng.weighted(&[(Sundanese, 65), (Malay, 25), (Javanese, 10)]),
            33..=35 => rng.weighted(&[(Javanese, 95), (Malay, 5)]),
            52 => Sasak,
            61..=65 => rng.weighted(&[(Malay, 65), (Javanese, 25), (Bugis, 10)]),
            73 | 76 => rng.weighted(&[(Bugis, 90), (Malay, 10)]),
            72 | 74 => rng.weighted(&[(Bugis, 40), (Malay, 50), (Javanese, 10)]),
            91..=96 => rng.weighted(&[(Malay, 50), (Javanese, 35), (Bugis, 15)]),
            _ => rng.weighted(&[(Malay, 85), (Javanese, 15)]),
        }
    }

    fn family_pool(self) -> &'static [&'static str] {
        match self {
            Culture::Batak => MARGA_BATAK,
            Culture::Mandailing => MARGA_MANDAILING,
            Culture::Chinese => SURNAMES_CHINESE,
            Culture::Minahasa => FAM_MINAHASA,
            Culture::Maluku => FAM_MALUKU,
            Culture::Ntt => FAM_NTT,
            Culture::Papua => FAM_PAPUA,
            _ => &[],
        }
    }

    /// A family name of this culture, for someone whose father is not known to the household.
    pub(crate) fn draw_family(self, rng: &mut Stream) -> Option<&'static str> {
        let pool = self.family_pool();
        (!pool.is_empty()).then(|| rng.pick(pool))
    }
}

/// A full name as its parts; the family name, if any, is also kept apart so that children can inherit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name {
    parts: [&'static str; 5],
    len: u8,
    family: Option<&'static str>,
}

impl Name {
    fn new() -> Name {
        Name { parts: [""; 5], len: 0, family: None }
    }

    fn push(&mut self, part: &'static str) {
        self.parts[usize::from(self.len)] = part;
        self.len += 1;
    }

    /// Pushes a part drawn from `pool`, drawing again (a few times) rather than repeating a part already in the name.
    fn push_from(&mut self, pool: &'static [&'static str], rng: &mut Stream) {
        let mut part = rng.pick(pool);
        for _ in 0..4 {
            if !self.parts[..usize::from(self.len)].contains(&part) {
                break;
            }
            part = rng.pick(pool);
        }
        self.push(part);
    }

    pub(crate) fn family(&self) -> Option<&'static str> {
        self.family
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts[..usize::from(self.len)].iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// Who is being named.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Person {
    pub(crate) culture: Culture,
    pub(crate) female: bool,
    pub(crate) birth_year: i32,
    /// The father's family name for those who inherit one; drawn afresh when `None` in a family-name culture.
    pub(crate) family: Option<&'static str>,
    /// 1 for the first-born: Balinese names say it (WAYAN, MADE, NYOMAN, KETUT).
    pub(crate) birth_order: u8,
}

/// Given names were fashioned differently before the mid-1980s: fewer parts, more Javanese and Sanskrit roots.
const MODERN_FROM: i32 = 1985;

pub(crate) fn name(who: Person, rng: &mut Stream) -> Name {
    let modern = who.birth_year >= MODERN_FROM;
    let mut name = Name::new();
    match who.culture {
        Culture::Balinese => balinese(&mut name, who, rng),
        Culture::Batak | Culture::Minahasa | Culture::Maluku | Culture::Ntt | Culture::Papua => {
            let (given, second) = christian_given(who.culture, who.female, modern);
            name.push_from(given, rng);
            if rng.chance(if modern { 0.45 } else { 0.3 }) {
                name.push_from(second, rng);
            }
            let family = who.family.or_else(|| who.culture.draw_family(rng));
            if let Some(family) = family {
                if who.culture == Culture::Batak && who.female && rng.chance(0.6) {
                    name.push("BR");
                }
                name.push(family);
                name.family = Some(family);
            }
        }
        Culture::Chinese => {
            let given = if who.female { GIVEN_CHINESE_FEMALE } else { GIVEN_CHINESE_MALE };
            name.push_from(given, rng);
            let family = who.family.or_else(|| rng.chance(0.8).then(|| rng.pick(SURNAMES_CHINESE)));
            if let Some(family) = family {
                name.push(family);
                name.family = Some(family);
            }
        }
        Culture::Christian => {
            let (given, _) = christian_given(Culture::Christian, who.female, modern);
            name.push_from(given, rng);
            if rng.chance(0.6) {
                let pools = muslim_free_tails(who.female, modern);
                name.push_from(pools, rng);
            }
        }
        Culture::Mandailing => {
            let family = who.family.unwrap_or_else(|| rng.pick(MARGA_MANDAILING));
            islamic(&mut name, Culture::Malay, who.female, modern, rng);
            name.push(family);
            name.family = Some(family);
        }
        culture => islamic(&mut name, culture, who.female, modern, rng),
    }
    name
}

/// Names of the Muslim majority: a shape (single, given + tail, lead + given, lead + given + tail) drawn by
/// generation, with each culture's own pools and leads.
fn islamic(name: &mut Name, culture: Culture, female: bool, modern: bool, rng: &mut Stream) {
    let pools = pools(culture, female, modern);
    if let Some(&(title, p)) = pools.titles.first() {
        if rng.chance(p) {
            name.push(title);
        }
    }
    let shape = if modern {
        rng.weighted(&[(Shape::Single, 12), (Shape::Tail, 43), (Shape::Lead, 10), (Shape::LeadTail, 35)])
    } else {
        rng.weighted(&[(Shape::Single, 45), (Shape::Tail, 40), (Shape::Lead, 10), (Shape::LeadTail, 5)])
    };
    if matches!(shape, Shape::Lead | Shape::LeadTail) && !pools.leads.is_empty() {
        name.push_from(pools.leads, rng);
    }
    name.push_from(pools.given, rng);
    if matches!(shape, Shape::Tail | Shape::LeadTail) {
        name.push_from(pools.tails, rng);
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Single,
    Tail,
    Lead,
    LeadTail,
}

struct Pools {
    /// A title some bearers carry before the name (TEUKU, ANDI, LALU), with its probability.
    titles: &'static [(&'static str, f64)],
    leads: &'static [&'static str],
    given: &'static [&'static str],
    tails: &'static [&'static str],
}

fn pools(culture: Culture, female: bool, modern: bool) -> Pools {
    let modern_given = if female { MODERN_FEMALE } else { MODERN_MALE };
    let modern_tails = if female { MODERN_FEMALE_TAILS } else { MODERN_MALE_TAILS };
    let leads = if female { LEADS_FEMALE } else { LEADS_MALE };
    let (titles, given, tails): (&[(&str, f64)], &[&str], &[&str]) = match (culture, female) {
        (Culture::Javanese, false) => (&[], JAVANESE_MALE, JAVANESE_MALE_TAILS),
        (Culture::Javanese, true) => (&[], JAVANESE_FEMALE, JAVANESE_FEMALE_TAILS),
        (Culture::Sundanese, false) => (&[], SUNDANESE_MALE, SUNDANESE_MALE_TAILS),
        (Culture::Sundanese, true) => (&[], SUNDANESE_FEMALE, SUNDANESE_FEMALE_TAILS),
        (Culture::Acehnese, false) => (&[("T.", 0.05)], ACEHNESE_MALE, ACEHNESE_MALE_TAILS),
        (Culture::Acehnese, true) => (&[("CUT", 0.05)], ACEHNESE_FEMALE, ACEHNESE_FEMALE_TAILS),
        (Culture::Minang, false) => (&[], MINANG_MALE, MINANG_MALE_TAILS),
        (Culture::Minang, true) => (&[], MINANG_FEMALE, MINANG_FEMALE_TAILS),
        (Culture::Bugis, false) => (&[("ANDI", 0.08)], BUGIS_MALE, BUGIS_MALE_TAILS),
        (Culture::Bugis, true) => (&[("ANDI", 0.08)], BUGIS_FEMALE, BUGIS_FEMALE_TAILS),
        (Culture::Sasak, false) => (&[("LALU", 0.1)], MALAY_MALE, MALAY_MALE_TAILS),
        (Culture::Sasak, true) => (&[("BAIQ", 0.1)], MALAY_FEMALE, MALAY_FEMALE_TAILS),
        (_, false) => (&[], MALAY_MALE, MALAY_MALE_TAILS),
        (_, true) => (&[], MALAY_FEMALE, MALAY_FEMALE_TAILS),
    };
    if modern {
        // The younger generation's names are national rather than regional, with a regional minority.
        let regional = matches!(culture, Culture::Acehnese | Culture::Minang | Culture::Bugis);
        Pools {
            titles,
            leads,
            given: if regional { given } else { modern_given },
            tails: if regional { tails } else { modern_tails },
        }
    } else {
        let leads: &[&str] = match culture {
            Culture::Javanese | Culture::Sundanese => {
                if female {
                    &["SRI", "SITI"]
                } else {
                    &["MOH.", "AHMAD"]
                }
            }
            _ => leads,
        };
        Pools { titles, leads, given, tails }
    }
}

fn christian_given(culture: Culture, female: bool, modern: bool) -> (&'static [&'static str], &'static [&'static str]) {
    match (culture, female) {
        (Culture::Batak, false) => (BATAK_MALE, CHRISTIAN_MALE),
        (Culture::Batak, true) => (BATAK_FEMALE, CHRISTIAN_FEMALE),
        (Culture::Minahasa, false) => (MINAHASA_MALE, CHRISTIAN_MALE),
        (Culture::Minahasa, true) => (MINAHASA_FEMALE, CHRISTIAN_FEMALE),
        (Culture::Papua, false) => (PAPUA_MALE, CHRISTIAN_MALE),
        (Culture::Papua, true) => (PAPUA_FEMALE, CHRISTIAN_FEMALE),
        (_, false) if modern => (MODERN_CHRISTIAN_MALE, CHRISTIAN_MALE),
        (_, true) if modern => (MODERN_CHRISTIAN_FEMALE, CHRISTIAN_FEMALE),
        (_, false) => (CHRISTIAN_MALE, CHRISTIAN_MALE),
        (_, true) => (CHRISTIAN_FEMALE, CHRISTIAN_FEMALE),
    }
}

/// Second names that are regional rather than Islamic, for Christians outside the family-name cultures.
fn muslim_free_tails(female: bool, modern: bool) -> &'static [&'static str] {
    match (female, modern) {
        (false, false) => JAVANESE_MALE_TAILS,
        (true, false) => JAVANESE_FEMALE_TAILS,
        (false, true) => &["SETIAWAN", "KURNIAWAN", "WIJAYA", "PRATAMA", "SAPUTRA", "NUGROHO", "SANTOSO", "PURNOMO"],
        (true, true) => &["WULANDARI", "LESTARI", "KURNIAWATI", "PRATIWI", "ANGGRAINI", "PUSPITASARI", "DEWI"],
    }
}

fn balinese(name: &mut Name, who: Person, rng: &mut Stream) {
    name.push(if who.female { "NI" } else { "I" });
    let order: &[&str] = match (who.birth_order.saturating_sub(1)) % 4 {
        0 => &["WAYAN", "PUTU", "GEDE"],
        1 => &["MADE", "KADEK", "NENGAH"],
        2 => &["NYOMAN", "KOMANG"],
        _ => &["KETUT"],
    };
    // GEDE is a man's first-born name only.
    let order = if who.female && order.len() == 3 && order[2] == "GEDE" { &order[..2] } else { order };
    name.push_from(order, rng);
    let given = if who.female { BALINESE_FEMALE } else { BALINESE_MALE };
    name.push_from(given, rng);
    if rng.chance(0.3) {
        name.push_from(given, rng);
    }
}

const LEADS_MALE: &[&str] = &["MUHAMMAD", "M.", "AHMAD", "MUHAMAD", "MOHAMMAD"];
const LEADS_FEMALE: &[&str] = &["SITI", "NUR", "NURUL", "PUTRI", "DEWI"];

const MODERN_MALE: &[&str] = &[
    "RIZKY", "FAJAR", "RAFI", "ALIF", "AZKA", "FARHAN", "DAFFA", "RAFA", "ZIDAN", "ARKAN", "NAUFAL", "GHIFARI",
    "ABIMANYU", "BAYU", "DIMAS", "ILHAM", "RAKA", "ARYA", "GILANG", "REZA", "ANDIKA", "YOGA", "AKBAR", "FIKRI",
    "HAFIZ", "IQBAL", "KHOIRUL", "RAMA", "SATRIA", "WAHYU", "ADITYA", "ALDI", "BAGAS", "DENI", "EKA", "FAHRI",
];
const MODERN_MALE_TAILS: &[&str] = &[
    "PRATAMA",
    "SAPUTRA",
    "RAMADHAN",
    "FIRMANSYAH",
    "MAULANA",
    "HIDAYAT",
    "ALFARIZI",
    "AKBAR",
    "ARDIANSYAH",
    "NUGRAHA",
    "PERMANA",
    "KURNIAWAN",
    "SETIAWAN",
    "WIJAYA",
    "SYAHPUTRA",
    "ALFATIH",
    "HAKIM",
    "FADILLAH",
    "PRASETYO",
    "NUGROHO",
    "SANJAYA",
    "SYAHRIAL",
];
const MODERN_FEMALE: &[&str] = &[
    "AULIA",
    "NAYLA",
    "ZAHRA",
    "AISYAH",
    "KEISHA",
    "SALSABILA",
    "NABILA",
    "AZZAHRA",
    "NADIA",
    "CITRA",
    "ANISA",
    "DINDA",
    "SYIFA",
    "KHANZA",
    "ALYA",
    "INTAN",
    "AMELIA",
    "RAHMA",
    "FITRI",
    "INDAH",
    "NOVITA",
    "AYU",
    "SEKAR",
    "RIZKA",
    "TIARA",
    "ANGGI",
    "MEGA",
    "WINDA",
    "YULIA",
    "FARAH",
    "HANIFA",
    "SAFIRA",
];
const MODERN_FEMALE_TAILS: &[&str] = &[
    "PUTRI",
    "RAMADHANI",
    "SAFITRI",
    "NURHALIZA",
    "AZZAHRA",
    "SAPUTRI",
    "LESTARI",
    "KIRANA",
    "MAHARANI",
    "ANGGRAINI",
    "PRATIWI",
    "CAHYANI",
    "WULANDARI",
    "RAHMAWATI",
    "OKTAVIANI",
    "NURAINI",
    "FEBRIANTI",
    "PERMATASARI",
    "UTAMI",
    "HANDAYANI",
];

const MALAY_MALE: &[&str] = &[
    "HENDRA",
    "IRWAN",
    "RUDI",
    "SYAHRUL",
    "ZULKARNAIN",
    "HASAN",
    "HUSEIN",
    "IBRAHIM",
    "ISMAIL",
    "YUSUF",
    "ZAINAL",
    "SAMSUL",
    "ARIFIN",
    "SYAMSUDIN",
    "KHAIRUL",
    "FAUZI",
    "RAHMAN",
    "HAMDAN",
    "AZHAR",
    "ANWAR",
    "EFENDI",
    "JUNAIDI",
    "MAHMUD",
    "NASRUL",
    "RIDWAN",
    "ROSLAN",
    "SUHAIMI",
    "TAUFIK",
    "USMAN",
    "ZULKIFLI",
    "ABDULLAH",
    "ALI",
    "AMRAN",
    "BAHRUDIN",
    "DARMAWAN",
    "HERMAN",
    "ISKANDAR",
    "JAMALUDIN",
];
const MALAY_MALE_TAILS: &[&str] = &[
    "HIDAYAT", "SAPUTRA", "EFENDI", "HARAHAP", "RAHMAN", "SYAH", "HAMZAH", "HASAN", "AHMAD", "SALEH", "ARIFIN",
    "YUSUF", "ABIDIN", "KARIM", "HAKIM", "FAUZI", "MAHMUD", "IDRIS", "JAYA", "PUTRA",
];
const MALAY_FEMALE: &[&str] = &[
    "NURHAYATI",
    "ROSMAWATI",
    "FATIMAH",
    "AMINAH",
    "HALIMAH",
    "KHADIJAH",
    "MARIAM",
    "ZAINAB",
    "ROHANI",
    "SALMAH",
    "NURLELA",
    "ASMAH",
    "HASNAH",
    "RAHMAWATI",
    "YUSNIAR",
    "ZUBAIDAH",
    "MASNIAR",
    "NORMA",
    "ROSIDAH",
    "ZAHARA",
    "NURBAITI",
    "FAUZIAH",
    "HAFSAH",
    "JAMILAH",
    "LATIFAH",
    "MAIMUNAH",
    "RUKIAH",
    "SAADAH",
    "SARIFAH",
    "WATI",
];
const MALAY_FEMALE_TAILS: &[&str] = &[
    "AMINAH",
    "HASANAH",
    "NURJANAH",
    "RAHMAWATI",
    "SAFITRI",
    "WATI",
    "SARI",
    "ZAHRA",
    "FITRIANI",
    "HAYATI",
    "YANTI",
    "MULYANI",
    "ARIANI",
    "NINGSIH",
];

const JAVANESE_MALE: &[&str] = &[
    "SUPARMAN",
    "SUKIRNO",
    "SUGENG",
    "PAIMIN",
    "SLAMET",
    "SUTRISNO",
    "SUPRIYADI",
    "BAMBANG",
    "SUHARTO",
    "WAGIMAN",
    "KASIMAN",
    "TUKIMAN",
    "SUDARSONO",
    "JUMADI",
    "PONIMAN",
    "MUJIONO",
    "SARDI",
    "SUPARNO",
    "SUGIYONO",
    "SUYATNO",
    "SUNARTO",
    "PARJO",
    "KARYONO",
    "WIDODO",
    "SUGIYANTO",
    "SUWARNO",
    "TRIYONO",
    "AGUS",
    "BUDI",
    "JOKO",
    "EKO",
    "DWI",
    "HERU",
    "BASUKI",
    "SUMARNO",
    "PURWANTO",
    "MULYONO",
    "SUTARJO",
    "WARSITO",
    "MARDI",
];
const JAVANESE_MALE_TAILS: &[&str] = &[
    "SANTOSO",
    "PRASETYO",
    "WIBOWO",
    "NUGROHO",
    "SETIAWAN",
    "PURNOMO",
    "SUSILO",
    "HARYANTO",
    "WIJAYA",
    "SAPUTRO",
    "RAHARJO",
    "HIDAYAT",
    "SUSANTO",
    "SUGIARTO",
    "KURNIAWAN",
    "WALUYO",
    "SUTRISNO",
    "HARTONO",
    "PRANOTO",
    "SETIADI",
    "WIDODO",
    "SUBAGYO",
];
const JAVANESE_FEMALE: &[&str] = &[
    "SUMINAH",
    "SUGIYEM",
    "PAINEM",
    "SUPARMI",
    "SUMIATI",
    "SUPARTI",
    "PARTINAH",
    "SUKINI",
    "WARSITI",
    "TUMINAH",
    "MARSINAH",
    "SUNARTI",
    "KASMINI",
    "JUMINAH",
    "SARINAH",
    "MURTINI",
    "SUWARNI",
    "ENDANG",
    "RINI",
    "RATNA",
    "WAHYU",
    "YULI",
    "ANIK",
    "LILIS",
    "TRI",
    "DWI",
    "SUPRIHATIN",
    "SUYATMI",
    "NGATINEM",
    "SUMARNI",
    "SULASTRI",
    "KUSMIATI",
    "PONIYEM",
    "SAMINI",
];
const JAVANESE_FEMALE_TAILS: &[&str] = &[
    "WAHYUNI",
    "LESTARI",
    "RAHAYU",
    "SURYANI",
    "WULANDARI",
    "HANDAYANI",
    "PRATIWI",
    "ASTUTI",
    "NINGSIH",
    "KUSUMAWATI",
    "SETYOWATI",
    "ANGGRAINI",
    "MULYANI",
    "RAHMAWATI",
    "SUSILOWATI",
    "PURWANTI",
    "SUMARNI",
    "HARTATI",
    "WIDAYATI",
    "SRI REJEKI",
];

const SUNDANESE_MALE: &[&str] = &[
    "ASEP", "UJANG", "DEDI", "CECEP", "DADANG", "YAYAN", "ENDANG", "ADE", "AAN", "DEDE", "DENI", "IWAN", "OMAN",
    "OTONG", "JAJANG", "ENCEP", "UDIN", "AGUS", "YAYAT", "UKING", "DODI", "ENJANG", "TATANG", "KOMAR", "MAMAN", "ENDI",
    "NANA", "DIDIN", "ATANG", "RUHIAT",
];
const SUNDANESE_MALE_TAILS: &[&str] = &[
    "SUNANDAR",
    "SUPRIATNA",
    "HIDAYAT",
    "KOSASIH",
    "SUHENDAR",
    "RUSTANDI",
    "SOPIAN",
    "SUHERMAN",
    "MULYANA",
    "PERMANA",
    "SAPUTRA",
    "RAHMAT",
    "SURYANA",
    "KUSNADI",
    "SETIADI",
    "GUNAWAN",
    "SOBARI",
    "ROHMAN",
    "NURJAMAN",
    "RUSMANA",
];
const SUNDANESE_FEMALE: &[&str] = &[
    "EUIS", "IIS", "ENENG", "NENG", "IMAS", "CUCU", "TITIN", "YATI", "NENDEN", "ELIS", "NUNUNG", "RINA", "YAYAH",
    "TETI", "ENTIN", "OOM", "ANI", "NINING", "EMAH", "ENOK", "LILIS", "AI", "EUTIK", "IDA", "DEDEH", "ENUNG", "YOYOH",
    "TUTI",
];
const SUNDANESE_FEMALE_TAILS: &[&str] = &[
    "NURHAYATI",
    "KARTIKA",
    "SUKMAWATI",
    "ROSMIATI",
    "HERAWATI",
    "NURAENI",
    "MARLINA",
    "KURNIASIH",
    "SOLIHAT",
    "JUBAEDAH",
    "SUMIATI",
    "ROHAETI",
    "MULYANI",
    "KOMALASARI",
    "RAHAYU",
    "SARTIKA",
];

const ACEHNESE_MALE: &[&str] = &[
    "ZULFIKAR",
    "FAKHRURRAZI",
    "MUNAWAR",
    "NASRUDDIN",
    "SAIFUL",
    "ZAINAL",
    "ISKANDAR",
    "MAHDI",
    "RIDWAN",
    "MUKHLIS",
    "MUNIR",
    "HUSAINI",
    "BUKHARI",
    "SYAHRIAL",
    "NURDIN",
    "SULAIMAN",
    "ZULKIFLI",
    "RAZALI",
    "MAHYUDDIN",
    "FADHLI",
    "KHALIDIN",
    "ABDURRAHMAN",
    "ISMAIL",
    "JAMALUDDIN",
    "TARMIZI",
    "AZWAR",
    "FAISAL",
];
const ACEHNESE_MALE_TAILS: &[&str] = &[
    "ABIDIN", "BAHRI", "HUSEN", "ANSARI", "SYAH", "MAULANA", "ZAKARIA", "IDRIS", "AMIN", "RAHMAN", "USMAN", "YUNUS",
    "ARIF", "HANAFIAH",
];
const ACEHNESE_FEMALE: &[&str] = &[
    "MAWADDAH",
    "HUSNA",
    "RAHMAH",
    "SAFRIDA",
    "NURMALA",
    "FAJRIATI",
    "KHAIRUNNISA",
    "ZAHRATUL",
    "MURNIATI",
    "ROSNIDAR",
    "SALMIAH",
    "FITRIANI",
    "RAHMAWATI",
    "NURHAYATI",
    "NYAK",
    "MARLIANI",
    "SYARIFAH",
    "ZUBAIDAH",
    "NURAINI",
    "RAUDHAH",
    "ASMAUL",
    "SAFRIANI",
    "YUSNIDAR",
    "MARYAMAH",
];
const ACEHNESE_FEMALE_TAILS: &[&str] =
    &["AINI", "FAJRINA", "MARDHIAH", "HUSNA", "SAFITRI", "HAYATI", "FITRI", "ZAHARA", "RAHMI", "WARDANI"];

const MINANG_MALE: &[&str] = &[
    "AFRIZAL",
    "SYAFRIL",
    "ZULKIFLI",
    "ERMANTO",
    "NOVRIZAL",
    "ALFIAN",
    "YUSRIZAL",
    "DASRIL",
    "ASRIL",
    "HENDRI",
    "EFENDI",
    "ANDRIZAL",
    "FERDIAN",
    "RIKO",
    "JONI",
    "ZULHENDRI",
    "YONDRI",
    "BUDIMAN",
    "DEDI",
    "YULIANDRI",
    "ARMEN",
    "ZAINAL",
    "SYAMSUL",
    "MASRIL",
    "AFDAL",
    "RAHMAT",
    "FIRDAUS",
    "IRFAN",
    "RONI",
    "DONI",
];
const MINANG_MALE_TAILS: &[&str] = &[
    "PUTRA",
    "SAPUTRA",
    "SUTAN",
    "AMRI",
    "IDRIS",
    "ANWAR",
    "HAMZAH",
    "RAHMAN",
    "ZAINAL",
    "CHANIAGO",
    "PILIANG",
    "TANJUNG",
    "KOTO",
    "SIKUMBANG",
];
const MINANG_FEMALE: &[&str] = &[
    "YULIANIS",
    "ROSMANIAR",
    "DESWITA",
    "YUSNIMAR",
    "ELFIRA",
    "FITRIANI",
    "NURHAYATI",
    "YENNI",
    "ROSNIDA",
    "WITRI",
    "LISA",
    "NOVITA",
    "ELVI",
    "YUSNIDAR",
    "MARNIS",
    "ERNAWATI",
    "DESI",
    "YUNI",
    "WIDIA",
    "RAHMI",
    "SYAFRIDA",
    "MISNAWATI",
    "ZURAIDA",
    "ASNIMAR",
];
const MINANG_FEMALE_TAILS: &[&str] = &["SARI", "YANTI", "WATI", "PUTRI", "ANDRIANI", "FITRI", "NENGSIH", "MURNI"];

const BUGIS_MALE: &[&str] = &[
    "ARSYAD",
    "SYAMSUDDIN",
    "HAERUDDIN",
    "MUSTARI",
    "BAHARUDDIN",
    "NURDIN",
    "SUDIRMAN",
    "AMIRUDDIN",
    "RUSDI",
    "HASANUDDIN",
    "ILHAM",
    "SAHARUDDIN",
    "JUMARDI",
    "SYAHRIR",
    "TAUFIK",
    "SALEH",
    "HAMZAH",
    "KAHAR",
    "MAKMUR",
    "RAHMAT",
    "SYARIFUDDIN",
    "ZAINUDDIN",
    "MUHLIS",
    "ASRUL",
    "SULTAN",
    "IRWAN",
    "BASRI",
    "LUKMAN",
];
const BUGIS_MALE_TAILS: &[&str] = &["SYAM", "AKBAR", "RAHMAN", "MALIK", "HAMID", "AMIR", "HASAN", "LATIF", "SAID"];
const BUGIS_FEMALE: &[&str] = &[
    "HASNAWATI",
    "NURHAEDA",
    "SITTI",
    "HASNAH",
    "MARYAM",
    "SUARNI",
    "NURMIATI",
    "RISMAWATI",
    "HASTUTI",
    "NURJANNAH",
    "HARDIANTI",
    "MUSDALIFAH",
    "ASMAWATI",
    "HARIANI",
    "SUHARNI",
    "NURHAENI",
    "RAHMATIA",
    "MUHARNI",
    "SAHARIAH",
    "JUMRIAH",
    "ERNI",
    "NURLIAH",
];
const BUGIS_FEMALE_TAILS: &[&str] = &["AMALIA", "RAMADHANI", "WAHYUNI", "NURHAYATI", "SARI", "ARIANI", "RAHMAN"];

const BATAK_MALE: &[&str] = &[
    "JONNER",
    "RUDOLF",
    "MARTUA",
    "PARULIAN",
    "MANGIRING",
    "HOTMAN",
    "TUMPAL",
    "BONAR",
    "DAMIANUS",
    "JHONSON",
    "ROBERT",
    "DAVID",
    "DANIEL",
    "SAMUEL",
    "ROY",
    "HENDRIK",
    "POLTAK",
    "SAUT",
    "TOGAR",
    "RIKSON",
    "MANAHAN",
    "SABAR",
    "HASUDUNGAN",
    "LAMHOT",
    "BINSAR",
    "JUNTAK",
];
const BATAK_FEMALE: &[&str] = &[
    "ROSLINA",
    "MARIANI",
    "ROSTIANA",
    "LASMARIA",
    "TIOMINA",
    "SURYANI",
    "DUMA",
    "DEBORA",
    "ELISABETH",
    "HOTNIDA",
    "NURMALA",
    "RUTH",
    "SINTA",
    "YOHANA",
    "LENNY",
    "MASTIUR",
    "TIURMA",
    "FRIDA",
    "ROMAULI",
    "NURIANI",
    "RISMA",
    "HOTMAIDA",
];
const MARGA_BATAK: &[&str] = &[
    "SIMANJUNTAK",
    "SIREGAR",
    "NAINGGOLAN",
    "SITUMORANG",
    "PANJAITAN",
    "HUTAPEA",
    "SIHOMBING",
    "SIMATUPANG",
    "MANURUNG",
    "PASARIBU",
    "SINAGA",
    "SIMBOLON",
    "SITOMPUL",
    "TAMBUNAN",
    "SIAHAAN",
    "HUTAGALUNG",
    "SIMAMORA",
    "SIANTURI",
    "SILALAHI",
    "NAPITUPULU",
    "MARPAUNG",
    "HUTABARAT",
    "PARDEDE",
    "SARAGIH",
    "PURBA",
    "GINTING",
    "SEMBIRING",
    "TARIGAN",
    "SITEPU",
    "SIAGIAN",
    "SITORUS",
    "LUMBANTOBING",
    "GULTOM",
    "SIBURIAN",
];
const MARGA_MANDAILING: &[&str] = &[
    "NASUTION",
    "LUBIS",
    "HARAHAP",
    "HASIBUAN",
    "DAULAY",
    "RANGKUTI",
    "PULUNGAN",
    "BATUBARA",
    "RITONGA",
    "MATONDANG",
    "SIREGAR",
    "PARINDURI",
    "TANJUNG",
    "POHAN",
];

const GIVEN_CHINESE_MALE: &[&str] = &[
    "HENDRA", "WILLIAM", "KEVIN", "ROBERT", "JOHNNY", "HENRY", "STEVEN", "SUWANDI", "BUDI", "ANTON", "FERRY", "ALVIN",
    "JASON", "RICHARD", "VINCENT", "TEDDY", "ERWIN", "SUDONO", "DARMAWAN", "YOHAN", "FELIX", "ANDREAS", "HARRY",
    "SUGIANTO",
];
const GIVEN_CHINESE_FEMALE: &[&str] = &[
    "SUSANTI",
    "LINDA",
    "MELIANA",
    "FELICIA",
    "VERONICA",
    "CHRISTINA",
    "JESSICA",
    "LILY",
    "YENNY",
    "MEILIANA",
    "SHERLY",
    "IVANA",
    "CINDY",
    "MONICA",
    "NATALIA",
    "WINDA",
    "LIANA",
    "LANNY",
    "SUSI",
    "MEILIN",
    "ELLY",
    "HANNY",
];
const SURNAMES_CHINESE: &[&str] = &[
    "WIJAYA",
    "SUSANTO",
    "HALIM",
    "GUNAWAN",
    "TANUWIJAYA",
    "SANTOSO",
    "SETIAWAN",
    "KUSUMA",
    "HARTONO",
    "SALIM",
    "TJANDRA",
    "SUTANTO",
    "LIMANTO",
    "WIRAWAN",
    "TANOTO",
    "LIMAN",
    "CHANDRA",
    "WINATA",
    "ANGKASA",
    "LIE",
    "TAN",
    "LIM",
    "SUGIARTO",
    "HALIMAN",
    "KURNIADI",
    "SUTEJA",
];

const MINAHASA_MALE: &[&str] = &[
    "JOHNY", "FRANKY", "JEFRY", "MICHAEL", "RONALD", "STEVEN", "JEMMY", "ROY", "MAXI", "REYNALDO", "FREDDY", "DJONI",
    "ALFRED", "HENDRIK", "NOVEL", "RONNY", "VICKY", "DEDDY", "ARTHUR", "CHARLES",
];
const MINAHASA_FEMALE: &[&str] = &[
    "MARTHA", "MEIVA", "NOVITA", "JULIANA", "STEFANI", "VIVI", "DEBBY", "GRACE", "MARLYN", "FEBBY", "SYLVIA", "JUNITA",
    "MEISKE", "NOVA", "OLVIE", "DEISY", "RIEKE", "JEANE", "SANDRA", "VENNY",
];
const FAM_MINAHASA: &[&str] = &[
    "WOLAH",
    "LUMENTUT",
    "RUNTUWENE",
    "SONDAKH",
    "MANDAGI",
    "TUMBELAKA",
    "WALEWANGKO",
    "POLII",
    "KAUNANG",
    "RONDONUWU",
    "SUMAMPOUW",
    "PANGEMANAN",
    "RUMENGAN",
    "LUMINGKEWAS",
    "TAMBUWUN",
    "KALANGI",
    "WOWOR",
    "MAMAHIT",
    "POLUAN",
    "MONTOLALU",
    "TUMEWU",
    "SUMOLANG",
    "MAINDOKA",
    "SUPIT",
];
const FAM_MALUKU: &[&str] = &[
    "PATTY",
    "LATUMAHINA",
    "TUHUMURY",
    "SAHETAPY",
    "PATTIRAJAWANE",
    "LEIWAKABESSY",
    "PATTIASINA",
    "TITALEY",
    "SOUMOKIL",
    "NANLOHY",
    "PELUPESSY",
    "PATTINAMA",
    "LATUHERU",
    "WATTIMENA",
    "TUANAKOTTA",
    "PARINUSSA",
    "SIAHAYA",
    "LEKATOMPESSY",
    "HEHANUSSA",
    "NOYA",
    "SOPACUA",
    "TAIHUTTU",
    "MATULESSY",
    "LATUPEIRISSA",
];
const FAM_NTT: &[&str] = &[
    "NAHAK",
    "SERAN",
    "BRIA",
    "TEFA",
    "LAKA",
    "DA SILVA",
    "DA COSTA",
    "PARERA",
    "TUKAN",
    "KOTEN",
    "NDOEN",
    "AMALO",
    "MESAKH",
    "MANU",
    "FANGGIDAE",
    "ADOE",
    "LAY",
    "NUBATONIS",
    "TALLO",
    "BENU",
    "KOLO",
    "SABU",
    "LEWAR",
    "GOLO",
];
const PAPUA_MALE: &[&str] = &[
    "YOHANES",
    "MARTHINUS",
    "YAKOB",
    "NATALIS",
    "YULIANUS",
    "OKTOVIANUS",
    "MARKUS",
    "PAULUS",
    "SEMUEL",
    "ELIAS",
    "YOSIAS",
    "YUNUS",
    "ZAKEUS",
    "LEWI",
    "PILIPUS",
    "DEMIANUS",
    "NIKOLAS",
    "OBETH",
    "ALEX",
    "FRANS",
    "YAN",
    "HERMAN",
];
const PAPUA_FEMALE: &[&str] = &[
    "MARTHA", "YOSINA", "MARIA", "ELSYE", "DOROTHEA", "SARA", "AGUSTINA", "YULIANA", "DINA", "SALOMINA", "BETTY",
    "NAOMI", "REGINA", "FERONIKA", "MERI", "YOHANA", "ANCE", "LINCE", "SELFINA", "DORKAS",
];
const FAM_PAPUA: &[&str] = &[
    "WENDA",
    "WANIMBO",
    "KOGOYA",
    "TABUNI",
    "WONDA",
    "MANDOWEN",
    "RUMBIAK",
    "KAFIAR",
    "KARUBABA",
    "YIKWA",
    "WAKERKWA",
    "ENUMBI",
    "PIGAI",
    "TEKEGE",
    "DOGOPIA",
    "GOBAY",
    "KEIYA",
    "MAYOR",
    "RUMBEWAS",
    "AWOM",
    "WORABAY",
    "SAWAKI",
    "IMBIRI",
    "RUMAROPEN",
    "WANMA",
    "MURIB",
    "ALOMANG",
    "KOSAY",
];

const CHRISTIAN_MALE: &[&str] = &[
    "YOHANES",
    "YOSEPH",
    "FRANSISKUS",
    "PETRUS",
    "MARKUS",
    "ALOYSIUS",
    "YAKOBUS",
    "BERNADUS",
    "KRISTOFORUS",
    "EMANUEL",
    "SIPRIANUS",
    "ADRIANUS",
    "YULIUS",
    "VINSENSIUS",
    "BONIFASIUS",
    "PAULUS",
    "STEFANUS",
    "ANDREAS",
    "MATIUS",
    "DANIEL",
    "SAMUEL",
    "TIMOTIUS",
    "YOSEF",
    "AGUSTINUS",
    "ANTONIUS",
    "BENEDIKTUS",
    "DOMINIKUS",
    "GREGORIUS",
    "HIERONIMUS",
    "IGNASIUS",
    "LUKAS",
    "MIKHAEL",
    "NIKOLAUS",
    "PIUS",
    "ROBERTUS",
    "SEBASTIANUS",
];
const CHRISTIAN_FEMALE: &[&str] = &[
    "MARIA",
    "MAGDALENA",
    "YULIANA",
    "AGUSTINA",
    "MARTHA",
    "KRISTINA",
    "FRANSISKA",
    "YOSEFINA",
    "MARGARETA",
    "BERNADETA",
    "KATARINA",
    "ELISABET",
    "ANASTASIA",
    "SESILIA",
    "VERONIKA",
    "OKTAVIANA",
    "THERESIA",
    "YOHANA",
    "AGNES",
    "MONIKA",
    "LIDIA",
    "DEBORA",
    "RUTH",
    "MARTA",
    "ROSALIA",
    "SKOLASTIKA",
    "PRISKA",
    "HELENA",
    "KLARA",
    "FLORENTINA",
];
const MODERN_CHRISTIAN_MALE: &[&str] = &[
    "KEVIN",
    "JONATHAN",
    "MICHAEL",
    "DAVID",
    "GABRIEL",
    "RAFAEL",
    "CHRISTIAN",
    "NATANAEL",
    "YOSUA",
    "KRISTIAN",
    "FERDINAND",
    "VALENTINO",
    "FELIX",
    "ARNOLDUS",
    "REINHARD",
    "BRYAN",
    "YOHANES",
    "STEFANUS",
    "PETRUS",
    "DANIEL",
];
const MODERN_CHRISTIAN_FEMALE: &[&str] = &[
    "GRACE",
    "ANGELINA",
    "CHRISTINA",
    "JESSICA",
    "NATALIA",
    "GABRIELA",
    "VANESSA",
    "KEZIA",
    "MARSELA",
    "FELISITAS",
    "VIONA",
    "CLARA",
    "MARIA",
    "YOHANA",
    "ANGELA",
    "REGINA",
    "MIKHAELA",
    "TERESA",
    "ELSA",
    "PUTRI",
];

const BALINESE_MALE: &[&str] = &[
    "SUDIRTA",
    "ARSANA",
    "SUARDANA",
    "WIRAWAN",
    "ADNYANA",
    "ARTAWAN",
    "MERTA",
    "SUKADANA",
    "WIDIANA",
    "SUPARTA",
    "ARIMBAWA",
    "DARMAWAN",
    "ASTAWA",
    "SUARJANA",
    "SANTIKA",
    "KARIASA",
    "PARWATA",
    "MAHENDRA",
    "ARTHA",
    "SUDARMA",
    "SUWITRA",
    "BUDIARTA",
    "SUARTANA",
    "ANTARA",
    "SUKARDANA",
    "WARDANA",
    "PUTRA",
    "SWASTIKA",
];
const BALINESE_FEMALE: &[&str] = &[
    "SUARNI",
    "ARIANI",
    "SUKERTI",
    "WIDIASIH",
    "SUWITRI",
    "PURNAMI",
    "SUDIARI",
    "ASTITI",
    "SEPTIANI",
    "DEWI",
    "MURNI",
    "ARYANI",
    "WIDYANTARI",
    "SUMARTINI",
    "PUSPAWATI",
    "KARTINI",
    "SUARTINI",
    "SRI ARTINI",
    "RATNA",
    "WARDANI",
    "PUSPITA",
    "SUCIPTA",
    "SURYANI",
    "PRADNYANI",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(culture: Culture, female: bool, birth_year: i32, order: u8, rng: &mut Stream) -> Name {
        name(Person { culture, female, birth_year, family: None, birth_order: order }, rng)
    }

    #[test]
    fn names_are_upper_case_and_fit_the_column() {
        let mut rng = Stream::new(9);
        let cultures = [
            Culture::Malay,
            Culture::Javanese,
            Culture::Sundanese,
            Culture::Acehnese,
            Culture::Minang,
            Culture::Bugis,
            Culture::Sasak,
            Culture::Batak,
            Culture::Mandailing,
            Culture::Balinese,
            Culture::Chinese,
            Culture::Minahasa,
            Culture::Maluku,
            Culture::Ntt,
            Culture::Papua,
            Culture::Christian,
        ];
        let (mut single, mut long) = (0, 0);
        for culture in cultures {
            for i in 0..2_000 {
                let n = draw(culture, i % 2 == 0, 1940 + (i % 80), (i % 6) as u8 + 1, &mut rng);
                let text = n.to_string();
                assert!(!text.is_empty() && text.len() <= 60, "{text:?}");
                assert_eq!(text, text.to_uppercase(), "{text}");
                assert!(!text.contains("  ") && text.trim() == text, "{text:?}");
                single += usize::from(!text.contains(' '));
                long += usize::from(text.split(' ').count() >= 3);
                if !culture.family_pool().is_empty() && culture != Culture::Chinese {
                    assert!(text.ends_with(n.family().unwrap()), "{text}");
                }
            }
        }
        assert!(single > 1_000 && long > 1_000, "single {single}, three parts or more {long}");
    }

    #[test]
    fn balinese_names_tell_sex_and_birth_order() {
        let mut rng = Stream::new(1);
        for order in 1..=8u8 {
            let man = draw(Culture::Balinese, false, 1980, order, &mut rng).to_string();
            let woman = draw(Culture::Balinese, true, 1980, order, &mut rng).to_string();
            assert!(man.starts_with("I "), "{man}");
            assert!(woman.starts_with("NI ") && !woman.contains("GEDE"), "{woman}");
            let second = man.split(' ').nth(1).unwrap();
            let expected: &[&str] = match (order - 1) % 4 {
                0 => &["WAYAN", "PUTU", "GEDE"],
                1 => &["MADE", "KADEK", "NENGAH"],
                2 => &["NYOMAN", "KOMANG"],
                _ => &["KETUT"],
            };
            assert!(expected.contains(&second), "{man} for child {order}");
        }
    }

    #[test]
    fn children_inherit_the_family_name() {
        let mut rng = Stream::new(2);
        for culture in [Culture::Batak, Culture::Mandailing, Culture::Minahasa, Culture::Papua, Culture::Chinese] {
            let who = Person { culture, female: true, birth_year: 2001, family: Some("SIREGAR"), birth_order: 2 };
            let n = name(who, &mut rng);
            assert_eq!(n.family(), Some("SIREGAR"));
            assert!(n.to_string().ends_with(" SIREGAR"), "{n}");
        }
    }

    #[test]
    fn cultures_follow_province_and_religion() {
        let mut rng = Stream::new(3);
        assert_eq!(Culture::draw(51, Religion::Hindu, &mut rng), Culture::Balinese);
        assert_eq!(Culture::draw(53, Religion::Katholik, &mut rng), Culture::Ntt);
        assert_eq!(Culture::draw(52, Religion::Islam, &mut rng), Culture::Sasak);
        let batak = (0..1_000).filter(|_| Culture::draw(12, Religion::Kristen, &mut rng) == Culture::Batak).count();
        assert!(batak > 700, "{batak}");
    }
}
