"""INSERT / UPDATE / DELETE / SELECT semantics: clustering ranges, ordering,
LIMIT, paging, TTL, write timestamps, deletions, static columns."""

from __future__ import annotations

import time

import pytest

from cassandra import InvalidRequest
from cassandra.query import SimpleStatement


@pytest.fixture
def ks(fresh_keyspace):
    return fresh_keyspace


@pytest.fixture
def clustered(session, ks):
    session.execute(f"CREATE TABLE {ks}.cl (p int, c int, v text, PRIMARY KEY (p, c))")
    ins = session.prepare(f"INSERT INTO {ks}.cl (p, c, v) VALUES (?, ?, ?)")
    for p in (1, 2):
        for c in range(10):
            session.execute(ins, (p, c, f"{p}-{c}"))
    return f"{ks}.cl"


def cs(rows):
    return [r.c for r in rows]


def test_insert_select_update_delete_by_primary_key(session, ks):
    session.execute(f"CREATE TABLE {ks}.kv (k text PRIMARY KEY, a int, b text)")
    session.execute(f"INSERT INTO {ks}.kv (k, a, b) VALUES ('x', 1, 'one')")
    assert session.execute(f"SELECT a, b FROM {ks}.kv WHERE k = 'x'").one() == (1, "one")
    # UPDATE of one column leaves the other
    session.execute(f"UPDATE {ks}.kv SET a = 2 WHERE k = 'x'")
    assert session.execute(f"SELECT a, b FROM {ks}.kv WHERE k = 'x'").one() == (2, "one")
    # UPDATE is an upsert
    session.execute(f"UPDATE {ks}.kv SET b = 'new' WHERE k = 'y'")
    assert session.execute(f"SELECT a, b FROM {ks}.kv WHERE k = 'y'").one() == (None, "new")
    # INSERT overwrites
    session.execute(f"INSERT INTO {ks}.kv (k, a) VALUES ('x', 3)")
    assert session.execute(f"SELECT a, b FROM {ks}.kv WHERE k = 'x'").one() == (3, "one")
    # DELETE of a column
    session.execute(f"DELETE b FROM {ks}.kv WHERE k = 'x'")
    assert session.execute(f"SELECT a, b FROM {ks}.kv WHERE k = 'x'").one() == (3, None)
    # DELETE of the row
    session.execute(f"DELETE FROM {ks}.kv WHERE k = 'x'")
    assert session.execute(f"SELECT * FROM {ks}.kv WHERE k = 'x'").one() is None
    # a row created by UPDATE only (no row marker) disappears when its cells are deleted
    session.execute(f"DELETE b FROM {ks}.kv WHERE k = 'y'")
    assert session.execute(f"SELECT * FROM {ks}.kv WHERE k = 'y'").one() is None
    # IN on the partition key
    session.execute(f"INSERT INTO {ks}.kv (k, a) VALUES ('m', 1)")
    session.execute(f"INSERT INTO {ks}.kv (k, a) VALUES ('n', 2)")
    rows = session.execute(f"SELECT k, a FROM {ks}.kv WHERE k IN ('m', 'n', 'zz')")
    assert sorted(tuple(r) for r in rows) == [("m", 1), ("n", 2)]
    # full scan and count
    assert session.execute(f"SELECT count(*) FROM {ks}.kv").one()[0] == 2


def test_clustering_ranges(session, clustered):
    t = clustered
    q = lambda where, extra="": cs(session.execute(f"SELECT c FROM {t} WHERE p = 1 {where} {extra}"))  # noqa: E731
    assert q("") == list(range(10))
    assert q("AND c = 3") == [3]
    assert q("AND c > 6") == [7, 8, 9]
    assert q("AND c >= 6") == [6, 7, 8, 9]
    assert q("AND c < 2") == [0, 1]
    assert q("AND c <= 2") == [0, 1, 2]
    assert q("AND c > 2 AND c < 5") == [3, 4]
    assert q("AND c >= 2 AND c <= 5") == [2, 3, 4, 5]
    assert q("AND c > 5 AND c < 5") == []
    assert q("AND c IN (8, 1, 4)") == [1, 4, 8]
    assert q("", "ORDER BY c DESC") == list(range(9, -1, -1))
    assert q("AND c >= 3 AND c < 7", "ORDER BY c DESC") == [6, 5, 4, 3]
    assert q("", "LIMIT 3") == [0, 1, 2]
    assert q("AND c > 4", "ORDER BY c DESC LIMIT 2") == [9, 8]
    assert q("", "ORDER BY c ASC LIMIT 1") == [0]
    # other partition untouched
    rows = session.execute(f"SELECT v FROM {t} WHERE p = 2 AND c = 9")
    assert [r.v for r in rows] == ["2-9"]
    # PER PARTITION LIMIT and DISTINCT
    rows = session.execute(f"SELECT p, c FROM {t} PER PARTITION LIMIT 2")
    assert sorted(tuple(r) for r in rows) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    rows = session.execute(f"SELECT DISTINCT p FROM {t}")
    assert sorted(r.p for r in rows) == [1, 2]


def test_clustering_ranges_prepared(session, clustered):
    t = clustered
    p = session.prepare(f"SELECT c FROM {t} WHERE p = ? AND c >= ? AND c < ? ORDER BY c DESC LIMIT ?")
    assert cs(session.execute(p, (1, 2, 8, 3))) == [7, 6, 5]
    p = session.prepare(f"SELECT c FROM {t} WHERE p = ? AND c IN ?")
    assert cs(session.execute(p, (2, [9, 0, 5]))) == [0, 5, 9]


def test_invalid_restrictions(session, clustered):
    t = clustered
    with pytest.raises(InvalidRequest):
        # ordering needs the partition restricted
        session.execute(f"SELECT * FROM {t} ORDER BY c DESC")
    with pytest.raises(InvalidRequest):
        # a non-primary-key column without ALLOW FILTERING / index
        session.execute(f"SELECT * FROM {t} WHERE v = 'x'")
    with pytest.raises(InvalidRequest):
        session.execute(f"INSERT INTO {t} (p, v) VALUES (1, 'missing clustering')")


def test_descending_table(session, ks):
    session.execute(f"CREATE TABLE {ks}.d (p int, c int, v int, PRIMARY KEY (p, c)) "
                    "WITH CLUSTERING ORDER BY (c DESC)")
    for c in (5, 1, 9, 3):
        session.execute(f"INSERT INTO {ks}.d (p, c, v) VALUES (0, {c}, {c})")
    assert cs(session.execute(f"SELECT c FROM {ks}.d WHERE p = 0")) == [9, 5, 3, 1]
    assert cs(session.execute(f"SELECT c FROM {ks}.d WHERE p = 0 ORDER BY c ASC")) == [1, 3, 5, 9]
    assert cs(session.execute(f"SELECT c FROM {ks}.d WHERE p = 0 AND c > 2 AND c <= 5")) == [5, 3]
    assert cs(session.execute(f"SELECT c FROM {ks}.d WHERE p = 0 LIMIT 2")) == [9, 5]


def test_paging_1000_rows(session, ks):
    session.execute(f"CREATE TABLE {ks}.pg (p int, c int, v text, PRIMARY KEY (p, c))")
    ins = session.prepare(f"INSERT INTO {ks}.pg (p, c, v) VALUES (?, ?, ?)")
    from cassandra.concurrent import execute_concurrent_with_args
    results = execute_concurrent_with_args(session, ins, [(0, c, f"v{c}") for c in range(1000)],
                                           concurrency=50)
    assert all(r.success for r in results)

    # one partition, simple statement
    stmt = SimpleStatement(f"SELECT c, v FROM {ks}.pg WHERE p = 0", fetch_size=100)
    rs = session.execute(stmt)
    assert rs.has_more_pages
    first_page = rs.current_rows
    assert len(first_page) == 100
    all_rows = list(rs)
    assert [r.c for r in all_rows] == list(range(1000))
    assert all(r.v == f"v{r.c}" for r in all_rows)

    # prepared, descending, with a range
    p = session.prepare(f"SELECT c FROM {ks}.pg WHERE p = ? AND c >= ? ORDER BY c DESC")
    p.fetch_size = 77
    got = [r.c for r in session.execute(p, (0, 100))]
    assert got == list(range(999, 99, -1))

    # manual paging through paging_state
    stmt = SimpleStatement(f"SELECT c FROM {ks}.pg WHERE p = 0", fetch_size=300)
    rs = session.execute(stmt)
    seen = [r.c for r in rs.current_rows]
    while rs.paging_state is not None:
        rs = session.execute(stmt, paging_state=rs.paging_state)
        seen.extend(r.c for r in rs.current_rows)
    assert seen == list(range(1000))

    # LIMIT across pages
    stmt = SimpleStatement(f"SELECT c FROM {ks}.pg WHERE p = 0 LIMIT 250", fetch_size=100)
    assert [r.c for r in session.execute(stmt)] == list(range(250))


def test_paging_full_scan_many_partitions(session, ks):
    session.execute(f"CREATE TABLE {ks}.scan (p int, c int, PRIMARY KEY (p, c))")
    ins = session.prepare(f"INSERT INTO {ks}.scan (p, c) VALUES (?, ?)")
    from cassandra.concurrent import execute_concurrent_with_args
    args = [(p, c) for p in range(100) for c in range(7)]
    assert all(r.success for r in execute_concurrent_with_args(session, ins, args, concurrency=50))
    stmt = SimpleStatement(f"SELECT p, c, token(p) AS t FROM {ks}.scan", fetch_size=50)
    rows = list(session.execute(stmt))
    assert len(rows) == 700
    assert sorted((r.p, r.c) for r in rows) == sorted(args)
    # partitions come back in token order, rows of a partition in clustering order
    tokens = [r.t for r in rows]
    assert tokens == sorted(tokens)
    assert session.execute(f"SELECT count(*) FROM {ks}.scan").one()[0] == 700


def test_ttl(session, ks):
    session.execute(f"CREATE TABLE {ks}.ttl (k int PRIMARY KEY, a int, b int)")
    session.execute(f"INSERT INTO {ks}.ttl (k, a, b) VALUES (1, 1, 1) USING TTL 2")
    session.execute(f"INSERT INTO {ks}.ttl (k, a) VALUES (2, 2)")
    session.execute(f"UPDATE {ks}.ttl USING TTL 2 SET b = 2 WHERE k = 2")
    row = session.execute(f"SELECT TTL(a), TTL(b) FROM {ks}.ttl WHERE k = 1").one()
    assert 0 < row[0] <= 2 and 0 < row[1] <= 2
    row = session.execute(f"SELECT TTL(a), TTL(b) FROM {ks}.ttl WHERE k = 2").one()
    assert row[0] is None and 0 < row[1] <= 2
    time.sleep(3.1)
    assert session.execute(f"SELECT * FROM {ks}.ttl WHERE k = 1").one() is None
    assert session.execute(f"SELECT a, b FROM {ks}.ttl WHERE k = 2").one() == (2, None)
    with pytest.raises(InvalidRequest):
        session.execute(f"INSERT INTO {ks}.ttl (k, a) VALUES (3, 3) USING TTL -1")
    # default_time_to_live
    session.execute(f"CREATE TABLE {ks}.dttl (k int PRIMARY KEY, v int) WITH default_time_to_live = 100")
    session.execute(f"INSERT INTO {ks}.dttl (k, v) VALUES (1, 1)")
    ttl = session.execute(f"SELECT TTL(v) FROM {ks}.dttl WHERE k = 1").one()[0]
    assert 90 < ttl <= 100


def test_write_timestamps(session, ks):
    session.execute(f"CREATE TABLE {ks}.ts (k int PRIMARY KEY, v text)")
    session.execute(f"INSERT INTO {ks}.ts (k, v) VALUES (1, 'new') USING TIMESTAMP 2000")
    # an older write loses
    session.execute(f"INSERT INTO {ks}.ts (k, v) VALUES (1, 'old') USING TIMESTAMP 1000")
    assert session.execute(f"SELECT v, WRITETIME(v) FROM {ks}.ts WHERE k = 1").one() == ("new", 2000)
    # an older delete loses too
    session.execute(f"DELETE FROM {ks}.ts USING TIMESTAMP 1500 WHERE k = 1")
    assert session.execute(f"SELECT v FROM {ks}.ts WHERE k = 1").one().v == "new"
    # a newer one wins
    session.execute(f"UPDATE {ks}.ts USING TIMESTAMP 3000 SET v = 'newest' WHERE k = 1")
    assert session.execute(f"SELECT v FROM {ks}.ts WHERE k = 1").one().v == "newest"
    session.execute(f"DELETE FROM {ks}.ts USING TIMESTAMP 4000 WHERE k = 1")
    assert session.execute(f"SELECT v FROM {ks}.ts WHERE k = 1").one() is None
    # a write at the same timestamp as a delete loses (tombstone wins ties)
    session.execute(f"INSERT INTO {ks}.ts (k, v) VALUES (1, 'tie') USING TIMESTAMP 4000")
    assert session.execute(f"SELECT v FROM {ks}.ts WHERE k = 1").one() is None
    # writetime of a normal write is the server's/driver's current time in microseconds
    session.execute(f"INSERT INTO {ks}.ts (k, v) VALUES (2, 'now')")
    wt = session.execute(f"SELECT WRITETIME(v) FROM {ks}.ts WHERE k = 2").one()[0]
    assert abs(wt - time.time() * 1_000_000) < 60 * 1_000_000


def test_delete_row_range_and_partition(session, clustered):
    t = clustered
    session.execute(f"DELETE FROM {t} WHERE p = 1 AND c = 5")
    assert cs(session.execute(f"SELECT c FROM {t} WHERE p = 1")) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    session.execute(f"DELETE FROM {t} WHERE p = 1 AND c >= 7")
    assert cs(session.execute(f"SELECT c FROM {t} WHERE p = 1")) == [0, 1, 2, 3, 4, 6]
    session.execute(f"DELETE FROM {t} WHERE p = 1 AND c > 0 AND c < 3")
    assert cs(session.execute(f"SELECT c FROM {t} WHERE p = 1")) == [0, 3, 4, 6]
    session.execute(f"DELETE FROM {t} WHERE p = 1")
    assert list(session.execute(f"SELECT * FROM {t} WHERE p = 1")) == []
    # the other partition is intact
    assert cs(session.execute(f"SELECT c FROM {t} WHERE p = 2")) == list(range(10))
    # re-insert after a partition delete
    session.execute(f"INSERT INTO {t} (p, c, v) VALUES (1, 4, 'again')")
    assert [tuple(r) for r in session.execute(f"SELECT c, v FROM {t} WHERE p = 1")] == [(4, "again")]


def test_static_columns(session, ks):
    session.execute(f"CREATE TABLE {ks}.st (p int, c int, s text static, v int, PRIMARY KEY (p, c))")
    session.execute(f"INSERT INTO {ks}.st (p, c, s, v) VALUES (1, 1, 'static1', 10)")
    session.execute(f"INSERT INTO {ks}.st (p, c, v) VALUES (1, 2, 20)")
    rows = list(session.execute(f"SELECT c, s, v FROM {ks}.st WHERE p = 1"))
    assert [tuple(r) for r in rows] == [(1, "static1", 10), (2, "static1", 20)]
    # updating the static column changes it for every row of the partition
    session.execute(f"UPDATE {ks}.st SET s = 'static2' WHERE p = 1")
    rows = list(session.execute(f"SELECT c, s FROM {ks}.st WHERE p = 1"))
    assert [tuple(r) for r in rows] == [(1, "static2"), (2, "static2")]
    # a partition with only a static value: one row with null clustering
    session.execute(f"INSERT INTO {ks}.st (p, s) VALUES (2, 'lonely')")
    rows = list(session.execute(f"SELECT p, c, s, v FROM {ks}.st WHERE p = 2"))
    assert [tuple(r) for r in rows] == [(2, None, "lonely", None)]
    # the static value stays when the rows are deleted
    session.execute(f"DELETE FROM {ks}.st WHERE p = 1 AND c = 1")
    session.execute(f"DELETE FROM {ks}.st WHERE p = 1 AND c = 2")
    rows = list(session.execute(f"SELECT p, c, s FROM {ks}.st WHERE p = 1"))
    assert [tuple(r) for r in rows] == [(1, None, "static2")]
    # DISTINCT with a static column
    rows = session.execute(f"SELECT DISTINCT p, s FROM {ks}.st")
    assert sorted(tuple(r) for r in rows) == [(1, "static2"), (2, "lonely")]


def test_collection_updates(session, ks):
    session.execute(f"CREATE TABLE {ks}.coll (k int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>)")
    session.execute(f"INSERT INTO {ks}.coll (k, l, s, m) VALUES (1, [1, 2], {{'a'}}, {{'x': 1}})")
    session.execute(f"UPDATE {ks}.coll SET l = l + [3], s = s + {{'b'}}, m['y'] = 2 WHERE k = 1")
    session.execute(f"UPDATE {ks}.coll SET l = [0] + l WHERE k = 1")
    row = session.execute(f"SELECT l, s, m FROM {ks}.coll WHERE k = 1").one()
    assert row.l == [0, 1, 2, 3] and row.s == {"a", "b"} and dict(row.m) == {"x": 1, "y": 2}
    session.execute(f"UPDATE {ks}.coll SET l = l - [1], s = s - {{'a'}} WHERE k = 1")
    session.execute(f"DELETE m['x'] FROM {ks}.coll WHERE k = 1")
    row = session.execute(f"SELECT l, s, m FROM {ks}.coll WHERE k = 1").one()
    assert row.l == [0, 2, 3] and row.s == {"b"} and dict(row.m) == {"y": 2}
    session.execute(f"UPDATE {ks}.coll SET l[0] = 9 WHERE k = 1")
    assert session.execute(f"SELECT l FROM {ks}.coll WHERE k = 1").one().l == [9, 2, 3]


def test_batch(session, ks):
    from cassandra.query import BatchStatement, BatchType
    session.execute(f"CREATE TABLE {ks}.b (p int, c int, v int, PRIMARY KEY (p, c))")
    ins = session.prepare(f"INSERT INTO {ks}.b (p, c, v) VALUES (?, ?, ?)")
    for p, kind in enumerate((BatchType.LOGGED, BatchType.UNLOGGED)):
        batch = BatchStatement(batch_type=kind)
        for c in range(5):
            batch.add(ins, (p, c, c * 2))
        batch.add(SimpleStatement(f"INSERT INTO {ks}.b (p, c, v) VALUES (%s, %s, %s)"), (99, 1, 1))
        session.execute(batch)
    for p in (0, 1):
        rows = [tuple(r) for r in session.execute(f"SELECT c, v FROM {ks}.b WHERE p = {p}")]
        assert rows == [(c, c * 2) for c in range(5)]
    assert session.execute(f"SELECT v FROM {ks}.b WHERE p = 99 AND c = 1").one().v == 1
    session.execute(f"BEGIN BATCH INSERT INTO {ks}.b (p, c, v) VALUES (7, 1, 1); "
                    f"UPDATE {ks}.b SET v = 2 WHERE p = 7 AND c = 2; APPLY BATCH")
    assert [tuple(r) for r in session.execute(f"SELECT c, v FROM {ks}.b WHERE p = 7")] == [(1, 1), (2, 2)]
