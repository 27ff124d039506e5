"""Logged batches across partitions go through the batchlog: written to other nodes first, so
a batch whose coordinator dies after logging it is still applied, entirely, by replay."""
import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from cluster_helpers import connect, start_ring, wait_until


@pytest.fixture(scope="module")
def ring():
    # Node 1 dies right after it has written a batch to the batchlog, before applying it.
    nodes = start_ring("b", env=[{"SIBYL_FAULT_CRASH_AFTER_BATCHLOG": "1"}, {}, {}])
    yield nodes
    for n in nodes:
        n.cleanup(remove=True)


BATCH = "BEGIN BATCH " + " ".join(f"INSERT INTO bl.t (k, v) VALUES ({{base}} + {i}, 'v{i}');" for i in range(10)) + " APPLY BATCH"


def batchlog_files(nodes):
    return [f for n in nodes for f in (n.data_dir / "batchlog").glob("*.batch")]


def test_logged_batch_is_removed_from_the_batchlog_once_applied(ring):
    cluster, s = connect(ring[1], ["127.0.0.2"])
    try:
        s.execute("CREATE KEYSPACE bl WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 2}")
        s.execute("CREATE TABLE bl.t (k int PRIMARY KEY, v text)")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        s.execute(SimpleStatement(BATCH.format(base=0), consistency_level=ConsistencyLevel.QUORUM))
        q = SimpleStatement("SELECT k FROM bl.t WHERE k = %s", consistency_level=ConsistencyLevel.QUORUM)
        assert all(s.execute(q, (k,)).one() for k in range(10))
        wait_until(lambda: not batchlog_files(ring), timeout=10, what="batchlog entries removed")
    finally:
        cluster.shutdown()


def test_batch_of_a_coordinator_that_died_is_replayed_entirely(ring):
    n1, n2, _ = ring
    c1, s1 = connect(n1, ["127.0.0.1"])
    with pytest.raises(Exception):
        s1.execute(SimpleStatement(BATCH.format(base=100), consistency_level=ConsistencyLevel.QUORUM))
    c1.shutdown()
    n1.proc.wait(timeout=10)
    assert n1.proc.returncode != 0  # it really died
    # The batch sits in the batchlog of the other nodes.
    assert len(batchlog_files(ring[1:])) >= 1
    c2, s2 = connect(n2, ["127.0.0.2"])
    try:
        one = SimpleStatement("SELECT v FROM bl.t WHERE k = %s", consistency_level=ConsistencyLevel.ONE)
        # Replayed after twice the write timeout, to the replicas that are up (hints for node 1).
        wait_until(lambda: all(s2.execute(one, (100 + i,)).one().v == f"v{i}" for i in range(10)),
                   timeout=40, what="the batch replayed")
        wait_until(lambda: not batchlog_files(ring[1:]), timeout=10, what="replayed batch removed")
    finally:
        c2.shutdown()
    n1.env.pop("SIBYL_FAULT_CRASH_AFTER_BATCHLOG")
    n1.start()
