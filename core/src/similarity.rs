//! Name similarity, 0-100, for verification (`CALL_VERIFY_BY_ELEMEN`) of names, places of birth and addresses.
//!
//! # Algorithm
//!
//! 1. **Normalise** each side ([`name_tokens`]):
//!    - upper case; apostrophes are deleted (`MA'RUF` = `MARUF`); every other character that is not a letter or a digit
//!      separates words, so `SITI-AMINAH`, `SITI.AMINAH` and `SITI  AMINAH` are all `SITI AMINAH`;
//!    - a word written with dots that spells a title as a whole (`S.H.`, `S.Kom`, `M.M.`) stays one word, so it can be
//!      recognised below;
//!    - **titles** are dropped: honorifics and academic titles before the name (`H.`, `HJ.`, `KH.`, `IR.`, `DR.`,
//!      `DRS.`, `DRA.`, `PROF.`, `TN.`, `NY.`, ...) while they lead it, and degrees after it (`S.H.`, `M.H.`,
//!      `S.KOM`, `S.PD`, `S.E.`, `M.M.`, `A.MD`, ...) while they end it, including degrees written with a space
//!      (`S. H.`). Titles are only taken from the ends, so an initial inside a name (`AHMAD H SANTOSO`) is kept;
//!      a name that is nothing but titles is kept whole;
//!    - the common abbreviations of Muhammad (`MOH.`, `MOCH.`, `MUH.`, `MHD.`, ...) are written out, and `ABD.` as
//!      `ABDUL`, since records and client data disagree on them more than on anything else.
//! 2. **Compare** the two word lists twice and keep the better score:
//!    - the words **joined without spaces**, in their order: robust to split and joined words
//!      (`SITI NURHALIZA` = `SITI NUR HALIZA`);
//!    - the words **sorted, then joined**: robust to swapped word order (`AHMAD FAUZI` = `FAUZI AHMAD`), which carries
//!      no meaning in Indonesian names (there is no family-name position).
//!
//!    Each comparison is the indel ratio `2·LCS / (|a| + |b|)`, where LCS is the longest common subsequence of
//!    characters (the ratio of `fuzz.ratio` in the RapidFuzz/FuzzyWuzzy libraries). Spelling variants of Indonesian
//!    names are mostly doubled or dropped letters (`MUHAMMAD`/`MUHAMAD`, `ABDURRAHMAN`/`ABDURAHMAN`), which this
//!    ratio scores higher than one-substitution edits of the same length, while unrelated names share too few letters
//!    in order to reach the usual thresholds.
//! 3. The score is the ratio times 100, **rounded down**, so 100 means equal after normalisation and nothing less.
//!
//! The score is symmetric. Empty names (after normalisation) score 100 against each other and 0 against anything else.
//! Only the first [`MAX_CHARS`] characters of each side are read, which bounds the work (LCS is quadratic) on
//! hostile input; the longest wire field, `ALAMAT`, holds 360.

/// Characters read per side, at most.
pub const MAX_CHARS: usize = 400;

/// Honorifics and titles that precede a name (dots removed).
const LEADING_TITLES: &[&str] = &[
    "H", "HJ", "HAJI", "HAJAH", "HAJJAH", "KH", "IR", "DR", "DRS", "DRA", "DRG", "DRH", "PROF", "TN", "NY", "NN",
    "SDR", "SDRI", "BPK",
];

/// Degrees that follow a name (dots removed).
const TRAILING_TITLES: &[&str] = &[
    "SH", "MH", "SHI", "SE", "ME", "AK", "MM", "MBA", "MSI", "SSI", "SKOM", "MKOM", "SIKOM", "SPD", "MPD", "SPDI",
    "MPDI", "SAG", "MAG", "SSOS", "MSOS", "SIP", "MIP", "SAP", "MAP", "ST", "MT", "SKM", "MKM", "MKES", "SKED", "SKEP",
    "SKEB", "SKG", "SFARM", "APT", "SPSI", "MPSI", "SS", "SP", "MP", "SPT", "SPI", "SHUT", "SSTP", "SSN", "AMD",
    "AMDKEP", "AMDKEB", "AMK", "AMKEP", "AMKEB", "NS", "NERS", "STRKEP", "STRKEB", "STRKES", "SPOG", "SPA", "SPB",
    "SPPD", "SPAN", "MKN", "LC", "LLM", "PHD", "BSC", "MSC",
];

/// Abbreviations written out before comparing.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("MOH", "MUHAMMAD"),
    ("MOCH", "MUHAMMAD"),
    ("MOHD", "MUHAMMAD"),
    ("MUH", "MUHAMMAD"),
    ("MUHD", "MUHAMMAD"),
    ("MHD", "MUHAMMAD"),
    ("ABD", "ABDUL"),
];

/// The similarity of two names, 0-100; see the module documentation for the algorithm.
pub fn name_similarity(a: &str, b: &str) -> u8 {
    let (a, b) = (name_tokens(a), name_tokens(b));
    if a.is_empty() || b.is_empty() {
        return if a.is_empty() && b.is_empty() { 100 } else { 0 };
    }
    let sorted = |tokens: &[String]| {
        let mut t = tokens.to_vec();
        t.sort();
        t
    };
    let in_order = ratio(&joined(&a), &joined(&b));
    let any_order = ratio(&joined(&sorted(&a)), &joined(&sorted(&b)));
    in_order.max(any_order)
}

/// The name as compared: its words after normalisation, separated by single spaces.
pub fn normalise_name(s: &str) -> String {
    name_tokens(s).join(" ")
}

/// The words of a name after normalisation (step 1 of the algorithm).
pub fn name_tokens(s: &str) -> Vec<String> {
    let upper: String = s
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::to_uppercase)
        .filter(|c| !matches!(c, '\'' | '`' | '\u{2018}' | '\u{2019}'))
        .collect();
    let mut tokens: Vec<String> = Vec::new();
    for raw in upper.split(|c: char| c.is_whitespace() || c == ',') {
        let compact: String = raw.chars().filter(|c| c.is_alphanumeric()).collect();
        if is_title(&compact) {
            tokens.push(compact);
        } else {
            tokens.extend(raw.split(|c: char| !c.is_alphanumeric()).filter(|p| !p.is_empty()).map(str::to_owned));
        }
    }
    let untitled = strip_titles(&tokens);
    let words = if untitled.is_empty() { &tokens[..] } else { untitled };
    words.iter().map(|w| expand(w).to_owned()).collect()
}

fn is_title(word: &str) -> bool {
    LEADING_TITLES.contains(&word) || TRAILING_TITLES.contains(&word)
}

fn strip_titles(tokens: &[String]) -> &[String] {
    let mut words = tokens;
    while let [first, rest @ ..] = words {
        if !LEADING_TITLES.contains(&first.as_str()) {
            break;
        }
        words = rest;
    }
    loop {
        match words {
            [rest @ .., last] if TRAILING_TITLES.contains(&last.as_str()) => words = rest,
            // A degree written with a space after its first letter: `S. H.`, `S. KOM`, `M. M.`.
            [rest @ .., initial, last]
                if initial.chars().count() == 1 && TRAILING_TITLES.contains(&format!("{initial}{last}").as_str()) =>
            {
                words = rest
            }
            _ => return words,
        }
    }
}

fn expand(word: &str) -> &str {
    ABBREVIATIONS.iter().find(|(short, _)| *short == word).map_or(word, |(_, long)| long)
}

fn joined(tokens: &[String]) -> Vec<char> {
    tokens.iter().flat_map(|t| t.chars()).collect()
}

/// `⌊200·LCS / (|a| + |b|)⌋`; both sides are non-empty.
fn ratio(a: &[char], b: &[char]) -> u8 {
    let lcs = lcs_len(a, b);
    let score = 200 * lcs / (a.len() + b.len());
    // LCS is at most the shorter length, so the score is at most 100.
    u8::try_from(score).unwrap_or(100)
}

fn lcs_len(a: &[char], b: &[char]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut row = vec![0usize; b.len() + 1];
    for ca in a {
        for (j, cb) in b.iter().enumerate() {
            row[j + 1] = if ca == cb { prev[j] + 1 } else { prev[j + 1].max(row[j]) };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_titles_punctuation_and_case() {
        let table = [
            ("Siti Aminah", "SITI AMINAH"),
            ("  siti   aminah ", "SITI AMINAH"),
            ("SITI-AMINAH", "SITI AMINAH"),
            ("Ma'ruf Amin", "MARUF AMIN"),
            ("H. AHMAD FAUZI, S.H.", "AHMAD FAUZI"),
            ("HJ. SITI AMINAH", "SITI AMINAH"),
            ("Hj.Siti Aminah", "SITI AMINAH"),
            ("DRS. H. AHMAD FAUZI, M.M.", "AHMAD FAUZI"),
            ("Prof. Dr. Ir. H. Budi Santoso, M.Sc.", "BUDI SANTOSO"),
            ("IR. BUDI SANTOSO", "BUDI SANTOSO"),
            ("BUDI SANTOSO, S.KOM", "BUDI SANTOSO"),
            ("BUDI SANTOSO S.Kom., M.Kom.", "BUDI SANTOSO"),
            ("SITI AMINAH, S.PD", "SITI AMINAH"),
            ("SITI AMINAH, S. Pd.", "SITI AMINAH"),
            ("AHMAD FAUZI S. H.", "AHMAD FAUZI"),
            ("AHMAD FAUZI,S.E.,AK", "AHMAD FAUZI"),
            ("RINA AMD.KEP", "RINA"),
            ("RINA WATI, S.Kep., Ns.", "RINA WATI"),
            ("NY. SITI AMINAH", "SITI AMINAH"),
            ("TN BUDI", "BUDI"),
            ("AHMAD H SANTOSO", "AHMAD H SANTOSO"),
            ("DEWI SH", "DEWI"),
            ("SH DEWI", "SH DEWI"),
            ("BUDI H", "BUDI H"),
            ("M. YUSUF", "M YUSUF"),
            ("MOH. YUSUF", "MUHAMMAD YUSUF"),
            ("Moch Yusuf", "MUHAMMAD YUSUF"),
            ("ABD. RAHMAN", "ABDUL RAHMAN"),
            ("DR.", "DR"),
            ("H. DRS.", "H DRS"),
            ("", ""),
            (" .,- ", ""),
        ];
        for (input, want) in table {
            assert_eq!(normalise_name(input), want, "{input:?}");
        }
    }

    /// Realistic pairs and their exact scores: the algorithm is deterministic, so any change to it shows here.
    #[test]
    fn realistic_pairs_score_exactly() {
        let table: &[(&str, &str, u8)] = &[
            // Doubled or dropped letters: MUHAMMAD and MUHAMAD share 7 of 8 + 7 letters, ⌊200·7 / 15⌋ = 93.
            ("MUHAMMAD", "MUHAMAD", 93),
            ("MUHAMMAD RIZKI", "MUHAMAD RIZKY", 88),
            ("MOHAMMAD", "MUHAMMAD", 87),
            ("ABDURRAHMAN", "ABDURAHMAN", 95),
            ("PUTRI AYU LESTARI", "PUTRI AYU LESTARY", 93),
            ("DEWI SARTIKA", "DEWI SARTIKAH", 95),
            // Split words and swapped order cost nothing.
            ("SITI NURHALIZA", "SITI NUR HALIZA", 100),
            ("AHMAD FAUZI", "FAUZI AHMAD", 100),
            // Case, spacing, titles and the abbreviations of Muhammad cost nothing either.
            ("SITI NURHALIZA", "SITI NURHALIZA", 100),
            ("siti nurhaliza", "SITI  NURHALIZA", 100),
            ("H. AHMAD FAUZI, S.H.", "AHMAD FAUZI", 100),
            ("HJ. SITI AMINAH", "SITI AMINAH, S.PD", 100),
            ("DRS. BUDI SANTOSO, M.M.", "IR. BUDI SANTOSO", 100),
            ("MOH. YUSUF", "MUHAMMAD YUSUF", 100),
            ("MOH. SOLEH", "MUHAMMAD SOLEH", 100),
            // Balinese birth-order and gender words are not normalised: they count as letters like any other.
            ("NI MADE SARI", "NI MD SARI", 88),
            ("I WAYAN SUDIRTA", "WAYAN SUDIRTA", 96),
            // A word more, or a different second name.
            ("AHMAD FAUZI", "AHMAD FAUZI RAHMAN", 76),
            ("SITI AMINAH", "SITI ROHMAH", 70),
            // Different people and places.
            ("BUDI SANTOSO", "SITI AMINAH", 28),
            ("AGUS SALIM", "DEWI LESTARI", 30),
            ("BAMBANG SUTRISNO", "RINA WULANDARI", 35),
            ("SURABAYA", "SEMARANG", 37),
            // Places and addresses: `KAB`, `JL` and padding are not normalised away.
            ("KAB. SEMARANG", "SEMARANG", 84),
            ("JL. MERDEKA NO. 5 RT 01 RW 02", "JALAN MERDEKA NO 5 RT 001 RW 002", 88),
            ("", "", 100),
            ("SITI", "", 0),
            ("H.", "", 0),
        ];
        for &(a, b, want) in table {
            assert_eq!(name_similarity(a, b), want, "{a:?} / {b:?}");
            assert_eq!(name_similarity(b, a), want, "symmetric: {a:?} / {b:?}");
        }
    }

    #[test]
    fn scores_are_floored_so_only_equal_names_score_100() {
        let long = "A".repeat(300);
        let almost = format!("{}B", "A".repeat(299));
        // 2·299/600 = 99.67 would round to 100.
        assert_eq!(name_similarity(&long, &almost), 99);
        assert_eq!(name_similarity(&long, &long), 100);
    }

    #[test]
    fn hostile_lengths_are_bounded() {
        let huge = "SITI AMINAH ".repeat(100_000);
        assert_eq!(name_tokens(&huge).concat().chars().count(), MAX_CHARS / 12 * 10 + 4);
        assert_eq!(name_similarity(&huge, &huge), 100);
        assert!(name_similarity(&huge, "SITI AMINAH") < 10);
    }

    #[test]
    fn lcs_of_known_pairs() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        let table =
            [("MUHAMMAD", "MUHAMAD", 7), ("ABC", "ABC", 3), ("ABC", "XYZ", 0), ("AXBYC", "ABC", 3), ("", "A", 0)];
        for (a, b, want) in table {
            assert_eq!(lcs_len(&c(a), &c(b)), want, "{a} {b}");
            assert_eq!(lcs_len(&c(b), &c(a)), want, "{b} {a}");
        }
    }
}
