"""Deletions travel with the data: repair and bootstrap stream partitions as stored, tombstones
included, so a replica that missed a delete is repaired instead of resurrecting the row."""
import re
import time

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from cluster_helpers import connect, start_ring, up_count, wait_until
from sibyl_node import run_sibyl


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    # A short hint window (cassandra.yaml's max_hint_window) for the hint window test.
    config = tmp_path_factory.mktemp("conf") / "sibyl.yaml"
    config.write_text("max_hint_window: 3s\n")
    nodes = start_ring("s", extra_args=["--config", str(config)])
    yield nodes
    for n in nodes:
        n.cleanup(remove=True)


def test_repair_carries_deletions_a_replica_missed(ring):
    n1, _, n3 = ring
    cluster, s = connect(n1, ["127.0.0.1"])
    try:
        s.execute("CREATE KEYSPACE st WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
        s.execute("CREATE TABLE st.t (k int, c int, v text, PRIMARY KEY (k, c))")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        ins = s.prepare("INSERT INTO st.t (k, c, v) VALUES (?, ?, ?)")
        ins.consistency_level = ConsistencyLevel.ALL
        for k in range(20):
            for c in range(3):
                s.execute(ins, (k, c, "x"))
        # Node 3 is down while rows, a clustering range and a cell are deleted; the hints the
        # coordinator kept for it are thrown away, so only repair can tell it.
        n3.stop()
        wait_until(lambda: up_count(n1) == 2, what="node 3 seen down")
        q = lambda text: SimpleStatement(text, consistency_level=ConsistencyLevel.QUORUM)
        for k in range(0, 20, 2):
            s.execute(q(f"DELETE FROM st.t WHERE k = {k}"))
        s.execute(q("DELETE FROM st.t WHERE k = 1 AND c >= 1"))
        s.execute(q("DELETE v FROM st.t WHERE k = 3 AND c = 0"))
        for hints in (n1.data_dir / "hints").glob("*.hints"):
            hints.unlink()
        n3.start()
        wait_until(lambda: up_count(n1) == 3 and up_count(n3) == 3, what="node 3 back")
        c3, s3 = connect(n3, ["127.0.0.3"])
        try:
            one = SimpleStatement("SELECT k, c, v FROM st.t WHERE k = %s", consistency_level=ConsistencyLevel.ONE)
            rows = lambda: sorted((r.k, r.c, r.v) for k in range(20) for r in s3.execute(one, (k,)))
            assert len(rows()) == 60  # node 3 alone still has everything
            r = run_sibyl(["repair", "st", "--host", "127.0.0.3", "--port", str(n3.storage_port)], timeout=120)
            assert r.returncode == 0, r.stderr
            assert int(re.search(r"ranges, (\d+) out of sync", r.stdout).group(1)) > 0, r.stdout
            expected = sorted(
                [(k, c, "x") for k in range(1, 20, 2) for c in range(3) if not (k == 1 and c >= 1) and not (k == 3 and c == 0)]
                + [(3, 0, None)]
            )
            assert rows() == expected
        finally:
            c3.shutdown()
        # Every replica now agrees: a second repair finds nothing to exchange.
        r = run_sibyl(["repair", "st", "--port", str(n1.storage_port)], timeout=120)
        assert r.returncode == 0 and ", 0 out of sync" in r.stdout, r.stdout + r.stderr
    finally:
        cluster.shutdown()


def test_no_hints_for_a_node_down_longer_than_the_hint_window(ring):
    n1, _, n3 = ring
    cluster, s = connect(n1, ["127.0.0.1"])
    try:
        s.execute("CREATE TABLE IF NOT EXISTS st.h (k int PRIMARY KEY, v int)")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        n3.stop()
        wait_until(lambda: up_count(n1) == 2, what="node 3 seen down")
        one = lambda text: SimpleStatement(text, consistency_level=ConsistencyLevel.ONE)
        s.execute(one("INSERT INTO st.h (k, v) VALUES (1, 1)"))  # inside the window: hinted
        time.sleep(4)
        s.execute(one("INSERT INTO st.h (k, v) VALUES (2, 2)"))  # beyond it: not hinted
        n3.start()
        wait_until(lambda: up_count(n1) == 3 and up_count(n3) == 3, what="node 3 back")
        c3, s3 = connect(n3, ["127.0.0.3"])
        try:
            q = SimpleStatement("SELECT v FROM st.h WHERE k = %s", consistency_level=ConsistencyLevel.ONE)
            wait_until(lambda: s3.execute(q, (1,)).one() is not None, what="the hinted write handed off")
            time.sleep(3)  # hint delivery runs every 2 s: the other write would be there by now
            assert s3.execute(q, (2,)).one() is None
        finally:
            c3.shutdown()
    finally:
        cluster.shutdown()
