//! Analyzers: a row's text (and a query) as the sequence of terms the index holds.
//!
//! Every analyzer splits on Unicode word boundaries (UAX #29), then splits each word at
//! the punctuation it may hold (`libssl.so`, `EVP_DigestInit`, `can't`, `3.14`: words
//! joined by `.`, `_`, `'` or `:` match their parts), lowercases, and folds
//! compatibility forms (full-width letters, ligatures) and the accents of Latin, Greek
//! and Cyrillic letters (`é` → `e`, `ё` → `е`); marks of other scripts are kept, since
//! they carry vowels there. `English` then drops a short list of English stop words and
//! stems with the Snowball English stemmer. `Cjk` instead indexes runs of Chinese,
//! Japanese and Korean characters as overlapping character bigrams (a single character
//! alone), so that text written without spaces is searchable. A term is at most
//! [`MAX_TERM_LEN`] bytes (longer words are cut at a character boundary).

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longest term in bytes; longer words are cut to it.
pub const MAX_TERM_LEN: usize = 64;

/// How text is turned into terms; chosen per store at creation and recorded in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Analyzer {
    /// Unicode words, lowercased, accents folded.
    #[default]
    Default,
    /// As `Default`, without English stop words, stemmed (Snowball English).
    English,
    /// As `Default`, with runs of CJK characters indexed as character bigrams.
    Cjk,
}

/// Lucene's English stop words.
const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

impl Analyzer {
    /// Every analyzer.
    pub const ALL: [Analyzer; 3] = [Analyzer::Default, Analyzer::English, Analyzer::Cjk];

    /// The analyzer's code on disk.
    pub fn code(self) -> u8 {
        match self {
            Analyzer::Default => 0,
            Analyzer::English => 1,
            Analyzer::Cjk => 2,
        }
    }

    /// The analyzer of an on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The analyzer's name (`default`, `english`, `cjk`).
    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Default => "default",
            Analyzer::English => "english",
            Analyzer::Cjk => "cjk",
        }
    }

    /// The analyzer of a name (as [`Self::name`] gives it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The terms of `text`, in order, repeated as often as they occur.
    pub fn terms(self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        // A run of CJK words with nothing between them (the `Cjk` analyzer).
        let mut run: Vec<char> = Vec::new();
        let mut run_end = 0;
        let words = text
            .unicode_word_indices()
            .flat_map(|(at, word)| parts(word).map(move |(i, p)| (at + i, p)));
        for (start, word) in words {
            if self == Analyzer::Cjk && word.chars().all(is_cjk) {
                if start != run_end {
                    push_bigrams(&mut run, &mut out);
                }
                run.extend(fold(word).chars());
                run_end = start + word.len();
                continue;
            }
            push_bigrams(&mut run, &mut out);
            let folded = fold(word);
            // Folding may make punctuation of a letter (`½` → `1⁄2`): split again.
            for (_, part) in parts(&folded) {
                let term = match self {
                    Analyzer::English if ENGLISH_STOP_WORDS.contains(&part) => continue,
                    Analyzer::English => english_stemmer().stem(part).into_owned(),
                    _ => part.to_owned(),
                };
                out.push(truncate(term));
            }
        }
        push_bigrams(&mut run, &mut out);
        out
    }
}

/// The runs of letters, digits and marks of a word, with their offsets in it.
fn parts(word: &str) -> impl Iterator<Item = (usize, &str)> {
    word.split(|c: char| !(c.is_alphanumeric() || is_combining_mark(c)))
        .filter(|p| !p.is_empty())
        .map(move |p| (p.as_ptr() as usize - word.as_ptr() as usize, p))
}

fn english_stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// Lowercased, compatibility forms folded, accents of Latin, Greek and Cyrillic letters
/// removed; lowercased again, since a compatibility form may fold to a capital (`𝐇`,
/// `ℝ`).
fn fold(word: &str) -> String {
    if word.is_ascii() {
        return word.to_ascii_lowercase();
    }
    let lower = word.to_lowercase();
    let mut folded = String::with_capacity(lower.len());
    let mut strip = false;
    for c in lower.nfkd() {
        if is_combining_mark(c) {
            if strip {
                continue;
            }
        } else {
            strip = accent_folded(c);
        }
        folded.push(c);
    }
    folded.nfc().collect::<String>().to_lowercase()
}

/// Letters whose combining marks are accents that searches ignore.
fn accent_folded(c: char) -> bool {
    matches!(c as u32,
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF // Latin
        | 0x0370..=0x03FF | 0x1F00..=0x1FFF // Greek
        | 0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F)
    // Cyrillic
}

/// Chinese, Japanese and Korean characters: what the `Cjk` analyzer indexes as bigrams.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xD7B0..=0xD7FF // Hangul
        | 0x3040..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F // kana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x323AF)
    // Han
}

/// The run's overlapping bigrams (the character itself for a run of one) into `out`;
/// empties the run.
fn push_bigrams(run: &mut Vec<char>, out: &mut Vec<String>) {
    match run.len() {
        0 => {}
        1 => out.push(run.iter().collect()),
        _ => out.extend(run.windows(2).map(|w| w.iter().collect::<String>())),
    }
    run.clear();
}

/// `term` cut to at most [`MAX_TERM_LEN`] bytes at a character boundary.
fn truncate(mut term: String) -> String {
    if term.len() > MAX_TERM_LEN {
        let mut end = MAX_TERM_LEN;
        while !term.is_char_boundary(end) {
            end -= 1;
        }
        term.truncate(end);
    }
    term
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(a: Analyzer, text: &str) -> Vec<String> {
        a.terms(text)
    }

    #[test]
    fn default_splits_lowercases_and_folds_accents() {
        assert_eq!(
            terms(Analyzer::Default, "Café-Crème, NAÏVE résumé! ls(1)"),
            ["cafe", "creme", "naive", "resume", "ls", "1"]
        );
        // Words joined by inner punctuation match their parts.
        assert_eq!(
            terms(Analyzer::Default, "libssl.so.3 EVP_DigestInit can't 3.14"),
            [
                "libssl",
                "so",
                "3",
                "evp",
                "digestinit",
                "can",
                "t",
                "3",
                "14"
            ]
        );
        // Full-width letters, ligatures and mathematical letters fold to their plain
        // lowercase forms; a fraction folds to its digits.
        assert_eq!(terms(Analyzer::Default, "ＡＢＣ ﬁle"), ["abc", "file"]);
        assert_eq!(
            terms(Analyzer::Default, "𝐇𝐞𝐥𝐥𝐨 ℝ ½"),
            ["hello", "r", "1", "2"]
        );
        assert_eq!(terms(Analyzer::English, "𝐑𝐔𝐍𝐍𝐈𝐍𝐆"), ["run"]);
    }

    #[test]
    fn cyrillic_and_greek_fold_their_accents() {
        assert_eq!(
            terms(Analyzer::Default, "Ёлка ПРИВЕТ мир Καλημέρα"),
            ["елка", "привет", "мир", "καλημερα"]
        );
    }

    #[test]
    fn marks_of_other_scripts_are_kept() {
        // Devanagari vowel signs are combining marks that carry the word's vowels.
        let t = terms(Analyzer::Default, "हिन्दी");
        assert_eq!(t, ["हिन्दी"]);
    }

    #[test]
    fn english_drops_stop_words_and_stems() {
        assert_eq!(
            terms(Analyzer::English, "The running of the files is connected"),
            ["run", "file", "connect"]
        );
    }

    #[test]
    fn cjk_indexes_runs_as_bigrams() {
        assert_eq!(
            terms(Analyzer::Cjk, "我爱北京 天安门 Linux內核"),
            ["我爱", "爱北", "北京", "天安", "安门", "linux", "內核"]
        );
        // A lone character is its own term; Hangul words become syllable bigrams.
        assert_eq!(terms(Analyzer::Cjk, "猫 한국어"), ["猫", "한국", "국어"]);
        // The default analyzer keeps each ideograph a word (UAX #29).
        assert_eq!(terms(Analyzer::Default, "北京"), ["北", "京"]);
    }

    #[test]
    fn hangul_survives_folding() {
        assert_eq!(
            terms(Analyzer::Default, "한국어 텍스트"),
            ["한국어", "텍스트"]
        );
    }

    #[test]
    fn long_words_are_cut_at_a_character_boundary() {
        let word = "é".repeat(100);
        let t = terms(Analyzer::Default, &word);
        assert_eq!(t.len(), 1);
        assert!(t[0].len() <= MAX_TERM_LEN && t[0].chars().all(|c| c == 'e'));
        let t = terms(Analyzer::Default, &"ж".repeat(100));
        assert_eq!(t[0].len(), MAX_TERM_LEN);
    }

    #[test]
    fn names_and_codes_round_trip() {
        for a in Analyzer::ALL {
            assert_eq!(Analyzer::from_code(a.code()), Some(a));
            assert_eq!(Analyzer::from_name(a.name()), Some(a));
        }
        assert_eq!(Analyzer::from_code(3), None);
        assert_eq!(Analyzer::from_name("french"), None);
    }

    #[test]
    fn punctuation_and_empty_text_give_no_terms() {
        for a in Analyzer::ALL {
            assert!(a.terms("").is_empty());
            assert!(a.terms(" -- !! ... ").is_empty());
        }
    }
}
