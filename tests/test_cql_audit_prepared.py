"""Prepared statements as Cassandra 5.0 types and tracks them.

- Protocol v5 result metadata ids: a prepared `SELECT *` carries a result_metadata_id. An
  `ALTER TABLE ... ADD/DROP` invalidates the table's prepared statements (Cassandra's
  changeAffectsPreparedStatements), so the next EXECUTE is answered UNPREPARED, the driver
  re-prepares and gets the new result metadata and id: the new column appears in the rows.
- Bind and result metadata types: count(*) is bigint, `LIMIT ?` / `PER PARTITION LIMIT ?` bind
  an int named `[limit]` / `[per_partition_limit]`, `IN ?` binds a list of the column's type
  named `in(c)`, `USING TTL ?` / `USING TIMESTAMP ?` bind int `[ttl]` / bigint `[timestamp]`,
  `:name` markers take their name (a repeated `:name` is one spec per occurrence, bound to
  the same value by name).
"""

from __future__ import annotations

import io
import threading

import pytest
from cassandra import ConsistencyLevel
from cassandra.marshal import int32_pack
from cassandra.protocol import ExecuteMessage, ResultMessage
from cassandra.query import SimpleStatement


@pytest.fixture
def s5(session_for):
    return session_for(5)


def spec_types(prepared):
    return [(c.name, c.type.cql_parameterized_type()) for c in prepared.column_metadata]


def result_types(prepared):
    # the driver keeps result metadata as (keyspace, table, name, type) tuples
    return [(c[2], c[3].cql_parameterized_type()) for c in prepared.result_metadata]


def test_v5_result_metadata_id_changes_after_alter(s5, fresh_keyspace):
    ks = fresh_keyspace
    s5.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, a int)")
    s5.execute(f"INSERT INTO {ks}.t (k, a) VALUES (1, 10)")
    ps = s5.prepare(f"SELECT * FROM {ks}.t WHERE k = ?")
    assert ps.result_metadata_id, "v5 PREPARED must carry a result_metadata_id"
    old_id = ps.result_metadata_id
    row = s5.execute(ps, (1,)).one()
    assert row._fields == ("k", "a") and tuple(row) == (1, 10)

    s5.execute(f"ALTER TABLE {ks}.t ADD c int")
    s5.execute(f"UPDATE {ks}.t SET c = 30 WHERE k = 1")
    rs = s5.execute(ps, (1,))
    row = rs.one()
    # the new column is in the rows and decoded with the new metadata
    assert row._fields == ("k", "a", "c"), row
    assert tuple(row) == (1, 10, 30)
    # the driver took the new id from the METADATA_CHANGED response
    assert ps.result_metadata_id and ps.result_metadata_id != old_id
    assert [n for n, _ in result_types(ps)] == ["k", "a", "c"]

    # once the driver has the current id, executing again keeps working (no change flagged)
    new_id = ps.result_metadata_id
    assert tuple(s5.execute(ps, (1,)).one()) == (1, 10, 30)
    assert ps.result_metadata_id == new_id

    # a dropped column disappears the same way
    s5.execute(f"ALTER TABLE {ks}.t DROP a")
    row = s5.execute(ps, (1,)).one()
    assert row._fields == ("k", "c") and tuple(row) == (1, 30)
    assert ps.result_metadata_id not in (old_id, new_id)


def test_v5_result_metadata_id_with_paging(s5, fresh_keyspace):
    """The new metadata is sent when the id is stale also on a paged read."""
    ks = fresh_keyspace
    s5.execute(f"CREATE TABLE {ks}.t (k int, c int, v int, PRIMARY KEY (k, c))")
    for c in range(10):
        s5.execute(f"INSERT INTO {ks}.t (k, c, v) VALUES (0, {c}, {c})")
    ps = s5.prepare(f"SELECT * FROM {ks}.t WHERE k = 0")
    ps.fetch_size = 4
    assert [r.c for r in s5.execute(ps)] == list(range(10))
    s5.execute(f"ALTER TABLE {ks}.t ADD w text")
    s5.execute(f"UPDATE {ks}.t SET w = 'x' WHERE k = 0 AND c = 9")
    rows = list(s5.execute(ps))
    assert [r.c for r in rows] == list(range(10))
    assert rows[9].w == "x" and rows[0].w is None


def test_bind_metadata_types(s5, fresh_keyspace):
    ks = fresh_keyspace
    s5.execute(f"CREATE TABLE {ks}.t (k int, c text, v bigint, l list<int>, PRIMARY KEY (k, c))")

    p = s5.prepare(f"SELECT c FROM {ks}.t WHERE k = ? LIMIT ?")
    assert spec_types(p) == [("k", "int"), ("[limit]", "int")]

    p = s5.prepare(f"SELECT c FROM {ks}.t WHERE k = ? PER PARTITION LIMIT ?")
    assert spec_types(p) == [("k", "int"), ("[per_partition_limit]", "int")]

    p = s5.prepare(f"SELECT c FROM {ks}.t WHERE k IN ? AND c IN ?")
    assert spec_types(p) == [("in(k)", "list<int>"), ("in(c)", "list<varchar>")]

    p = s5.prepare(f"INSERT INTO {ks}.t (k, c, v) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?")
    assert spec_types(p) == [("k", "int"), ("c", "varchar"), ("v", "bigint"),
                             ("[ttl]", "int"), ("[timestamp]", "bigint")]
    assert p.routing_key_indexes == [0]
    s5.execute(p, (1, "a", 5, 3600, 1234567))
    row = s5.execute(f"SELECT ttl(v) AS t, writetime(v) AS w FROM {ks}.t WHERE k = 1 AND c = 'a'").one()
    assert 3590 < row.t <= 3600 and row.w == 1234567
    sel = s5.prepare(f"SELECT c FROM {ks}.t WHERE k IN ? LIMIT ?")
    assert [r.c for r in s5.execute(sel, ([1, 2], 1))] == ["a"]

    p = s5.prepare(f"UPDATE {ks}.t USING TTL ? SET v = ?, l = l + ? WHERE k = ? AND c = ?")
    assert spec_types(p) == [("[ttl]", "int"), ("v", "bigint"), ("l", "list<int>"),
                             ("k", "int"), ("c", "varchar")]
    assert p.routing_key_indexes == [3]

    p = s5.prepare(f"UPDATE {ks}.t SET l[?] = ? WHERE k = ? AND c = ?")
    assert spec_types(p) == [("idx(l)", "int"), ("value(l)", "int"), ("k", "int"), ("c", "varchar")]


def test_named_markers(s5, fresh_keyspace):
    ks = fresh_keyspace
    s5.execute(f"CREATE TABLE {ks}.t (k int, c int, v text, PRIMARY KEY (k, c))")
    ins = s5.prepare(f"INSERT INTO {ks}.t (k, c, v) VALUES (:key, :col, :val) USING TTL :life")
    assert spec_types(ins) == [("key", "int"), ("col", "int"), ("val", "varchar"), ("life", "int")]
    assert ins.routing_key_indexes == [0]
    # bound by name, in any order
    s5.execute(ins, {"val": "a", "col": 1, "key": 7, "life": 1000})
    s5.execute(ins.bind({"key": 7, "col": 2, "val": "b", "life": 1000}))

    sel = s5.prepare(f"SELECT c, v, ttl(v) AS t FROM {ks}.t WHERE k = :key AND c >= :lo AND c <= :hi LIMIT :n")
    assert spec_types(sel) == [("key", "int"), ("lo", "int"), ("hi", "int"), ("n", "int")]
    rows = list(s5.execute(sel, {"key": 7, "lo": 0, "hi": 5, "n": 1}))
    assert [(r.c, r.v) for r in rows] == [(1, "a")] and 0 < rows[0].t <= 1000

    # the same name twice: two variables with that name, one value bound by name to both
    same = s5.prepare(f"SELECT c FROM {ks}.t WHERE k = :key AND c >= :x AND c <= :x")
    assert spec_types(same) == [("key", "int"), ("x", "int"), ("x", "int")]
    assert [r.c for r in s5.execute(same, {"key": 7, "x": 2})] == [2]


def test_result_metadata_types_of_functions(s5, fresh_keyspace):
    ks = fresh_keyspace
    s5.execute(f"CREATE TABLE {ks}.t (k int, c int, v int, s text, PRIMARY KEY (k, c))")
    p = s5.prepare(
        f"SELECT count(*), count(v), max(v), sum(v), avg(v), writetime(v), ttl(v), token(k), "
        f"toJson(s), uuid(), now(), toTimestamp(now()), cast(v AS text) FROM {ks}.t WHERE k = ?")
    assert [t for _, t in result_types(p)] == [
        "bigint", "bigint", "int", "int", "int", "bigint", "int", "bigint",
        "varchar", "uuid", "timeuuid", "timestamp", "varchar"]
    assert [n for n, _ in result_types(p)] == [
        "count", "system.count(v)", "system.max(v)", "system.sum(v)", "system.avg(v)",
        "writetime(v)", "ttl(v)", "system.token(k)", "system.tojson(s)", "system.uuid()",
        "system.now()", "system.totimestamp(system.now())", "cast(v as text)"]
    # the rows carry the same types: count(*) on an empty partition is 0 as a bigint
    row = s5.execute(SimpleStatement(f"SELECT count(*) FROM {ks}.t WHERE k = 1")).one()
    assert row.count == 0
    rs = s5.execute(p, (1,))
    assert rs.column_types[0].cql_parameterized_type() == "bigint"

class SkipMetadataExecute(ExecuteMessage):
    """EXECUTE with the SKIP_METADATA flag (0x02), which the Python driver never sets."""

    def _write_query_params(self, f, protocol_version):
        buf = io.BytesIO()
        super()._write_query_params(buf, protocol_version)
        data = buf.getvalue()
        # [consistency: short][flags: int in v5]...
        flags = int.from_bytes(data[2:6], "big") | 0x02
        f.write(data[:2] + flags.to_bytes(4, "big") + data[6:])


def execute_raw(session, query_id, metadata_id, values, result_metadata):
    """One EXECUTE on a pooled v5 connection; the decoded RESULT message."""
    pool = next(iter(session._pools.values()))
    conn, request_id = pool.borrow_connection(timeout=5)
    done, box = threading.Event(), {}

    def got(response):
        box["r"] = response
        done.set()

    msg = SkipMetadataExecute(query_id, values, ConsistencyLevel.ONE, result_metadata_id=metadata_id)
    try:
        conn.send_msg(msg, request_id, got, result_metadata=result_metadata)
        assert done.wait(10), "no response"
    finally:
        pool.return_connection(conn)
    return box["r"]


def test_v5_metadata_changed_flag_for_a_stale_id(s5, make_cluster, fresh_keyspace):
    """Client A holds a prepared statement from before an ALTER; client B re-prepared it after
    (same statement id, new result metadata). When A executes with its old result_metadata_id
    and SKIP_METADATA, Cassandra sends the full new metadata, flag METADATA_CHANGED and the new
    id; with the current id it skips the metadata."""
    ks = fresh_keyspace
    s5.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, a int)")
    s5.execute(f"INSERT INTO {ks}.t (k, a) VALUES (1, 10)")
    query = f"SELECT * FROM {ks}.t WHERE k = ?"
    old = s5.prepare(query)
    key = [int32_pack(1)]

    r = execute_raw(s5, old.query_id, old.result_metadata_id, key, old.result_metadata)
    assert isinstance(r, ResultMessage)
    assert r.column_metadata is None, "SKIP_METADATA with the current id: no metadata"
    assert r.parsed_rows == [(1, 10)]

    s5.execute(f"ALTER TABLE {ks}.t ADD c int")
    s5.execute(f"UPDATE {ks}.t SET c = 30 WHERE k = 1")
    other = make_cluster(protocol_version=5).connect()
    new = other.prepare(query)
    assert new.query_id == old.query_id
    assert new.result_metadata_id != old.result_metadata_id

    r = execute_raw(s5, old.query_id, old.result_metadata_id, key, old.result_metadata)
    assert r.result_metadata_id == new.result_metadata_id, "METADATA_CHANGED with the new id"
    assert [c[2] for c in r.column_metadata] == ["k", "a", "c"]
    assert r.parsed_rows == [(1, 10, 30)]

    r = execute_raw(s5, old.query_id, new.result_metadata_id, key, new.result_metadata)
    assert r.column_metadata is None and getattr(r, "result_metadata_id", None) is None
    assert r.parsed_rows == [(1, 10, 30)]
