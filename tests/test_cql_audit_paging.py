"""Paging of every query shape, resuming exactly where the previous page ended.

For each shape the unpaged result is the reference; then the same query is read
  - with the driver's automatic paging at several fetch sizes (simple and prepared),
  - page by page, handing the `paging_state` of each page back in a later, separate
    `session.execute(stmt, paging_state=...)` of a new statement object,
and must give exactly the same rows in the same order, with no page larger than the fetch
size. Cassandra 5.0 behaviours checked besides: LIMIT and PER PARTITION LIMIT count across
pages (not per page), GROUP BY pages count groups, a partition with only a static row shows
up once in a full scan, and ORDER BY with IN on the partition key cannot be paged (but can
be when the LIMIT fits in one page).

Shapes already covered elsewhere (single partition auto/manual paging and LIMIT, IN with
automatic paging, full scan with automatic paging, SAI index paging) are not repeated.
"""

from __future__ import annotations

import pytest
from cassandra import InvalidRequest
from cassandra.query import SimpleStatement

FETCH_SIZES = (1, 2, 3, 7)


@pytest.fixture(scope="module")
def pg(session_for):
    from conftest import unique_name

    s = session_for(5)
    ks = unique_name("paging")
    s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute(f"CREATE TABLE {ks}.t (p int, c int, v int, s int static, PRIMARY KEY (p, c))")
    ins = s.prepare(f"INSERT INTO {ks}.t (p, c, v) VALUES (?, ?, ?)")
    # partition p has p + 1 rows (p = 0..9); v cycles 0..4
    for p in range(10):
        s.execute(f"UPDATE {ks}.t SET s = {p * 100} WHERE p = {p}")
        for c in range(p + 1):
            s.execute(ins, (p, c, (p + c) % 5))
    # a partition with only a static row
    s.execute(f"INSERT INTO {ks}.t (p, s) VALUES (42, 4200)")
    yield ks
    s.execute(f"DROP KEYSPACE {ks}")


def unpaged(session, query, params=None):
    return [tuple(r) for r in session.execute(SimpleStatement(query, fetch_size=None), params)]


def check_paging(session, query, params=None, expected_len=None):
    """`query` takes its parameters as %s (simple statements); prepared with ? markers."""
    full = unpaged(session, query, params)
    if expected_len is not None:
        assert len(full) == expected_len, full
    prepared = session.prepare(query.replace("%s", "?"))
    for fs in FETCH_SIZES:
        # automatic paging, simple and prepared
        auto = [tuple(r) for r in session.execute(SimpleStatement(query, fetch_size=fs), params)]
        assert auto == full, f"automatic paging, fetch_size={fs}: {query}"
        prepared.fetch_size = fs
        auto = [tuple(r) for r in session.execute(prepared, params)]
        assert auto == full, f"prepared automatic paging, fetch_size={fs}: {query}"

        # manual paging: each page's state handed back to a new statement later
        got, state, pages = [], None, 0
        while True:
            stmt = SimpleStatement(query, fetch_size=fs)
            rs = session.execute(stmt, params, paging_state=state)
            page = [tuple(r) for r in rs.current_rows]
            assert len(page) <= fs, f"page of {len(page)} rows > fetch_size {fs}: {query}"
            got.extend(page)
            pages += 1
            state = rs.paging_state
            if state is None:
                break
            assert pages <= len(full) + 2, f"paging does not end: {query}"
        assert got == full, f"manual paging, fetch_size={fs}: {query}"

        # the same through the prepared statement's bound form
        got, state = [], None
        while True:
            rs = session.execute(prepared, params, paging_state=state)
            got.extend(tuple(r) for r in rs.current_rows)
            state = rs.paging_state
            if state is None:
                break
        assert got == full, f"prepared manual paging, fetch_size={fs}: {query}"
    return full


@pytest.fixture(params=[4, 5], ids=["v4", "v5"])
def s(session_for, request):
    return session_for(request.param)


def test_in_on_partition_key_with_paging_state(s, pg):
    rows = check_paging(s, f"SELECT p, c, v FROM {pg}.t WHERE p IN (7, 2, 5)", expected_len=17)
    # partitions in IN order is not required, but rows within each are in clustering order
    assert sorted(rows) == [(p, c, (p + c) % 5) for p in (2, 5, 7) for c in range(p + 1)]
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE p IN (3, 6) AND c >= 2 AND c < 5",
                 expected_len=5)
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE p IN (4, 9) AND c IN (0, 3, 8)", expected_len=5)


def test_in_with_order_by_cannot_be_paged(s, pg):
    q = f"SELECT p, c FROM {pg}.t WHERE p IN (2, 3) ORDER BY c DESC"
    with pytest.raises(InvalidRequest, match="Cannot page queries with both ORDER BY and a IN restriction"):
        s.execute(SimpleStatement(q, fetch_size=2))
    # unpaged: merged by clustering across the partitions
    assert [r.c for r in s.execute(SimpleStatement(q, fetch_size=None))] == [3, 2, 2, 1, 1, 0, 0]
    # a LIMIT that fits in one page is allowed
    assert [r.c for r in s.execute(SimpleStatement(q + " LIMIT 3", fetch_size=5))] == [3, 2, 2]


def test_full_scan_with_paging_state_and_static_only_partition(s, pg):
    rows = check_paging(s, f"SELECT p, c, v, s FROM {pg}.t", expected_len=56)
    # the static-only partition appears once, with null clustering and regular columns
    assert [r for r in rows if r[0] == 42] == [(42, None, None, 4200)]
    # every other row carries its partition's static value
    assert all(r[3] == r[0] * 100 for r in rows)


def test_token_range_scan(s, pg):
    full = unpaged(s, f"SELECT p, token(p) FROM {pg}.t")
    pivot = sorted({t for _, t in full})[4]
    rows = check_paging(s, f"SELECT p, c FROM {pg}.t WHERE token(p) > %s AND token(p) <= %s",
                        (pivot, 2**63 - 1))
    assert {p for p, _ in rows} == {p for p, t in full if t > pivot}


def test_allow_filtering_sparse_matches(s, pg):
    # v = 0 matches about one row in five, scattered over partitions and pages
    rows = check_paging(s, f"SELECT p, c FROM {pg}.t WHERE v = 0 ALLOW FILTERING")
    assert sorted(rows) == sorted((p, c) for p in range(10) for c in range(p + 1) if (p + c) % 5 == 0)
    # filtering within one partition, and on a clustering column without the partition key
    check_paging(s, f"SELECT c, v FROM {pg}.t WHERE p = 9 AND v >= 1 AND v <= 2 ALLOW FILTERING",
                 expected_len=4)
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE c > 6 ALLOW FILTERING", expected_len=6)
    # no match at all: one empty page, no paging state
    rs = s.execute(SimpleStatement(f"SELECT p FROM {pg}.t WHERE v = 99 ALLOW FILTERING", fetch_size=3))
    assert rs.current_rows == [] and rs.paging_state is None


def test_limit_counts_across_pages(s, pg):
    rows = check_paging(s, f"SELECT p, c FROM {pg}.t LIMIT 13", expected_len=13)
    assert rows == unpaged(s, f"SELECT p, c FROM {pg}.t")[:13]
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE p IN (8, 9) LIMIT 11", expected_len=11)
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE v = 1 LIMIT 4 ALLOW FILTERING", expected_len=4)


def test_per_partition_limit(s, pg):
    rows = check_paging(s, f"SELECT p, c FROM {pg}.t PER PARTITION LIMIT 2")
    # 2 rows for p >= 1, 1 for p = 0, the static-only row for p = 42
    assert len(rows) == 2 * 9 + 1 + 1
    rows = check_paging(s, f"SELECT p, c FROM {pg}.t PER PARTITION LIMIT 3 LIMIT 10", expected_len=10)
    assert all(c is None or c < 3 for _, c in rows)
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE p IN (1, 5, 9) PER PARTITION LIMIT 4",
                 expected_len=2 + 4 + 4)
    check_paging(s, f"SELECT p, c FROM {pg}.t WHERE v = 2 PER PARTITION LIMIT 1 ALLOW FILTERING")


def test_distinct(s, pg):
    rows = check_paging(s, f"SELECT DISTINCT p, s FROM {pg}.t", expected_len=11)
    assert sorted(rows) == sorted([(p, p * 100) for p in range(10)] + [(42, 4200)])


def test_group_by_pages_count_groups(s, pg):
    rows = check_paging(s, f"SELECT p, count(*), max(v) FROM {pg}.t GROUP BY p")
    assert sorted(rows) == sorted([(p, p + 1, max((p + c) % 5 for c in range(p + 1))) for p in range(10)]
                                  + [(42, 1, None)])
    check_paging(s, f"SELECT p, c, count(*) FROM {pg}.t WHERE p IN (3, 8) GROUP BY p, c",
                 expected_len=13)
    rows = check_paging(s, f"SELECT p, count(*) FROM {pg}.t WHERE v = 3 GROUP BY p ALLOW FILTERING")
    assert sum(n for _, n in rows) == sum(1 for p in range(10) for c in range(p + 1) if (p + c) % 5 == 3)
    check_paging(s, f"SELECT p, count(*) FROM {pg}.t GROUP BY p LIMIT 4", expected_len=4)
    # the static-only partition is one row for count(*), as in SELECT *
    # an aggregate without GROUP BY is one row, whatever the page size
    for fs in FETCH_SIZES:
        rs = s.execute(SimpleStatement(f"SELECT count(*), sum(v) FROM {pg}.t", fetch_size=fs))
        assert [tuple(r) for r in rs] == [(56, sum((p + c) % 5 for p in range(10) for c in range(p + 1)))]


def test_limits_on_aggregates_count_result_rows(s, pg):
    """Cassandra applies LIMIT / PER PARTITION LIMIT of an aggregate query to its result rows:
    without GROUP BY the aggregate covers every row (the one result row fits any LIMIT), with
    GROUP BY they count groups (per partition for PER PARTITION LIMIT)."""
    assert s.execute(f"SELECT count(*) FROM {pg}.t LIMIT 1").one()[0] == 56
    assert s.execute(f"SELECT count(*) FROM {pg}.t PER PARTITION LIMIT 1").one()[0] == 56
    rows = [tuple(r) for r in s.execute(f"SELECT p, count(*) FROM {pg}.t WHERE p IN (3, 4, 5) GROUP BY p LIMIT 2")]
    assert len(rows) == 2 and set(rows) <= {(3, 4), (4, 5), (5, 6)}, rows
    rows = [tuple(r) for r in s.execute(
        f"SELECT p, c, count(*) FROM {pg}.t WHERE p IN (2, 6) GROUP BY p, c PER PARTITION LIMIT 2")]
    assert sorted(rows) == [(2, 0, 1), (2, 1, 1), (6, 0, 1), (6, 1, 1)]
