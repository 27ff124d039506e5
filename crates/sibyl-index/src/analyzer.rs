//! Text analysis options of SAI (`case_sensitive`, `normalize`, `ascii`), applied the same way
//! to indexed values and to query values so that both meet on the same term.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analyzer {
    pub case_sensitive: bool,
    pub normalize: bool,
    pub ascii: bool,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer {
            case_sensitive: true,
            normalize: false,
            ascii: false,
        }
    }
}

impl Analyzer {
    pub fn is_identity(&self) -> bool {
        *self == Analyzer::default()
    }

    pub fn analyze(&self, s: &str) -> String {
        let mut out: String = if self.ascii {
            // Folding to ASCII: decompose, then drop the accents.
            s.nfkd().filter(|c| !is_combining_mark(*c)).collect()
        } else if self.normalize {
            s.nfc().collect()
        } else {
            s.to_string()
        };
        if !self.case_sensitive {
            out = out.to_lowercase();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_apply() {
        let a = Analyzer {
            case_sensitive: false,
            normalize: false,
            ascii: true,
        };
        assert_eq!(a.analyze("Éclair CAFÉ"), "eclair cafe");
        let n = Analyzer {
            normalize: true,
            ..Analyzer::default()
        };
        assert_eq!(n.analyze("e\u{301}"), "\u{e9}");
        assert_eq!(Analyzer::default().analyze("AbC"), "AbC");
    }
}
