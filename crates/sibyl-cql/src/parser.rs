//! A hand-written recursive-descent parser over the token stream of [`crate::lexer`].
//!
//! Errors follow Cassandra's ANTLR style: `line L:C <message> (<snippet>)`, where the snippet
//! shows up to ten tokens before and two after the offending one, which is put in brackets.

use crate::ast::*;
use crate::keywords::{is_identifier_word, native_type_name};
use crate::lexer::{escape_display, lex, Tk, Token};
use crate::ParseError;

/// The deepest nesting of terms, selectors and types the parser accepts.
pub const MAX_NESTING_DEPTH: usize = 100;

type PResult<T> = Result<T, ParseError>;

pub(crate) struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    all: Vec<Token<'a>>,
    lex_error: Option<ParseError>,
    pos: usize,
    binds: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let lexed = lex(src);
        Parser {
            src,
            toks: lexed.tokens,
            all: lexed.all,
            lex_error: lexed.error,
            pos: 0,
            binds: 0,
            depth: 0,
        }
    }

    /// Prefer whichever of the parse error and the lexer error comes first in the text.
    pub(crate) fn finish<T>(&self, res: PResult<T>) -> PResult<T> {
        match (&self.lex_error, res) {
            (None, r) => r,
            (Some(le), Ok(_)) => Err(le.clone()),
            (Some(le), Err(pe)) => {
                if (pe.line, pe.column) < (le.line, le.column) {
                    Err(pe)
                } else {
                    Err(le.clone())
                }
            }
        }
    }

    // ----- entry points -------------------------------------------------------------------

    pub(crate) fn single_statement(&mut self) -> PResult<Statement> {
        let stmt = self.statement()?;
        while self.eat(Tk::Semi) {}
        self.expect_eof()?;
        Ok(stmt)
    }

    pub(crate) fn statement_list(&mut self) -> PResult<Vec<Statement>> {
        let mut out = Vec::new();
        loop {
            while self.eat(Tk::Semi) {}
            if self.at(Tk::Eof) {
                return Ok(out);
            }
            self.binds = 0;
            out.push(self.statement()?);
            if !self.at(Tk::Eof) && !self.at(Tk::Semi) {
                return Err(self.mismatched("';'"));
            }
        }
    }

    pub(crate) fn single_type(&mut self) -> PResult<CqlTypeAst> {
        let ty = self.cql_type()?;
        self.expect_eof()?;
        Ok(ty)
    }

    pub(crate) fn single_term(&mut self) -> PResult<Term> {
        let t = self.term()?;
        self.expect_eof()?;
        Ok(t)
    }

    fn expect_eof(&mut self) -> PResult<()> {
        if self.at(Tk::Eof) {
            Ok(())
        } else if self.peek_at(1).kind == Tk::Eof {
            Err(self.error_here("extraneous input", Some("EOF")))
        } else {
            Err(self.mismatched("EOF"))
        }
    }

    // ----- token helpers ------------------------------------------------------------------

    fn peek(&self) -> &Token<'a> {
        &self.toks[self.pos]
    }

    fn peek_at(&self, n: usize) -> &Token<'a> {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i]
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.toks[self.pos];
        if t.kind != Tk::Eof {
            self.pos += 1;
        }
        t
    }

    fn at(&self, kind: Tk) -> bool {
        self.peek().kind == kind
    }

    fn eat(&mut self, kind: Tk) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: Tk) -> PResult<Token<'a>> {
        if self.at(kind) {
            return Ok(self.bump());
        }
        let name = tk_name(kind);
        if self.peek_at(1).kind == kind && !self.at(Tk::Eof) {
            Err(self.error_here("extraneous input", Some(name)))
        } else {
            Err(self.mismatched(name))
        }
    }

    fn tok_is_kw(t: &Token, kw: &str) -> bool {
        t.kind == Tk::Ident && t.text.eq_ignore_ascii_case(kw)
    }

    fn at_kw(&self, kw: &str) -> bool {
        Self::tok_is_kw(self.peek(), kw)
    }

    fn at_kw_at(&self, n: usize, kw: &str) -> bool {
        Self::tok_is_kw(self.peek_at(n), kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            return Ok(());
        }
        let name = format!("K_{}", kw.to_ascii_uppercase());
        if self.at_kw_at(1, kw) {
            Err(self.error_here("extraneous input", Some(&name)))
        } else {
            Err(self.mismatched(&name))
        }
    }

    /// `IF NOT EXISTS`, if present.
    fn if_not_exists(&mut self) -> PResult<bool> {
        if self.at_kw("if") && self.at_kw_at(1, "not") {
            self.bump();
            self.bump();
            self.expect_kw("exists")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// `IF EXISTS`, if present.
    fn if_exists(&mut self) -> PResult<bool> {
        if self.at_kw("if") && self.at_kw_at(1, "exists") {
            self.bump();
            self.bump();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    // ----- errors -------------------------------------------------------------------------

    fn error_at(&self, tok: &Token, msg: &str) -> ParseError {
        let mut message = format!("line {}:{} {}", tok.line, tok.col, msg);
        self.append_snippet(&mut message, tok);
        ParseError {
            message,
            line: tok.line,
            column: tok.col,
        }
    }

    fn error_here(&self, what: &str, expecting: Option<&str>) -> ParseError {
        let t = *self.peek();
        let mut msg = format!("{} '{}'", what, escape_display(t.text));
        if let Some(e) = expecting {
            msg.push_str(" expecting ");
            msg.push_str(e);
        }
        self.error_at(&t, &msg)
    }

    fn mismatched(&self, expecting: &str) -> ParseError {
        self.error_here("mismatched input", Some(expecting))
    }

    fn no_viable(&self) -> ParseError {
        self.error_here("no viable alternative at input", None)
    }

    fn custom_error(&self, msg: &str) -> ParseError {
        let t = *self.peek();
        self.error_at(&t, msg)
    }

    fn append_snippet(&self, out: &mut String, offending: &Token) {
        if offending.kind == Tk::Eof || self.all.is_empty() {
            return;
        }
        let idx = offending.raw;
        let from = &self.all[idx.saturating_sub(10)];
        let to = &self.all[(idx + 2).min(self.all.len() - 1)];
        let mut s = String::from(" (");
        if from.start != 0 {
            s.push_str("...");
        }
        let piece = |a: usize, b: usize| self.src[a..b].replace('\n', "");
        s.push_str(&piece(from.start, offending.start));
        s.push('[');
        s.push_str(&piece(offending.start, offending.end));
        s.push(']');
        s.push_str(&piece(offending.end, to.end.max(offending.end)));
        if to.end < self.src.trim_end_matches('\n').len() {
            s.push_str("...");
        }
        s.push(')');
        out.push_str(&s);
    }

    fn descend(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING_DEPTH {
            return Err(self.custom_error(&format!(
                "maximum nesting depth ({MAX_NESTING_DEPTH}) exceeded"
            )));
        }
        Ok(())
    }

    // ----- names --------------------------------------------------------------------------

    fn is_name_tok(t: &Token) -> bool {
        match t.kind {
            Tk::Ident => is_identifier_word(t.text),
            Tk::QuotedName => true,
            _ => false,
        }
    }

    fn at_name(&self) -> bool {
        Self::is_name_tok(self.peek())
    }

    fn name_of(t: &Token) -> String {
        if t.kind == Tk::QuotedName {
            t.text[1..t.text.len() - 1].replace("\"\"", "\"")
        } else {
            t.text.to_ascii_lowercase()
        }
    }

    /// An identifier: unquoted (lower-cased, not a reserved keyword) or quoted.
    fn ident(&mut self) -> PResult<String> {
        if self.at_name() {
            let t = self.bump();
            return Ok(Self::name_of(&t));
        }
        if self.at(Tk::EmptyQuotedName) {
            return Err(self.custom_error("Empty quoted identifier is not allowed"));
        }
        Err(self.mismatched("IDENT"))
    }

    fn qualified_name(&mut self) -> PResult<QualifiedName> {
        let first = self.ident()?;
        if self.eat(Tk::Dot) {
            let name = self.ident()?;
            Ok(QualifiedName {
                keyspace: Some(first),
                name,
            })
        } else {
            Ok(QualifiedName {
                keyspace: None,
                name: first,
            })
        }
    }

    fn ident_list_in_parens(&mut self) -> PResult<Vec<String>> {
        self.expect(Tk::LParen)?;
        let mut out = vec![self.ident()?];
        while self.eat(Tk::Comma) {
            out.push(self.ident()?);
        }
        self.expect(Tk::RParen)?;
        Ok(out)
    }

    // ----- statements ---------------------------------------------------------------------

    fn statement(&mut self) -> PResult<Statement> {
        let t = *self.peek();
        if t.kind != Tk::Ident {
            return Err(self.no_viable());
        }
        match t.text.to_ascii_lowercase().as_str() {
            "select" => Ok(Statement::Select(self.select()?)),
            "insert" => Ok(Statement::Insert(self.insert()?)),
            "update" => Ok(Statement::Update(self.update()?)),
            "delete" => Ok(Statement::Delete(self.delete()?)),
            "begin" => Ok(Statement::Batch(self.batch()?)),
            "use" => {
                self.bump();
                Ok(Statement::Use(self.ident()?))
            }
            "create" => self.create(),
            "alter" => self.alter(),
            "drop" => self.drop(),
            "truncate" => {
                self.bump();
                if !self.eat_kw("table") {
                    self.eat_kw("columnfamily");
                }
                Ok(Statement::Truncate(self.qualified_name()?))
            }
            _ => Err(self.no_viable()),
        }
    }

    // ----- SELECT -------------------------------------------------------------------------

    /// Whether the current word (`JSON` / `DISTINCT`) is the keyword rather than a column name.
    fn select_modifier(&self, kw: &str) -> bool {
        if !self.at_kw(kw) {
            return false;
        }
        let next = self.peek_at(1);
        match next.kind {
            Tk::Ident => {
                if Self::tok_is_kw(next, "from") {
                    false
                } else if Self::tok_is_kw(next, "as") {
                    // `SELECT JSON as FROM t` selects a column named "as".
                    Self::tok_is_kw(self.peek_at(2), "from")
                } else {
                    true
                }
            }
            Tk::QuotedName
            | Tk::Star
            | Tk::Str
            | Tk::DollarStr
            | Tk::Int
            | Tk::Float
            | Tk::Uuid
            | Tk::Blob
            | Tk::Duration
            | Tk::QMark
            | Tk::Colon
            | Tk::LBrace => true,
            _ => false,
        }
    }

    fn select(&mut self) -> PResult<SelectStatement> {
        self.expect_kw("select")?;
        let mut json = false;
        let mut distinct = false;
        if self.select_modifier("json") {
            self.bump();
            json = true;
        }
        if self.select_modifier("distinct") {
            self.bump();
            distinct = true;
        }
        let mut selectors = Vec::new();
        if !self.eat(Tk::Star) {
            loop {
                let selector = self.selector()?;
                let alias = if self.eat_kw("as") {
                    Some(self.ident()?)
                } else {
                    None
                };
                selectors.push(SelectItem { selector, alias });
                if !self.eat(Tk::Comma) {
                    break;
                }
            }
        }
        self.expect_kw("from")?;
        let table = self.qualified_name()?;
        let where_clause = if self.eat_kw("where") {
            self.where_clause()?
        } else {
            Vec::new()
        };
        let mut group_by = Vec::new();
        if self.at_kw("group") {
            self.bump();
            self.expect_kw("by")?;
            group_by.push(self.ident()?);
            while self.eat(Tk::Comma) {
                group_by.push(self.ident()?);
            }
        }
        let mut order_by = Vec::new();
        if self.at_kw("order") {
            self.bump();
            self.expect_kw("by")?;
            loop {
                order_by.push(self.ordering()?);
                if !self.eat(Tk::Comma) {
                    break;
                }
            }
        }
        let mut per_partition_limit = None;
        if self.at_kw("per") {
            self.bump();
            self.expect_kw("partition")?;
            self.expect_kw("limit")?;
            per_partition_limit = Some(self.term()?);
        }
        let limit = if self.eat_kw("limit") {
            Some(self.term()?)
        } else {
            None
        };
        let mut allow_filtering = false;
        if self.eat_kw("allow") {
            self.expect_kw("filtering")?;
            allow_filtering = true;
        }
        Ok(SelectStatement {
            table,
            json,
            distinct,
            selectors,
            where_clause,
            group_by,
            order_by,
            per_partition_limit,
            limit,
            allow_filtering,
        })
    }

    fn ordering(&mut self) -> PResult<Ordering> {
        let col = self.ident()?;
        let target = if self.at_kw("ann") && self.at_kw_at(1, "of") {
            self.bump();
            self.bump();
            OrderingTarget::Ann(col, self.term()?)
        } else {
            OrderingTarget::Column(col)
        };
        let descending = if self.eat_kw("desc") {
            true
        } else {
            self.eat_kw("asc");
            false
        };
        Ok(Ordering { target, descending })
    }

    // ----- selectors ----------------------------------------------------------------------

    fn selector(&mut self) -> PResult<Selector> {
        let mut left = self.selector_mul()?;
        let mut ops = 0;
        loop {
            let op = match self.peek().kind {
                Tk::Plus => ArithOp::Add,
                Tk::Minus => ArithOp::Sub,
                _ => {
                    self.depth -= ops;
                    return Ok(left);
                }
            };
            self.bump();
            self.descend()?;
            ops += 1;
            let right = self.selector_mul()?;
            left = Selector::Arithmetic {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn selector_mul(&mut self) -> PResult<Selector> {
        let mut left = self.selector_unary()?;
        let mut ops = 0;
        loop {
            let op = match self.peek().kind {
                Tk::Star => ArithOp::Mul,
                Tk::Slash => ArithOp::Div,
                Tk::Percent => ArithOp::Mod,
                _ => {
                    self.depth -= ops;
                    return Ok(left);
                }
            };
            self.bump();
            self.descend()?;
            ops += 1;
            let right = self.selector_unary()?;
            left = Selector::Arithmetic {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn selector_unary(&mut self) -> PResult<Selector> {
        self.descend()?;
        let r = self.selector_unary_inner();
        self.depth -= 1;
        r
    }

    fn selector_unary_inner(&mut self) -> PResult<Selector> {
        if self.at(Tk::Minus) {
            if self.negative_literal_follows() {
                return Ok(Selector::Term(self.term_unary()?));
            }
            self.bump();
            let inner = self.selector_unary()?;
            return Ok(Selector::Function {
                name: QualifiedName {
                    keyspace: None,
                    name: "_negate".into(),
                },
                args: vec![inner],
            });
        }
        let mut sel = self.selector_primary()?;
        loop {
            if self.at(Tk::Dot) {
                self.bump();
                let field = self.ident()?;
                sel = Selector::Field(Box::new(sel), field);
            } else if self.at(Tk::LBracket) {
                self.bump();
                let key = self.term()?;
                self.expect(Tk::RBracket)?;
                sel = Selector::Element(Box::new(sel), Box::new(key));
            } else {
                return Ok(sel);
            }
        }
    }

    /// Whether a function name (possibly `ks.`-qualified) followed by `(` starts here.
    fn function_call_follows(&self) -> bool {
        let t = self.peek();
        let name_ok = Self::is_name_tok(t) || Self::tok_is_kw(t, "token");
        if !name_ok {
            return false;
        }
        match self.peek_at(1).kind {
            Tk::LParen => true,
            Tk::Dot => {
                let n = self.peek_at(2);
                (Self::is_name_tok(n) || Self::tok_is_kw(n, "token"))
                    && self.peek_at(3).kind == Tk::LParen
            }
            _ => false,
        }
    }

    fn function_name(&mut self) -> PResult<QualifiedName> {
        let fname = |p: &mut Self| -> PResult<String> {
            if p.at_kw("token") {
                p.bump();
                Ok("token".to_string())
            } else {
                p.ident()
            }
        };
        let first = fname(self)?;
        if self.eat(Tk::Dot) {
            let name = fname(self)?;
            Ok(QualifiedName {
                keyspace: Some(first),
                name,
            })
        } else {
            Ok(QualifiedName {
                keyspace: None,
                name: first,
            })
        }
    }

    fn selector_primary(&mut self) -> PResult<Selector> {
        let t = *self.peek();
        match t.kind {
            Tk::Ident | Tk::QuotedName => {
                if Self::tok_is_kw(&t, "cast") && self.peek_at(1).kind == Tk::LParen {
                    self.bump();
                    self.bump();
                    let inner = self.selector()?;
                    self.expect_kw("as")?;
                    let ty = self.cql_type()?;
                    self.expect(Tk::RParen)?;
                    return Ok(Selector::Cast(Box::new(inner), ty));
                }
                if self.function_call_follows() {
                    let name = self.function_name()?;
                    self.expect(Tk::LParen)?;
                    let mut args = Vec::new();
                    if self.eat(Tk::Star) {
                        args.push(Selector::Star);
                    } else if !self.at(Tk::RParen) {
                        loop {
                            args.push(self.selector()?);
                            if !self.eat(Tk::Comma) {
                                break;
                            }
                        }
                    }
                    self.expect(Tk::RParen)?;
                    return Ok(Selector::Function { name, args });
                }
                if self.at_name() {
                    return Ok(Selector::Column(self.ident()?));
                }
                if t.kind == Tk::Ident && Self::literal_word(t.text) {
                    return Ok(Selector::Term(self.term_primary()?));
                }
                Err(self.no_viable())
            }
            Tk::LParen => {
                if let Some(cast) = self.try_cast()? {
                    return Ok(Selector::Term(cast));
                }
                self.bump();
                let first = self.selector()?;
                if self.eat(Tk::RParen) {
                    return Ok(first);
                }
                // A tuple of terms.
                let mut items = vec![first];
                while self.eat(Tk::Comma) {
                    items.push(self.selector()?);
                }
                self.expect(Tk::RParen)?;
                let mut terms = Vec::with_capacity(items.len());
                for s in items {
                    match s {
                        Selector::Term(term) => terms.push(term),
                        _ => {
                            return Err(self.custom_error(
                                "tuple selectors may only contain literals and bind markers",
                            ))
                        }
                    }
                }
                Ok(Selector::Term(Term::Tuple(terms)))
            }
            Tk::Str
            | Tk::DollarStr
            | Tk::Int
            | Tk::Float
            | Tk::Uuid
            | Tk::Blob
            | Tk::Duration
            | Tk::QMark
            | Tk::Colon
            | Tk::LBracket
            | Tk::LBrace => Ok(Selector::Term(self.term_primary()?)),
            _ => Err(self.no_viable()),
        }
    }

    // ----- WHERE --------------------------------------------------------------------------

    fn where_clause(&mut self) -> PResult<Vec<Relation>> {
        let mut out = vec![self.relation()?];
        while self.eat_kw("and") {
            out.push(self.relation()?);
        }
        Ok(out)
    }

    fn relation(&mut self) -> PResult<Relation> {
        if self.at(Tk::LParen) {
            let cols = self.ident_list_in_parens()?;
            let lhs = RelationLhs::Columns(cols);
            if self.eat_kw("in") {
                let rhs = if self.at(Tk::LParen) {
                    self.bump();
                    let mut items = Vec::new();
                    if !self.at(Tk::RParen) {
                        loop {
                            if self.at(Tk::LParen) {
                                items.push(self.tuple_literal()?);
                            } else {
                                items.push(self.bind_marker()?);
                            }
                            if !self.eat(Tk::Comma) {
                                break;
                            }
                        }
                    }
                    self.expect(Tk::RParen)?;
                    Term::Tuple(items)
                } else {
                    self.bind_marker()?
                };
                return Ok(Relation {
                    lhs,
                    op: Operator::In,
                    rhs,
                });
            }
            let op = self.comparison_op()?;
            let rhs = if self.at(Tk::LParen) {
                self.tuple_literal()?
            } else {
                self.bind_marker()?
            };
            return Ok(Relation { lhs, op, rhs });
        }
        if self.at_kw("token") && self.peek_at(1).kind == Tk::LParen {
            self.bump();
            let cols = self.ident_list_in_parens()?;
            let op = self.comparison_op()?;
            let rhs = self.term()?;
            return Ok(Relation {
                lhs: RelationLhs::Token(cols),
                op,
                rhs,
            });
        }
        let col = self.ident()?;
        let lhs = if self.eat(Tk::LBracket) {
            let key = self.term()?;
            self.expect(Tk::RBracket)?;
            RelationLhs::MapElement(col, key)
        } else {
            RelationLhs::Column(col)
        };
        let (op, rhs) = self.relation_op_and_rhs(true)?;
        Ok(Relation { lhs, op, rhs })
    }

    /// The operator and right side of a single-column relation or condition.
    fn relation_op_and_rhs(&mut self, allow_where_ops: bool) -> PResult<(Operator, Term)> {
        if self.eat_kw("in") {
            return Ok((Operator::In, self.in_values()?));
        }
        if self.at_kw("contains") {
            self.bump();
            if self.at_kw("key") && !self.term_starts_at(0) {
                self.bump();
                return Ok((Operator::ContainsKey, self.term()?));
            }
            return Ok((Operator::Contains, self.term()?));
        }
        if allow_where_ops {
            if self.eat_kw("like") {
                return Ok((Operator::Like, self.term()?));
            }
            if self.eat_kw("is") {
                self.expect_kw("not")?;
                self.expect_kw("null")?;
                return Ok((Operator::IsNot, Term::Literal(Literal::Null)));
            }
        }
        let op = self.comparison_op()?;
        Ok((op, self.term()?))
    }

    fn comparison_op(&mut self) -> PResult<Operator> {
        let op = match self.peek().kind {
            Tk::Eq => Operator::Eq,
            Tk::Neq => Operator::Neq,
            Tk::Lt => Operator::Lt,
            Tk::Lte => Operator::Lte,
            Tk::Gt => Operator::Gt,
            Tk::Gte => Operator::Gte,
            _ => return Err(self.no_viable()),
        };
        self.bump();
        Ok(op)
    }

    /// `(a, b, ...)` (possibly empty) as a Tuple, or a bind marker.
    fn in_values(&mut self) -> PResult<Term> {
        if self.at(Tk::LParen) {
            self.bump();
            let mut items = Vec::new();
            if !self.at(Tk::RParen) {
                loop {
                    items.push(self.term()?);
                    if !self.eat(Tk::Comma) {
                        break;
                    }
                }
            }
            self.expect(Tk::RParen)?;
            Ok(Term::Tuple(items))
        } else {
            self.bind_marker()
        }
    }

    /// `(t1, t2, ...)` with at least one element, always a Tuple.
    fn tuple_literal(&mut self) -> PResult<Term> {
        self.expect(Tk::LParen)?;
        let mut items = vec![self.term()?];
        while self.eat(Tk::Comma) {
            items.push(self.term()?);
        }
        self.expect(Tk::RParen)?;
        Ok(Term::Tuple(items))
    }

    fn bind_marker(&mut self) -> PResult<Term> {
        match self.peek().kind {
            Tk::QMark | Tk::Colon => self.term_primary(),
            _ => Err(self.no_viable()),
        }
    }

    // ----- INSERT / UPDATE / DELETE / BATCH -----------------------------------------------

    fn insert(&mut self) -> PResult<InsertStatement> {
        self.expect_kw("insert")?;
        self.expect_kw("into")?;
        let table = self.qualified_name()?;
        let values = if self.at(Tk::LParen) {
            let columns = self.ident_list_in_parens()?;
            self.expect_kw("values")?;
            self.expect(Tk::LParen)?;
            let mut values = vec![self.term()?];
            while self.eat(Tk::Comma) {
                values.push(self.term()?);
            }
            self.expect(Tk::RParen)?;
            InsertValues::Values { columns, values }
        } else if self.eat_kw("json") {
            let json = self.term()?;
            let mut default_unset = false;
            if self.eat_kw("default") {
                if self.eat_kw("unset") {
                    default_unset = true;
                } else if !self.eat_kw("null") {
                    return Err(self.no_viable());
                }
            }
            InsertValues::Json {
                json,
                default_unset,
            }
        } else {
            return Err(self.mismatched("'('"));
        };
        let if_not_exists = self.if_not_exists()?;
        let using = if self.at_kw("using") {
            self.using_clause(true)?
        } else {
            UsingClause::default()
        };
        Ok(InsertStatement {
            table,
            values,
            if_not_exists,
            using,
        })
    }

    fn using_clause(&mut self, allow_ttl: bool) -> PResult<UsingClause> {
        self.expect_kw("using")?;
        let mut using = UsingClause::default();
        loop {
            if allow_ttl && self.eat_kw("ttl") {
                using.ttl = Some(self.term()?);
            } else if self.eat_kw("timestamp") {
                using.timestamp = Some(self.term()?);
            } else if allow_ttl {
                return Err(self.no_viable());
            } else {
                return Err(self.mismatched("K_TIMESTAMP"));
            }
            if !self.eat_kw("and") {
                return Ok(using);
            }
        }
    }

    fn update(&mut self) -> PResult<UpdateStatement> {
        self.expect_kw("update")?;
        let table = self.qualified_name()?;
        let using = if self.at_kw("using") {
            self.using_clause(true)?
        } else {
            UsingClause::default()
        };
        self.expect_kw("set")?;
        let mut assignments = vec![self.assignment()?];
        while self.eat(Tk::Comma) {
            assignments.push(self.assignment()?);
        }
        self.expect_kw("where")?;
        let where_clause = self.where_clause()?;
        let conditions = self.conditions(false)?;
        Ok(UpdateStatement {
            table,
            using,
            assignments,
            where_clause,
            conditions,
        })
    }

    fn column_target(&mut self) -> PResult<ColumnTarget> {
        let col = self.ident()?;
        if self.eat(Tk::LBracket) {
            let key = self.term()?;
            self.expect(Tk::RBracket)?;
            Ok(ColumnTarget::Element(col, key))
        } else if self.eat(Tk::Dot) {
            let field = self.ident()?;
            Ok(ColumnTarget::Field(col, field))
        } else {
            Ok(ColumnTarget::Column(col))
        }
    }

    fn assignment(&mut self) -> PResult<Assignment> {
        let target = self.column_target()?;
        if let ColumnTarget::Column(col) = &target {
            if self.eat(Tk::PlusEq) {
                return Ok(Assignment::Add(col.clone(), self.term()?));
            }
            if self.eat(Tk::MinusEq) {
                return Ok(Assignment::Subtract(col.clone(), self.term()?));
            }
        }
        self.expect(Tk::Eq)?;
        let col = match &target {
            ColumnTarget::Column(c) => c.clone(),
            _ => return Ok(Assignment::Set(target, self.term()?)),
        };
        // `c = c + t` / `c = c - t`
        if self.at_name()
            && Self::name_of(self.peek()) == col
            && matches!(self.peek_at(1).kind, Tk::Plus | Tk::Minus)
        {
            self.bump();
            let op = self.bump().kind;
            let t = self.term()?;
            return Ok(if op == Tk::Plus {
                Assignment::Add(col, t)
            } else {
                Assignment::Subtract(col, t)
            });
        }
        // `c = t + c` (prepend) or a plain term.
        let first = self.term_mul()?;
        if self.at(Tk::Plus) {
            let n = self.peek_at(1);
            if Self::is_name_tok(n)
                && Self::name_of(n) == col
                && self.peek_at(2).kind != Tk::LParen
                && self.peek_at(2).kind != Tk::Dot
            {
                self.bump();
                self.bump();
                return Ok(Assignment::Prepend(col, first));
            }
        }
        let t = self.term_add_from(first)?;
        Ok(Assignment::Set(target, t))
    }

    /// `IF EXISTS`, `IF NOT EXISTS` (when allowed) or `IF cond AND ...`, or nothing.
    fn conditions(&mut self, _delete: bool) -> PResult<Conditions> {
        if !self.eat_kw("if") {
            return Ok(Conditions::None);
        }
        let n = self.peek_at(1);
        let exists_is_column = matches!(
            n.kind,
            Tk::Eq | Tk::Neq | Tk::Lt | Tk::Lte | Tk::Gt | Tk::Gte | Tk::LBracket | Tk::Dot
        ) || Self::tok_is_kw(n, "in")
            || Self::tok_is_kw(n, "contains");
        if !exists_is_column && self.eat_kw("exists") {
            return Ok(Conditions::IfExists);
        }
        let mut conds = vec![self.condition()?];
        while self.eat_kw("and") {
            conds.push(self.condition()?);
        }
        Ok(Conditions::If(conds))
    }

    fn condition(&mut self) -> PResult<Condition> {
        let target = self.column_target()?;
        let (op, rhs) = self.relation_op_and_rhs(false)?;
        Ok(Condition { target, op, rhs })
    }

    fn delete(&mut self) -> PResult<DeleteStatement> {
        self.expect_kw("delete")?;
        let mut columns = Vec::new();
        if !self.at_kw("from") {
            loop {
                columns.push(self.column_target()?);
                if !self.eat(Tk::Comma) {
                    break;
                }
            }
        }
        self.expect_kw("from")?;
        let table = self.qualified_name()?;
        let using = if self.at_kw("using") {
            self.using_clause(false)?
        } else {
            UsingClause::default()
        };
        self.expect_kw("where")?;
        let where_clause = self.where_clause()?;
        let conditions = self.conditions(true)?;
        Ok(DeleteStatement {
            table,
            columns,
            using,
            where_clause,
            conditions,
        })
    }

    fn batch(&mut self) -> PResult<BatchStatement> {
        self.expect_kw("begin")?;
        let kind = if self.eat_kw("unlogged") {
            BatchKind::Unlogged
        } else if self.eat_kw("counter") {
            BatchKind::Counter
        } else {
            BatchKind::Logged
        };
        self.expect_kw("batch")?;
        let using = if self.at_kw("using") {
            self.using_clause(true)?
        } else {
            UsingClause::default()
        };
        let mut statements = Vec::new();
        loop {
            let t = *self.peek();
            if t.kind != Tk::Ident {
                return Err(self.no_viable());
            }
            match t.text.to_ascii_lowercase().as_str() {
                "insert" => statements.push(BatchChild::Insert(self.insert()?)),
                "update" => statements.push(BatchChild::Update(self.update()?)),
                "delete" => statements.push(BatchChild::Delete(self.delete()?)),
                "apply" => {
                    self.bump();
                    self.expect_kw("batch")?;
                    return Ok(BatchStatement {
                        kind,
                        using,
                        statements,
                    });
                }
                _ => return Err(self.no_viable()),
            }
            while self.eat(Tk::Semi) {}
        }
    }

    // ----- DDL ----------------------------------------------------------------------------

    fn create(&mut self) -> PResult<Statement> {
        self.expect_kw("create")?;
        if self.eat_kw("keyspace") || self.eat_kw("schema") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident()?;
            self.expect_kw("with")?;
            let options = self.properties()?;
            return Ok(Statement::CreateKeyspace(CreateKeyspace {
                name,
                if_not_exists,
                options,
            }));
        }
        if self.eat_kw("table") || self.eat_kw("columnfamily") {
            return Ok(Statement::CreateTable(self.create_table()?));
        }
        if self.eat_kw("type") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.type_name()?;
            self.expect(Tk::LParen)?;
            let mut fields = Vec::new();
            loop {
                if self.at(Tk::RParen) && !fields.is_empty() {
                    break;
                }
                let f = self.ident()?;
                let ty = self.cql_type()?;
                fields.push((f, ty));
                if !self.eat(Tk::Comma) {
                    break;
                }
            }
            self.expect(Tk::RParen)?;
            return Ok(Statement::CreateType {
                name,
                if_not_exists,
                fields,
            });
        }
        let custom = self.eat_kw("custom");
        if self.eat_kw("index") {
            return Ok(Statement::CreateIndex(self.create_index(custom)?));
        }
        if custom {
            return Err(self.mismatched("K_INDEX"));
        }
        Err(self.no_viable())
    }

    /// A user type's name: like a qualified name, but not a native type's name.
    fn type_name(&mut self) -> PResult<QualifiedName> {
        let t = *self.peek();
        let name = self.qualified_name()?;
        if name.keyspace.is_none() && t.kind == Tk::Ident && native_type_name(&name.name).is_some()
        {
            return Err(self.error_at(
                &t,
                &format!("Invalid (reserved) user type name {}", name.name),
            ));
        }
        Ok(name)
    }

    fn column_def(&mut self, allow_pk: bool) -> PResult<ColumnDef> {
        let name = self.ident()?;
        let ty = self.cql_type()?;
        let is_static = self.eat_kw("static");
        let mut primary_key = false;
        if allow_pk && self.at_kw("primary") {
            self.bump();
            self.expect_kw("key")?;
            primary_key = true;
        }
        Ok(ColumnDef {
            name,
            ty,
            is_static,
            primary_key,
        })
    }

    fn create_table(&mut self) -> PResult<CreateTable> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.qualified_name()?;
        self.expect(Tk::LParen)?;
        let mut columns = Vec::new();
        let mut partition_key = Vec::new();
        let mut clustering_key = Vec::new();
        let mut seen_pk = false;
        loop {
            if self.at_kw("primary") {
                if seen_pk {
                    return Err(
                        self.custom_error("Multiple PRIMARY KEYs specified (exactly one required)")
                    );
                }
                seen_pk = true;
                self.bump();
                self.expect_kw("key")?;
                self.expect(Tk::LParen)?;
                if self.at(Tk::LParen) {
                    partition_key = self.ident_list_in_parens()?;
                } else {
                    partition_key.push(self.ident()?);
                }
                while self.eat(Tk::Comma) {
                    clustering_key.push(self.ident()?);
                }
                self.expect(Tk::RParen)?;
            } else {
                let at = *self.peek();
                let def = self.column_def(true)?;
                if def.primary_key {
                    if seen_pk {
                        return Err(self.error_at(
                            &at,
                            "Multiple PRIMARY KEYs specified (exactly one required)",
                        ));
                    }
                    seen_pk = true;
                }
                columns.push(def);
            }
            if !self.eat(Tk::Comma) {
                break;
            }
            while self.eat(Tk::Comma) {}
            if self.at(Tk::RParen) {
                break;
            }
        }
        self.expect(Tk::RParen)?;
        let mut table = CreateTable {
            name,
            if_not_exists,
            columns,
            partition_key,
            clustering_key,
            clustering_order: Vec::new(),
            compact_storage: false,
            options: Vec::new(),
        };
        if self.eat_kw("with") {
            loop {
                if self.at_kw("clustering") && self.at_kw_at(1, "order") {
                    self.bump();
                    self.bump();
                    self.expect_kw("by")?;
                    self.expect(Tk::LParen)?;
                    loop {
                        let c = self.ident()?;
                        let desc = if self.eat_kw("desc") {
                            true
                        } else {
                            self.eat_kw("asc");
                            false
                        };
                        table.clustering_order.push((c, desc));
                        if !self.eat(Tk::Comma) {
                            break;
                        }
                    }
                    self.expect(Tk::RParen)?;
                } else if self.at_kw("compact") && self.at_kw_at(1, "storage") {
                    self.bump();
                    self.bump();
                    table.compact_storage = true;
                } else {
                    table.options.push(self.property()?);
                }
                if !self.eat_kw("and") {
                    break;
                }
            }
        }
        Ok(table)
    }

    fn create_index(&mut self, custom: bool) -> PResult<CreateIndex> {
        let if_not_exists = self.if_not_exists()?;
        let name = if self.at_kw("on") {
            None
        } else {
            Some(self.ident()?)
        };
        self.expect_kw("on")?;
        let table = self.qualified_name()?;
        self.expect(Tk::LParen)?;
        let kind = if self.peek_at(1).kind == Tk::LParen && self.peek().kind == Tk::Ident {
            let k = match self.peek().text.to_ascii_lowercase().as_str() {
                "keys" => IndexTargetKind::Keys,
                "values" => IndexTargetKind::Values,
                "entries" => IndexTargetKind::Entries,
                "full" => IndexTargetKind::Full,
                _ => return Err(self.no_viable()),
            };
            self.bump();
            k
        } else {
            IndexTargetKind::Simple
        };
        let column = if kind == IndexTargetKind::Simple {
            self.ident()?
        } else {
            self.expect(Tk::LParen)?;
            let c = self.ident()?;
            self.expect(Tk::RParen)?;
            c
        };
        self.expect(Tk::RParen)?;
        let mut using = None;
        if self.eat_kw("using") {
            let t = self.expect_string()?;
            using = Some(t);
        }
        let mut options = Vec::new();
        if self.eat_kw("with") {
            for (key, value) in self.properties()? {
                match (key.as_str(), value) {
                    ("options", OptionValue::Map(entries)) => {
                        for (k, v) in entries {
                            options.push((literal_text(&k), literal_text(&v)));
                        }
                    }
                    _ => {
                        return Err(self.custom_error(&format!(
                            "Unsupported index property '{key}': only OPTIONS = {{...}} is allowed"
                        )))
                    }
                }
            }
        }
        Ok(CreateIndex {
            name,
            table,
            if_not_exists,
            column,
            kind,
            custom,
            using,
            options,
        })
    }

    fn expect_string(&mut self) -> PResult<String> {
        match self.peek().kind {
            Tk::Str | Tk::DollarStr => {
                let t = self.bump();
                Ok(unescape_string(t.text))
            }
            _ => Err(self.mismatched("STRING_LITERAL")),
        }
    }

    fn alter(&mut self) -> PResult<Statement> {
        self.expect_kw("alter")?;
        if self.eat_kw("keyspace") || self.eat_kw("schema") {
            let if_exists = self.if_exists()?;
            let name = self.ident()?;
            self.expect_kw("with")?;
            let options = self.properties()?;
            return Ok(Statement::AlterKeyspace {
                name,
                if_exists,
                options,
            });
        }
        if self.eat_kw("table") || self.eat_kw("columnfamily") {
            let if_exists = self.if_exists()?;
            let name = self.qualified_name()?;
            let op = self.alter_table_op()?;
            return Ok(Statement::AlterTable {
                name,
                if_exists,
                op,
            });
        }
        if self.eat_kw("type") {
            let if_exists = self.if_exists()?;
            let name = self.qualified_name()?;
            let op = if self.eat_kw("add") {
                let if_not_exists = self.if_not_exists()?;
                let f = self.ident()?;
                let ty = self.cql_type()?;
                AlterTypeOp::Add(f, ty, if_not_exists)
            } else if self.eat_kw("rename") {
                let if_exists = self.if_exists()?;
                AlterTypeOp::Rename(self.renames()?, if_exists)
            } else {
                return Err(self.no_viable());
            };
            return Ok(Statement::AlterType {
                name,
                if_exists,
                op,
            });
        }
        Err(self.no_viable())
    }

    fn renames(&mut self) -> PResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        loop {
            let from = self.ident()?;
            self.expect_kw("to")?;
            let to = self.ident()?;
            out.push((from, to));
            if !self.eat_kw("and") {
                return Ok(out);
            }
        }
    }

    fn alter_table_op(&mut self) -> PResult<AlterTableOp> {
        if self.eat_kw("add") {
            let if_not_exists = self.if_not_exists()?;
            let mut defs = Vec::new();
            if self.eat(Tk::LParen) {
                loop {
                    defs.push(self.column_def(false)?);
                    if !self.eat(Tk::Comma) {
                        break;
                    }
                }
                self.expect(Tk::RParen)?;
            } else {
                defs.push(self.column_def(false)?);
            }
            return Ok(AlterTableOp::Add(defs, if_not_exists));
        }
        if self.eat_kw("drop") {
            let if_exists = self.if_exists()?;
            let cols = if self.at(Tk::LParen) {
                self.ident_list_in_parens()?
            } else {
                vec![self.ident()?]
            };
            if self.at_kw("using") {
                self.using_clause(false)?;
            }
            return Ok(AlterTableOp::Drop(cols, if_exists));
        }
        if self.eat_kw("rename") {
            let if_exists = self.if_exists()?;
            return Ok(AlterTableOp::Rename(self.renames()?, if_exists));
        }
        if self.eat_kw("alter") {
            self.if_exists()?;
            let col = self.ident()?;
            self.expect_kw("type")?;
            let ty = self.cql_type()?;
            return Ok(AlterTableOp::AlterType(col, ty));
        }
        if self.eat_kw("with") {
            return Ok(AlterTableOp::With(self.properties()?));
        }
        Err(self.no_viable())
    }

    fn drop(&mut self) -> PResult<Statement> {
        self.expect_kw("drop")?;
        if self.eat_kw("keyspace") || self.eat_kw("schema") {
            let if_exists = self.if_exists()?;
            let name = self.ident()?;
            return Ok(Statement::DropKeyspace { name, if_exists });
        }
        if self.eat_kw("table") || self.eat_kw("columnfamily") {
            let if_exists = self.if_exists()?;
            let name = self.qualified_name()?;
            return Ok(Statement::DropTable { name, if_exists });
        }
        if self.eat_kw("type") {
            let if_exists = self.if_exists()?;
            let name = self.qualified_name()?;
            return Ok(Statement::DropType { name, if_exists });
        }
        if self.eat_kw("index") {
            let if_exists = self.if_exists()?;
            let name = self.qualified_name()?;
            return Ok(Statement::DropIndex { name, if_exists });
        }
        Err(self.no_viable())
    }

    fn properties(&mut self) -> PResult<Vec<(String, OptionValue)>> {
        let mut out = vec![self.property()?];
        while self.eat_kw("and") {
            out.push(self.property()?);
        }
        Ok(out)
    }

    fn property(&mut self) -> PResult<(String, OptionValue)> {
        let name = self.ident()?;
        self.expect(Tk::Eq)?;
        let value = if self.eat(Tk::LBrace) {
            let mut entries = Vec::new();
            if !self.at(Tk::RBrace) {
                loop {
                    let k = self.constant()?;
                    self.expect(Tk::Colon)?;
                    let v = self.constant()?;
                    entries.push((k, v));
                    if !self.eat(Tk::Comma) {
                        break;
                    }
                }
            }
            self.expect(Tk::RBrace)?;
            OptionValue::Map(entries)
        } else {
            OptionValue::Constant(self.constant()?)
        };
        Ok((name, value))
    }

    /// A constant in an option: a literal, a negative number, or a bare word (kept as a String).
    fn constant(&mut self) -> PResult<Literal> {
        let t = *self.peek();
        match t.kind {
            Tk::Minus if self.negative_literal_follows() => match self.term_unary()? {
                Term::Literal(l) => Ok(l),
                _ => Err(self.no_viable()),
            },
            Tk::Str | Tk::DollarStr | Tk::Int | Tk::Float | Tk::Uuid | Tk::Blob | Tk::Duration => {
                match self.term_primary()? {
                    Term::Literal(l) => Ok(l),
                    _ => Err(self.no_viable()),
                }
            }
            Tk::Ident => {
                self.bump();
                let lower = t.text.to_ascii_lowercase();
                Ok(match lower.as_str() {
                    "true" => Literal::Boolean(true),
                    "false" => Literal::Boolean(false),
                    "nan" => Literal::Float("NaN".into()),
                    "infinity" => Literal::Float("Infinity".into()),
                    _ => Literal::String(t.text.to_string()),
                })
            }
            Tk::QuotedName => {
                self.bump();
                Ok(Literal::String(Self::name_of(&t)))
            }
            _ => Err(self.no_viable()),
        }
    }

    // ----- types --------------------------------------------------------------------------

    pub(crate) fn cql_type(&mut self) -> PResult<CqlTypeAst> {
        self.descend()?;
        let r = self.cql_type_inner();
        self.depth -= 1;
        r
    }

    fn cql_type_inner(&mut self) -> PResult<CqlTypeAst> {
        let t = *self.peek();
        match t.kind {
            Tk::Str | Tk::DollarStr => {
                self.bump();
                return Ok(CqlTypeAst::Custom(unescape_string(t.text)));
            }
            Tk::Ident => {}
            Tk::QuotedName => return Ok(CqlTypeAst::Udt(self.qualified_name()?)),
            _ => return Err(self.no_viable()),
        }
        let lower = t.text.to_ascii_lowercase();
        if let Some(native) = native_type_name(&lower) {
            self.bump();
            return Ok(CqlTypeAst::Native(native.to_string()));
        }
        if self.peek_at(1).kind == Tk::Lt {
            match lower.as_str() {
                "list" | "set" | "frozen" => {
                    self.bump();
                    self.bump();
                    let inner = Box::new(self.cql_type()?);
                    self.expect(Tk::Gt)?;
                    return Ok(match lower.as_str() {
                        "list" => CqlTypeAst::List(inner),
                        "set" => CqlTypeAst::Set(inner),
                        _ => CqlTypeAst::Frozen(inner),
                    });
                }
                "map" => {
                    self.bump();
                    self.bump();
                    let k = self.cql_type()?;
                    self.expect(Tk::Comma)?;
                    let v = self.cql_type()?;
                    self.expect(Tk::Gt)?;
                    return Ok(CqlTypeAst::Map(Box::new(k), Box::new(v)));
                }
                "tuple" => {
                    self.bump();
                    self.bump();
                    let mut items = vec![self.cql_type()?];
                    while self.eat(Tk::Comma) {
                        items.push(self.cql_type()?);
                    }
                    self.expect(Tk::Gt)?;
                    return Ok(CqlTypeAst::Tuple(items));
                }
                "vector" => {
                    self.bump();
                    self.bump();
                    let elem = self.cql_type()?;
                    self.expect(Tk::Comma)?;
                    let dim_tok = *self.peek();
                    if dim_tok.kind != Tk::Int {
                        return Err(self.mismatched("INTEGER"));
                    }
                    let dim: u32 = match dim_tok.text.parse() {
                        Ok(d) if d > 0 => d,
                        _ => {
                            return Err(self.custom_error(&format!(
                                "Invalid vector dimension: {}",
                                dim_tok.text
                            )))
                        }
                    };
                    self.bump();
                    self.expect(Tk::Gt)?;
                    return Ok(CqlTypeAst::Vector(Box::new(elem), dim));
                }
                _ => {}
            }
        }
        Ok(CqlTypeAst::Udt(self.qualified_name()?))
    }

    // ----- terms --------------------------------------------------------------------------

    pub(crate) fn term(&mut self) -> PResult<Term> {
        let first = self.term_mul()?;
        self.term_add_from(first)
    }

    fn term_add_from(&mut self, mut left: Term) -> PResult<Term> {
        let mut ops = 0;
        loop {
            let op = match self.peek().kind {
                Tk::Plus => ArithOp::Add,
                Tk::Minus => ArithOp::Sub,
                _ => {
                    self.depth -= ops;
                    return Ok(left);
                }
            };
            self.bump();
            self.descend()?;
            ops += 1;
            let right = self.term_mul()?;
            left = Term::Arithmetic {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn term_mul(&mut self) -> PResult<Term> {
        let mut left = self.term_unary()?;
        let mut ops = 0;
        loop {
            let op = match self.peek().kind {
                Tk::Star => ArithOp::Mul,
                Tk::Slash => ArithOp::Div,
                Tk::Percent => ArithOp::Mod,
                _ => {
                    self.depth -= ops;
                    return Ok(left);
                }
            };
            self.bump();
            self.descend()?;
            ops += 1;
            let right = self.term_unary()?;
            left = Term::Arithmetic {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    /// Whether `-` is directly followed by a numeric or duration literal.
    fn negative_literal_follows(&self) -> bool {
        let n = self.peek_at(1);
        matches!(n.kind, Tk::Int | Tk::Float | Tk::Duration)
            || Self::tok_is_kw(n, "infinity")
            || Self::tok_is_kw(n, "nan")
            || (n.kind == Tk::Ident && is_iso_duration(n.text))
    }

    fn term_unary(&mut self) -> PResult<Term> {
        self.descend()?;
        let r = self.term_unary_inner();
        self.depth -= 1;
        r
    }

    fn term_unary_inner(&mut self) -> PResult<Term> {
        if self.at(Tk::Minus) {
            if self.negative_literal_follows() {
                self.bump();
                let t = self.bump();
                let lit = match t.kind {
                    Tk::Int => Literal::Integer(format!("-{}", t.text)),
                    Tk::Float => Literal::Float(format!("-{}", t.text)),
                    Tk::Duration => Literal::Duration(format!("-{}", t.text)),
                    _ if t.text.eq_ignore_ascii_case("infinity") => {
                        Literal::Float("-Infinity".into())
                    }
                    _ if t.text.eq_ignore_ascii_case("nan") => Literal::Float("NaN".into()),
                    _ => Literal::Duration(format!("-{}", t.text)),
                };
                return Ok(Term::Literal(lit));
            }
            self.bump();
            return Ok(Term::Negate(Box::new(self.term_unary()?)));
        }
        self.term_primary()
    }

    /// Words that are literals rather than names.
    fn literal_word(text: &str) -> bool {
        ["true", "false", "null", "nan", "infinity"]
            .iter()
            .any(|w| text.eq_ignore_ascii_case(w))
    }

    /// Whether a term can start at the n-th token from here.
    fn term_starts_at(&self, n: usize) -> bool {
        let t = self.peek_at(n);
        match t.kind {
            Tk::Str
            | Tk::DollarStr
            | Tk::Int
            | Tk::Float
            | Tk::Uuid
            | Tk::Blob
            | Tk::Duration
            | Tk::QMark
            | Tk::LBracket
            | Tk::LBrace
            | Tk::LParen
            | Tk::Minus => true,
            Tk::Colon => Self::is_name_tok(self.peek_at(n + 1)),
            Tk::Ident => {
                Self::literal_word(t.text)
                    || is_iso_duration(t.text)
                    || matches!(self.peek_at(n + 1).kind, Tk::LParen | Tk::Dot)
            }
            Tk::QuotedName => matches!(self.peek_at(n + 1).kind, Tk::LParen | Tk::Dot),
            _ => false,
        }
    }

    /// `(type) term`, if that is what follows; otherwise the position is left unchanged.
    fn try_cast(&mut self) -> PResult<Option<Term>> {
        let n = self.peek_at(1);
        let plausible = match n.kind {
            Tk::Ident => is_identifier_word(n.text) || n.text.eq_ignore_ascii_case("set"),
            Tk::QuotedName | Tk::Str | Tk::DollarStr => true,
            _ => false,
        };
        if !plausible {
            return Ok(None);
        }
        let (save_pos, save_depth) = (self.pos, self.depth);
        self.bump();
        if let Ok(ty) = self.cql_type() {
            let iso = matches!(&ty, CqlTypeAst::Udt(q) if q.keyspace.is_none() && is_iso_duration(&q.name));
            if !iso && self.eat(Tk::RParen) && self.term_starts_at(0) {
                let term = self.term_unary()?;
                return Ok(Some(Term::Cast {
                    ty,
                    term: Box::new(term),
                }));
            }
        }
        self.pos = save_pos;
        self.depth = save_depth;
        Ok(None)
    }

    fn term_primary(&mut self) -> PResult<Term> {
        let t = *self.peek();
        let lit = match t.kind {
            Tk::Str | Tk::DollarStr => Literal::String(unescape_string(t.text)),
            Tk::Int => Literal::Integer(t.text.to_string()),
            Tk::Float => Literal::Float(t.text.to_string()),
            Tk::Uuid => Literal::Uuid(t.text.to_string()),
            Tk::Duration => Literal::Duration(t.text.to_string()),
            Tk::Blob => match decode_hex(&t.text[2..]) {
                Some(b) => Literal::Blob(b),
                None => {
                    return Err(self
                        .custom_error("An hex string representing bytes must have an even length"))
                }
            },
            Tk::QMark => {
                self.bump();
                let i = self.binds;
                self.binds += 1;
                return Ok(Term::Bind(BindMarker::Positional(i)));
            }
            Tk::Colon => {
                self.bump();
                let n = *self.peek();
                let name = match n.kind {
                    Tk::Ident | Tk::QuotedName if Self::is_name_tok(&n) => Self::name_of(&n),
                    _ => return Err(self.mismatched("IDENT")),
                };
                self.bump();
                self.binds += 1;
                return Ok(Term::Bind(BindMarker::Named(name)));
            }
            Tk::LBracket => {
                self.bump();
                let mut items = Vec::new();
                if !self.at(Tk::RBracket) {
                    loop {
                        items.push(self.term()?);
                        if !self.eat(Tk::Comma) {
                            break;
                        }
                    }
                }
                self.expect(Tk::RBracket)?;
                return Ok(Term::List(items));
            }
            Tk::LBrace => return self.brace_literal(),
            Tk::LParen => {
                if let Some(cast) = self.try_cast()? {
                    return Ok(cast);
                }
                self.bump();
                let first = self.term()?;
                if self.eat(Tk::RParen) {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat(Tk::Comma) {
                    items.push(self.term()?);
                }
                self.expect(Tk::RParen)?;
                return Ok(Term::Tuple(items));
            }
            Tk::Ident | Tk::QuotedName => {
                if self.function_call_follows() {
                    let name = self.function_name()?;
                    self.expect(Tk::LParen)?;
                    let mut args = Vec::new();
                    if !self.at(Tk::RParen) {
                        loop {
                            args.push(self.term()?);
                            if !self.eat(Tk::Comma) {
                                break;
                            }
                        }
                    }
                    self.expect(Tk::RParen)?;
                    return Ok(Term::Function { name, args });
                }
                if t.kind == Tk::QuotedName {
                    return Err(self.no_viable());
                }
                match t.text.to_ascii_lowercase().as_str() {
                    "true" => Literal::Boolean(true),
                    "false" => Literal::Boolean(false),
                    "null" => Literal::Null,
                    "nan" => Literal::Float("NaN".into()),
                    "infinity" => Literal::Float("Infinity".into()),
                    _ if is_iso_duration(t.text) => Literal::Duration(t.text.to_string()),
                    _ => return Err(self.no_viable()),
                }
            }
            _ => return Err(self.no_viable()),
        };
        self.bump();
        Ok(Term::Literal(lit))
    }

    /// `{}`, `{a, b}`, `{k: v, ...}` or `{field: v, ...}`.
    fn brace_literal(&mut self) -> PResult<Term> {
        self.expect(Tk::LBrace)?;
        if self.eat(Tk::RBrace) {
            return Ok(Term::Map(Vec::new()));
        }
        if self.at_name() && self.peek_at(1).kind == Tk::Colon {
            let mut fields = Vec::new();
            loop {
                let f = self.ident()?;
                self.expect(Tk::Colon)?;
                fields.push((f, self.term()?));
                if !self.eat(Tk::Comma) {
                    break;
                }
            }
            self.expect(Tk::RBrace)?;
            return Ok(Term::Udt(fields));
        }
        let first = self.term()?;
        if self.eat(Tk::Colon) {
            let v = self.term()?;
            let mut entries = vec![(first, v)];
            while self.eat(Tk::Comma) {
                let k = self.term()?;
                self.expect(Tk::Colon)?;
                let v = self.term()?;
                entries.push((k, v));
            }
            self.expect(Tk::RBrace)?;
            return Ok(Term::Map(entries));
        }
        let mut items = vec![first];
        while self.eat(Tk::Comma) {
            items.push(self.term()?);
        }
        self.expect(Tk::RBrace)?;
        Ok(Term::Set(items))
    }
}

fn tk_name(kind: Tk) -> &'static str {
    match kind {
        Tk::LParen => "'('",
        Tk::RParen => "')'",
        Tk::LBracket => "'['",
        Tk::RBracket => "']'",
        Tk::LBrace => "'{'",
        Tk::RBrace => "'}'",
        Tk::Comma => "','",
        Tk::Semi => "';'",
        Tk::Dot => "'.'",
        Tk::Star => "'*'",
        Tk::Eq => "'='",
        Tk::Neq => "'!='",
        Tk::Lt => "'<'",
        Tk::Lte => "'<='",
        Tk::Gt => "'>'",
        Tk::Gte => "'>='",
        Tk::Plus => "'+'",
        Tk::Minus => "'-'",
        Tk::Slash => "'/'",
        Tk::Percent => "'%'",
        Tk::QMark => "'?'",
        Tk::Colon => "':'",
        Tk::PlusEq => "'+='",
        Tk::MinusEq => "'-='",
        Tk::Ident => "IDENT",
        Tk::QuotedName | Tk::EmptyQuotedName => "QUOTED_NAME",
        Tk::Str | Tk::DollarStr => "STRING_LITERAL",
        Tk::Int => "INTEGER",
        Tk::Float => "FLOAT",
        Tk::Uuid => "UUID",
        Tk::Blob => "HEXNUMBER",
        Tk::Duration => "DURATION",
        Tk::Eof => "EOF",
        Tk::Ws | Tk::LineComment | Tk::BlockComment => "WS",
    }
}

/// The text of a `'...'` (with `''` escapes) or `$$...$$` string token.
fn unescape_string(text: &str) -> String {
    if let Some(inner) = text.strip_prefix("$$").and_then(|s| s.strip_suffix("$$")) {
        inner.to_string()
    } else {
        text[1..text.len() - 1].replace("''", "'")
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A literal as option text (for index options).
fn literal_text(l: &Literal) -> String {
    match l {
        Literal::String(s)
        | Literal::Integer(s)
        | Literal::Float(s)
        | Literal::Uuid(s)
        | Literal::Duration(s) => s.clone(),
        Literal::Boolean(b) => b.to_string(),
        Literal::Blob(b) => {
            let mut s = String::from("0x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Literal::Null => "null".into(),
    }
}

/// The ISO 8601 duration forms made only of letters and digits: `P[nY][nM][nD][T[nH][nM][nS]]`
/// (at least one component) and `PnW`.
pub(crate) fn is_iso_duration(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 3 || !b[0].eq_ignore_ascii_case(&b'p') {
        return false;
    }
    // Split into (number, unit) pairs, with an optional single 'T' separator.
    let mut i = 1;
    let mut in_time = false;
    let mut units: Vec<(bool, u8)> = Vec::new();
    while i < b.len() {
        if b[i].eq_ignore_ascii_case(&b't') {
            if in_time || i + 1 >= b.len() {
                return false;
            }
            in_time = true;
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i >= b.len() {
            return false;
        }
        units.push((in_time, b[i].to_ascii_uppercase()));
        i += 1;
    }
    if units.is_empty() {
        return false;
    }
    if units.len() == 1 && units[0] == (false, b'W') {
        return true;
    }
    let order: [(bool, u8); 6] = [
        (false, b'Y'),
        (false, b'M'),
        (false, b'D'),
        (true, b'H'),
        (true, b'M'),
        (true, b'S'),
    ];
    let mut next = 0;
    for u in &units {
        match order[next..].iter().position(|o| o == u) {
            Some(p) => next += p + 1,
            None => return false,
        }
    }
    // A 'T' must be followed by at least one time component.
    !in_time || units.iter().any(|u| u.0)
}
