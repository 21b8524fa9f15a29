//! The catalogue of record elements that an agreement can grant, under their Dukcapil wire names.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How an element's value is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    /// A JSON number (NIK, KK, region codes, RT/RW, postal code).
    Number,
    /// Free text (names, addresses, deed numbers).
    Text,
    /// A date, `yyyy-mm-dd` on the wire, `null` when empty.
    Date,
    /// One value of a closed upper-case vocabulary (religion, marital status, ...).
    Label,
}

/// How verification (`CALL_VERIFY_BY_ELEMEN`) compares a claimed value with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Similarity score 0-100 against the threshold; the verdict carries the score.
    Fuzzy,
    /// Equal after normalising case, spaces and zero padding; a bare verdict.
    Exact,
}

macro_rules! elements {
    ($( $variant:ident => $wire:literal, $kind:ident, $cmp:ident; )*) => {
        /// One data element of a population record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Element { $( $variant, )* }

        impl Element {
            /// Every element, in the order records are rendered on the wire.
            pub const ALL: &'static [Element] = &[ $( Element::$variant, )* ];

            /// The name used on the wire and in agreements.
            pub const fn wire_name(self) -> &'static str {
                match self { $( Element::$variant => $wire, )* }
            }

            pub const fn kind(self) -> ElementKind {
                match self { $( Element::$variant => ElementKind::$kind, )* }
            }

            pub const fn comparison(self) -> Comparison {
                match self { $( Element::$variant => Comparison::$cmp, )* }
            }
        }
    };
}

elements! {
    Nik => "NIK", Number, Exact;
    NoKk => "NO_KK", Number, Exact;
    NamaLgkp => "NAMA_LGKP", Text, Fuzzy;
    JenisKlmin => "JENIS_KLMIN", Label, Exact;
    TmptLhr => "TMPT_LHR", Text, Fuzzy;
    TglLhr => "TGL_LHR", Date, Exact;
    NoAktaLhr => "NO_AKTA_LHR", Text, Exact;
    GolDarah => "GOL_DARAH", Label, Exact;
    Agama => "AGAMA", Label, Exact;
    StatusKawin => "STATUS_KAWIN", Label, Exact;
    TglKwn => "TGL_KWN", Date, Exact;
    NoAktaKwn => "NO_AKTA_KWN", Text, Exact;
    TglCrai => "TGL_CRAI", Date, Exact;
    NoAktaCrai => "NO_AKTA_CRAI", Text, Exact;
    PddkAkh => "PDDK_AKH", Label, Exact;
    JenisPkrjn => "JENIS_PKRJN", Label, Exact;
    StatHbkel => "STAT_HBKEL", Label, Exact;
    Alamat => "ALAMAT", Text, Fuzzy;
    Dusun => "DUSUN", Text, Exact;
    NoRt => "NO_RT", Number, Exact;
    NoRw => "NO_RW", Number, Exact;
    NoKel => "NO_KEL", Number, Exact;
    NoKec => "NO_KEC", Number, Exact;
    NoKab => "NO_KAB", Number, Exact;
    NoProp => "NO_PROP", Number, Exact;
    KelName => "KEL_NAME", Text, Exact;
    KecName => "KEC_NAME", Text, Exact;
    KabName => "KAB_NAME", Text, Exact;
    PropName => "PROP_NAME", Text, Exact;
    NikAyah => "NIK_AYAH", Number, Exact;
    NamaLgkpAyah => "NAMA_LGKP_AYAH", Text, Fuzzy;
    NikIbu => "NIK_IBU", Number, Exact;
    NamaLgkpIbu => "NAMA_LGKP_IBU", Text, Fuzzy;
    EktpStatus => "EKTP_STATUS", Label, Exact;
    KodePos => "KODE_POS", Number, Exact;
    PnydngCct => "PNYDNG_CCT", Label, Exact;
}

impl Element {
    /// Number of elements in the catalogue.
    pub const COUNT: usize = Element::ALL.len();

    /// Looks an element up by its wire name, ignoring case; `NOMOR_PROP` is a field alias of `NO_PROP`.
    pub fn from_wire_name(name: &str) -> Option<Element> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("NOMOR_PROP") {
            return Some(Element::NoProp);
        }
        // The warehouse's answers name every element as the catalogue writes it: an exact comparison finds those at
        // the cost of a memcmp, and only a request's own spelling needs the case-blind scan.
        let exact = Element::ALL.iter().copied().find(|e| e.wire_name() == name);
        exact.or_else(|| Element::ALL.iter().copied().find(|e| e.wire_name().eq_ignore_ascii_case(name)))
    }

    /// Whether the element's value is a person's NIK (theirs or a parent's): what an answer names a person by, so
    /// that everything kept about someone is found under their NIK.
    pub const fn names_a_person(self) -> bool {
        matches!(self, Element::Nik | Element::NikAyah | Element::NikIbu)
    }

    /// Position in [`Element::ALL`], for dense tables indexed by element.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

impl Serialize for Element {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.wire_name())
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Element::from_wire_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown data element {name:?}")))
    }
}

/// A set of elements, such as an agreement's grant or a request's selection.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ElementSet(u64);

impl ElementSet {
    pub const fn empty() -> Self {
        ElementSet(0)
    }

    pub fn all() -> Self {
        Element::ALL.iter().copied().collect()
    }

    pub fn contains(self, e: Element) -> bool {
        self.0 & (1 << e.index()) != 0
    }

    pub fn insert(&mut self, e: Element) {
        self.0 |= 1 << e.index();
    }

    pub fn remove(&mut self, e: Element) {
        self.0 &= !(1 << e.index());
    }

    pub fn intersection(self, other: ElementSet) -> ElementSet {
        ElementSet(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Elements in wire order.
    pub fn iter(self) -> impl Iterator<Item = Element> {
        Element::ALL.iter().copied().filter(move |e| self.contains(*e))
    }
}

impl FromIterator<Element> for ElementSet {
    fn from_iter<I: IntoIterator<Item = Element>>(iter: I) -> Self {
        let mut set = ElementSet::empty();
        for e in iter {
            set.insert(e);
        }
        set
    }
}

impl fmt::Debug for ElementSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for ElementSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ElementSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Element>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_33_record_elements_plus_three() {
        assert_eq!(Element::COUNT, 36);
        let names: std::collections::HashSet<_> = Element::ALL.iter().map(|e| e.wire_name()).collect();
        assert_eq!(names.len(), 36, "wire names are unique");
        for (i, e) in Element::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn lookup_is_case_insensitive_with_alias() {
        let table = [
            ("NIK", Some(Element::Nik)),
            ("nik", Some(Element::Nik)),
            ("Nama_Lgkp", Some(Element::NamaLgkp)),
            ("NOMOR_PROP", Some(Element::NoProp)),
            ("nomor_prop", Some(Element::NoProp)),
            (" KODE_POS ", Some(Element::KodePos)),
            ("STAT_KWN", None),
            ("", None),
        ];
        for (name, want) in table {
            assert_eq!(Element::from_wire_name(name), want, "{name:?}");
        }
        for element in Element::ALL.iter().copied() {
            assert_eq!(Element::from_wire_name(element.wire_name()), Some(element));
            assert_eq!(Element::from_wire_name(&element.wire_name().to_lowercase()), Some(element));
        }
    }

    #[test]
    fn fuzzy_elements_are_exactly_the_name_place_and_address_texts() {
        let fuzzy: Vec<_> =
            Element::ALL.iter().filter(|e| e.comparison() == Comparison::Fuzzy).map(|e| e.wire_name()).collect();
        assert_eq!(fuzzy, ["NAMA_LGKP", "TMPT_LHR", "ALAMAT", "NAMA_LGKP_AYAH", "NAMA_LGKP_IBU"]);
    }

    #[test]
    fn the_person_naming_elements_are_the_nik_valued_ones() {
        let niks: Vec<_> = Element::ALL.iter().filter(|e| e.names_a_person()).map(|e| e.wire_name()).collect();
        assert_eq!(niks, ["NIK", "NIK_AYAH", "NIK_IBU"]);
        assert!(Element::ALL.iter().filter(|e| e.names_a_person()).all(|e| e.kind() == ElementKind::Number));
    }

    #[test]
    fn element_set_round_trips_through_serde_in_wire_order() {
        let set: ElementSet = [Element::KodePos, Element::Nik, Element::NamaLgkp].into_iter().collect();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["NIK","NAMA_LGKP","KODE_POS"]"#);
        let back: ElementSet = serde_json::from_str(r#"["kode_pos","NIK","nama_lgkp"]"#).unwrap();
        assert_eq!(back, set);
        assert!(serde_json::from_str::<ElementSet>(r#"["NOPE"]"#).is_err());
        assert_eq!(ElementSet::all().len(), 36);
    }
}
