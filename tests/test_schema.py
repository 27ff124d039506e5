"""DDL and schema metadata as the driver sees it (system_schema tables, schema
change events, export_as_string round trip, restart)."""

from __future__ import annotations

import uuid

import pytest

from cassandra import AlreadyExists, InvalidRequest

from conftest import new_cluster, unique_name, wait_for


def schema_version(session) -> uuid.UUID:
    return session.execute("SELECT schema_version FROM system.local WHERE key = 'local'").one().schema_version


def ks_meta(cluster, ks):
    cluster.refresh_schema_metadata()
    return cluster.metadata.keyspaces[ks]


# -------------------------------------------------------------- keyspaces
def test_create_keyspace_simple_strategy(session, cluster):
    ks = unique_name("ss")
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    try:
        row = session.execute(
            "SELECT keyspace_name, durable_writes, replication FROM system_schema.keyspaces "
            "WHERE keyspace_name = %s", (ks,)).one()
        assert row is not None
        assert row.durable_writes is True
        assert dict(row.replication) == {
            "class": "org.apache.cassandra.locator.SimpleStrategy",
            "replication_factor": "1",
        }
        md = cluster.metadata.keyspaces[ks]
        assert md.durable_writes is True
        assert md.replication_strategy.replication_factor == 1
        assert type(md.replication_strategy).__name__ == "SimpleStrategy"
        assert f"CREATE KEYSPACE {ks} WITH replication = " in md.export_as_string()
    finally:
        session.execute(f"DROP KEYSPACE {ks}")
    assert ks not in cluster.metadata.keyspaces


def test_create_keyspace_nts_durable_writes_false(session, cluster):
    ks = unique_name("nts")
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                    "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1} "
                    "AND durable_writes = false")
    try:
        row = session.execute(
            "SELECT durable_writes, replication FROM system_schema.keyspaces "
            "WHERE keyspace_name = %s", (ks,)).one()
        assert row.durable_writes is False
        assert dict(row.replication) == {
            "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
            "datacenter1": "1",
        }
        md = cluster.metadata.keyspaces[ks]
        assert md.durable_writes is False
        assert type(md.replication_strategy).__name__ == "NetworkTopologyStrategy"
        assert md.replication_strategy.dc_replication_factors == {"datacenter1": 1}
        # the keyspace works
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v int)")
        session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 1)")
        assert session.execute(f"SELECT v FROM {ks}.t WHERE k = 1").one().v == 1
    finally:
        session.execute(f"DROP KEYSPACE {ks}")


def test_keyspace_if_not_exists_and_errors(session):
    ks = unique_name("ine")
    create = (f"CREATE KEYSPACE {ks} WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(create)
    try:
        with pytest.raises(AlreadyExists) as ei:
            session.execute(create)
        assert ei.value.keyspace == ks
        assert not ei.value.table
        # IF NOT EXISTS on an existing keyspace: no error, nothing changes
        session.execute(create.replace("CREATE KEYSPACE", "CREATE KEYSPACE IF NOT EXISTS"))
    finally:
        session.execute(f"DROP KEYSPACE {ks}")
    with pytest.raises(InvalidRequest):
        session.execute(f"DROP KEYSPACE {ks}")
    session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
    with pytest.raises(InvalidRequest):
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY)")
    with pytest.raises(InvalidRequest):
        session.execute(f"USE {ks}")


def test_table_errors(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v int)")
    with pytest.raises(AlreadyExists) as ei:
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v int)")
    assert ei.value.keyspace == ks and ei.value.table == "t"
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.t (k int PRIMARY KEY, w text)")
    with pytest.raises(InvalidRequest):
        session.execute(f"DROP TABLE {ks}.missing")
    session.execute(f"DROP TABLE IF EXISTS {ks}.missing")
    with pytest.raises(InvalidRequest):
        session.execute(f"SELECT * FROM {ks}.missing")
    with pytest.raises(InvalidRequest):
        session.execute(f"INSERT INTO {ks}.t (k, nope) VALUES (1, 1)")
    with pytest.raises(InvalidRequest):
        session.execute(f"DROP TYPE {ks}.missing")
    session.execute(f"DROP TYPE IF EXISTS {ks}.missing")


# ----------------------------------------------------- tables and types
BIG_TABLE = """
CREATE TABLE {ks}.big (
    a int,
    b text,
    c timestamp,
    d bigint,
    s text static,
    l list<int>,
    fl frozen<list<text>>,
    st set<uuid>,
    fst frozen<set<int>>,
    m map<text, int>,
    fm frozen<map<int, text>>,
    tp tuple<int, text, double>,
    u frozen<addr>,
    un addr,
    v text,
    PRIMARY KEY ((a, b), c, d)
) WITH CLUSTERING ORDER BY (c ASC, d DESC) AND comment = 'big table'
"""

EXPECTED_TYPES = {
    "a": "int",
    "b": "text",
    "c": "timestamp",
    "d": "bigint",
    "s": "text",
    "l": "list<int>",
    "fl": "frozen<list<text>>",
    "st": "set<uuid>",
    "fst": "frozen<set<int>>",
    "m": "map<text, int>",
    "fm": "frozen<map<int, text>>",
    # tuples are always frozen: Cassandra's CQL3Type.Tuple prints frozen<tuple<...>>
    "tp": "frozen<tuple<int, text, double>>",
    "u": "frozen<addr>",
    "un": "addr",
    "v": "text",
}


def check_big_table(table):
    assert [c.name for c in table.partition_key] == ["a", "b"]
    assert [c.name for c in table.clustering_key] == ["c", "d"]
    assert table.columns["c"].is_reversed is False
    assert table.columns["d"].is_reversed is True
    assert table.columns["s"].is_static is True
    assert table.columns["v"].is_static is False
    types = {name: col.cql_type for name, col in table.columns.items()}
    assert types == EXPECTED_TYPES
    assert table.options["comment"] == "big table"
    # the primary key order is the column order of the metadata
    assert list(table.columns)[:4] == ["a", "b", "c", "d"]


def test_create_table_metadata_and_export_roundtrip(session, cluster, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TYPE {ks}.addr (street text, zip int)")
    session.execute(BIG_TABLE.format(ks=ks))

    rows = session.execute(
        "SELECT column_name, kind, position, clustering_order, type FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = 'big'", (ks,))
    cols = {r.column_name: r for r in rows}
    assert (cols["a"].kind, cols["a"].position) == ("partition_key", 0)
    assert (cols["b"].kind, cols["b"].position) == ("partition_key", 1)
    assert (cols["c"].kind, cols["c"].position, cols["c"].clustering_order) == ("clustering", 0, "asc")
    assert (cols["d"].kind, cols["d"].position, cols["d"].clustering_order) == ("clustering", 1, "desc")
    assert (cols["s"].kind, cols["s"].position, cols["s"].clustering_order) == ("static", -1, "none")
    assert (cols["v"].kind, cols["v"].position) == ("regular", -1)
    assert cols["d"].type == "bigint"

    table = ks_meta(cluster, ks).tables["big"]
    check_big_table(table)
    ut = cluster.metadata.keyspaces[ks].user_types["addr"]
    assert ut.field_names == ["street", "zip"]
    assert ut.field_types == ["text", "int"]

    exported = table.export_as_string()
    assert "CREATE TABLE" in exported and "CLUSTERING ORDER BY (c ASC, d DESC)" in exported

    session.execute(f"DROP TABLE {ks}.big")
    assert "big" not in ks_meta(cluster, ks).tables
    # the driver's own DDL (with every table option Cassandra reports) must be accepted
    for stmt in [s for s in exported.split(";\n") if s.strip()]:
        session.execute(stmt)
    table2 = ks_meta(cluster, ks).tables["big"]
    check_big_table(table2)
    assert table2.export_as_string() == exported

    # the table works after the round trip
    session.execute(
        f"INSERT INTO {ks}.big (a, b, c, d, s, l, m, u, tp) VALUES "
        "(1, 'x', '2024-01-02 03:04:05+0000', 7, 'stat', [1, 2], {'k': 1}, "
        "{street: 'Main', zip: 12345}, (1, 'one', 1.5))")
    row = session.execute(f"SELECT s, l, m, u, tp FROM {ks}.big WHERE a = 1 AND b = 'x'").one()
    assert row.s == "stat" and row.l == [1, 2] and dict(row.m) == {"k": 1}
    assert (row.u.street, row.u.zip) == ("Main", 12345)
    assert row.tp == (1, "one", 1.5)


def test_alter_table_and_type(session, cluster, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TYPE {ks}.addr (street text, zip int)")
    session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v int, a frozen<addr>)")
    session.execute(f"INSERT INTO {ks}.t (k, v, a) VALUES (1, 10, {{street: 's', zip: 1}})")

    v0 = schema_version(session)
    session.execute(f"ALTER TABLE {ks}.t ADD w text")
    v1 = schema_version(session)
    assert v1 != v0
    assert ks_meta(cluster, ks).tables["t"].columns["w"].cql_type == "text"
    session.execute(f"UPDATE {ks}.t SET w = 'hello' WHERE k = 1")
    assert session.execute(f"SELECT w FROM {ks}.t WHERE k = 1").one().w == "hello"

    session.execute(f"ALTER TABLE {ks}.t ADD (x int, y set<text>)")
    cols = ks_meta(cluster, ks).tables["t"].columns
    assert cols["x"].cql_type == "int" and cols["y"].cql_type == "set<text>"

    session.execute(f"ALTER TABLE {ks}.t DROP v")
    v2 = schema_version(session)
    assert v2 not in (v0, v1)
    assert "v" not in ks_meta(cluster, ks).tables["t"].columns
    with pytest.raises(InvalidRequest):
        session.execute(f"SELECT v FROM {ks}.t")
    # dropped columns are recorded like Cassandra does
    dropped = list(session.execute(
        "SELECT column_name, type FROM system_schema.dropped_columns "
        "WHERE keyspace_name = %s AND table_name = 't'", (ks,)))
    assert [(r.column_name, r.type) for r in dropped] == [("v", "int")]

    session.execute(f"ALTER TABLE {ks}.t WITH comment = 'altered'")
    assert ks_meta(cluster, ks).tables["t"].options["comment"] == "altered"
    with pytest.raises(InvalidRequest):
        session.execute(f"ALTER TABLE {ks}.t ADD w int")  # already exists
    with pytest.raises(InvalidRequest):
        session.execute(f"ALTER TABLE {ks}.t DROP k")  # primary key column

    session.execute(f"ALTER TYPE {ks}.addr ADD country text")
    ut = ks_meta(cluster, ks).user_types["addr"]
    assert ut.field_names == ["street", "zip", "country"]
    assert ut.field_types == ["text", "int", "text"]
    row = session.execute(f"SELECT a FROM {ks}.t WHERE k = 1").one()
    assert (row.a.street, row.a.zip, row.a.country) == ("s", 1, None)

    # a type in use cannot be dropped
    with pytest.raises(InvalidRequest):
        session.execute(f"DROP TYPE {ks}.addr")
    session.execute(f"DROP TABLE {ks}.t")
    session.execute(f"DROP TYPE {ks}.addr")
    md = ks_meta(cluster, ks)
    assert "t" not in md.tables and "addr" not in md.user_types


def test_schema_version_changes_after_each_ddl(session, fresh_keyspace):
    ks = fresh_keyspace
    seen = [schema_version(session)]
    for stmt in [
        f"CREATE TABLE {ks}.sv (k int PRIMARY KEY)",
        f"ALTER TABLE {ks}.sv ADD v int",
        f"CREATE TYPE {ks}.ty (f int)",
        f"DROP TYPE {ks}.ty",
        f"DROP TABLE {ks}.sv",
    ]:
        session.execute(stmt)
        v = schema_version(session)
        # (Cassandra's digest covers mutation timestamps too, so it never repeats;
        # what clients rely on is that every change moves the version)
        assert v != seen[-1], stmt
        seen.append(v)


def test_schema_change_events_reach_another_client(node, session, fresh_keyspace):
    ks = fresh_keyspace
    other = new_cluster(node)
    try:
        other.connect()
        assert ks in other.metadata.keyspaces
        session.execute(f"CREATE TABLE {ks}.evt (k int PRIMARY KEY, v text)")
        # `other` did nothing: only a pushed SCHEMA_CHANGE event can make it refresh
        wait_for(lambda: "evt" in other.metadata.keyspaces[ks].tables, timeout=10,
                 what="table created elsewhere to appear in the second client's metadata")
        session.execute(f"ALTER TABLE {ks}.evt ADD w int")
        wait_for(lambda: "w" in other.metadata.keyspaces[ks].tables["evt"].columns, timeout=10,
                 what="altered column to appear")
        session.execute(f"CREATE TYPE {ks}.et (f int)")
        wait_for(lambda: "et" in other.metadata.keyspaces[ks].user_types, timeout=10,
                 what="type to appear")
        ks2 = unique_name("evks")
        session.execute(f"CREATE KEYSPACE {ks2} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        wait_for(lambda: ks2 in other.metadata.keyspaces, timeout=10, what="keyspace to appear")
        session.execute(f"DROP KEYSPACE {ks2}")
        wait_for(lambda: ks2 not in other.metadata.keyspaces, timeout=10, what="keyspace to vanish")
    finally:
        other.shutdown()


def test_rf_higher_than_nodes_warns(session):
    ks = unique_name("rf3")
    rs = session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                         "{'class': 'SimpleStrategy', 'replication_factor': 3}")
    try:
        warnings = rs.response_future.warnings or []
        # Cassandra 5.0 SimpleStrategy.maybeWarnOnOptions
        assert (f"Your replication factor 3 for keyspace {ks} is higher than the number of nodes 1"
                in warnings), warnings
    finally:
        session.execute(f"DROP KEYSPACE {ks}")

    ks = unique_name("rfnts")
    rs = session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                         "{'class': 'NetworkTopologyStrategy', 'datacenter1': 2}")
    try:
        warnings = rs.response_future.warnings or []
        # NetworkTopologyStrategy.maybeWarnOnOptions adds the datacenter
        assert any(w.startswith(f"Your replication factor 2 for keyspace {ks} is higher than "
                                "the number of nodes 1") for w in warnings), warnings
        assert any("datacenter1" in w for w in warnings), warnings
    finally:
        session.execute(f"DROP KEYSPACE {ks}")

    # no warning for RF 1
    ks = unique_name("rf1")
    rs = session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                         "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    try:
        assert not rs.response_future.warnings
    finally:
        session.execute(f"DROP KEYSPACE {ks}")


def test_schema_survives_restart(node_factory, make_cluster):
    n = node_factory()
    c = make_cluster(n)
    s = c.connect()
    ks = "restartks"
    s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
              "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1} AND durable_writes = true")
    s.execute(f"CREATE TYPE {ks}.addr (street text, zip int)")
    s.execute(BIG_TABLE.format(ks=ks))
    s.execute(f"CREATE TABLE {ks}.plain (k int PRIMARY KEY, v text) WITH comment = 'plain'")
    s.execute(f"ALTER TABLE {ks}.plain ADD extra int")
    s.execute(f"INSERT INTO {ks}.plain (k, v, extra) VALUES (1, 'one', 1)")
    before = ks_meta(c, ks).export_as_string()
    version_before = schema_version(s)
    c.shutdown()

    n.stop()  # SIGTERM: exit 0 asserted
    n.start()

    c2 = make_cluster(n)
    s2 = c2.connect()
    md = c2.metadata.keyspaces[ks]
    check_big_table(md.tables["big"])
    assert md.export_as_string() == before
    assert schema_version(s2) == version_before
    assert s2.execute(f"SELECT v, extra FROM {ks}.plain WHERE k = 1").one() == ("one", 1)
