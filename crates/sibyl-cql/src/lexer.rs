//! The CQL lexer: a `logos` scanner plus position tracking (1-based lines, 0-based char columns,
//! as ANTLR reports them). Keywords are not separate tokens: every word is an `Ident` and the
//! parser matches keywords case-insensitively, which is what makes unreserved keywords usable
//! as names.

use logos::Logos;

use crate::ParseError;

#[derive(Logos, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tk {
    #[regex(r"[ \t\r\n\x0C]+")]
    Ws,
    #[regex(r"--[^\n]*")]
    #[regex(r"//[^\n]*")]
    LineComment,
    #[token("/*", block_comment)]
    BlockComment,
    #[regex(r"[a-zA-Z][a-zA-Z0-9_]*")]
    Ident,
    #[regex(r#""([^"]|"")+""#)]
    QuotedName,
    #[token("\"\"")]
    EmptyQuotedName,
    #[regex(r"'([^']|'')*'")]
    Str,
    #[regex(r"\$\$([^$]|\$[^$])*\$\$")]
    DollarStr,
    #[regex(r"[0-9]+")]
    Int,
    #[regex(r"[0-9]+\.[0-9]*([eE][+-]?[0-9]+)?")]
    #[regex(r"[0-9]+[eE][+-]?[0-9]+")]
    Float,
    #[regex(r"0[xX][0-9a-fA-F]*")]
    Blob,
    #[regex(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")]
    Uuid,
    /// `12h30m`, `1y2mo`, `3µs`; the ISO forms made only of letters and digits (P1D, PT2H, P2W)
    /// lex as identifiers and are recognised by the parser where a term is expected.
    #[regex(r"([0-9]+([yYwWdDhHsS]|[mM][oO]?|[mM][sS]|[uU][sS]|µ[sS]|μ[sS]|[nN][sS]))+")]
    #[regex(r"[pP][0-9]{4}-[0-9]{2}-[0-9]{2}[tT][0-9]{2}:[0-9]{2}:[0-9]{2}")]
    Duration,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("*")]
    Star,
    #[token("=")]
    Eq,
    #[token("!=")]
    Neq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Lte,
    #[token(">")]
    Gt,
    #[token(">=")]
    Gte,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("?")]
    QMark,
    #[token(":")]
    Colon,
    #[token("+=")]
    PlusEq,
    #[token("-=")]
    MinusEq,
    /// End of input (never produced by logos; appended by [`lex`]).
    Eof,
}

/// Skips to the end of a `/* ... */` comment; fails when it never closes.
fn block_comment(lex: &mut logos::Lexer<Tk>) -> bool {
    match lex.remainder().find("*/") {
        Some(i) => {
            lex.bump(i + 2);
            true
        }
        None => false,
    }
}

impl Tk {
    fn hidden(self) -> bool {
        matches!(self, Tk::Ws | Tk::LineComment | Tk::BlockComment)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    pub kind: Tk,
    pub text: &'a str,
    /// Byte offsets into the source.
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub col: usize,
    /// Index in the full token list (hidden tokens included), for error snippets.
    pub raw: usize,
}

pub(crate) struct Lexed<'a> {
    /// Significant tokens, ending with an `Eof` token.
    pub tokens: Vec<Token<'a>>,
    /// Every token, whitespace and comments included (no `Eof`).
    pub all: Vec<Token<'a>>,
    /// The first lexical error, if any; the significant tokens stop there.
    pub error: Option<ParseError>,
}

/// Tracks line and column while moving forward through the source.
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    col: usize,
}

impl Cursor<'_> {
    fn advance_to(&mut self, to: usize) {
        for c in self.src[self.pos..to].chars() {
            if c == '\n' {
                self.line += 1;
                self.col = 0;
            } else {
                self.col += 1;
            }
        }
        self.pos = to;
    }
}

pub(crate) fn lex(src: &str) -> Lexed<'_> {
    let mut lexer = Tk::lexer(src);
    let mut cur = Cursor {
        src,
        pos: 0,
        line: 1,
        col: 0,
    };
    let mut tokens = Vec::new();
    let mut all = Vec::new();
    let mut error = None;
    while let Some(res) = lexer.next() {
        let span = lexer.span();
        cur.advance_to(span.start);
        let (line, col) = (cur.line, cur.col);
        match res {
            Ok(kind) => {
                let tok = Token {
                    kind,
                    text: &src[span.clone()],
                    start: span.start,
                    end: span.end,
                    line,
                    col,
                    raw: all.len(),
                };
                all.push(tok);
                if !kind.hidden() {
                    tokens.push(tok);
                }
            }
            Err(()) => {
                let rest = &src[span.start..];
                let unterminated = if rest.starts_with("/*") {
                    Some("'*'")
                } else if rest.starts_with('\'') {
                    Some("'\\''")
                } else if rest.starts_with('"') {
                    Some("'\"'")
                } else if rest.starts_with("$$") {
                    Some("'$'")
                } else {
                    None
                };
                error = Some(match unterminated {
                    Some(exp) => {
                        cur.advance_to(src.len());
                        lex_error(
                            cur.line,
                            cur.col,
                            format!("mismatched character '<EOF>' expecting {exp}"),
                        )
                    }
                    None => {
                        let c = rest.chars().next().unwrap_or(' ');
                        lex_error(
                            line,
                            col,
                            format!(
                                "no viable alternative at character '{}'",
                                escape_display(&c.to_string())
                            ),
                        )
                    }
                });
                break;
            }
        }
    }
    let end = if error.is_some() { cur.pos } else { src.len() };
    cur.advance_to(end);
    tokens.push(Token {
        kind: Tk::Eof,
        text: "<EOF>",
        start: end,
        end,
        line: cur.line,
        col: cur.col,
        raw: all.len(),
    });
    Lexed { tokens, all, error }
}

fn lex_error(line: usize, column: usize, msg: String) -> ParseError {
    ParseError {
        message: format!("line {line}:{column} {msg}"),
        line,
        column,
    }
}

/// ANTLR's way of showing token text in messages: control characters escaped.
pub(crate) fn escape_display(text: &str) -> String {
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}
