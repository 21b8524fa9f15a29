//! A household (one KK) as a plan: who its members are, how they are related, when they were born, married and
//! divorced, and where they live. Drawn from one stream keyed by (seed, district, household), so that every member's
//! record, built separately, agrees with the others': a child's NIK_IBU is the spouse's NIK, a head's mother living in
//! the household carries the name on the head's NAMA_LGKP_IBU, and so on.

use chrono::{Datelike, Days, NaiveDate};
use simpul_core::nik::Sex;
use simpul_core::region::Village;

use super::hash::{key, mix, Stream};
use super::labels::{Marital, Religion, Role};
use super::layout::{DistrictSlot, MAX_HOUSEHOLD, URBAN_VILLAGE_WEIGHT};
use super::names::{self, Culture, Name};

/// Key tag of the household stream, apart from the per-person streams (which use the slot).
const HOUSEHOLD_TAG: u64 = 0xB0_05E;

/// Nobody is older than this at the reference date, so that a NIK's two-digit year read against the reference date
/// (20yy unless that is in the future, else 19yy) always gives back the birth year.
pub(crate) const MAX_AGE_YEARS: i64 = 97;

/// Days in `years` years, on average.
pub(crate) fn years(years: i64) -> i64 {
    years * 36_524 / 100
}

/// A date some days before the reference date. Plans work in "days ago" so that every event is before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ago(pub(crate) i64);

impl Ago {
    pub(crate) fn date(self, as_of: NaiveDate) -> NaiveDate {
        as_of.checked_sub_days(Days::new(self.0 as u64)).expect("plans stay within a century of the reference date")
    }
}

/// A registered event (marriage or divorce) with its deed number's serial, when a deed was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) on: Ago,
    pub(crate) deed: Option<u16>,
}

/// A parent as a member's record names them: a member of this household (whose NIK the record then carries), or
/// someone outside it, known by name only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parent {
    Member(u8),
    Outside(Name),
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) role: Role,
    pub(crate) sex: Sex,
    pub(crate) born: Ago,
    pub(crate) name: Name,
    pub(crate) marital: Marital,
    pub(crate) marriage: Option<Event>,
    pub(crate) divorce: Option<Event>,
    pub(crate) father: Parent,
    pub(crate) mother: Parent,
}

impl Member {
    pub(crate) fn age_years(&self) -> u32 {
        (self.born.0 * 100 / 36_524) as u32
    }
}

/// How the household is written on the address lines.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Address {
    Street {
        street: &'static str,
        number: u16,
    },
    Alley {
        street: &'static str,
        alley: u8,
        number: u16,
    },
    Estate {
        estate: &'static str,
        block: char,
        number: u16,
    },
    /// Rural: the hamlet itself, with the prefix used locally (DUSUN, DSN., KP.).
    Hamlet {
        prefix: &'static str,
    },
    VillageRoad {
        street: &'static str,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Household {
    pub(crate) members: Vec<Member>,
    pub(crate) religion: Religion,
    pub(crate) village: &'static Village,
    pub(crate) rw: u8,
    pub(crate) rt: u8,
    /// The hamlet (desa only).
    pub(crate) dusun: Option<&'static str>,
    pub(crate) address: Address,
    /// The date in the KK number: when the family card was last issued, after the household's latest event.
    pub(crate) record_date: Ago,
}

/// Builds household `household` of a district, with `size` members (1..=8, from the layout).
pub(crate) fn plan(seed: u64, district: &DistrictSlot, household: u32, size: u8, as_of: NaiveDate) -> Household {
    debug_assert!((1..=MAX_HOUSEHOLD as u8).contains(&size));
    let mut rng = Stream::new(key(&[seed, u64::from(district.code), u64::from(household), HOUSEHOLD_TAG]));
    let province = district.district.province;
    let village = pick_village(district, &mut rng);
    let religion = Religion::draw(province, &mut rng);
    let culture = Culture::draw(province, religion, &mut rng);
    let mut builder = Builder { rng, culture, as_of, members: Vec::with_capacity(usize::from(size)) };
    let last_event = builder.members(size);
    let (rw, rt, dusun, address) = address(seed, province, village, &mut builder.rng);
    let rng = &mut builder.rng;
    // Family cards were reissued on every change; SIAK's current cards go back some twenty years at most.
    let newest_possible = last_event.0.min(years(20)).max(1);
    let record_date = Ago(1 + rng.below(newest_possible as u64) as i64);
    Household { members: builder.members, religion, village, rw, rt, dusun, address, record_date }
}

/// A village of the district, kelurahan weighted up as in the layout.
fn pick_village(district: &DistrictSlot, rng: &mut Stream) -> &'static Village {
    let villages = district.villages;
    let weight = |v: &Village| if v.is_urban() { URBAN_VILLAGE_WEIGHT } else { 1 };
    let mut x = rng.below(district.village_weight);
    for v in villages {
        if x < weight(v) {
            return v;
        }
        x -= weight(v);
    }
    unreachable!("every catalogue district has villages")
}

/// Who else lives with the core family, in the household's last slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    HeadsParent,
    SpousesParent,
    Grandchild,
    Relative,
}

struct Builder {
    rng: Stream,
    culture: Culture,
    as_of: NaiveDate,
    members: Vec<Member>,
}

/// The dates of a (possibly former) couple and their children, in days before the reference date.
struct Family {
    mother: Ago,
    father: Ago,
    marriage: Ago,
    children: Vec<Ago>,
}

impl Builder {
    fn year_of(&self, born: Ago) -> i32 {
        born.date(self.as_of).year()
    }

    fn between_years(&mut self, lo: i64, hi: i64) -> Ago {
        Ago(years(lo) + self.rng.below((years(hi) - years(lo)) as u64 + 1) as i64)
    }

    fn deed(&mut self, p: f64) -> Option<u16> {
        self.rng.chance(p).then(|| 1 + self.rng.below(9_999) as u16)
    }

    /// A name for someone of the household's culture; a birth order (for Balinese names) is drawn when not known.
    fn name(&mut self, female: bool, born: Ago, family: Option<&'static str>, birth_order: Option<u8>) -> Name {
        let birth_order = birth_order.unwrap_or_else(|| 1 + self.rng.below(4) as u8);
        let who = names::Person { culture: self.culture, female, birth_year: self.year_of(born), family, birth_order };
        names::name(who, &mut self.rng)
    }

    /// The parents of someone whose parents are not in the household: a father carrying the same family name (where
    /// names are inherited) and a mother from another family, a generation older.
    fn outside_parents(&mut self, child: &Name, child_born: Ago) -> (Parent, Parent) {
        let father_born = Ago(child_born.0 + years(28));
        let mother_born = Ago(child_born.0 + years(24));
        let father = self.name(false, father_born, child.family(), None);
        let mother = self.name(true, mother_born, None, None);
        (Parent::Outside(father), Parent::Outside(mother))
    }

    /// Adds a member whose parents live elsewhere.
    fn push(&mut self, role: Role, sex: Sex, born: Ago, name: Name, marital: Marital) -> usize {
        let parents = self.outside_parents(&name, born);
        self.push_with_parents(role, sex, born, name, marital, parents)
    }

    fn push_with_parents(
        &mut self,
        role: Role,
        sex: Sex,
        born: Ago,
        name: Name,
        marital: Marital,
        (father, mother): (Parent, Parent),
    ) -> usize {
        self.members.push(Member { role, sex, born, name, marital, marriage: None, divorce: None, father, mother });
        self.members.len() - 1
    }

    /// Draws the members; returns the household's latest event (marriage, birth, divorce), which the KK date follows.
    fn members(&mut self, size: u8) -> Ago {
        if size == 1 {
            return self.single();
        }
        let couple = size == 2 && self.rng.chance(0.55) || size > 2 && self.rng.chance(0.85);
        let adults = if couple { 2 } else { 1 };
        let with_extra = size >= 3 && self.rng.chance(0.2);
        let children = size - adults - u8::from(with_extra);
        let family = self.family(children, couple);
        let mut latest = family.marriage;
        let marriage = Event { on: family.marriage, deed: self.deed(0.6) };
        let (mother_slot, father_slot);
        if couple {
            let female_head = self.rng.chance(0.03);
            let (head_sex, head_born, spouse_born) = if female_head {
                (Sex::Female, family.mother, family.father)
            } else {
                (Sex::Male, family.father, family.mother)
            };
            let head_name = self.name(female_head, head_born, None, None);
            let head = self.push(Role::Head, head_sex, head_born, head_name, Marital::Married);
            let (spouse_role, spouse_sex) =
                if female_head { (Role::Husband, Sex::Male) } else { (Role::Wife, Sex::Female) };
            let spouse_name = self.name(!female_head, spouse_born, None, None);
            let spouse = self.push(spouse_role, spouse_sex, spouse_born, spouse_name, Marital::Married);
            for m in &mut self.members {
                m.marriage = Some(marriage);
            }
            (mother_slot, father_slot) =
                if female_head { (Some(head), Some(spouse)) } else { (Some(spouse), Some(head)) };
        } else {
            // A single parent: widowed or divorced after the youngest child was born.
            let mother_heads = self.rng.chance(0.75);
            let born = if mother_heads { family.mother } else { family.father };
            let widowed = self.rng.chance(0.55);
            let name = self.name(mother_heads, born, None, None);
            let sex = if mother_heads { Sex::Female } else { Sex::Male };
            let head =
                self.push(Role::Head, sex, born, name, if widowed { Marital::Widowed } else { Marital::Divorced });
            let youngest = family.children.last().copied().unwrap_or(family.marriage);
            let ended = Ago(30 + self.rng.below((youngest.0 - 30).max(1) as u64) as i64);
            latest = latest.min(ended);
            self.members[head].marriage = Some(marriage);
            if !widowed {
                self.members[head].divorce = Some(Event { on: ended, deed: self.deed(0.7) });
            }
            (mother_slot, father_slot) = if mother_heads { (Some(head), None) } else { (None, Some(head)) };
        }
        // The absent parent of a single parent's children is known by name only; the children carry their name.
        let absent = match (mother_slot, father_slot) {
            (Some(_), Some(_)) => None,
            (Some(_), None) => Some(self.name(false, family.father, None, None)),
            (None, _) => Some(self.name(true, family.mother, None, None)),
        };
        let father_family = match (father_slot, absent) {
            (Some(f), _) => self.members[f].name.family(),
            (None, Some(father)) => father.family(),
            (None, None) => None,
        };
        for (order, &born) in family.children.iter().enumerate() {
            latest = latest.min(born);
            let female = self.rng.chance(0.49);
            let name = self.name(female, born, father_family, Some(order as u8 + 1));
            let sex = if female { Sex::Female } else { Sex::Male };
            let parent = |member: Option<usize>| {
                member
                    .map_or_else(|| Parent::Outside(absent.expect("one parent is absent")), |m| Parent::Member(m as u8))
            };
            let parents = (parent(father_slot), parent(mother_slot));
            self.push_with_parents(Role::Child, sex, born, name, Marital::Single, parents);
        }
        if with_extra {
            let extra = if couple {
                self.rng.weighted(&[
                    (Extra::HeadsParent, 35),
                    (Extra::SpousesParent, 25),
                    (Extra::Grandchild, 25),
                    (Extra::Relative, 15),
                ])
            } else {
                self.rng.weighted(&[(Extra::HeadsParent, 45), (Extra::Grandchild, 35), (Extra::Relative, 20)])
            };
            self.extra(extra);
        }
        self.members.iter().map(|m| m.born).fold(latest, Ago::min)
    }

    /// Dates for a mother, a father, their marriage and `children` children. With children, the timeline is drawn
    /// from the youngest child back: its age (mostly a child, sometimes a young adult still at home), the spacing
    /// between children, and the mother's age at her first birth; so every child is born when the mother is 19 to
    /// 44, at least ten months after the marriage, and a year or more after the previous child.
    fn family(&mut self, children: u8, couple: bool) -> Family {
        let c = i64::from(children);
        let gap = (self.rng.unit() + self.rng.unit()) / 2.0 * 11.0 - 2.0;
        let gap = (gap * 365.24) as i64;
        if c == 0 {
            let mother =
                if couple && self.rng.chance(0.4) { self.between_years(19, 32) } else { self.between_years(50, 84) };
            // Husbands are mostly a few years older (triangular on -2..9 years); both old enough to marry.
            let father = Ago((mother.0 + gap).clamp(years(20), years(MAX_AGE_YEARS)));
            let earliest = (mother.0 - years(17)).min(father.0 - years(19));
            let latest = (earliest - years(8)).max(30);
            let marriage = Ago(latest + self.rng.below((earliest - latest) as u64 + 1) as i64);
            return Family { mother, father, marriage, children: Vec::new() };
        }
        let youngest = if self.rng.chance(0.7) { self.between_years(0, 12) } else { self.between_years(13, 29) };
        let first_birth = self.between_years(19, 31).0;
        let spacing = if c > 1 {
            (years(2) + self.rng.below(years(3) as u64) as i64).min((years(44) - first_birth) / (c - 1))
        } else {
            0
        };
        let oldest = youngest.0.max(30) + (c - 1) * spacing;
        let mother = Ago(oldest + first_birth);
        let marriage = Ago(oldest + 300 + self.rng.below((first_birth - years(17) - 300).min(years(3)) as u64) as i64);
        let father = Ago((mother.0 + gap).max(marriage.0 + years(19)).min(years(MAX_AGE_YEARS)));
        let born = (0..c)
            .map(|i| Ago(oldest - i * spacing + if i > 0 { self.rng.below(spacing as u64 / 4) as i64 } else { 0 }))
            .collect();
        Family { mother, father, marriage, children: born }
    }

    /// A one-person household: never married, widowed or divorced.
    fn single(&mut self) -> Ago {
        #[derive(Clone, Copy)]
        enum Kind {
            Never,
            Widowed,
            Divorced,
        }
        let kind = self.rng.weighted(&[(Kind::Never, 35), (Kind::Widowed, 45), (Kind::Divorced, 20)]);
        let (born, female, marital) = match kind {
            Kind::Never => (self.between_years(20, 40), self.rng.chance(0.45), Marital::Single),
            Kind::Widowed => (self.between_years(55, 88), self.rng.chance(0.8), Marital::Widowed),
            Kind::Divorced => (self.between_years(28, 65), self.rng.chance(0.5), Marital::Divorced),
        };
        let name = self.name(female, born, None, None);
        let sex = if female { Sex::Female } else { Sex::Male };
        let head = self.push(Role::Head, sex, born, name, marital);
        let mut latest = Ago(born.0 - years(17));
        if marital != Marital::Single {
            let room = (born.0 - years(21)).min(years(10));
            let married = Ago(born.0 - years(19) - self.rng.below(room as u64) as i64);
            let ended = Ago(30 + self.rng.below((married.0 - 30 - 365).max(1) as u64) as i64);
            latest = ended;
            self.members[head].marriage = Some(Event { on: married, deed: self.deed(0.5) });
            if marital == Marital::Divorced {
                self.members[head].divorce = Some(Event { on: ended, deed: self.deed(0.7) });
            }
        }
        latest
    }

    /// The member in the last slot who is neither spouse nor child.
    fn extra(&mut self, extra: Extra) {
        let (head_born, head_family) = (self.members[0].born, self.members[0].name.family());
        match extra {
            Extra::HeadsParent | Extra::SpousesParent => {
                let child = usize::from(extra == Extra::SpousesParent);
                let child_born = self.members[child].born;
                let born = Ago(child_born.0 + years(21) + self.rng.below(years(14) as u64) as i64);
                if born.0 > years(MAX_AGE_YEARS) {
                    return self.extra(Extra::Relative);
                }
                let female = self.rng.chance(0.7);
                // The parent's name is the one already on the child's record (NAMA_LGKP_AYAH / _IBU).
                let parent = if female { self.members[child].mother } else { self.members[child].father };
                let Parent::Outside(name) = parent else { unreachable!("a head's or spouse's parents live elsewhere") };
                let role = if child == 0 { Role::Parent } else { Role::ParentInLaw };
                let sex = if female { Sex::Female } else { Sex::Male };
                let slot = self.push(role, sex, born, name, Marital::Widowed) as u8;
                let married = Ago(child_born.0 + 300 + self.rng.below(years(3) as u64) as i64);
                self.members[usize::from(slot)].marriage = Some(Event { on: married, deed: None });
                if female {
                    self.members[child].mother = Parent::Member(slot);
                } else {
                    self.members[child].father = Parent::Member(slot);
                }
            }
            Extra::Grandchild if head_born.0 >= years(40) => {
                let oldest = (head_born.0 - years(38)).min(years(17));
                let born = Ago(30 + self.rng.below(oldest as u64) as i64);
                let female = self.rng.chance(0.49);
                // Half are a son's children and carry the family name.
                let family = if self.rng.chance(0.5) { head_family } else { None };
                let name = self.name(female, born, family, None);
                let sex = if female { Sex::Female } else { Sex::Male };
                self.push(Role::Grandchild, sex, born, name, Marital::Single);
            }
            Extra::Grandchild | Extra::Relative => {
                let born = self.between_years(5, 70);
                let female = self.rng.chance(0.5);
                let name = self.name(female, born, None, None);
                let sex = if female { Sex::Female } else { Sex::Male };
                let marital =
                    if born.0 >= years(45) && self.rng.chance(0.5) { Marital::Widowed } else { Marital::Single };
                let slot = self.push(Role::OtherRelative, sex, born, name, marital);
                if marital == Marital::Widowed {
                    let married = Ago(born.0 - years(20) - self.rng.below(years(8) as u64) as i64);
                    self.members[slot].marriage = Some(Event { on: married, deed: None });
                }
            }
        }
    }
}

const STREETS: &[&str] = &[
    "MELATI",
    "MAWAR",
    "ANGGREK",
    "KENANGA",
    "CEMPAKA",
    "DAHLIA",
    "FLAMBOYAN",
    "BERINGIN",
    "MERDEKA",
    "SUDIRMAN",
    "DIPONEGORO",
    "GATOT SUBROTO",
    "AHMAD YANI",
    "PAHLAWAN",
    "PEMUDA",
    "KARTINI",
    "IMAM BONJOL",
    "TERATAI",
    "SISINGAMANGARAJA",
    "HASANUDDIN",
    "SULTAN AGUNG",
    "GAJAH MADA",
    "VETERAN",
    "RAYA",
    "KAMBOJA",
    "PERINTIS",
    "MANGGA",
    "RAMBUTAN",
    "SEROJA",
    "CENDRAWASIH",
    "MERPATI",
    "RAJAWALI",
    "KUTILANG",
    "NUSANTARA",
    "PELITA",
];
const ESTATES: &[&str] = &[
    "GRIYA ASRI",
    "BUMI INDAH",
    "PERMATA HIJAU",
    "TAMAN SARI",
    "PURI MAS",
    "GRIYA PERMAI",
    "BUMI PERTIWI",
    "TAMAN CEMARA",
    "VILLA MUTIARA",
    "GRAHA INDAH",
    "BTN",
    "PERUMNAS",
];
/// Hamlet names in Java and Bali; elsewhere hamlets are numbered (DUSUN I, DUSUN II).
const HAMLETS_JAVA: &[&str] = &[
    "KRAJAN",
    "SUKAMAJU",
    "SUKAMULYA",
    "KARANGANYAR",
    "SIDOMULYO",
    "SUMBERREJO",
    "MEKARSARI",
    "TEGALSARI",
    "NGASEM",
    "KEBONSARI",
    "KARANGREJO",
    "SIDOREJO",
    "PUNDUNG",
    "WONOREJO",
    "KRAJAN KIDUL",
    "KRAJAN LOR",
    "PASIRMUKTI",
    "CIBEUREUM",
    "BABAKAN",
    "CIKONENG",
    "SUKASARI",
    "MARGAHAYU",
    "KAJA",
    "KELOD",
    "TENGAH",
];
const HAMLETS_NUMBERED: &[&str] =
    &["DUSUN I", "DUSUN II", "DUSUN III", "DUSUN IV", "DUSUN V", "DUSUN VI", "DUSUN VII", "DUSUN VIII"];

/// RW, RT, hamlet and address. A village's number of RW and its hamlets are properties of the village (keyed by its
/// code), so neighbours agree on them; the RW decides the hamlet.
fn address(
    seed: u64,
    province: u8,
    village: &'static Village,
    rng: &mut Stream,
) -> (u8, u8, Option<&'static str>, Address) {
    let village_key = key(&[
        seed,
        u64::from(village.province),
        u64::from(village.regency),
        u64::from(village.district),
        u64::from(village.code),
    ]);
    let urban = village.is_urban();
    let rws = 2 + village_key % if urban { 14 } else { 7 };
    let rw = 1 + rng.below(rws) as u8;
    let rts = 3 + mix(village_key ^ u64::from(rw)) % 10;
    let rt = 1 + rng.below(rts) as u8;
    let number = 1 + rng.below(if urban { 180 } else { 60 }) as u16;
    if urban {
        let address = match rng.below(20) {
            0..=13 => Address::Street { street: rng.pick(STREETS), number },
            14..=16 => Address::Alley { street: rng.pick(STREETS), alley: 1 + rng.below(12) as u8, number },
            _ => Address::Estate { estate: rng.pick(ESTATES), block: char::from(b'A' + rng.below(8) as u8), number },
        };
        return (rw, rt, None, address);
    }
    let named = matches!(province, 32..=36 | 51);
    let hamlet = if named {
        HAMLETS_JAVA[(mix(village_key ^ 0xD05 ^ u64::from(rw)) % HAMLETS_JAVA.len() as u64) as usize]
    } else {
        HAMLETS_NUMBERED[usize::from(rw - 1) % HAMLETS_NUMBERED.len()]
    };
    let address = if rng.chance(0.3) {
        Address::VillageRoad { street: rng.pick(STREETS) }
    } else if !named {
        Address::Hamlet { prefix: "" }
    } else if matches!(province, 32 | 36) {
        Address::Hamlet { prefix: rng.pick(&["KP. ", "KAMPUNG ", "DUSUN "]) }
    } else {
        Address::Hamlet { prefix: rng.pick(&["DUSUN ", "DSN. ", "DUSUN "]) }
    };
    (rw, rt, Some(hamlet), address)
}

impl Household {
    /// ALAMAT as written on the KK.
    pub(crate) fn alamat(&self) -> String {
        match self.address {
            Address::Street { street, number } => format!("JL. {street} NO. {number}"),
            Address::Alley { street, alley, number } => format!("JL. {street} GG. {alley} NO. {number}"),
            Address::Estate { estate, block, number } => format!("PERUM {estate} BLOK {block} NO. {number}"),
            Address::Hamlet { prefix } => format!("{prefix}{}", self.dusun.unwrap_or_default()),
            Address::VillageRoad { street } => format!("JL. {street}"),
        }
    }
}
