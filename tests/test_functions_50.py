"""Cassandra 5.0 functions and ALTER forms: collection_* functions, masking functions,
format_bytes/format_time, timestamp/date arithmetic with durations, and ALTER TABLE/TYPE
ADD IF NOT EXISTS / DROP IF EXISTS / RENAME IF EXISTS."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cassandra import InvalidRequest
from cassandra.util import Date


@pytest.fixture
def tbl(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(
        f"CREATE TABLE {ks}.f (pk int, ck int, ts timestamp, d date, l list<int>, "
        f"s set<text>, fs set<double>, m map<text, int>, txt text, a ascii, b bigint, "
        f"PRIMARY KEY (pk, ck))")
    session.execute(
        f"INSERT INTO {ks}.f (pk, ck, ts, d, l, s, fs, m, txt, a, b) VALUES (1, 1, "
        f"'2016-09-27 16:10:00+0000', '2016-10-04', [3, 1, 2], {{'b', 'a'}}, {{1.5, 2.5}}, "
        f"{{'x': 1}}, 'hello', 'abc', 1048577)")
    session.execute(f"INSERT INTO {ks}.f (pk, ck) VALUES (1, 2)")
    return f"{ks}.f"


def one(session, q):
    return session.execute(q).one()


# ------------------------------------------------------------ collection functions
def test_collection_min_max_sum_avg(session, tbl):
    """collection_min/max over a list or set give the smallest/largest element (element
    type); collection_sum/avg over numeric sets/lists keep the element type (avg of ints
    truncates); null collections give null."""
    r = one(session, f"SELECT collection_min(l), collection_max(l), collection_sum(l), "
                     f"collection_avg(l), collection_min(s), collection_max(s), "
                     f"collection_sum(fs), collection_avg(fs) FROM {tbl} WHERE pk = 1 AND ck = 1")
    assert tuple(r) == (1, 3, 6, 2, "a", "b", 4.0, 2.0)
    assert r._fields[0] == "system_collection_min_l"
    r = one(session, f"SELECT collection_min(l), collection_sum(l) FROM {tbl} WHERE pk = 1 AND ck = 2")
    assert tuple(r) == (None, None)


def test_collection_functions_reject_wrong_types(session, tbl):
    """Cassandra: collection_min needs a set or list, collection_sum a numeric one, and a
    wrong argument count names the function's signature."""
    with pytest.raises(InvalidRequest, match="requires a set or list argument, but found argument m of type map<text, int>"):
        session.execute(f"SELECT collection_min(m) FROM {tbl}")
    with pytest.raises(InvalidRequest, match="requires a numeric set/list argument, but found argument s of type set<text>"):
        session.execute(f"SELECT collection_sum(s) FROM {tbl}")
    with pytest.raises(InvalidRequest, match="Invalid number of arguments for function system.collection_max"):
        session.execute(f"SELECT collection_max(l, l) FROM {tbl}")


# ------------------------------------------------------------ masking functions
def test_masking_functions(session, tbl):
    """mask_null gives null; mask_default the type's masked value ('****', 0, epoch, empty
    collection); mask_replace the replacement; mask_inner/mask_outer pad all but / only the
    first m and last n characters ('*' or the given padding); mask_hash the SHA-256 (or
    named algorithm) digest of the serialized value as a blob."""
    r = one(session, f"SELECT mask_null(txt), mask_default(txt), mask_default(b), mask_default(d), "
                     f"mask_default(l), mask_replace(txt, 'zz'), mask_replace(b, 7), "
                     f"mask_inner(txt, 1, 2), mask_outer(txt, 1, 2), mask_inner(a, 0, 0, '#'), "
                     f"mask_hash(txt), mask_hash(txt, 'MD5'), mask_hash(txt, 'SHA-1'), mask_hash(txt, 'SHA-512') "
                     f"FROM {tbl} WHERE pk = 1 AND ck = 1")
    assert r[0] is None
    assert r[1] == "****" and r[2] == 0 and r[3] == Date(0) and r[4] == []
    assert r[5] == "zz" and r[6] == 7
    assert r[7] == "h**lo" and r[8] == "*el**" and r[9] == "###"
    assert r[10] == hashlib.sha256(b"hello").digest()
    assert r[11] == hashlib.md5(b"hello").digest()
    assert r[12] == hashlib.sha1(b"hello").digest()
    assert r[13] == hashlib.sha512(b"hello").digest()
    # a null value stays null except for mask_default / mask_replace
    r = one(session, f"SELECT mask_inner(txt, 1, 1), mask_hash(txt), mask_default(txt) FROM {tbl} WHERE pk = 1 AND ck = 2")
    assert tuple(r) == (None, None, "****")


def test_masking_function_errors(session, tbl):
    """Cassandra's messages: a multi-character padding, a non-string argument to
    mask_inner, and an unknown hash algorithm are invalid requests."""
    with pytest.raises(InvalidRequest, match="The padding argument for function system.mask_inner should be single-character, but 'ab' has 2 characters."):
        session.execute(f"SELECT mask_inner(txt, 1, 1, 'ab') FROM {tbl} WHERE pk = 1")
    with pytest.raises(InvalidRequest, match=r"requires an argument of type \[text\|varchar\|ascii\], but found argument b of type bigint"):
        session.execute(f"SELECT mask_outer(b, 1, 1) FROM {tbl}")
    with pytest.raises(InvalidRequest, match="Hash algorithm not found: nope"):
        session.execute(f"SELECT mask_hash(txt, 'nope') FROM {tbl} WHERE pk = 1")


# ------------------------------------------------------------ format functions
def test_format_bytes_and_format_time(session, tbl):
    """format_bytes picks the largest unit the value exceeds (or converts between B, KiB,
    MiB, GiB, rounding down); format_time does the same from milliseconds over d, h, m, s."""
    r = one(session, f"SELECT format_bytes(b), format_bytes(b, 'KiB'), format_bytes(b, 'MiB', 'B'), "
                     f"format_time(b), format_time(b, 's'), format_time(b, 'm', 'h'), "
                     f"format_bytes(1024), format_time(59999) FROM {tbl} WHERE pk = 1 AND ck = 1")
    assert tuple(r) == ("1 MiB", "1024 KiB", "1099512676352 B", "17 m", "1048 s", "17476 h",
                        "1024 B", "59 s")
    with pytest.raises(InvalidRequest, match="Unsupported data storage unit: abc. Supported units are: B, KiB, MiB, GiB"):
        session.execute(f"SELECT format_bytes(b, 'abc') FROM {tbl} WHERE pk = 1")
    with pytest.raises(InvalidRequest, match="unable to convert string 'hello' to a value of type long"):
        session.execute(f"SELECT format_bytes(txt) FROM {tbl} WHERE pk = 1 AND ck = 1")
    with pytest.raises(InvalidRequest, match=r"Invalid number of arguments for function system.format_time"):
        session.execute(f"SELECT format_time() FROM {tbl}")


# ------------------------------------------------------------ date arithmetic
def test_timestamp_and_date_plus_minus_duration_in_selectors(session, tbl):
    """Cassandra 4+/5.0: timestamp ± duration and date ± duration in the select list
    (months move by calendar month), keeping the temporal type."""
    r = one(session, f"SELECT ts - 10m, ts + 1d, ts - 1mo, d - 2d, d + 1y2mo FROM {tbl} WHERE pk = 1 AND ck = 1")
    assert r[0] == datetime.datetime(2016, 9, 27, 16, 0)
    assert r[1] == datetime.datetime(2016, 9, 28, 16, 10)
    assert r[2] == datetime.datetime(2016, 8, 27, 16, 10)
    assert r[3] == Date(datetime.date(2016, 10, 2))
    assert r[4] == Date(datetime.date(2017, 12, 4))


def test_duration_arithmetic_in_where_and_errors(session, fresh_keyspace):
    """As Cassandra's OperationFctsTest: `time > ? - 5m` on a timestamp clustering column,
    `time >= ? + 1d` on a date; other operators with a duration, a sub-millisecond duration
    on a timestamp and a sub-day duration on a date are refused with Cassandra's messages."""
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.ts (pk int, time timestamp, v int, PRIMARY KEY (pk, time))")
    for i, t in enumerate(["16:10", "16:12", "16:14", "16:15", "16:21", "16:22"], 1):
        session.execute(f"INSERT INTO {ks}.ts (pk, time, v) VALUES (1, '2016-09-27 {t}:00+0000', {i})")
    at = datetime.datetime(2016, 9, 27, 16, 20)
    rows = session.execute(f"SELECT v FROM {ks}.ts WHERE pk = 1 AND time > %s - 5m", [at])
    assert [r.v for r in rows] == [5, 6]
    ps = session.prepare(f"SELECT v FROM {ks}.ts WHERE pk = 1 AND time >= ? - 10m")
    assert [r.v for r in session.execute(ps, [datetime.datetime(2016, 9, 27, 16, 25)])] == [4, 5, 6]
    assert [r.v for r in session.execute(
        f"SELECT v FROM {ks}.ts WHERE pk = 1 AND time >= '2016-09-27 16:15:00+0000' + 5m")] == [5, 6]
    for op in "*/%":
        with pytest.raises(InvalidRequest, match=f"the '\\{op}' operation is not supported between time and 10m"):
            session.execute(f"SELECT time {op} 10m FROM {ks}.ts WHERE pk = 1")
    with pytest.raises(InvalidRequest, match="the operation 'timestamp - duration' failed: The duration must have a millisecond precision. Was: 10us"):
        session.execute(f"SELECT * FROM {ks}.ts WHERE pk = 1 AND time > %s - 10us", [at])

    session.execute(f"CREATE TABLE {ks}.dt (pk int, time date, v int, PRIMARY KEY (pk, time))")
    for i, d in enumerate(["09-27", "09-28", "09-29", "09-30", "10-01", "10-04"], 1):
        session.execute(f"INSERT INTO {ks}.dt (pk, time, v) VALUES (1, '2016-{d}', {i})")
    assert [r.v for r in session.execute(
        f"SELECT v FROM {ks}.dt WHERE pk = 1 AND time > '2016-10-04' - 5d")] == [4, 5, 6]
    assert [r.v for r in session.execute(
        f"SELECT v FROM {ks}.dt WHERE pk = 1 AND time >= '2016-10-01' + 1d")] == [6]
    with pytest.raises(InvalidRequest, match="the operation 'date - duration' failed: The duration must have a day precision. Was: 10m"):
        session.execute(f"SELECT * FROM {ks}.dt WHERE pk = 1 AND time > '2016-10-04' - 10m")


# ------------------------------------------------------------ ALTER ... IF [NOT] EXISTS
def test_alter_table_column_if_exists_flags(session, fresh_keyspace):
    """Cassandra: ADD IF NOT EXISTS skips columns that exist (adding the others), DROP IF
    EXISTS and RENAME IF EXISTS skip missing columns; without the flags the same
    statements are refused with Cassandra's messages."""
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.a (k int, c int, v int, PRIMARY KEY (k, c))")
    session.execute(f"ALTER TABLE {ks}.a ADD IF NOT EXISTS v int")
    session.execute(f"ALTER TABLE {ks}.a ADD IF NOT EXISTS (v int, w text)")
    session.execute(f"INSERT INTO {ks}.a (k, c, v, w) VALUES (1, 1, 1, 'x')")
    with pytest.raises(InvalidRequest, match="Column with name 'v' already exists"):
        session.execute(f"ALTER TABLE {ks}.a ADD v int")
    session.execute(f"ALTER TABLE {ks}.a DROP IF EXISTS nope")
    session.execute(f"ALTER TABLE {ks}.a DROP IF EXISTS (nope, w)")
    with pytest.raises(InvalidRequest, match="Column nope was not found in table a"):
        session.execute(f"ALTER TABLE {ks}.a DROP nope")
    session.execute(f"ALTER TABLE {ks}.a RENAME IF EXISTS nope TO x AND c TO c2")
    with pytest.raises(InvalidRequest, match="Column nope was not found in table a"):
        session.execute(f"ALTER TABLE {ks}.a RENAME nope TO x")
    row = one(session, f"SELECT * FROM {ks}.a")
    assert row._fields == ("k", "c2", "v") and tuple(row) == (1, 1, 1)


def test_alter_type_if_exists_flags(session, fresh_keyspace):
    """Cassandra: ALTER TYPE ADD IF NOT EXISTS of an existing field and RENAME IF EXISTS of
    a missing one are no-ops; without the flags they are refused."""
    ks = fresh_keyspace
    session.execute(f"CREATE TYPE {ks}.addr (street text)")
    session.execute(f"ALTER TYPE {ks}.addr ADD IF NOT EXISTS street text")
    session.execute(f"ALTER TYPE {ks}.addr RENAME IF EXISTS nope TO x")
    with pytest.raises(InvalidRequest, match="a field with name street already exists"):
        session.execute(f"ALTER TYPE {ks}.addr ADD street text")
    session.execute(f"ALTER TYPE {ks}.addr ADD IF NOT EXISTS zip int")
    rows = session.execute(
        "SELECT field_names FROM system_schema.types WHERE keyspace_name = %s AND type_name = 'addr'", [ks])
    assert list(rows.one().field_names) == ["street", "zip"]


def test_token_of_values_on_the_right_hand_side(session, fresh_keyspace):
    """`token(pk) > token(value)` compares with the token of a key written as its components,
    as Cassandra allows for paging by hand."""
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.tk (a int, b text, v int, PRIMARY KEY ((a, b)))")
    for i in range(20):
        session.execute(f"INSERT INTO {ks}.tk (a, b, v) VALUES (%s, %s, %s)", [i, f"x{i}", i])
    pivot = session.execute(f"SELECT token(a, b) FROM {ks}.tk WHERE a = 7 AND b = 'x7'").one()[0]
    got = sorted(r.v for r in session.execute(f"SELECT v FROM {ks}.tk WHERE token(a, b) > token(7, 'x7')"))
    expected = sorted(r.v for r in session.execute(f"SELECT v, token(a, b) AS t FROM {ks}.tk") if r.t > pivot)
    assert got == expected and 0 < len(got) < 20
    with pytest.raises(InvalidRequest, match="Invalid number of arguments in call to function system.token"):
        session.execute(f"SELECT v FROM {ks}.tk WHERE token(a, b) > token(7)")


def test_float_literal_with_integer_column_is_double(session, fresh_keyspace):
    """`b * 2.5` on a bigint column: the literal is a double, so is the result (varint mixed
    with a floating-point value gives a decimal)."""
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.ar (k int PRIMARY KEY, b bigint, i int)")
    session.execute(f"INSERT INTO {ks}.ar (k, b, i) VALUES (1, 4, 3)")
    rs = session.execute(f"SELECT b * 2.5, i + 0.5, b * 2 FROM {ks}.ar WHERE k = 1")
    assert [t.typename for t in rs.column_types] == ["double", "double", "bigint"]
    assert tuple(rs.one()) == (10.0, 3.5, 8)


def test_writetime_ttl_on_collections_and_maxwritetime(session, fresh_keyspace):
    """Cassandra 5.0: writetime()/ttl() of a non-frozen collection give one value per element
    (or of one element, `writetime(m['k'])`);
    maxwritetime() gives the newest timestamp of any cell of the column, simple or not. (An
    element without TTL is a null inside the list, which the Python driver cannot decode, so
    the TTL case uses elements that all have one.)"""
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.wt (k int PRIMARY KEY, l list<int>, s set<text>, t list<int>, v int)")
    session.execute(f"INSERT INTO {ks}.wt (k, l, s, v) VALUES (1, [1, 2], {{'a'}}, 5) USING TIMESTAMP 100")
    session.execute(f"UPDATE {ks}.wt USING TIMESTAMP 200 AND TTL 1000 SET l = l + [3], s = s + {{'b'}}, t = [7, 8] WHERE k = 1")
    r = session.execute(f"SELECT writetime(l), writetime(s), ttl(t), maxwritetime(l), maxwritetime(v), writetime(t) "
                        f"FROM {ks}.wt WHERE k = 1").one()
    assert r[0] == [100, 100, 200]
    assert r[1] == [100, 200]
    assert len(r[2]) == 2 and all(990 <= x <= 1000 for x in r[2])
    assert r[3] == 200 and r[4] == 100
    assert r[5] == [200, 200]
    # One element: writetime(s['b']), writetime(l[2]), ttl(t[0]); a missing element is null.
    r = session.execute(f"SELECT writetime(s['a']), writetime(s['b']), writetime(l[0]), writetime(l[2]), "
                        f"ttl(t[0]), ttl(l[0]), writetime(s['zz']), writetime(l[9]) FROM {ks}.wt WHERE k = 1").one()
    assert (r[0], r[1], r[2], r[3]) == (100, 200, 100, 200)
    assert 990 <= r[4] <= 1000 and r[5] is None
    assert r[6] is None and r[7] is None
    session.execute(f"CREATE TABLE {ks}.wm (k int PRIMARY KEY, m map<text, int>, f frozen<set<int>>)")
    session.execute(f"INSERT INTO {ks}.wm (k, m) VALUES (1, {{'x': 1}}) USING TIMESTAMP 300")
    session.execute(f"UPDATE {ks}.wm USING TIMESTAMP 400 SET m['y'] = 2 WHERE k = 1")
    r = session.execute(f"SELECT writetime(m['x']), writetime(m['y']) FROM {ks}.wm WHERE k = 1").one()
    assert tuple(r) == (300, 400)
    with pytest.raises(InvalidRequest, match="not a non-frozen collection"):
        session.execute(f"SELECT writetime(f[1]) FROM {ks}.wm")
    session.execute(f"INSERT INTO {ks}.wt (k, l) VALUES (2, [])")
    assert tuple(session.execute(f"SELECT writetime(l), maxwritetime(l) FROM {ks}.wt WHERE k = 2").one()) == (None, None)
    with pytest.raises(InvalidRequest, match="Cannot use selection function maxwritetime on PRIMARY KEY part k"):
        session.execute(f"SELECT maxwritetime(k) FROM {ks}.wt")


def test_division_by_zero_is_a_function_failure(session, fresh_keyspace):
    """Cassandra runs operators as system functions (_divide, _modulo): a failure is a
    FunctionFailure (code 0x1400) naming the function and argument types, with the message
    "the operation 'int / int' failed: / by zero"; the connection keeps working."""
    from cassandra import FunctionFailure
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.z (k int PRIMARY KEY, a int, b int, c bigint)")
    session.execute(f"INSERT INTO {ks}.z (k, a, b, c) VALUES (1, 7, 0, 0)")
    with pytest.raises(FunctionFailure) as e:
        session.execute(f"SELECT a / b FROM {ks}.z WHERE k = 1")
    assert (e.value.keyspace, e.value.function, e.value.arg_types) == ("system", "_divide", ["int", "int"])
    assert "the operation 'int / int' failed: / by zero" in str(e.value)
    with pytest.raises(FunctionFailure) as e:
        session.execute(f"SELECT a % c FROM {ks}.z WHERE k = 1")
    assert e.value.function == "_modulo" and e.value.arg_types == ["int", "bigint"]
    assert one(session, f"SELECT a / 7 AS q FROM {ks}.z WHERE k = 1").q == 1
