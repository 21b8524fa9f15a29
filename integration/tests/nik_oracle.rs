//! NIK parsing checked against an independent implementation: `parse_nik` from the PyPI package lokal-id, run once
//! over 12,000 generated NIKs (valid ones from real catalogue districts, and mutations of them).
//!
//! Everything must agree (validity, which part is wrong, digits, region codes and names, the region warning, sex,
//! birth date, serial) except three deliberate differences, which are recognised by name, checked as far as they
//! allow, counted and printed:
//! - **form**: lokal-id drops JavaScript whitespace, dots and dashes anywhere before it counts digits; Simpul reads
//!   only ASCII digits in groups separated by single spaces, dots or dashes, with ASCII whitespace around the whole
//!   (no tab, non-breaking space or doubled separator inside, no separator at an end). Such an input must be a format
//!   error for Simpul, and must then agree with lokal-id once compacted as lokal-id compacts it.
//! - **century**: lokal-id reads yy as 20yy whenever `yy <= reference year % 100`, which can put a birth later in the
//!   reference year, in the future; Simpul picks 20yy only when that date is not after the reference, else 19yy.
//! - **regency 70**: Simpul rejects regency code 70 (kabupaten are 01–69, kota 71–99); lokal-id only rejects 00.
//!   Such a NIK is compared again with the regency set to 71, and must then agree on everything but the region.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{Datelike, Days, NaiveDate};
use serde::Deserialize;
use simpul_core::nik::{Nik, NikError, Sex};
use simpul_core::region::{catalogue, RegionCodeError};

const CASES: usize = 12_000;

/// The date both sides take as "today". Mid-year, so the reference year has dates on either side of it.
fn reference() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()
}

#[derive(Deserialize)]
struct Header {
    lokal_id: String,
    reference: String,
}

#[derive(Deserialize, Debug)]
struct Verdict {
    valid: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
    nik: Option<String>,
    province_code: Option<String>,
    regency_code: Option<String>,
    district_code: Option<String>,
    regency: Option<String>,
    district: Option<String>,
    gender: Option<String>,
    birth_date: Option<String>,
    serial: Option<String>,
}

/// splitmix64: a fixed seed gives the same cases on every run, so a failure can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A valid NIK from a real district, born within the century that the reference date can name.
fn valid_nik(rng: &mut Rng) -> Nik {
    let district = rng.pick(catalogue().districts());
    let birth = reference() - Days::new(rng.below(36_400));
    let sex = if rng.below(2) == 0 { Sex::Male } else { Sex::Female };
    let serial = 1 + rng.below(9999) as u16;
    Nik::compose(district.province, district.regency, district.code, birth, sex, serial).unwrap()
}

fn set_pair(digits: &mut [u8], pair: usize, value: u64) {
    digits[2 * pair..2 * pair + 2].copy_from_slice(format!("{value:02}").as_bytes());
}

const KINDS: &[&str] = &[
    "valid",
    "valid with separators",
    "one digit changed",
    "day out of range",
    "month out of range",
    "31st of a 30-day month",
    "29 or 30 February",
    "women's day offset toggled",
    "serial 0000",
    "unknown province",
    "regency 00 or 70",
    "district 00",
    "region codes not in the catalogue",
    "15 digits",
    "17 digits",
    "letter for a digit",
    "century boundary",
    "odd separator",
];

/// One input of the given kind, built from a fresh valid NIK.
fn case(kind: &str, rng: &mut Rng) -> String {
    let mut d = valid_nik(rng).to_string().into_bytes();
    let day = |d: &[u8]| u64::from((d[6] - b'0') * 10 + d[7] - b'0');
    let female = |d: &[u8], rng: &mut Rng| if day(d) > 40 || rng.below(4) == 0 { 40 } else { 0 };
    match kind {
        "valid" => {}
        "valid with separators" | "odd separator" => {
            let separators: &[&str] = if kind == "valid with separators" {
                &[" ", ".", "-", "\t", "\n", "\u{a0}", "  ", " - "]
            } else {
                // U+3000 and U+FEFF are JavaScript whitespace; U+0085, U+200B, '/' and '_' are not.
                &["\u{3000}", "\u{feff}", "\u{2007}", "\u{85}", "\u{200b}", "/", "_", "+"]
            };
            let mut text = String::from_utf8(d).unwrap();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(text.len() as u64 + 1) as usize;
                let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap();
                let separator = *rng.pick(separators);
                text.insert_str(at, separator);
            }
            return text;
        }
        "one digit changed" => {
            let at = rng.below(16) as usize;
            d[at] = b'0' + ((d[at] - b'0') as u64 + 1 + rng.below(9)) as u8 % 10;
        }
        "day out of range" => {
            let bad: Vec<u64> = [0].into_iter().chain(32..=40).chain(72..=99).collect();
            set_pair(&mut d, 3, *rng.pick(&bad));
        }
        "month out of range" => set_pair(&mut d, 4, *rng.pick(&[0, 13, 14, 20, 31, 99])),
        "31st of a 30-day month" => {
            let day = 31 + female(&d, rng);
            set_pair(&mut d, 3, day);
            set_pair(&mut d, 4, *rng.pick(&[4, 6, 9, 11]));
        }
        "29 or 30 February" => {
            let day = *rng.pick(&[29, 29, 30]) + female(&d, rng);
            let any_year = rng.below(100);
            set_pair(&mut d, 3, day);
            set_pair(&mut d, 4, 2);
            set_pair(&mut d, 5, *rng.pick(&[0, 0, 4, 24, 25, 28, 96, 1, 23, 99, any_year]));
        }
        "women's day offset toggled" => {
            let day = day(&d);
            set_pair(&mut d, 3, if day > 40 { day - 40 } else { day + 40 });
        }
        "serial 0000" => d[12..].copy_from_slice(b"0000"),
        "unknown province" => set_pair(&mut d, 0, *rng.pick(&[0, 99, 10, 20, 22, 30, 37, 50, 54, 70, 83, 90, 97])),
        "regency 00 or 70" => set_pair(&mut d, 1, *rng.pick(&[0, 70, 70])),
        "district 00" => set_pair(&mut d, 2, 0),
        "region codes not in the catalogue" => {
            let (kabupaten, kota) = (1 + rng.below(69), 71 + rng.below(29));
            set_pair(&mut d, 1, *rng.pick(&[kabupaten, kota]));
            set_pair(&mut d, 2, 1 + rng.below(99));
        }
        "15 digits" => {
            d.remove(rng.below(16) as usize);
        }
        "17 digits" => d.insert(rng.below(17) as usize, b'0' + rng.below(10) as u8),
        "letter for a digit" => d[rng.below(16) as usize] = *rng.pick(b"OolIaxZS"),
        "century boundary" => {
            // Days on both sides of the reference date, in its own two-digit year.
            let reference = reference();
            let month = u64::from(reference.month()) + rng.below(3) - 1;
            let day = match month {
                6 => u64::from(reference.day()) - 3 + rng.below(7),
                _ => 1 + rng.below(30),
            };
            let day = day + female(&d, rng);
            set_pair(&mut d, 3, day);
            set_pair(&mut d, 4, month);
            set_pair(&mut d, 5, u64::from(reference.year() as u32 % 100));
        }
        other => panic!("no generator for {other}"),
    }
    String::from_utf8(d).unwrap()
}

/// The input as lokal-id reads it: without JavaScript's whitespace (`\s`), dots and dashes, wherever they are.
fn lokal_compact(input: &str) -> String {
    let dropped = |c: char| {
        matches!(
            c,
            '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}' | '.' | '-'
        )
    };
    input.chars().filter(|&c| !dropped(c)).collect()
}

/// lokal-id's error code for the part Simpul reports; lokal-id reports every wrong part, Simpul the first one.
fn lokal_code(error: &NikError) -> &'static str {
    match error {
        NikError::Format(_) => "format",
        NikError::Region(RegionCodeError::UnknownProvince(_)) => "province",
        NikError::Region(RegionCodeError::Regency(_) | RegionCodeError::District(_)) => "wilayah",
        NikError::Day(_)
        | NikError::Month(_)
        | NikError::NoSuchDate { .. }
        | NikError::InFuture(_)
        | NikError::Year(_) => "birth_date",
        NikError::Serial(_) => "serial",
    }
}

/// What differs between the two verdicts, and whether the century difference was seen and tolerated.
fn compare(input: &str, ours: &Result<Nik, NikError>, lokal: &Verdict, with_region: bool) -> (Vec<String>, bool) {
    let mut diffs = Vec::new();
    let mut check = |field: &str, ours: Option<String>, theirs: &Option<String>| {
        if ours != *theirs {
            diffs.push(format!("{field}: simpul {ours:?}, lokal-id {theirs:?}"));
        }
    };
    let mut century = false;
    match ours {
        Ok(nik) => {
            if !lokal.valid {
                check("valid", Some("true".into()), &Some(format!("false {:?}", lokal.errors)));
            }
            if with_region {
                check("nik", Some(nik.to_string()), &lokal.nik);
                let (p, r, d) = (nik.province(), nik.regency(), nik.district());
                check("province_code", Some(format!("{p:02}")), &lokal.province_code);
                check("regency_code", Some(format!("{p:02}.{r:02}")), &lokal.regency_code);
                check("district_code", Some(format!("{p:02}.{r:02}.{d:02}")), &lokal.district_code);
                let warned = lokal.warnings.iter().any(|w| w == "wilayah_unknown");
                check("region warning", Some(nik.region_warning().is_some().to_string()), &Some(warned.to_string()));
                if nik.region_warning().is_none() {
                    check("regency", catalogue().regency(p, r).map(|r| r.name.clone()), &lokal.regency);
                    check("district", catalogue().district(p, r, d).map(|d| d.name.clone()), &lokal.district);
                }
            }
            let sex = match nik.sex() {
                Sex::Male => "L",
                Sex::Female => "P",
            };
            check("gender", Some(sex.into()), &lokal.gender);
            check("serial", Some(format!("{:04}", nik.serial())), &lokal.serial);
            let theirs = lokal.birth_date.as_deref().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let birth = nik.birth_date();
            century = theirs.is_some_and(|theirs| {
                theirs > reference()
                    && theirs.year() == reference().year()
                    && theirs.with_year(theirs.year() - 100) == Some(birth)
            });
            if !century {
                check("birth_date", Some(birth.to_string()), &lokal.birth_date);
            }
        }
        Err(error) => {
            if lokal.valid {
                check("valid", Some(format!("false ({error})")), &Some("true".into()));
            } else if !lokal.errors.iter().any(|e| e == lokal_code(error)) {
                check("error", Some(lokal_code(error).into()), &Some(format!("{:?}", lokal.errors)));
            }
            let digits = match error {
                NikError::Format(_) => None,
                _ => Some(input.chars().filter(char::is_ascii_digit).collect()),
            };
            check("nik", digits, &lokal.nik);
        }
    }
    (diffs, century)
}

#[test]
fn nik_parsing_agrees_with_lokal_id() {
    const TEST: &str = "nik_parsing_agrees_with_lokal_id";
    let Some(python) = simpul_integration::python() else {
        return simpul_integration::skip(TEST, "no test venv python (target/venv); run scripts/test to create it");
    };
    let mut rng = Rng(0x5149_4d50_554c);
    let cases: Vec<(&str, String)> = (0..CASES)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            (kind, case(kind, &mut rng))
        })
        .collect();

    let script = simpul_integration::workspace_root().join("integration/tests/python/nik_oracle.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(reference().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut stdin = child.stdin.take().unwrap();
    let lines: String = cases.iter().map(|(_, input)| serde_json::to_string(input).unwrap() + "\n").collect();
    // A thread, so that a full stdout pipe on the other side cannot stall our writes.
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "nik_oracle.py failed ({}); is lokal-id installed in the venv?", output.status);

    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    let header: Header = serde_json::from_str(lines.next().expect("a header line")).unwrap();
    assert_eq!(header.reference, reference().to_string(), "both sides must use the same reference date");
    let verdicts: Vec<Verdict> = lines.map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(verdicts.len(), cases.len(), "one verdict per input");

    let mut mismatches = Vec::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let (mut century, mut regency_70, mut form) = (0, 0, 0);
    for ((kind, input), lokal) in cases.iter().zip(&verdicts) {
        let ours = Nik::parse(input, reference());
        // A form only lokal-id accepts: compared as lokal-id reads it, once Simpul has refused it as a format error.
        let compact = lokal_compact(input);
        let (read_input, read) = match &ours {
            Err(NikError::Format(_)) if compact != *input => {
                form += 1;
                let read = Nik::parse(&compact, reference());
                (&compact, read)
            }
            _ => (input, ours),
        };
        let (diffs, tolerated_century) = match read {
            Err(NikError::Region(RegionCodeError::Regency(70))) => {
                regency_70 += 1;
                let digits: String = read_input.chars().filter(char::is_ascii_digit).collect();
                let mut legal = digits.clone();
                legal.replace_range(2..4, "71");
                let (mut diffs, century) = compare(read_input, &Nik::parse(&legal, reference()), lokal, false);
                let read_as = Some(format!("{}.70", &digits[..2]));
                if lokal.nik.as_ref() != Some(&digits) || lokal.regency_code != read_as {
                    diffs.push(format!("regency 70: lokal-id read {:?} {:?}", lokal.nik, lokal.regency_code));
                }
                (diffs, century)
            }
            _ => compare(read_input, &read, lokal, true),
        };
        century += usize::from(tolerated_century);
        let outcome = match &ours {
            Ok(_) => "valid".to_owned(),
            Err(e) => lokal_code(e).to_owned(),
        };
        *tally.entry(format!("{kind} -> {outcome}")).or_default() += 1;
        if !diffs.is_empty() {
            mismatches.push(format!("{input:?} ({kind}): {}", diffs.join("; ")));
        }
    }

    let valid = cases.iter().filter(|(_, input)| Nik::parse(input, reference()).is_ok()).count();
    eprintln!(
        "lokal-id {}: {} inputs, {valid} valid for Simpul, reference {}",
        header.lokal_id,
        cases.len(),
        reference()
    );
    for (what, n) in &tally {
        eprintln!("  {n:5}  {what}");
    }
    eprintln!(
        "known differences: {form} form (lokal-id drops whitespace, dots and dashes anywhere), {century} century \
         (lokal-id dates the birth in the future), {regency_70} regency 70"
    );
    let shown = mismatches.iter().take(50).cloned().collect::<Vec<_>>().join("\n");
    assert!(mismatches.is_empty(), "{} of {} inputs disagree (first 50):\n{shown}", mismatches.len(), cases.len());
    assert!(cases.len() >= 10_000);
    assert!(valid >= 2_000, "too few valid NIKs to compare ({valid})");
    assert!(
        form > 0 && century > 0 && regency_70 > 0,
        "the known differences must be exercised, or their exclusion is untested"
    );
}
