"""SELECT and modification features beyond primary-key reads: IN, DISTINCT, token ranges,
PER PARTITION LIMIT, ORDER BY, filtering rules, aggregates, collection element operations,
TTL expiry and range deletions — each compared with what Cassandra 5.0 returns."""
import time

import pytest
from cassandra import InvalidRequest
from cassandra.murmur3 import murmur3
from cassandra.query import SimpleStatement


@pytest.fixture
def grid(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.g (p int, c int, v int, PRIMARY KEY (p, c))")
    ins = session.prepare(f"INSERT INTO {ks}.g (p, c, v) VALUES (?, ?, ?)")
    for p in range(5):
        for c in range(4):
            session.execute(ins, (p, c, p * 10 + c))
    return ks


def test_in_on_partition_key_and_clustering(session, grid):
    rows = session.execute(f"SELECT p, c FROM {grid}.g WHERE p IN (3, 1) AND c IN (2, 0)")
    assert sorted((r.p, r.c) for r in rows) == [(1, 0), (1, 2), (3, 0), (3, 2)]


def test_order_by_desc_and_limit(session, grid):
    rows = session.execute(f"SELECT c FROM {grid}.g WHERE p = 2 ORDER BY c DESC LIMIT 3")
    assert [r.c for r in rows] == [3, 2, 1]
    with pytest.raises(InvalidRequest, match="ORDER BY is only supported when the partition key is restricted"):
        session.execute(f"SELECT c FROM {grid}.g ORDER BY c DESC")


def test_distinct_and_per_partition_limit(session, grid):
    assert sorted(r.p for r in session.execute(f"SELECT DISTINCT p FROM {grid}.g")) == [0, 1, 2, 3, 4]
    rows = list(session.execute(f"SELECT p, c FROM {grid}.g PER PARTITION LIMIT 2"))
    assert len(rows) == 10 and all(r.c < 2 for r in rows)


def test_token_ranges_match_the_driver(session, grid):
    tokens = {p: murmur3((p).to_bytes(4, "big", signed=True)) for p in range(5)}
    rows = session.execute(f"SELECT p, token(p) FROM {grid}.g WHERE c = 0 ALLOW FILTERING")
    assert {r.p: r.system_token_p for r in rows} == tokens
    pivot = sorted(tokens.values())[2]
    got = {r.p for r in session.execute(f"SELECT p FROM {grid}.g WHERE token(p) > {pivot}")}
    assert got == {p for p, t in tokens.items() if t > pivot}


def test_filtering_requires_allow_filtering(session, grid):
    with pytest.raises(InvalidRequest, match="ALLOW FILTERING"):
        session.execute(f"SELECT * FROM {grid}.g WHERE v = 21")
    rows = list(session.execute(f"SELECT p, c FROM {grid}.g WHERE v = 21 ALLOW FILTERING"))
    assert [(r.p, r.c) for r in rows] == [(2, 1)]
    with pytest.raises(InvalidRequest, match="cannot be restricted as preceding column"):
        session.execute(f"CREATE TABLE {grid}.h (p int, a int, b int, PRIMARY KEY (p, a, b))")
        session.execute(f"SELECT * FROM {grid}.h WHERE p = 1 AND b = 2")


def test_aggregates(session, grid):
    row = session.execute(f"SELECT count(*), min(v), max(v), sum(v), avg(v) FROM {grid}.g WHERE p = 3").one()
    assert tuple(row) == (4, 30, 33, 126, 31)


def test_collection_element_operations(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.c (k int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>)")
    session.execute(f"INSERT INTO {ks}.c (k, l, s, m) VALUES (1, [1, 2], {{'a'}}, {{'x': 1}})")
    session.execute(f"UPDATE {ks}.c SET l = l + [3], s = s + {{'b'}}, m['y'] = 2 WHERE k = 1")
    session.execute(f"UPDATE {ks}.c SET l = [0] + l WHERE k = 1")
    session.execute(f"UPDATE {ks}.c SET l[1] = 10 WHERE k = 1")
    session.execute(f"UPDATE {ks}.c SET s = s - {{'a'}}, m = m - {{'x'}} WHERE k = 1")
    session.execute(f"DELETE l[0] FROM {ks}.c WHERE k = 1")
    row = session.execute(f"SELECT l, s, m FROM {ks}.c WHERE k = 1").one()
    assert row.l == [10, 2, 3]
    assert set(row.s) == {"b"}
    assert dict(row.m) == {"y": 2}


def test_ttl_expires_and_older_timestamp_loses(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'short') USING TTL 1")
    assert session.execute(f"SELECT ttl(v) FROM {ks}.t WHERE k = 1").one()[0] in (0, 1)
    time.sleep(2.2)
    assert session.execute(f"SELECT * FROM {ks}.t WHERE k = 1").one() is None
    session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'new') USING TIMESTAMP 2000")
    session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'old') USING TIMESTAMP 1000")
    row = session.execute(f"SELECT v, writetime(v) FROM {ks}.t WHERE k = 2").one()
    assert (row.v, row.writetime_v) == ("new", 2000)


def test_range_deletion_and_row_liveness(session, grid):
    session.execute(f"DELETE FROM {grid}.g WHERE p = 4 AND c >= 1 AND c < 3")
    assert [r.c for r in session.execute(f"SELECT c FROM {grid}.g WHERE p = 4")] == [0, 3]
    # A row created by UPDATE disappears with its last cell; one created by INSERT stays.
    session.execute(f"UPDATE {grid}.g SET v = 1 WHERE p = 9 AND c = 9")
    session.execute(f"DELETE v FROM {grid}.g WHERE p = 9 AND c = 9")
    assert session.execute(f"SELECT * FROM {grid}.g WHERE p = 9").one() is None
    session.execute(f"INSERT INTO {grid}.g (p, c, v) VALUES (8, 8, 1)")
    session.execute(f"DELETE v FROM {grid}.g WHERE p = 8 AND c = 8")
    row = session.execute(f"SELECT * FROM {grid}.g WHERE p = 8").one()
    assert (row.p, row.c, row.v) == (8, 8, None)


def test_paged_in_query(session, grid):
    stmt = SimpleStatement(f"SELECT p, c FROM {grid}.g WHERE p IN (0, 1, 2)", fetch_size=5)
    rows = [(r.p, r.c) for r in session.execute(stmt)]
    assert rows == [(p, c) for p in range(3) for c in range(4)]


def test_group_by_with_aggregates(session, grid):
    rows = list(session.execute(f"SELECT p, count(*), max(v) FROM {grid}.g WHERE p IN (1, 2) GROUP BY p"))
    assert [(r.p, r.count, r.system_max_v) for r in rows] == [(1, 4, 13), (2, 4, 23)]
    total = session.execute(f"SELECT count(*) FROM {grid}.g").one().count
    assert total == 20
    with pytest.raises(InvalidRequest, match="Group by"):
        session.execute(f"SELECT count(*) FROM {grid}.g GROUP BY c")


def test_cast_functions_and_arithmetic(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TYPE {ks}.pt (x int, y int)")
    session.execute(f"CREATE TABLE {ks}.f (k int PRIMARY KEY, i int, d double, ts timestamp, id timeuuid, p frozen<pt>, m map<text, int>)")
    session.execute(f"INSERT INTO {ks}.f (k, i, d, ts, id, p, m) VALUES (1, 7, 2.5, '2021-03-04 05:06:07+0000', now(), {{x: 3, y: 4}}, {{'a': 1, 'b': 2}})")
    row = session.execute(
        f"SELECT CAST(i AS text) AS it, CAST(d AS int) AS di, i * 2 + 1 AS calc, p.y AS py, m['b'] AS mb, "
        f"toDate(ts) AS td, toUnixTimestamp(ts) AS ut, intAsBlob(i) AS ib, abs(d) AS a FROM {ks}.f WHERE k = 1"
    ).one()
    assert row.it == "7" and row.di == 2 and row.calc == 15 and row.py == 4 and row.mb == 2
    assert str(row.td) == "2021-03-04" and row.ut == 1614834367000 and row.ib == b"\x00\x00\x00\x07"
    assert row.a == 2.5
    tsrow = session.execute(f"SELECT toTimestamp(id) AS t, writetime(i) AS w FROM {ks}.f WHERE k = 1").one()
    assert tsrow.t is not None and tsrow.w > 0


def test_one_partition_reads_match_the_general_path(session, fresh_keyspace):
    """Point reads and slices of one partition take a shortcut past the planner; a PER
    PARTITION LIMIT (which changes nothing here) sends the same query the general way. Both
    must agree on rows, column names and errors."""
    import uuid

    ks = fresh_keyspace
    session.execute(
        f"CREATE TABLE {ks}.pk (a int, b text, c int, d timeuuid, v text, m map<int, text>, "
        "s set<int>, PRIMARY KEY ((a, b), c, d)) WITH CLUSTERING ORDER BY (c DESC, d ASC)")
    ins = session.prepare(f"INSERT INTO {ks}.pk (a, b, c, d, v, m, s) VALUES (?, ?, ?, ?, ?, ?, ?)")
    keys = []
    for a in range(3):
        for c in (-1, 0, 7):
            d = uuid.uuid1()
            keys.append((a, f"b{a}", c, d))
            session.execute(ins, (a, f"b{a}", c, d, None if c == 0 else f"v{a}{c}",
                                  {c: "x"} if c else None, {a, c}))
    where = "WHERE a = ? AND b = ? AND c = ? AND d = ?"
    shapes = ["*", "v", "v AS value, a, m", "s, d, c, b"]
    absent = (9, "nope", 1, uuid.uuid1())
    for shape in shapes:
        quick = session.prepare(f"SELECT {shape} FROM {ks}.pk {where}")
        general = session.prepare(f"SELECT {shape} FROM {ks}.pk {where} PER PARTITION LIMIT 99")
        for k in keys + [absent]:
            got = session.execute(quick, k)
            want = session.execute(general, k)
            assert got.column_names == want.column_names
            assert list(got) == list(want), (shape, k)
        assert len(list(session.execute(quick, keys[1]))) == 1
        assert list(session.execute(quick, absent)) == []
    # Relations in another order, and literals instead of markers.
    a, b, c, d = keys[5]
    row = session.execute(f"SELECT v FROM {ks}.pk WHERE d = {d} AND c = {c} AND b = '{b}' AND a = {a}").one()
    assert row.v == f"v{a}{c}"
    # A null key value is refused the same way on both paths.
    quick = session.prepare(f"SELECT v FROM {ks}.pk {where}")
    general = session.prepare(f"SELECT v FROM {ks}.pk {where} PER PARTITION LIMIT 99")
    errors = []
    for stmt in (quick, general):
        with pytest.raises(InvalidRequest) as e:
            session.execute(stmt, (1, "b1", None, keys[0][3]))
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    # Slices: a whole partition, ranges on the first clustering column (DESC) and on the
    # second one after an equality, with and without LIMIT.
    pk = "a = ? AND b = ?"
    d_mid = sorted(k[3] for k in keys if k[0] == 1)[1]
    slices = [
        (f"{pk}", (1, "b1")),
        (f"{pk} LIMIT 2", (1, "b1")),
        (f"{pk} AND c >= ? LIMIT 5", (1, "b1", 0)),
        (f"{pk} AND c > ? AND c <= ?", (2, "b2", -1, 7)),
        (f"{pk} AND c < ?", (0, "b0", 7)),
        (f"{pk} AND c = ? AND d > ?", (1, "b1", 7, d_mid)),
        (f"{pk} AND c = ? AND d <= ?", (1, "b1", 0, keys[4][3])),
    ]
    for clause, args in slices:
        where_part, limit_part = clause.partition(" LIMIT ")[::2]
        tail = f" LIMIT {limit_part}" if limit_part else ""
        quick = session.prepare(f"SELECT c, d, v FROM {ks}.pk WHERE {where_part}{tail}")
        general = session.prepare(
            f"SELECT c, d, v FROM {ks}.pk WHERE {where_part} PER PARTITION LIMIT 99{tail}")
        got, want = list(session.execute(quick, args)), list(session.execute(general, args))
        assert got == want, clause
        assert got, f"{clause} should match rows"
    # A limit above the page size goes the general way and pages as before.
    stmt = session.prepare(f"SELECT c FROM {ks}.pk WHERE {pk} LIMIT 100")
    stmt.fetch_size = 2
    assert [r.c for r in session.execute(stmt, (2, "b2"))] == [7, 0, -1]
