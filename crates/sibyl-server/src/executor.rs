//! Executing statements for a session: preparation (bind variable metadata, statement ids),
//! dispatch of every statement kind, batches, and schema changes with their events.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use sibyl_cql::ast::{
    Assignment, BatchChild, BatchKind, BindMarker, ColumnTarget, Conditions, InsertValues,
    Operator, Relation, RelationLhs, Selector, Statement, Term, UsingClause,
};
use sibyl_protocol::consistency as cl;
use sibyl_protocol::messages::{
    BatchQuery, BatchRequest, BoundValue, ColumnSpec, Prepared, QueryParams, ResultBody,
    ResultColumns, Rows, RowsMetadata, SchemaChange, Values,
};
use sibyl_storage::model::Mutation;
use sibyl_types::CqlType;
use smallvec::SmallVec;

use crate::ddl::{self, ClusterView, DdlOutcome};
use crate::error::{invalid, QueryError, QueryResult};
use crate::modify::{self, WriteCtx};
use crate::node::Node;
use crate::schema::{Schema, Table};
use crate::select::{self, ReadContext};
use crate::system_tables;
use crate::values::EvalCtx;

/// Connection-level state.
#[derive(Default, Debug, Clone)]
pub struct Session {
    pub keyspace: Option<String>,
}

/// A prepared statement: its parsed form with bind markers numbered, and its metadata.
#[derive(Debug)]
pub struct PreparedStmt {
    pub id: Bytes,
    pub keyspace: Option<String>,
    pub statement: Statement,
    pub bind_specs: Vec<ColumnSpec>,
    pub pk_indexes: Vec<u16>,
    pub result_columns: ResultColumns,
    /// The table `result_columns` were derived from (None when PREPARE could not derive them):
    /// while a read finds this very table, they still apply without comparing them (this
    /// reference keeps its address from reuse).
    pub result_table: Option<Arc<Table>>,
    pub result_metadata_id: Bytes,
}

/// What executing a request produced.
pub struct Outcome {
    pub body: ResultBody,
    pub warnings: Vec<String>,
    /// The change a schema statement made (also broadcast as an event).
    #[allow(dead_code)]
    pub schema_change: Option<SchemaChange>,
}

impl Outcome {
    fn body(body: ResultBody) -> Self {
        Outcome {
            body,
            warnings: vec![],
            schema_change: None,
        }
    }
}

/// Cassandra's statement id: MD5 of the keyspace (if any) followed by the query text.
pub fn statement_id(keyspace: Option<&str>, query: &str) -> Bytes {
    let mut h = Md5::new();
    if let Some(k) = keyspace {
        h.update(k.as_bytes());
    }
    h.update(query.as_bytes());
    Bytes::copy_from_slice(&h.finalize())
}

fn metadata_id(cols: &[ColumnSpec]) -> Bytes {
    let mut h = Md5::new();
    for c in cols {
        h.update(c.name.as_bytes());
        h.update(c.ty.cql_name().as_bytes());
    }
    Bytes::copy_from_slice(&h.finalize())
}

/// Collects bind variable specs in marker order and rewrites named markers to positions.
struct Binder<'a> {
    table: Option<&'a Table>,
    specs: Vec<Option<ColumnSpec>>,
    names: Vec<Option<String>>,
    next: usize,
}

impl<'a> Binder<'a> {
    fn spec(&self, name: &str, ty: CqlType) -> ColumnSpec {
        let (ks, t) = self
            .table
            .map(|t| (t.keyspace.clone(), t.name.clone()))
            .unwrap_or_default();
        ColumnSpec {
            keyspace: ks,
            table: t,
            name: name.to_string(),
            ty,
        }
    }

    fn record(&mut self, idx: usize, name: &str, ty: CqlType, marker_name: Option<String>) {
        if self.specs.len() <= idx {
            self.specs.resize(idx + 1, None);
            self.names.resize(idx + 1, None);
        }
        let spec_name = marker_name.clone().unwrap_or_else(|| name.to_string());
        self.specs[idx] = Some(self.spec(&spec_name, ty));
        self.names[idx] = marker_name;
    }

    /// Visits a term whose receiver has type `ty`.
    fn term(&mut self, t: &mut Term, name: &str, ty: &CqlType) {
        match t {
            Term::Bind(m) => {
                let (idx, marker_name) = match m {
                    BindMarker::Positional(i) => (*i, None),
                    BindMarker::Named(n) => (self.next, Some(n.clone())),
                };
                *m = BindMarker::Positional(idx);
                self.next = idx + 1;
                self.record(idx, name, ty.clone(), marker_name);
            }
            Term::List(items) | Term::Set(items) => {
                let elem = match ty.unfrozen() {
                    CqlType::List(e) | CqlType::Set(e) | CqlType::Vector(e, _) => (**e).clone(),
                    other => other.clone(),
                };
                for it in items {
                    self.term(it, name, &elem);
                }
            }
            Term::Map(entries) => {
                let (k, v) = match ty.unfrozen() {
                    CqlType::Map(k, v) => ((**k).clone(), (**v).clone()),
                    other => (other.clone(), other.clone()),
                };
                for (a, b) in entries {
                    self.term(a, name, &k);
                    self.term(b, name, &v);
                }
            }
            Term::Tuple(items) => {
                let types: Vec<CqlType> = match ty.unfrozen() {
                    CqlType::Tuple(ts) => ts.clone(),
                    other => vec![other.clone(); items.len()],
                };
                for (i, it) in items.iter_mut().enumerate() {
                    let t = types.get(i).cloned().unwrap_or(CqlType::Blob);
                    self.term(it, name, &t);
                }
            }
            Term::Udt(fields) => {
                for (f, it) in fields {
                    let t = match ty.unfrozen() {
                        CqlType::Udt(d) => d
                            .fields
                            .iter()
                            .find(|(n, _)| n == f)
                            .map(|(_, t)| t.clone())
                            .unwrap_or(CqlType::Blob),
                        _ => CqlType::Blob,
                    };
                    self.term(it, &format!("{name}.{f}"), &t);
                }
            }
            Term::Function { name: fname, args } => {
                let f = fname.name.to_ascii_lowercase();
                let arg_ty = if f == "fromjson" {
                    CqlType::Text
                } else if f.starts_with("blobas") {
                    CqlType::Blob
                } else if let Some(src) = f.strip_suffix("asblob") {
                    CqlType::parse_native(src).unwrap_or(CqlType::Blob)
                } else {
                    CqlType::Timestamp
                };
                for a in args {
                    self.term(a, &format!("arg0({f})"), &arg_ty);
                }
            }
            Term::Cast { term, .. } | Term::Negate(term) => self.term(term, name, ty),
            Term::Arithmetic { left, right, .. } => {
                self.term(left, name, ty);
                self.term(right, name, ty);
            }
            Term::Literal(_) => {}
        }
    }

    fn column_type(&self, name: &str) -> CqlType {
        self.table
            .and_then(|t| t.column(name))
            .map(|c| c.ty.clone())
            .unwrap_or(CqlType::Blob)
    }

    fn using(&mut self, u: &mut UsingClause) {
        if let Some(t) = &mut u.ttl {
            self.term(t, "[ttl]", &CqlType::Int);
        }
        if let Some(t) = &mut u.timestamp {
            self.term(t, "[timestamp]", &CqlType::Bigint);
        }
    }

    fn relations(&mut self, rels: &mut [Relation]) {
        for r in rels {
            match &r.lhs {
                RelationLhs::Column(c) => {
                    let ty = self.column_type(c);
                    let ty = match r.op {
                        Operator::Contains => match ty.unfrozen() {
                            CqlType::List(e) | CqlType::Set(e) => (**e).clone(),
                            CqlType::Map(_, v) => (**v).clone(),
                            _ => ty,
                        },
                        Operator::ContainsKey => match ty.unfrozen() {
                            CqlType::Map(k, _) => (**k).clone(),
                            _ => ty,
                        },
                        _ => ty,
                    };
                    if r.op == Operator::In {
                        match &mut r.rhs {
                            Term::Bind(_) => self.term(
                                &mut r.rhs,
                                &format!("in({c})"),
                                &CqlType::List(Box::new(ty)),
                            ),
                            Term::Tuple(items) | Term::List(items) => {
                                for it in items {
                                    self.term(it, c, &ty);
                                }
                            }
                            other => self.term(other, c, &ty),
                        }
                    } else {
                        let c = c.clone();
                        self.term(&mut r.rhs, &c, &ty);
                    }
                }
                RelationLhs::Columns(cols) => {
                    let types: Vec<CqlType> = cols.iter().map(|c| self.column_type(c)).collect();
                    let label = format!("({})", cols.join(","));
                    let tuple = CqlType::Tuple(types.clone());
                    match &mut r.rhs {
                        Term::Tuple(items) if r.op == Operator::In => {
                            for it in items {
                                self.term(it, &label, &tuple);
                            }
                        }
                        other => self.term(other, &label, &tuple),
                    }
                }
                RelationLhs::Token(_) => {
                    self.term(&mut r.rhs, "partition key token", &CqlType::Bigint)
                }
                RelationLhs::MapElement(c, k) => {
                    let (kt, vt) = match self.column_type(c).unfrozen() {
                        CqlType::Map(k, v) => ((**k).clone(), (**v).clone()),
                        _ => (CqlType::Blob, CqlType::Blob),
                    };
                    let mut k = k.clone();
                    self.term(&mut k, &format!("key({c})"), &kt);
                    let c = c.clone();
                    self.term(&mut r.rhs, &format!("value({c})"), &vt);
                    if let RelationLhs::MapElement(_, kk) = &mut r.lhs {
                        *kk = k;
                    }
                }
            }
        }
    }

    fn target(&mut self, t: &mut ColumnTarget) {
        match t {
            ColumnTarget::Column(_) => {}
            ColumnTarget::Element(c, k) => {
                // Cassandra's spec names: key(m) for a map key, idx(l) for a list index,
                // value(s) for a set element.
                let (label, kt) = match self.column_type(c).unfrozen() {
                    CqlType::Map(k, _) => ("key", (**k).clone()),
                    CqlType::Set(e) => ("value", (**e).clone()),
                    _ => ("idx", CqlType::Int),
                };
                let c = c.clone();
                self.term(k, &format!("{label}({c})"), &kt);
            }
            ColumnTarget::Field(..) => {}
        }
    }

    fn conditions(&mut self, c: &mut Conditions) {
        if let Conditions::If(conds) = c {
            for cond in conds {
                self.target(&mut cond.target);
                let ty = match &cond.target {
                    ColumnTarget::Column(c) => self.column_type(c),
                    ColumnTarget::Element(c, _) => match self.column_type(c).unfrozen() {
                        CqlType::Map(_, v) => (**v).clone(),
                        CqlType::List(e) => (**e).clone(),
                        _ => CqlType::Blob,
                    },
                    ColumnTarget::Field(c, f) => match self.column_type(c).unfrozen() {
                        CqlType::Udt(d) => d
                            .fields
                            .iter()
                            .find(|(n, _)| n == f)
                            .map(|(_, t)| t.clone())
                            .unwrap_or(CqlType::Blob),
                        _ => CqlType::Blob,
                    },
                };
                let name = match &cond.target {
                    ColumnTarget::Column(c) => c.clone(),
                    ColumnTarget::Element(c, _) => format!("value({c})"),
                    ColumnTarget::Field(c, f) => format!("{c}.{f}"),
                };
                if cond.op == Operator::In {
                    if let Term::Tuple(items) = &mut cond.rhs {
                        for it in items {
                            self.term(it, &name, &ty);
                        }
                        continue;
                    }
                    self.term(
                        &mut cond.rhs,
                        &format!("in({name})"),
                        &CqlType::List(Box::new(ty)),
                    );
                } else {
                    self.term(&mut cond.rhs, &name, &ty);
                }
            }
        }
    }

    fn assignment(&mut self, a: &mut Assignment) {
        match a {
            Assignment::Set(target, t) => {
                self.target(target);
                let (name, ty) = match target {
                    ColumnTarget::Column(c) => (c.clone(), self.column_type(c)),
                    ColumnTarget::Element(c, _) => (
                        format!("value({c})"),
                        match self.column_type(c).unfrozen() {
                            CqlType::Map(_, v) => (**v).clone(),
                            CqlType::List(e) => (**e).clone(),
                            _ => CqlType::Blob,
                        },
                    ),
                    ColumnTarget::Field(c, f) => (
                        format!("{c}.{f}"),
                        match self.column_type(c).unfrozen() {
                            CqlType::Udt(d) => d
                                .fields
                                .iter()
                                .find(|(n, _)| n == f)
                                .map(|(_, t)| t.clone())
                                .unwrap_or(CqlType::Blob),
                            _ => CqlType::Blob,
                        },
                    ),
                };
                self.term(t, &name, &ty);
            }
            Assignment::Add(c, t) | Assignment::Prepend(c, t) => {
                let ty = self.column_type(c);
                let ty = if ty.is_counter() {
                    CqlType::Counter
                } else {
                    ty
                };
                let c = c.clone();
                self.term(t, &c, &ty);
            }
            Assignment::Subtract(c, t) => {
                let ty = match self.column_type(c) {
                    CqlType::Map(k, _) => CqlType::Set(k),
                    other => other,
                };
                let c = c.clone();
                self.term(t, &c, &ty);
            }
        }
    }

    fn statement(&mut self, st: &mut Statement) {
        match st {
            Statement::Select(s) => {
                for item in &mut s.selectors {
                    self.selector(&mut item.selector);
                }
                self.relations(&mut s.where_clause);
                for o in &mut s.order_by {
                    if let sibyl_cql::ast::OrderingTarget::Ann(c, t) = &mut o.target {
                        let ty = self.column_type(c);
                        let c = c.clone();
                        self.term(t, &c, &ty);
                    }
                }
                if let Some(t) = &mut s.per_partition_limit {
                    self.term(t, "[per_partition_limit]", &CqlType::Int);
                }
                if let Some(t) = &mut s.limit {
                    self.term(t, "[limit]", &CqlType::Int);
                }
            }
            Statement::Insert(i) => {
                match &mut i.values {
                    InsertValues::Values { columns, values } => {
                        for (c, v) in columns.iter().zip(values.iter_mut()) {
                            let ty = self.column_type(c);
                            self.term(v, c, &ty);
                        }
                    }
                    InsertValues::Json { json, .. } => self.term(json, "[json]", &CqlType::Text),
                }
                self.using(&mut i.using);
            }
            Statement::Update(u) => {
                self.using(&mut u.using);
                for a in &mut u.assignments {
                    self.assignment(a);
                }
                self.relations(&mut u.where_clause);
                self.conditions(&mut u.conditions);
            }
            Statement::Delete(d) => {
                for t in &mut d.columns {
                    self.target(t);
                }
                self.using(&mut d.using);
                self.relations(&mut d.where_clause);
                self.conditions(&mut d.conditions);
            }
            _ => {}
        }
    }

    fn selector(&mut self, s: &mut Selector) {
        match s {
            Selector::Term(t) => self.term(t, "term", &CqlType::Blob),
            Selector::Function { name, args }
                if name.name.to_ascii_lowercase().starts_with("similarity_") =>
            {
                // A marker takes the vector type of the column it is compared with.
                let col_ty = args.iter().find_map(|a| match a {
                    Selector::Column(c) => Some(self.column_type(c)),
                    _ => None,
                });
                for a in args.iter_mut() {
                    match (a, &col_ty) {
                        (Selector::Term(t), Some(ty)) => self.term(t, "vector", &ty.clone()),
                        (a, _) => self.selector(a),
                    }
                }
            }
            Selector::Function { args, .. } => args.iter_mut().for_each(|a| self.selector(a)),
            Selector::Cast(inner, _) | Selector::Field(inner, _) => self.selector(inner),
            Selector::Element(inner, t) => {
                self.selector(inner);
                self.term(t, "key", &CqlType::Blob);
            }
            Selector::Arithmetic { left, right, .. } => {
                self.selector(left);
                self.selector(right);
            }
            Selector::Column(_) | Selector::Star => {}
        }
    }
}

fn statement_table(st: &Statement) -> Option<&sibyl_cql::ast::QualifiedName> {
    match st {
        Statement::Select(s) => Some(&s.table),
        Statement::Insert(i) => Some(&i.table),
        Statement::Update(u) => Some(&u.table),
        Statement::Delete(d) => Some(&d.table),
        _ => None,
    }
}

impl Node {
    fn resolve_table(
        &self,
        schema: &Schema,
        name: &sibyl_cql::ast::QualifiedName,
        keyspace: Option<&str>,
    ) -> QueryResult<Arc<Table>> {
        let ks = ddl::keyspace_of(name, keyspace)?;
        if let Some(t) = self.find_table(schema, ks, &name.name) {
            return Ok(t);
        }
        if !schema.keyspaces.contains_key(ks) && !self.vtables.contains_key(ks) {
            return invalid(format!("Keyspace {ks} does not exist"));
        }
        invalid(format!("unconfigured table {}", name.name))
    }

    /// Parses and analyses a statement, producing its bind metadata.
    pub fn prepare(&self, keyspace: Option<&str>, query: &str) -> QueryResult<Arc<PreparedStmt>> {
        let id = statement_id(keyspace, query);
        if let Some(p) = self.prepared.read().get(&id) {
            return Ok(p.clone());
        }
        let p = Arc::new(self.analyse(keyspace, query, id.clone())?);
        let mut cache = self.prepared.write();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(id, p.clone());
        Ok(p)
    }

    fn analyse(&self, keyspace: Option<&str>, query: &str, id: Bytes) -> QueryResult<PreparedStmt> {
        let mut statement = sibyl_cql::parse_statement(query)?;
        let schema = self.schema();
        let table = match statement_table(&statement) {
            Some(name) => Some(self.resolve_table(&schema, name, keyspace)?),
            None => None,
        };
        let mut binder = Binder {
            table: table.as_deref(),
            specs: vec![],
            names: vec![],
            next: 0,
        };
        if let Statement::Batch(b) = &mut statement {
            binder.using(&mut b.using);
            for child in &mut b.statements {
                let (name, mut st) = match child.clone() {
                    BatchChild::Insert(i) => (i.table.clone(), Statement::Insert(i)),
                    BatchChild::Update(u) => (u.table.clone(), Statement::Update(u)),
                    BatchChild::Delete(d) => (d.table.clone(), Statement::Delete(d)),
                };
                let t = self.resolve_table(&schema, &name, keyspace)?;
                let mut inner = Binder {
                    table: Some(&t),
                    specs: std::mem::take(&mut binder.specs),
                    names: std::mem::take(&mut binder.names),
                    next: binder.next,
                };
                inner.statement(&mut st);
                binder.specs = inner.specs;
                binder.names = inner.names;
                binder.next = inner.next;
                *child = match st {
                    Statement::Insert(i) => BatchChild::Insert(i),
                    Statement::Update(u) => BatchChild::Update(u),
                    Statement::Delete(d) => BatchChild::Delete(d),
                    _ => unreachable!("batch children are modifications"),
                };
            }
        } else {
            binder.statement(&mut statement);
        }
        let bind_specs: Vec<ColumnSpec> = binder
            .specs
            .into_iter()
            .map(|s| {
                s.unwrap_or_else(|| ColumnSpec {
                    keyspace: String::new(),
                    table: String::new(),
                    name: "?".into(),
                    ty: CqlType::Blob,
                })
            })
            .collect();
        // Partition key indexes: the marker bound by EQ to each partition key column.
        let mut pk_indexes = vec![];
        if let Some(t) = &table {
            let rels: Option<&Vec<Relation>> = match &statement {
                Statement::Select(s) => Some(&s.where_clause),
                Statement::Update(u) => Some(&u.where_clause),
                Statement::Delete(d) => Some(&d.where_clause),
                _ => None,
            };
            let find_marker = |col: &str| -> Option<u16> {
                if let Statement::Insert(i) = &statement {
                    if let InsertValues::Values { columns, values } = &i.values {
                        let pos = columns.iter().position(|c| c == col)?;
                        if let Term::Bind(BindMarker::Positional(m)) = &values[pos] {
                            return Some(*m as u16);
                        }
                    }
                    return None;
                }
                rels?.iter().find_map(|r| match (&r.lhs, r.op, &r.rhs) {
                    (
                        RelationLhs::Column(c),
                        Operator::Eq,
                        Term::Bind(BindMarker::Positional(m)),
                    ) if c == col => Some(*m as u16),
                    _ => None,
                })
            };
            for c in t.partition_key() {
                match find_marker(&c.name) {
                    Some(m) => pk_indexes.push(m),
                    None => {
                        pk_indexes.clear();
                        break;
                    }
                }
            }
        }
        let result_columns = match (&statement, &table) {
            (Statement::Select(s), Some(t)) => select::result_columns(t, s)?.into(),
            _ => ResultColumns::default(),
        };
        let result_metadata_id = metadata_id(&result_columns);
        Ok(PreparedStmt {
            id,
            keyspace: keyspace.map(String::from),
            statement,
            bind_specs,
            pk_indexes,
            result_table: table.filter(|_| !result_columns.is_empty()),
            result_columns,
            result_metadata_id,
        })
    }

    pub fn prepared_result(&self, p: &PreparedStmt) -> Prepared {
        Prepared {
            id: p.id.clone(),
            result_metadata_id: Some(p.result_metadata_id.clone()),
            bind_columns: p.bind_specs.clone(),
            pk_indexes: p.pk_indexes.clone(),
            result_metadata: RowsMetadata {
                columns: p.result_columns.clone(),
                paging_state: None,
                no_metadata: p.result_columns.is_empty(),
                new_metadata_id: None,
            },
        }
    }

    /// Orders request values as the statement's markers: positional ones as sent, named ones
    /// by name.
    fn bind_values<'v>(p: &PreparedStmt, values: &'v Values) -> QueryResult<Cow<'v, [BoundValue]>> {
        match values {
            Values::None => Ok(Cow::Borrowed(&[])),
            Values::Positional(v) => Self::positional(p, v).map(Cow::Borrowed),
            Values::Named(named) => p
                .bind_specs
                .iter()
                .map(|s| {
                    named
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&s.name))
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| {
                            QueryError::Invalid(format!(
                                "Missing value for bind variable {}",
                                s.name
                            ))
                        })
                })
                .collect::<QueryResult<Vec<_>>>()
                .map(Cow::Owned),
        }
    }

    /// Positional values, as many as the statement has markers.
    fn positional<'v>(p: &PreparedStmt, v: &'v [BoundValue]) -> QueryResult<&'v [BoundValue]> {
        if v.len() != p.bind_specs.len() {
            return invalid(format!(
                "There were {} markers(?) in CQL but {} bound variables",
                p.bind_specs.len(),
                v.len()
            ));
        }
        Ok(v)
    }

    /// QUERY: parse, analyse and execute a statement.
    pub fn query(
        &self,
        session: &mut Session,
        query: &str,
        params: &QueryParams,
    ) -> QueryResult<Outcome> {
        let keyspace = params.keyspace.clone().or_else(|| session.keyspace.clone());
        if let Some(out) = crate::describe::try_describe(self, keyspace.as_deref(), query)? {
            return Ok(out);
        }
        let id = statement_id(keyspace.as_deref(), query);
        let p = self.analyse(keyspace.as_deref(), query, id)?;
        self.execute_prepared(session, &p, params, None)
    }

    /// EXECUTE of a prepared statement id (no v5 result metadata id to compare).
    #[allow(dead_code)]
    pub fn execute(
        &self,
        session: &mut Session,
        id: &Bytes,
        params: &QueryParams,
    ) -> QueryResult<Outcome> {
        self.execute_with_metadata_id(session, id, None, params)
    }

    /// Whether executing prepared statement `id` is bounded work: a write, or a read of
    /// partitions given by bind markers that is not an ANN search. (Unknown ids are answered
    /// UNPREPARED at once.)
    pub fn runs_quickly(&self, id: &[u8]) -> bool {
        match self.prepared.read().get(id) {
            None => true,
            Some(p) => match &p.statement {
                Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => true,
                Statement::Select(s) => !p.pk_indexes.is_empty() && !select::is_ann(s),
                _ => false,
            },
        }
    }

    /// EXECUTE of a prepared statement id with the v5 result_metadata_id the client holds:
    /// when it is not the id of the rows' metadata, the ROWS carry the full metadata with
    /// METADATA_CHANGED and the new id (even if the client asked to skip metadata), as
    /// Cassandra does.
    pub fn execute_with_metadata_id(
        &self,
        session: &mut Session,
        id: &Bytes,
        result_metadata_id: Option<&Bytes>,
        params: &QueryParams,
    ) -> QueryResult<Outcome> {
        let p = self
            .prepared
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| QueryError::Unprepared(id.clone()))?;
        self.execute_prepared(session, &p, params, Some(result_metadata_id))
    }

    /// `prepared`: None for a QUERY; for an EXECUTE, the client's result metadata id (v5).
    fn execute_prepared(
        &self,
        session: &mut Session,
        p: &PreparedStmt,
        params: &QueryParams,
        prepared: Option<Option<&Bytes>>,
    ) -> QueryResult<Outcome> {
        let binds = Self::bind_values(p, &params.values)?;
        let now_micros = sibyl_types::timeuuid::micros_now();
        let ctx = EvalCtx {
            binds: &binds,
            now_micros,
        };
        let keyspace = p
            .keyspace
            .as_deref()
            .or(params.keyspace.as_deref())
            .or(session.keyspace.as_deref());
        let now_secs = params
            .now_in_seconds
            .map(|s| s as i64)
            .unwrap_or(now_micros / 1_000_000);
        let schema = self.schema();
        match &p.statement {
            Statement::Select(s) => {
                let table = self.resolve_table(&schema, &s.table, keyspace)?;
                let virtual_rows = table.is_virtual.then(|| {
                    if table.keyspace == "system_views" && table.name == "sai_column_indexes" {
                        system_tables::sai_rows(&table, &schema, &|id, name| {
                            self.indexes.index(id, name).map(|i| i.is_built())
                        })
                    } else {
                        system_tables::rows(
                            &table,
                            &schema,
                            &self.local,
                            &self.peers(),
                            &self.vtables,
                        )
                    }
                });
                let coordinated = self.reader(&table.keyspace, params.consistency);
                let local = self.local_data();
                let rc = ReadContext {
                    data: match &coordinated {
                        Some(c) => c,
                        None => &local,
                    },
                    now_secs,
                    page_size: params.page_size.filter(|p| *p > 0).map(|p| p as usize),
                    paging_state: params.paging_state.clone(),
                    virtual_rows,
                    prepared_columns: Some((&p.result_columns, p.result_table.as_deref())),
                };
                let mut rows: Rows = select::execute(&table, s, &ctx, rc)?;
                if let Some(client_id) = prepared {
                    // Only v5 clients send an id, so only they pay for hashing the metadata.
                    let changed = client_id
                        .map(|id| (id, metadata_id(&rows.metadata.columns)))
                        .filter(|(id, current)| *id != current);
                    match changed {
                        Some((_, current)) => {
                            rows.metadata.no_metadata = false;
                            rows.metadata.new_metadata_id = Some(current);
                        }
                        None if params.skip_metadata => rows.metadata.no_metadata = true,
                        None => {}
                    }
                }
                Ok(Outcome::body(ResultBody::Rows(rows)))
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let table = self.resolve_table(
                    &schema,
                    statement_table(&p.statement).expect("modification names a table"),
                    keyspace,
                )?;
                let timestamp = params
                    .default_timestamp
                    .unwrap_or_else(|| self.next_timestamp());
                self.run_writes(
                    &[WriteItem {
                        table,
                        statement: &p.statement,
                        ctx: &ctx,
                    }],
                    None,
                    timestamp,
                    now_secs,
                    (params.consistency, params.serial_consistency),
                )
            }
            Statement::Batch(b) => {
                let timestamp = params
                    .default_timestamp
                    .unwrap_or_else(|| self.next_timestamp());
                let batch_ts = match &b.using.timestamp {
                    Some(t) => match crate::values::eval(t, &CqlType::Bigint, "[timestamp]", &ctx)?
                    {
                        crate::values::Evaluated::Value(v) => {
                            Some(i64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                                QueryError::Invalid("Invalid timestamp".into())
                            })?))
                        }
                        _ => None,
                    },
                    None => None,
                };
                let children: Vec<Statement> = b
                    .statements
                    .iter()
                    .map(|c| match c {
                        BatchChild::Insert(i) => Statement::Insert(i.clone()),
                        BatchChild::Update(u) => Statement::Update(u.clone()),
                        BatchChild::Delete(d) => Statement::Delete(d.clone()),
                    })
                    .collect();
                let mut items = vec![];
                for st in &children {
                    let name = statement_table(st).expect("batch children name tables");
                    let table = self.resolve_table(&schema, name, keyspace)?;
                    items.push(WriteItem {
                        table,
                        statement: st,
                        ctx: &ctx,
                    });
                }
                self.run_writes(
                    &items,
                    Some((b.kind, batch_ts.is_some())),
                    batch_ts.unwrap_or(timestamp),
                    now_secs,
                    (params.consistency, params.serial_consistency),
                )
            }
            Statement::Use(ks) => {
                if !schema.keyspaces.contains_key(ks) && !self.vtables.contains_key(ks) {
                    return invalid(format!("Keyspace '{ks}' does not exist"));
                }
                session.keyspace = Some(ks.clone());
                Ok(Outcome::body(ResultBody::SetKeyspace(ks.clone())))
            }
            other => self.schema_statement(other, keyspace),
        }
    }

    fn modification(
        &self,
        table: &Table,
        st: &Statement,
        ctx: &WriteCtx,
    ) -> QueryResult<Vec<Mutation>> {
        match st {
            Statement::Insert(i) => modify::insert(table, i, ctx),
            Statement::Update(u) => modify::update(table, u, ctx),
            Statement::Delete(d) => modify::delete(table, d, ctx),
            _ => Ok(vec![]),
        }
    }

    /// Writes through the coordinator, keyspace by keyspace (their replication differs).
    fn apply(
        &self,
        mutations: Vec<Mutation>,
        consistency: u16,
        write_type: &str,
    ) -> QueryResult<()> {
        if self.cluster().is_none() {
            for m in mutations {
                self.engine.apply_owned(m)?;
            }
            return Ok(());
        }
        let schema = self.schema();
        let keyspace_of = |m: &Mutation| {
            schema
                .tables()
                .find(|t| t.id == m.table)
                .map(|t| t.keyspace.clone())
                .unwrap_or_default()
        };
        if write_type == "BATCH" {
            // Cassandra logs a batch only when it spans partitions.
            let mut partitions: Vec<(String, &Bytes)> = mutations
                .iter()
                .map(|m| (keyspace_of(m), &m.key.key))
                .collect();
            partitions.sort();
            partitions.dedup();
            if partitions.len() > 1 {
                let cluster = self.cluster().expect("checked above");
                let logged = mutations
                    .iter()
                    .map(|m| (keyspace_of(m), m.clone()))
                    .collect();
                return crate::batchlog::write_logged(self, cluster, logged, consistency);
            }
        }
        let mut by_keyspace: std::collections::BTreeMap<String, Vec<Mutation>> = Default::default();
        for m in mutations {
            by_keyspace.entry(keyspace_of(&m)).or_default().push(m);
        }
        for (ks, ms) in by_keyspace {
            self.coordinate_write(&ks, &ms, consistency, write_type)?;
        }
        Ok(())
    }

    /// BATCH request: statements given as text or prepared ids, each with its own values.
    pub fn batch(&self, session: &mut Session, req: &BatchRequest) -> QueryResult<Outcome> {
        let keyspace = req.keyspace.clone().or_else(|| session.keyspace.clone());
        let now_micros = sibyl_types::timeuuid::micros_now();
        let now_secs = req
            .now_in_seconds
            .map(|s| s as i64)
            .unwrap_or(now_micros / 1_000_000);
        let timestamp = req
            .default_timestamp
            .unwrap_or_else(|| self.next_timestamp());
        let schema = self.schema();
        let mut prepared = vec![];
        for (q, values) in &req.statements {
            let p = match q {
                BatchQuery::Query(text) => Arc::new(self.analyse(
                    keyspace.as_deref(),
                    text,
                    statement_id(keyspace.as_deref(), text),
                )?),
                BatchQuery::Prepared(id) => self
                    .prepared
                    .read()
                    .get(id)
                    .cloned()
                    .ok_or_else(|| QueryError::Unprepared(id.clone()))?,
            };
            let Some(name) = statement_table(&p.statement)
                .filter(|_| !matches!(p.statement, Statement::Select(_)))
            else {
                return invalid("Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed.");
            };
            let table =
                self.resolve_table(&schema, name, p.keyspace.as_deref().or(keyspace.as_deref()))?;
            let binds = Self::positional(&p, values)?;
            prepared.push((p, table, binds));
        }
        let ctxs: Vec<EvalCtx> = prepared
            .iter()
            .map(|(_, _, binds)| EvalCtx { binds, now_micros })
            .collect();
        let items: Vec<WriteItem> = prepared
            .iter()
            .zip(&ctxs)
            .map(|((p, table, _), ctx)| WriteItem {
                table: table.clone(),
                statement: &p.statement,
                ctx,
            })
            .collect();
        let kind = match req.kind {
            1 => BatchKind::Unlogged,
            2 => BatchKind::Counter,
            _ => BatchKind::Logged,
        };
        self.run_writes(
            &items,
            Some((kind, false)),
            timestamp,
            now_secs,
            (req.consistency, req.serial_consistency),
        )
    }

    /// Applies one modification or a batch: counter and LWT rules, partition locks for
    /// read-modify-write (counters) and conditions, then the storage writes.
    fn run_writes(
        &self,
        items: &[WriteItem],
        batch: Option<(BatchKind, bool)>,
        timestamp: i64,
        now_secs: i64,
        (consistency, serial): (u16, Option<u16>),
    ) -> QueryResult<Outcome> {
        let counters = items.iter().filter(|i| i.table.is_counter_table()).count();
        if let Some((kind, custom_ts)) = batch {
            if counters > 0 && custom_ts {
                return invalid("Cannot provide custom timestamp for counter BATCH");
            }
            if kind == BatchKind::Counter && counters < items.len() {
                return invalid("Cannot include non-counter statement in a counter batch");
            }
            if kind == BatchKind::Logged && counters > 0 {
                return invalid("Cannot include a counter statement in a logged batch");
            }
            if counters > 0 && counters < items.len() {
                return invalid("Counter and non-counter mutations cannot exist in the same batch");
            }
        }
        // Most requests carry one statement: no heap for the per-item lists.
        let conditions: SmallVec<[Conditions; 2]> =
            items.iter().map(|i| conditions_of(i.statement)).collect();
        let conditional = conditions.iter().any(|c| *c != Conditions::None);
        let write_type = match batch {
            _ if conditional => "CAS",
            _ if counters > 0 => "COUNTER",
            Some((BatchKind::Logged, _)) => "BATCH",
            Some(_) => "UNLOGGED_BATCH",
            None => "SIMPLE",
        };
        if conditional && counters > 0 {
            return invalid("Conditional updates are not supported on counter tables");
        }
        let serial = serial.unwrap_or(cl::SERIAL);
        if conditional {
            if serial != cl::SERIAL && serial != cl::LOCAL_SERIAL {
                return invalid(
                    "Invalid consistency for conditional update. Must be one of SERIAL or LOCAL_SERIAL",
                );
            }
            if consistency == cl::SERIAL || consistency == cl::LOCAL_SERIAL {
                return invalid(format!(
                    "{} is not supported as conditional update commit consistency. Use ANY if you mean \"make sure it is accepted but I don't care how many replicas commit it for non-SERIAL reads\"",
                    cl::name(consistency)
                ));
            }
        } else if consistency == cl::SERIAL || consistency == cl::LOCAL_SERIAL {
            return invalid("You must use conditional updates for serializable writes");
        }
        for item in items {
            if item.table.is_virtual || ddl::is_system_keyspace(&item.table.keyspace) {
                return Err(QueryError::Unauthorized(format!(
                    "Modification on table {}.{} is not allowed: system tables are read-only",
                    item.table.keyspace, item.table.name
                )));
            }
        }
        // Read-before-write (lists, counters, conditions) reads at QUORUM through the coordinator.
        let readers: SmallVec<[Option<crate::coordinator::CoordinatedRead>; 2]> = items
            .iter()
            .map(|i| self.reader(&i.table.keyspace, sibyl_protocol::consistency::QUORUM))
            .collect();
        let local = self.local_data();
        let source = |i: usize| -> &dyn crate::data::DataSource {
            match &readers[i] {
                Some(r) => r,
                None => &local,
            }
        };
        fn wctx<'b>(
            item: &'b WriteItem<'b>,
            timestamp: i64,
            now_secs: i64,
            data: &'b dyn crate::data::DataSource,
        ) -> WriteCtx<'b> {
            WriteCtx {
                eval: item.ctx,
                timestamp,
                now_secs,
                data,
            }
        }
        if !conditional {
            // Counter updates are deltas: each partition's leader replica turns them into its
            // own shard. Other writes go to the replicas as they are.
            let mut mutations = vec![];
            for (idx, item) in items.iter().enumerate() {
                let ms = self.modification(
                    &item.table,
                    item.statement,
                    &wctx(item, timestamp, now_secs, source(idx)),
                )?;
                if counters > 0 {
                    for m in ms {
                        crate::counters::write(self, &item.table.keyspace, m, consistency)?;
                    }
                    continue;
                }
                if !item.table.indexes.is_empty() {
                    for m in &ms {
                        self.indexes.check_indexable(item.table.id, m)?;
                    }
                }
                if mutations.is_empty() {
                    mutations = ms;
                } else {
                    mutations.extend(ms);
                }
            }
            if counters == 0 {
                self.apply(mutations, consistency, write_type)?;
            }
            return Ok(Outcome::body(ResultBody::Void));
        }
        // A conditional statement or batch: one partition, read-modify-write.
        let mut keys = vec![];
        for (idx, item) in items.iter().enumerate() {
            let k = match item.statement {
                Statement::Update(u) => {
                    crate::modify::partition_keys(&item.table, &u.where_clause, item.ctx)?
                }
                Statement::Delete(d) => {
                    crate::modify::partition_keys(&item.table, &d.where_clause, item.ctx)?
                }
                st => self
                    .modification(
                        &item.table,
                        st,
                        &wctx(item, timestamp, now_secs, source(idx)),
                    )?
                    .into_iter()
                    .map(|m| m.key)
                    .collect(),
            };
            keys.extend(k.into_iter().map(|k| (item.table.id, k)));
        }
        let first = &keys[0];
        if keys.iter().any(|k| k != first) {
            return invalid(if batch.is_some() {
                "Batch with conditions cannot span multiple partitions"
            } else {
                "IN on the partition key is not supported with conditional updates"
            });
        }
        if let Some(cluster) = self.cluster() {
            let rep = self.replication_of(&items[0].table.keyspace);
            if rep != sibyl_cluster::ring::Replication::Local {
                return self.run_paxos(
                    cluster,
                    rep,
                    items,
                    &conditions,
                    batch.is_some(),
                    &keys[0].1,
                    now_secs,
                    (consistency, serial),
                );
            }
        }
        let _guards = self.lock_partitions(&keys);
        // Under the lock, writes take a fresh server timestamp (as Paxos's ballots do), so a
        // later conditional write always supersedes an earlier one.
        let timestamp = self.next_timestamp();
        let mut all = vec![];
        let mut per_item = vec![];
        for (idx, item) in items.iter().enumerate() {
            let m = self.modification(
                &item.table,
                item.statement,
                &wctx(item, timestamp, now_secs, source(idx)),
            )?;
            per_item.push(m.clone());
            all.extend(m);
        }
        let mut cas_items = vec![];
        for (i, item) in items.iter().enumerate() {
            let (key, clustering) = crate::cas::target_of(&item.table, &per_item[i])?;
            cas_items.push(crate::cas::CasItem {
                table: &item.table,
                conditions: &conditions[i],
                ctx: item.ctx,
                key,
                clustering,
            });
        }
        let (applied, rows) = crate::cas::check(source(0), &cas_items, batch.is_some(), now_secs)?;
        if applied {
            self.apply(all, consistency, write_type)?;
        }
        Ok(Outcome::body(ResultBody::Rows(rows)))
    }

    /// A conditional statement or batch across replicas: Paxos rounds until its proposal (the
    /// writes, or nothing when the conditions fail) is accepted, then the commit.
    #[allow(clippy::too_many_arguments)]
    fn run_paxos(
        &self,
        cluster: &Arc<crate::coordinator::Cluster>,
        rep: sibyl_cluster::ring::Replication,
        items: &[WriteItem],
        conditions: &[Conditions],
        is_batch: bool,
        key: &sibyl_storage::model::PartitionKey,
        now_secs: i64,
        (consistency, serial): (u16, u16),
    ) -> QueryResult<Outcome> {
        let table_id = items[0].table.id;
        let mut round = self.paxos_round(cluster, rep, table_id, key, serial)?;
        let read_cl = if serial == cl::LOCAL_SERIAL {
            cl::LOCAL_QUORUM
        } else {
            cl::QUORUM
        };
        loop {
            let ballot = round.begin()?;
            let reader = crate::coordinator::CoordinatedRead::new(
                self,
                cluster,
                &items[0].table.keyspace,
                read_cl,
            );
            // The ballot's time is the writes' timestamp: later ballots always win.
            let mut all = vec![];
            let mut cas_items = vec![];
            for (i, item) in items.iter().enumerate() {
                let ctx = WriteCtx {
                    eval: item.ctx,
                    timestamp: ballot.micros,
                    now_secs,
                    data: &reader,
                };
                let ms = self.modification(&item.table, item.statement, &ctx)?;
                let (k, clustering) = crate::cas::target_of(&item.table, &ms)?;
                cas_items.push(crate::cas::CasItem {
                    table: &item.table,
                    conditions: &conditions[i],
                    ctx: item.ctx,
                    key: k,
                    clustering,
                });
                all.extend(ms);
            }
            let (applied, rows) = crate::cas::check(&reader, &cas_items, is_batch, now_secs)?;
            let proposal = sibyl_paxos::Proposal {
                ballot,
                value: applied.then(|| sibyl_cluster::messaging::encode(&all)),
            };
            match round.propose(&proposal)? {
                crate::paxos::Accepted::Yes => {
                    if applied {
                        round.commit(&proposal, consistency)?;
                    }
                    return Ok(Outcome::body(ResultBody::Rows(rows)));
                }
                crate::paxos::Accepted::Refused => round.backoff()?,
            }
        }
    }

    pub(crate) fn lock_partitions(
        &self,
        keys: &[(uuid::Uuid, sibyl_storage::model::PartitionKey)],
    ) -> Vec<parking_lot::MutexGuard<'_, ()>> {
        use std::hash::{Hash, Hasher};
        let mut stripes: Vec<usize> = keys
            .iter()
            .map(|(t, k)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                t.hash(&mut h);
                k.key.hash(&mut h);
                h.finish() as usize % self.partition_locks.len()
            })
            .collect();
        // A fixed order avoids deadlocks between batches.
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|s| self.partition_locks[s].lock())
            .collect()
    }

    fn schema_statement(&self, st: &Statement, keyspace: Option<&str>) -> QueryResult<Outcome> {
        let _guard = self.ddl_lock.lock();
        let schema = self.schema();
        let view = self.cluster_view();
        let now = self.next_timestamp();
        let mut dropped_tables = vec![];
        let outcome: DdlOutcome = match st {
            Statement::CreateKeyspace(c) => ddl::create_keyspace(&schema, c, &view)?,
            Statement::AlterKeyspace {
                name,
                if_exists,
                options,
            } => ddl::alter_keyspace(&schema, name, *if_exists, options, &view)?,
            Statement::DropKeyspace { name, if_exists } => {
                if let Some(ks) = schema.keyspaces.get(name) {
                    dropped_tables.extend(ks.tables.values().map(|t| t.id));
                }
                ddl::drop_keyspace(&schema, name, *if_exists)?
            }
            Statement::CreateTable(c) => ddl::create_table(&schema, c, keyspace)?,
            Statement::AlterTable {
                name,
                if_exists,
                op,
            } => ddl::alter_table(&schema, name, *if_exists, op, keyspace, now)?,
            Statement::DropTable { name, if_exists } => {
                let (o, id) = ddl::drop_table(&schema, name, *if_exists, keyspace)?;
                dropped_tables.extend(id);
                o
            }
            Statement::CreateType {
                name,
                if_not_exists,
                fields,
            } => ddl::create_type(&schema, name, *if_not_exists, fields, keyspace)?,
            Statement::AlterType {
                name,
                if_exists,
                op,
            } => ddl::alter_type(&schema, name, *if_exists, op, keyspace)?,
            Statement::DropType { name, if_exists } => {
                ddl::drop_type(&schema, name, *if_exists, keyspace)?
            }
            Statement::CreateIndex(c) => ddl::create_index(&schema, c, keyspace)?,
            Statement::DropIndex { name, if_exists } => {
                ddl::drop_index(&schema, name, *if_exists, keyspace)?
            }
            Statement::Truncate(name) => {
                let table = self.resolve_table(&schema, name, keyspace)?;
                if table.is_virtual || ddl::is_system_keyspace(&table.keyspace) {
                    return Err(QueryError::Unauthorized(format!(
                        "Cannot truncate system table {}.{}",
                        table.keyspace, table.name
                    )));
                }
                self.truncate_everywhere(table.id)?;
                return Ok(Outcome::body(ResultBody::Void));
            }
            _ => return invalid("Unsupported statement"),
        };
        let Some(new_schema) = outcome.schema else {
            return Ok(Outcome {
                body: ResultBody::Void,
                warnings: outcome.warnings,
                schema_change: None,
            });
        };
        self.prepare_storage(&schema, &new_schema)?;
        self.install_schema(new_schema)
            .map_err(|e| QueryError::Server(format!("cannot persist schema: {e}")))?;
        // Prepared statements may name what changed: drivers re-prepare on UNPREPARED.
        self.prepared.write().clear();
        self.sync_indexes();
        self.announce_schema();
        for id in dropped_tables {
            self.engine.drop_table(id)?;
            let _ = self.paxos.drop_table(id);
        }
        let change = outcome.change.expect("a schema change names what changed");
        let _ = self
            .events
            .send(sibyl_protocol::messages::Event::SchemaChange(
                change.clone(),
            ));
        Ok(Outcome {
            body: ResultBody::SchemaChange(change.clone()),
            warnings: outcome.warnings,
            schema_change: Some(change),
        })
    }
}

/// One statement of a write: its table, its parsed form and its bound values.
pub struct WriteItem<'a> {
    pub table: Arc<Table>,
    pub statement: &'a Statement,
    pub ctx: &'a EvalCtx<'a>,
}

fn conditions_of(st: &Statement) -> Conditions {
    match st {
        Statement::Insert(i) if i.if_not_exists => Conditions::IfNotExists,
        Statement::Update(u) => u.conditions.clone(),
        Statement::Delete(d) => d.conditions.clone(),
        _ => Conditions::None,
    }
}

impl Node {
    /// A coordinator-backed reader when the ring has other nodes (system keyspaces stay local).
    fn reader(
        &self,
        keyspace: &str,
        consistency: u16,
    ) -> Option<crate::coordinator::CoordinatedRead<'_>> {
        let cluster = self.cluster()?;
        if ddl::is_system_keyspace(keyspace) {
            return None;
        }
        Some(crate::coordinator::CoordinatedRead::new(
            self,
            cluster,
            keyspace,
            consistency,
        ))
    }
}

impl Node {
    /// Every other node gossip knows in state NORMAL, for system.peers.
    pub fn peers(&self) -> Vec<system_tables::PeerInfo> {
        let Some(c) = self.cluster.get() else {
            return vec![];
        };
        let removed = c.removed();
        c.membership
            .nodes()
            .into_iter()
            .filter(|(s, _)| {
                s.host_id != c.local_id
                    && s.status == sibyl_cluster::gossip::NodeStatus::Normal
                    && !removed.contains(&s.host_id)
            })
            .map(|(s, _)| system_tables::PeerInfo {
                addr: s.addr,
                storage_port: s.storage_port,
                native_port: s.native_port,
                dc: s.dc,
                rack: s.rack,
                host_id: s.host_id,
                tokens: s.tokens,
                schema_version: s.schema_version,
                release_version: s.release_version,
            })
            .collect()
    }
}

impl Node {
    /// Nodes per data center: gossip's view, or this node alone.
    fn cluster_view(&self) -> ClusterView {
        let mut nodes_per_dc = std::collections::BTreeMap::new();
        match self.cluster.get() {
            Some(c) => {
                for (s, _) in c.membership.nodes() {
                    if s.status == sibyl_cluster::gossip::NodeStatus::Normal
                        || s.host_id == c.local_id
                    {
                        *nodes_per_dc.entry(s.dc).or_insert(0) += 1;
                    }
                }
            }
            None => {
                nodes_per_dc.insert(self.config.dc.clone(), 1);
            }
        }
        ClusterView { nodes_per_dc }
    }
}
