"""Connecting with the unmodified driver: protocol negotiation, system.local,
compression, concurrency, metadata without driver warnings."""

from __future__ import annotations

import ipaddress
import os
import logging
import uuid

import pytest

from cassandra import ProtocolVersion
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.connection import segment_codec_lz4

from conftest import new_cluster


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def driver_warnings():
    handler = ListHandler()
    logger = logging.getLogger("cassandra")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def relevant(records):
    """Driver warnings/errors other than the expected protocol downgrade
    (the driver starts at DSE_V2 and steps down: it logs that at WARNING
    against Apache Cassandra 5.0 too)."""
    out = []
    for r in records:
        msg = r.getMessage()
        if "Downgrading core protocol version" in msg:
            continue
        out.append(f"{r.name} {r.levelname}: {msg}")
    return out


def test_default_protocol_negotiates_down_to_v5(node, driver_warnings):
    c = new_cluster(node)  # no protocol_version: driver starts at DSE_V2 (0x42)
    try:
        s = c.connect()
        assert c.protocol_version == ProtocolVersion.V5 == 5
        row = s.execute("SELECT release_version FROM system.local").one()
        assert row.release_version
        downgrades = [r.getMessage() for r in driver_warnings
                      if "Downgrading core protocol version" in r.getMessage()]
        # 66 -> 65 -> 5 (v6 is beta and skipped by the driver)
        assert any("from 66 to 65" in m for m in downgrades), downgrades
        assert any("from 65 to 5" in m for m in downgrades), downgrades
        assert relevant(driver_warnings) == []
    finally:
        c.shutdown()


@pytest.mark.parametrize("version", [4, 5])
def test_explicit_protocol_version(node, version, driver_warnings):
    c = new_cluster(node, protocol_version=version)
    try:
        s = c.connect()
        assert c.protocol_version == version
        conn = c.control_connection._connection
        assert conn.protocol_version == version
        row = s.execute("SELECT cluster_name FROM system.local WHERE key = 'local'").one()
        assert row.cluster_name == "Test Cluster"
        # no downgrade may have happened with an explicit version
        assert [r.getMessage() for r in driver_warnings] == []
    finally:
        c.shutdown()


def test_system_local(session, node):
    row = session.execute("SELECT * FROM system.local").one()
    assert row is not None
    assert row.key == "local"
    assert row.cluster_name == "Test Cluster"
    assert row.data_center == "datacenter1"
    assert row.rack == "rack1"
    assert row.partitioner == "org.apache.cassandra.dht.Murmur3Partitioner"
    assert row.cql_version == "3.4.7"
    assert row.release_version and row.release_version.startswith("5.0"), row.release_version
    assert row.native_protocol_version == "5"
    assert row.bootstrapped == "COMPLETED"
    assert isinstance(row.host_id, uuid.UUID)
    assert isinstance(row.schema_version, uuid.UUID)
    assert str(row.rpc_address) == node.listen_address
    assert str(row.broadcast_address) == node.listen_address
    assert str(row.listen_address) == node.listen_address
    assert row.rpc_port == node.native_port
    tokens = row.tokens
    assert tokens is not None and len(tokens) == 16, tokens
    values = {int(t) for t in tokens}
    assert len(values) == 16
    assert all(-(2 ** 63) <= v < 2 ** 63 for v in values)


def test_system_local_where_key_and_peers_empty(session):
    rows = list(session.execute("SELECT key, cluster_name FROM system.local WHERE key = 'local'"))
    assert [(r.key, r.cluster_name) for r in rows] == [("local", "Test Cluster")]
    # a single node has no peers (the driver reads both tables)
    assert list(session.execute("SELECT * FROM system.peers")) == []
    assert list(session.execute("SELECT * FROM system.peers_v2")) == []


def test_driver_metadata_of_the_node(cluster, node):
    md = cluster.metadata
    assert md.cluster_name == "Test Cluster"
    assert md.partitioner == "org.apache.cassandra.dht.Murmur3Partitioner"
    hosts = md.all_hosts()
    assert len(hosts) == 1
    host = hosts[0]
    assert host.is_up
    assert host.datacenter == "datacenter1"
    assert host.rack == "rack1"
    assert str(host.release_version).startswith("5.0")
    assert host.endpoint.address == node.listen_address
    assert md.token_map is not None
    assert len(md.token_map.ring) == 16


def test_metadata_keyspaces_without_warnings(node, driver_warnings):
    c = new_cluster(node, protocol_version=5)
    try:
        c.connect()
        ks = c.metadata.keyspaces
        for name in ("system", "system_schema"):
            assert name in ks, sorted(ks)
        # the tables the driver itself reads must be described
        schema_tables = ks["system_schema"].tables
        for t in ("keyspaces", "tables", "columns", "types", "functions", "aggregates",
                  "indexes", "triggers", "views", "dropped_columns"):
            assert t in schema_tables, sorted(schema_tables)
        assert "local" in ks["system"].tables
        assert "peers" in ks["system"].tables
        # refresh again explicitly: still no parse warnings
        c.refresh_schema_metadata()
        c.metadata.export_schema_as_string()
        assert relevant(driver_warnings) == []
    finally:
        c.shutdown()


@pytest.mark.parametrize("version", [4, 5])
def test_lz4_compression(node, version, driver_warnings):
    c = new_cluster(node, protocol_version=version, compression="lz4")
    try:
        s = c.connect()
        conn = c.control_connection._connection
        assert conn._compression_type == "lz4"
        assert conn.compressor is not None
        if version == 5:
            # v5: compression happens on the segment layer
            assert conn._segment_codec is segment_codec_lz4
        ks = f"lz4_v{version}"
        s.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE IF NOT EXISTS {ks}.t (k int PRIMARY KEY, v text)")
        big = "x" * 200_000 + "y" * 100_000  # compressible, crosses v5 segment size (128 KiB)
        ins = s.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        for k in range(20):
            s.execute(ins, (k, f"{k}:{big}"))
        rows = {r.k: r.v for r in s.execute(f"SELECT k, v FROM {ks}.t")}
        assert len(rows) == 20
        assert all(v == f"{k}:{big}" for k, v in rows.items())
        s.execute(f"DROP KEYSPACE {ks}")
        assert relevant(driver_warnings) == []
    finally:
        c.shutdown()


def test_execute_concurrent_500(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.c (k int, c int, v text, PRIMARY KEY (k, c))")
    ins = session.prepare(f"INSERT INTO {ks}.c (k, c, v) VALUES (?, ?, ?)")
    args = [(i % 10, i, f"v{i}") for i in range(500)]
    results = execute_concurrent_with_args(session, ins, args, concurrency=100,
                                           raise_on_first_error=False)
    failures = [r.result_or_exc for r in results if not r.success]
    assert failures == []
    # 500 concurrent reads through simple statements
    stmts = [(f"SELECT v FROM {ks}.c WHERE k = %s AND c = %s", (i % 10, i)) for i in range(500)]
    results = execute_concurrent(session, stmts, concurrency=100, raise_on_first_error=False)
    assert all(r.success for r in results), [r.result_or_exc for r in results if not r.success][:3]
    got = [r.result_or_exc.one().v for r in results]
    assert got == [f"v{i}" for i in range(500)]


def test_many_async_futures(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.a (k int PRIMARY KEY, v bigint)")
    ins = session.prepare(f"INSERT INTO {ks}.a (k, v) VALUES (?, ?)")
    futures = [session.execute_async(ins, (i, i * 1000)) for i in range(600)]
    for f in futures:
        f.result()
    sel = session.prepare(f"SELECT v FROM {ks}.a WHERE k = ?")
    futures = [session.execute_async(sel, (i,)) for i in range(600)]
    values = [f.result().one().v for f in futures]
    assert values == [i * 1000 for i in range(600)]
    count = session.execute(f"SELECT count(*) FROM {ks}.a").one()[0]
    assert count == 600


def test_use_keyspace_and_connect_with_keyspace(node, fresh_keyspace):
    c = new_cluster(node, protocol_version=5)
    try:
        s = c.connect(fresh_keyspace)
        assert s.keyspace == fresh_keyspace
        s.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
        s.execute("INSERT INTO t (k, v) VALUES (1, 2)")
        assert s.execute("SELECT v FROM t WHERE k = 1").one().v == 2
        s.execute("USE system")
        assert s.execute("SELECT key FROM local").one().key == "local"
    finally:
        c.shutdown()


def test_rpc_address_is_an_ip(session, node):
    row = session.execute("SELECT rpc_address, listen_address FROM system.local").one()
    assert ipaddress.ip_address(str(row.rpc_address)) == ipaddress.ip_address(node.listen_address)


def test_node_runs_without_transparent_huge_pages(node, session):
    # Fresh huge pages are zeroed 2 MiB at a time inside whichever request first touches
    # them: the node turns them off for itself (multi-millisecond stalls otherwise).
    session.execute("SELECT release_version FROM system.local")
    status = open(f"/proc/{node.proc.pid}/status").read()
    line = next((l for l in status.splitlines() if l.startswith("THP_enabled:")), None)
    if line is None:
        pytest.skip("kernel does not report THP_enabled")
    assert line.split()[1] == "0", line


def test_background_threads_run_at_idle_priority(node, session):
    # Flushes, compactions and commit log syncs only take CPU time requests leave over.
    session.execute("SELECT release_version FROM system.local")
    policies = {}
    for task in os.listdir(f"/proc/{node.proc.pid}/task"):
        try:
            comm = open(f"/proc/{node.proc.pid}/task/{task}/comm").read().strip()
            stat = open(f"/proc/{node.proc.pid}/task/{task}/stat").read()
        except FileNotFoundError:
            continue
        # Fields after the parenthesised name; the policy is field 41 of the whole line.
        fields = stat[stat.rindex(")") + 2 :].split()
        policies.setdefault(comm, set()).add(int(fields[41 - 3]))
    SCHED_IDLE = 5
    assert policies.get("sibyl-flush") == {SCHED_IDLE}, policies
    assert policies.get("sibyl-compactio") == {SCHED_IDLE}, policies
    request_threads = policies.get("tokio-rt-worker", set())
    assert request_threads and SCHED_IDLE not in request_threads, policies
