//! The abstract syntax of CQL statements. Names are already case-folded: unquoted identifiers
//! are lower-cased, quoted ones keep their case (and lose their quotes).

/// `ks.name` or `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub keyspace: Option<String>,
    pub name: String,
}

/// A type as written in CQL, with UDT names still unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CqlTypeAst {
    /// A native type by its canonical name: "ascii", "bigint", ..., "text" (varchar folds to
    /// text), "timeuuid", "counter", "duration".
    Native(String),
    List(Box<CqlTypeAst>),
    Set(Box<CqlTypeAst>),
    Map(Box<CqlTypeAst>, Box<CqlTypeAst>),
    Tuple(Vec<CqlTypeAst>),
    Frozen(Box<CqlTypeAst>),
    Vector(Box<CqlTypeAst>, u32),
    /// A user type name, possibly keyspace-qualified.
    Udt(QualifiedName),
    /// A custom type given as a string literal (marshal class name).
    Custom(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string literal ('...' or $$...$$), unescaped.
    String(String),
    /// An integer literal as written (may be negative, may exceed i64).
    Integer(String),
    /// A float literal as written, or NaN / Infinity / -Infinity.
    Float(String),
    Boolean(bool),
    /// A uuid literal (unquoted), as written.
    Uuid(String),
    /// A blob literal `0x...`, decoded.
    Blob(Vec<u8>),
    /// A duration literal (unquoted, e.g. 1h30m, P1D, -2d), as written.
    Duration(String),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Literal(Literal),
    /// `?` (positional, counted from 0 in the order of appearance in the statement) or `:name`.
    Bind(BindMarker),
    /// `[a, b]` — a list or a vector literal.
    List(Vec<Term>),
    /// `{a, b}` — a set; `{}` parses as an empty Map.
    Set(Vec<Term>),
    Map(Vec<(Term, Term)>),
    /// `(a, b, ...)` with at least 2 elements (or 1 in tuple-typed contexts; the parser may
    /// produce a 1-tuple only where a tuple is required, e.g. IN (a)).
    Tuple(Vec<Term>),
    /// `{field: term, ...}` where every key is an identifier.
    Udt(Vec<(String, Term)>),
    /// `fn(args)` such as now(), uuid(), toTimestamp(now()), blobAsInt(0x..), ks.fn(x).
    Function {
        name: QualifiedName,
        args: Vec<Term>,
    },
    /// `(type) term`
    Cast {
        ty: CqlTypeAst,
        term: Box<Term>,
    },
    /// `a + b`, `a - b`, `a * b`, `a / b`, `a % b`, and unary minus as `Negate`.
    Arithmetic {
        op: ArithOp,
        left: Box<Term>,
        right: Box<Term>,
    },
    Negate(Box<Term>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindMarker {
    Positional(usize),
    Named(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Contains,
    ContainsKey,
    Like,
    IsNot,
}

/// The left side of a WHERE relation.
#[derive(Debug, Clone, PartialEq)]
pub enum RelationLhs {
    Column(String),
    /// `(c1, c2, ...)`
    Columns(Vec<String>),
    /// `token(c1, c2, ...)`
    Token(Vec<String>),
    /// `m[key]` (map element)
    MapElement(String, Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub lhs: RelationLhs,
    pub op: Operator,
    /// For IN: a Term::Tuple of the candidates `IN (a, b)` (or a single Bind for `IN ?`).
    /// For multi-column EQ/slices: a Term::Tuple or a Bind. For `IS NOT NULL`: Literal::Null.
    pub rhs: Term,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// A column by name.
    Column(String),
    /// A function call, including writetime(c), ttl(c), count(*) (args = [Selector::Star]),
    /// token(a, b), toJson(c), similarity_cosine(v, [..]), user functions.
    Function {
        name: QualifiedName,
        args: Vec<Selector>,
    },
    /// `CAST(sel AS type)`
    Cast(Box<Selector>, CqlTypeAst),
    /// A term (literal or bind) used as a selector argument.
    Term(Term),
    /// `*` inside count(*)
    Star,
    /// `sel.field` (UDT field access)
    Field(Box<Selector>, String),
    /// `sel[key]` or `sel[from..to]` (collection element/slice)
    Element(Box<Selector>, Box<Term>),
    Arithmetic {
        op: ArithOp,
        left: Box<Selector>,
        right: Box<Selector>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub selector: Selector,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderingTarget {
    Column(String),
    /// `ORDER BY v ANN OF [..]`
    Ann(String, Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ordering {
    pub target: OrderingTarget,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectStatement {
    pub table: QualifiedName,
    pub json: bool,
    pub distinct: bool,
    /// Empty means `*`.
    pub selectors: Vec<SelectItem>,
    pub where_clause: Vec<Relation>,
    pub group_by: Vec<String>,
    pub order_by: Vec<Ordering>,
    pub per_partition_limit: Option<Term>,
    pub limit: Option<Term>,
    pub allow_filtering: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsingClause {
    pub ttl: Option<Term>,
    pub timestamp: Option<Term>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InsertValues {
    /// `(cols) VALUES (terms)`
    Values {
        columns: Vec<String>,
        values: Vec<Term>,
    },
    /// `JSON 'text'` or `JSON ?`, with DEFAULT NULL (false) / DEFAULT UNSET (true).
    Json { json: Term, default_unset: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertStatement {
    pub table: QualifiedName,
    pub values: InsertValues,
    pub if_not_exists: bool,
    pub using: UsingClause,
}

/// The target of an assignment or a deletion: a column, an element, or a UDT field.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnTarget {
    Column(String),
    /// `c[term]`
    Element(String, Term),
    /// `c.field`
    Field(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// `target = term`
    Set(ColumnTarget, Term),
    /// `c = c + term` (also counters `c = c + 1`)
    Add(String, Term),
    /// `c = term + c` (list prepend)
    Prepend(String, Term),
    /// `c = c - term`; `c += term` / `c -= term` are folded into Add / Subtract.
    Subtract(String, Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub target: ColumnTarget,
    pub op: Operator,
    pub rhs: Term,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Conditions {
    None,
    IfExists,
    IfNotExists,
    If(Vec<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateStatement {
    pub table: QualifiedName,
    pub using: UsingClause,
    pub assignments: Vec<Assignment>,
    pub where_clause: Vec<Relation>,
    pub conditions: Conditions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteStatement {
    pub table: QualifiedName,
    /// Empty means the whole row / partition / range.
    pub columns: Vec<ColumnTarget>,
    pub using: UsingClause,
    pub where_clause: Vec<Relation>,
    pub conditions: Conditions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    Logged,
    Unlogged,
    Counter,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchChild {
    Insert(InsertStatement),
    Update(UpdateStatement),
    Delete(DeleteStatement),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchStatement {
    pub kind: BatchKind,
    pub using: UsingClause,
    pub statements: Vec<BatchChild>,
}

/// `WITH a = b AND c = {..}` options, and CREATE KEYSPACE's replication map.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// A constant: string, number or boolean literal (also a bare identifier, kept as String).
    Constant(Literal),
    /// A map literal of constants, e.g. replication or compaction options.
    Map(Vec<(Literal, Literal)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateKeyspace {
    pub name: String,
    pub if_not_exists: bool,
    pub options: Vec<(String, OptionValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: CqlTypeAst,
    pub is_static: bool,
    /// `PRIMARY KEY` written inline on the column.
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: QualifiedName,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    /// From `PRIMARY KEY ((a, b), c, d)` or `PRIMARY KEY (a, c)`; empty if only inline.
    pub partition_key: Vec<String>,
    pub clustering_key: Vec<String>,
    /// `CLUSTERING ORDER BY (c ASC, d DESC)`; true = DESC.
    pub clustering_order: Vec<(String, bool)>,
    pub compact_storage: bool,
    pub options: Vec<(String, OptionValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterTableOp {
    /// `ADD [IF NOT EXISTS] ...`: the columns and the IF NOT EXISTS flag.
    Add(Vec<ColumnDef>, bool),
    /// `DROP [IF EXISTS] ...`: the columns and the IF EXISTS flag.
    Drop(Vec<String>, bool),
    /// `RENAME [IF EXISTS] a TO b AND ...`: the pairs and the IF EXISTS flag.
    Rename(Vec<(String, String)>, bool),
    /// `ALTER c TYPE t`
    AlterType(String, CqlTypeAst),
    With(Vec<(String, OptionValue)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterTypeOp {
    /// `ADD [IF NOT EXISTS] f t`: the field, its type and the IF NOT EXISTS flag.
    Add(String, CqlTypeAst, bool),
    /// `RENAME [IF EXISTS] a TO b AND ...`: the pairs and the IF EXISTS flag.
    Rename(Vec<(String, String)>, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateIndex {
    pub name: Option<String>,
    pub table: QualifiedName,
    pub if_not_exists: bool,
    /// The indexed column and how: `c`, `keys(c)`, `values(c)`, `entries(c)`, `full(c)`.
    pub column: String,
    pub kind: IndexTargetKind,
    /// `CREATE CUSTOM INDEX`
    pub custom: bool,
    /// `USING 'class'`
    pub using: Option<String>,
    /// `WITH OPTIONS = {..}`
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexTargetKind {
    Simple,
    Keys,
    Values,
    Entries,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(SelectStatement),
    Insert(InsertStatement),
    Update(UpdateStatement),
    Delete(DeleteStatement),
    Batch(BatchStatement),
    Use(String),
    CreateKeyspace(CreateKeyspace),
    AlterKeyspace {
        name: String,
        if_exists: bool,
        options: Vec<(String, OptionValue)>,
    },
    DropKeyspace {
        name: String,
        if_exists: bool,
    },
    CreateTable(CreateTable),
    AlterTable {
        name: QualifiedName,
        if_exists: bool,
        op: AlterTableOp,
    },
    DropTable {
        name: QualifiedName,
        if_exists: bool,
    },
    Truncate(QualifiedName),
    CreateType {
        name: QualifiedName,
        if_not_exists: bool,
        fields: Vec<(String, CqlTypeAst)>,
    },
    AlterType {
        name: QualifiedName,
        if_exists: bool,
        op: AlterTypeOp,
    },
    DropType {
        name: QualifiedName,
        if_exists: bool,
    },
    CreateIndex(CreateIndex),
    DropIndex {
        name: QualifiedName,
        if_exists: bool,
    },
}
