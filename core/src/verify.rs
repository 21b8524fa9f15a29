//! Verification (`CALL_VERIFY_BY_ELEMEN`): the client's claimed values against the record, one verdict per element,
//! and no record data in the answer.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value as Json};

use crate::element::{Comparison, Element, ElementKind};
use crate::record::{Record, Value};
use crate::similarity::name_similarity;
use crate::wire::request::{normalise_code, parse_wire_date};

/// The threshold when a client sends no `TRESHOLD`. 80 is the name-similarity level Dukcapil itself used to re-match
/// 3.3 million records (93.8% matched), so institutions are used to what it lets through.
pub const DEFAULT_THRESHOLD: u8 = 80;

const MATCH: &str = "Sesuai";
const MISMATCH: &str = "Tidak Sesuai";

/// One element's verdict. Fuzzy elements carry their similarity score, exact ones none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Match { score: Option<u8> },
    Mismatch { score: Option<u8> },
}

impl Verdict {
    pub fn is_match(self) -> bool {
        matches!(self, Verdict::Match { .. })
    }

    pub fn score(self) -> Option<u8> {
        match self {
            Verdict::Match { score } | Verdict::Mismatch { score } => score,
        }
    }
}

/// `Sesuai`, `Sesuai (100)`, `Tidak Sesuai`, `Tidak Sesuai (59)`.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_match() { MATCH } else { MISMATCH })?;
        match self.score() {
            Some(score) => write!(f, " ({score})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a verdict: {0:?}")]
pub struct VerdictParseError(pub String);

/// Reads a verdict as rendered, ignoring case and extra spaces (upstream services are not all careful).
impl FromStr for Verdict {
    type Err = VerdictParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VerdictParseError(s.to_owned());
        let (word, score) = match s.trim().split_once('(') {
            None => (s, None),
            Some((word, rest)) => {
                let digits = rest.strip_suffix(')').ok_or_else(err)?.trim();
                let score = digits.parse::<u8>().ok().filter(|n| *n <= 100 && !digits.starts_with('+'));
                (word, Some(score.ok_or_else(err)?))
            }
        };
        let word = word.split_whitespace().collect::<Vec<_>>().join(" ");
        if word.eq_ignore_ascii_case(MATCH) {
            Ok(Verdict::Match { score })
        } else if word.eq_ignore_ascii_case(MISMATCH) {
            Ok(Verdict::Mismatch { score })
        } else {
            Err(err())
        }
    }
}

/// One verdict per claimed element, in wire order. Fuzzy elements are scored with [`name_similarity`] and match at
/// `threshold` or above; exact elements match when equal after normalising case, spaces, the zero padding of
/// numbers and the date form. An empty record value never matches, whatever the threshold.
pub fn verify(record: &Record, claims: &BTreeMap<Element, String>, threshold: u8) -> Vec<(Element, Verdict)> {
    claims.iter().map(|(e, claimed)| (*e, verdict(*e, record.get(*e), claimed, threshold))).collect()
}

/// The verdict on one element.
pub fn verdict(element: Element, recorded: &Value, claimed: &str, threshold: u8) -> Verdict {
    let recorded = recorded.as_text();
    match element.comparison() {
        Comparison::Fuzzy => {
            let score = recorded.filter(|r| !r.trim().is_empty()).map(|r| name_similarity(&r, claimed));
            match score {
                Some(score) if score >= threshold => Verdict::Match { score: Some(score) },
                score => Verdict::Mismatch { score: Some(score.unwrap_or(0)) },
            }
        }
        Comparison::Exact => {
            let kind = element.kind();
            let equal = recorded
                .and_then(|r| exact_key(kind, &r))
                .is_some_and(|r| exact_key(kind, claimed).is_some_and(|c| c == r));
            if equal {
                Verdict::Match { score: None }
            } else {
                Verdict::Mismatch { score: None }
            }
        }
    }
}

/// The form in which two values of an exact element are compared; `None` for a value that cannot match anything.
fn exact_key(kind: ElementKind, text: &str) -> Option<String> {
    let key = match kind {
        ElementKind::Number => normalise_code(&text.split_whitespace().collect::<String>()),
        ElementKind::Date => parse_wire_date(text)?.to_string(),
        ElementKind::Text | ElementKind::Label => text.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase(),
    };
    (!key.is_empty()).then_some(key)
}

/// The `content` element of a verification answer: `{"NIK": "Sesuai", "NAMA_LGKP": "Sesuai (100)", ...}`.
pub fn render_verdicts(verdicts: &[(Element, Verdict)]) -> Map<String, Json> {
    verdicts.iter().map(|(e, v)| (e.wire_name().to_owned(), Json::from(v.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn record() -> Record {
        let text = |s: &str| Value::Text(s.to_owned());
        Record::default()
            .with(Element::Nik, Value::Number(3372041003870006))
            .with(Element::NoKk, Value::Number(3372040101090001))
            .with(Element::NamaLgkp, text("SITI NURHALIZA"))
            .with(Element::JenisKlmin, text("Perempuan"))
            .with(Element::TmptLhr, text("SURAKARTA"))
            .with(Element::TglLhr, Value::Date(NaiveDate::from_ymd_opt(1987, 3, 10).unwrap()))
            .with(Element::Agama, text("ISLAM"))
            .with(Element::StatusKawin, text("BELUM KAWIN"))
            .with(Element::Alamat, text("JL. MERDEKA NO. 5"))
            .with(Element::NoRt, Value::Number(1))
            .with(Element::NoKec, Value::Number(4))
            .with(Element::NoKel, Value::Number(1023))
            .with(Element::KabName, text("KOTA SURAKARTA"))
            .with(Element::NamaLgkpIbu, text(""))
    }

    const MATCH: Verdict = Verdict::Match { score: None };
    const MISMATCH: Verdict = Verdict::Mismatch { score: None };

    fn scored(matched: bool, score: u8) -> Verdict {
        if matched {
            Verdict::Match { score: Some(score) }
        } else {
            Verdict::Mismatch { score: Some(score) }
        }
    }

    #[test]
    fn each_claim_gets_its_verdict() {
        use Element::*;
        let table: Vec<(Element, &str, Verdict)> = vec![
            (Nik, "3372041003870006", MATCH),
            (Nik, " 3372041003870006 ", MATCH),
            (Nik, "3372041003870007", MISMATCH),
            (NoKk, "3372040101090001", MATCH),
            (NamaLgkp, "SITI NURHALIZA", scored(true, 100)),
            (NamaLgkp, "siti nur haliza", scored(true, 100)),
            (NamaLgkp, "HJ. SITI NURHALIZA, S.PD", scored(true, 100)),
            (NamaLgkp, "SITI NURHALISA", scored(true, 92)),
            (NamaLgkp, "SITI AMINAH", scored(false, 60)),
            (JenisKlmin, "PEREMPUAN", MATCH),
            (JenisKlmin, "perempuan", MATCH),
            (JenisKlmin, "Laki-Laki", MISMATCH),
            (TmptLhr, "SURAKARTA", scored(true, 100)),
            (TmptLhr, "SOLO", scored(false, 15)),
            (TglLhr, "1987-03-10", MATCH),
            (TglLhr, "10-03-1987", MATCH),
            (TglLhr, "10/3/1987", MATCH),
            (TglLhr, "1987-10-03", MISMATCH),
            (TglLhr, "10-03-87", MISMATCH),
            (Agama, "Islam", MATCH),
            (StatusKawin, "BELUM  KAWIN", MATCH),
            (StatusKawin, "KAWIN", MISMATCH),
            (Alamat, "JALAN MERDEKA NO 5", scored(true, 88)),
            (NoRt, "001", MATCH),
            (NoRt, "1", MATCH),
            (NoRt, "010", MISMATCH),
            (NoKec, "04", MATCH),
            (NoKec, "040", MISMATCH),
            (NoKel, "1023", MATCH),
            (KabName, "kota  surakarta", MATCH),
            (KabName, "SURAKARTA", MISMATCH),
            // Empty in the record: never a match, not even for an empty claim.
            (NamaLgkpIbu, "SITI", scored(false, 0)),
            (NamaLgkpIbu, "", scored(false, 0)),
            (NamaLgkpAyah, "BUDI", scored(false, 0)),
            (TglKwn, "01-01-2010", MISMATCH),
            (NoAktaLhr, "", MISMATCH),
            (NoRw, "0", MISMATCH),
        ];
        let r = record();
        for (element, claimed, want) in table {
            assert_eq!(verdict(element, r.get(element), claimed, DEFAULT_THRESHOLD), want, "{element} {claimed:?}");
        }
    }

    #[test]
    fn the_word_flips_at_the_threshold() {
        let r = record();
        let score = name_similarity("SITI NURHALIZA", "SITI NURHALISA");
        let table = [(0, true), (score - 1, true), (score, true), (score + 1, false), (100, false)];
        for (threshold, matched) in table {
            let v = verdict(Element::NamaLgkp, r.get(Element::NamaLgkp), "SITI NURHALISA", threshold);
            assert_eq!(v, scored(matched, score), "threshold {threshold}");
        }
        // Exact elements ignore the threshold.
        assert_eq!(verdict(Element::Nik, r.get(Element::Nik), "3372041003870006", 100), MATCH);
        assert_eq!(verdict(Element::Nik, r.get(Element::Nik), "1", 0), MISMATCH);
        // An empty record value fails even at threshold 0.
        assert_eq!(verdict(Element::NamaLgkpAyah, &Value::Null, "", 0), scored(false, 0));
    }

    #[test]
    fn verification_answers_one_verdict_per_claim_in_wire_order() {
        let claims: BTreeMap<Element, String> = [
            (Element::KabName, "KABUPATEN SUKOHARJO"),
            (Element::TglLhr, "10-03-1987"),
            (Element::TmptLhr, "SOLO"),
            (Element::NamaLgkp, "Siti Nur Haliza"),
            (Element::Nik, "3372041003870006"),
        ]
        .into_iter()
        .map(|(e, v)| (e, v.to_owned()))
        .collect();
        let verdicts = verify(&record(), &claims, DEFAULT_THRESHOLD);
        let elements: Vec<Element> = verdicts.iter().map(|(e, _)| *e).collect();
        assert_eq!(elements, [Element::Nik, Element::NamaLgkp, Element::TmptLhr, Element::TglLhr, Element::KabName]);
        assert_eq!(
            serde_json::to_string(&render_verdicts(&verdicts)).unwrap(),
            r#"{"NIK":"Sesuai","NAMA_LGKP":"Sesuai (100)","TMPT_LHR":"Tidak Sesuai (15)","TGL_LHR":"Sesuai","KAB_NAME":"Tidak Sesuai"}"#
        );
        assert!(verify(&record(), &BTreeMap::new(), DEFAULT_THRESHOLD).is_empty());
    }

    #[test]
    fn verdicts_render_and_parse() {
        let table = [
            (Verdict::Match { score: None }, "Sesuai"),
            (Verdict::Match { score: Some(100) }, "Sesuai (100)"),
            (Verdict::Mismatch { score: None }, "Tidak Sesuai"),
            (Verdict::Mismatch { score: Some(59) }, "Tidak Sesuai (59)"),
            (Verdict::Mismatch { score: Some(0) }, "Tidak Sesuai (0)"),
        ];
        for (v, text) in table {
            assert_eq!(v.to_string(), text);
            assert_eq!(text.parse::<Verdict>(), Ok(v));
        }
        let lenient = [
            ("SESUAI", Verdict::Match { score: None }),
            (" tidak  sesuai ", Verdict::Mismatch { score: None }),
            ("Sesuai(87)", Verdict::Match { score: Some(87) }),
            ("Tidak Sesuai ( 59 )", Verdict::Mismatch { score: Some(59) }),
        ];
        for (text, v) in lenient {
            assert_eq!(text.parse::<Verdict>(), Ok(v), "{text:?}");
        }
        for bad in [
            "",
            "Cocok",
            "Sesuai (101)",
            "Sesuai (-1)",
            "Sesuai (+5)",
            "Sesuai (x)",
            "Sesuai (80",
            "Tidak",
            "Sesuai 80",
        ] {
            assert_eq!(bad.parse::<Verdict>(), Err(VerdictParseError(bad.to_owned())), "{bad:?}");
        }
    }
}
