"""A 3-node cluster on 127.0.0.1-3 (same ports, own data dirs, like ccm): membership seen by the
driver, schema agreement, placement equal to the driver's token map, consistency levels with
Unavailable errors, and a node going down and coming back."""
import re
import shutil
import time

import pytest
from cassandra import ConsistencyLevel, Unavailable
from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement

from sibyl_node import Node, free_port, run_sibyl


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def three_nodes():
    native, storage = free_port("127.0.0.1"), free_port("127.0.0.1")
    nodes = [
        Node(name=f"c{i}", listen_address=f"127.0.0.{i}", native_port=native, storage_port=storage, seeds="127.0.0.1")
        for i in (1, 2, 3)
    ]
    for n in nodes:
        n.start()
    yield nodes
    for n in nodes:
        n.cleanup(remove=True)


def status_lines(node):
    r = run_sibyl(["status", "--host", node.listen_address, "--port", str(node.storage_port)])
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line[:2] in ("UN", "DN", "UJ", "DJ", "UL", "DL")]


def wipe_storage_and_restart(three_nodes):
    """Node 3 loses its data (identity and schema kept) and comes back empty; returns it once it
    and node 1 see all three nodes up."""
    n3 = three_nodes[2]
    n3.stop()
    shutil.rmtree(n3.data_dir / "storage")
    n3.start()
    wait_until(lambda: all(len(status_lines(n)) == 3 and all(line.startswith("UN") for line in status_lines(n)) for n in (three_nodes[0], n3)),
               timeout=30, what="node 3 back up and seeing the others")
    return n3


def connect(node, whitelist=None):
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy(whitelist or ["127.0.0.1", "127.0.0.2", "127.0.0.3"]))
    cluster = Cluster([node.listen_address], port=node.native_port, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster, cluster.connect()


def test_cluster_membership_schema_and_placement(three_nodes):
    cluster, s = connect(three_nodes[0])
    try:
        wait_until(lambda: len([h for h in cluster.metadata.all_hosts() if h.is_up]) == 3, what="3 hosts up")
        # Every node's system.peers names the two others (gossip converged).
        for n in three_nodes:
            c2, s2 = connect(n, whitelist=[n.listen_address])
            try:
                wait_until(lambda: len(s2.execute("SELECT peer FROM system.peers").all()) == 2, what=f"peers of {n.listen_address}")
            finally:
                c2.shutdown()
        s.execute("CREATE KEYSPACE ring WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 2}")
        s.execute("CREATE TABLE ring.kv (k int PRIMARY KEY, v int)")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        ins = s.prepare("INSERT INTO ring.kv (k, v) VALUES (?, ?)")
        ins.consistency_level = ConsistencyLevel.ALL
        for k in range(60):
            s.execute(ins, (k, k * 10))
        # Every node coordinates reads of every key.
        for n in three_nodes:
            c2, s2 = connect(n, whitelist=[n.listen_address])
            try:
                q = SimpleStatement("SELECT k, v FROM ring.kv", consistency_level=ConsistencyLevel.ONE)
                assert sorted((r.k, r.v) for r in s2.execute(q)) == [(k, k * 10) for k in range(60)]
            finally:
                c2.shutdown()

        # `sibyl status` from node 1: three nodes up and normal, 16 tokens each, ownership ~100 %.
        st = status_lines(three_nodes[0])
        assert sorted(line.split()[1] for line in st) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        assert all(line.startswith("UN") and line.split()[4] == "16" for line in st)
        assert abs(sum(float(line.split()[5].rstrip("%")) for line in st) - 100.0) < 0.5
        # Nodes 2 and 3 chose their tokens against the ring they joined: balanced ownership.
        assert all(25.0 <= float(line.split()[5].rstrip("%")) <= 42.0 for line in st), st
        r = run_sibyl(["describering", "ring", "--host", "127.0.0.1", "--port", str(three_nodes[0].storage_port)])
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("TokenRange(") == 48 and r.stdout.count(", endpoints:[") == 48

        # Take node 3 down: keys it replicates lose ALL but keep ONE; the others keep ALL.
        three_nodes[2].kill()
        wait_until(lambda: any(line.startswith("DN") and " 127.0.0.3 " in line for line in status_lines(three_nodes[0])),
                   timeout=30, what="status shows node 3 down")
        sel = s.prepare("SELECT v FROM ring.kv WHERE k = ?")
        probe = next(k for k in range(60) if "127.0.0.3" in {h.address for h in cluster.metadata.get_replicas("ring", k.to_bytes(4, "big", signed=True))})

        def seen_down():
            sel.consistency_level = ConsistencyLevel.ALL
            try:
                s.execute(sel, (probe,))
                return False
            except Unavailable:
                return True
            except Exception:
                return False

        wait_until(seen_down, what="node 3 seen down by the coordinators")
        on_dead, elsewhere = 0, 0
        for k in range(60):
            replicas = {h.address for h in cluster.metadata.get_replicas("ring", k.to_bytes(4, "big", signed=True))}
            assert len(replicas) == 2
            sel.consistency_level = ConsistencyLevel.ALL
            if "127.0.0.3" in replicas:
                on_dead += 1
                with pytest.raises(Unavailable) as err:
                    s.execute(sel, (k,))
                assert err.value.required_replicas == 2 and err.value.alive_replicas == 1
                sel.consistency_level = ConsistencyLevel.ONE
                assert s.execute(sel, (k,)).one().v == k * 10
            else:
                elsewhere += 1
                assert s.execute(sel, (k,)).one().v == k * 10
        assert on_dead > 0 and elsewhere > 0

        # Writes while node 3 is down are hinted and handed off when it returns.
        upd = s.prepare("UPDATE ring.kv SET v = ? WHERE k = ?")
        upd.consistency_level = ConsistencyLevel.ONE
        for k in range(60):
            s.execute(upd, (k * 10 + 1, k))
        three_nodes[2].start()
        c3, s3 = connect(three_nodes[2], whitelist=["127.0.0.3"])
        try:
            one = s3.prepare("SELECT v FROM ring.kv WHERE k = ?")
            one.consistency_level = ConsistencyLevel.ONE

            def node3_caught_up():
                try:
                    return all(s3.execute(one, (k,)).one().v == k * 10 + 1 for k in range(60))
                except Exception:
                    return False

            wait_until(node3_caught_up, timeout=30, what="hints delivered to node 3")
        finally:
            c3.shutdown()
        sel.consistency_level = ConsistencyLevel.ALL
        assert all(s.execute(sel, (k,)).one().v == k * 10 + 1 for k in range(60))
    finally:
        cluster.shutdown()


def test_nts_replication_factor_expands_to_datacenters(three_nodes):
    cluster, s = connect(three_nodes[0])
    try:
        rs = s.execute("CREATE KEYSPACE nts WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}")
        assert not rs.response_future.warnings
        row = s.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'nts'").one()
        assert dict(row.replication) == {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "datacenter1": "3"}
        rs = s.execute("CREATE KEYSPACE nts4 WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 4}")
        assert any("higher than the number of nodes 3 for datacenter datacenter1" in w for w in rs.response_future.warnings or [])
    finally:
        cluster.shutdown()


def test_repair_heals_a_node_whose_data_was_wiped(three_nodes):
    """Node 3 loses its storage (identity and schema kept) and comes back empty; reads from it
    alone at ONE miss everything until `sibyl repair` exchanges the out-of-sync ranges."""
    cluster, s = connect(three_nodes[0], whitelist=["127.0.0.1"])
    try:
        s.execute("CREATE KEYSPACE rep WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
        s.execute("CREATE TABLE rep.t (k int, c int, v text, PRIMARY KEY (k, c))")
        ins = s.prepare("INSERT INTO rep.t (k, c, v) VALUES (?, ?, ?)")
        ins.consistency_level = ConsistencyLevel.ALL
        for k in range(50):
            for c in range(3):
                s.execute(ins, (k, c, f"v{k}-{c}"))
        # An already consistent keyspace needs no streaming.
        r = run_sibyl(["repair", "rep", "--port", str(three_nodes[0].storage_port)], timeout=120)
        assert r.returncode == 0, r.stderr
        assert ", 0 out of sync" in r.stdout and ", 0 partitions streamed" in r.stdout
        n3 = wipe_storage_and_restart(three_nodes)
        c3, s3 = connect(n3, whitelist=["127.0.0.3"])
        try:
            q = SimpleStatement("SELECT k, c, v FROM rep.t WHERE k = %s", consistency_level=ConsistencyLevel.ONE)
            assert sum(len(list(s3.execute(q, (k,)))) for k in range(50)) == 0
            r = run_sibyl(["repair", "rep", "--host", "127.0.0.3", "--port", str(n3.storage_port)], timeout=120)
            assert r.returncode == 0, r.stderr
            assert int(re.search(r"ranges, (\d+) out of sync", r.stdout).group(1)) > 0, r.stdout
            got = sorted((row.k, row.c, row.v) for k in range(50) for row in s3.execute(q, (k,)))
            assert got == [(k, c, f"v{k}-{c}") for k in range(50) for c in range(3)]
        finally:
            c3.shutdown()
        r = run_sibyl(["repair", "rep", "--port", str(three_nodes[0].storage_port)], timeout=120)
        assert r.returncode == 0 and ", 0 out of sync" in r.stdout, r.stdout + r.stderr
    finally:
        cluster.shutdown()


def test_range_scan_at_quorum_reads_several_replicas(three_nodes):
    """Node 3 comes back with its storage wiped. A full-table SELECT at QUORUM coordinated by
    node 3 still returns every row (each partition is read from a quorum of replicas) and
    read-repairs node 3, which then answers at ONE from its own data."""
    cluster, s = connect(three_nodes[0], whitelist=["127.0.0.1"])
    try:
        s.execute("CREATE KEYSPACE scanq WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
        s.execute("CREATE TABLE scanq.t (k int PRIMARY KEY, v int)")
        ins = s.prepare("INSERT INTO scanq.t (k, v) VALUES (?, ?)")
        ins.consistency_level = ConsistencyLevel.ALL
        for k in range(100):
            s.execute(ins, (k, k))
        n3 = wipe_storage_and_restart(three_nodes)
        c3, s3 = connect(n3, whitelist=["127.0.0.3"])
        try:
            one = s3.prepare("SELECT v FROM scanq.t WHERE k = ?")
            one.consistency_level = ConsistencyLevel.ONE
            assert sum(1 for k in range(100) if s3.execute(one, (k,)).one() is not None) == 0
            q = SimpleStatement("SELECT k, v FROM scanq.t", consistency_level=ConsistencyLevel.QUORUM, fetch_size=17)
            assert sorted((r.k, r.v) for r in s3.execute(q)) == [(k, k) for k in range(100)]
            wait_until(lambda: all(s3.execute(one, (k,)).one() is not None for k in range(100)), what="read repair of node 3")
        finally:
            c3.shutdown()
    finally:
        cluster.shutdown()


def test_sai_and_ann_gather_from_every_node(three_nodes):
    """RF 1 spreads rows over the three nodes: an indexed query and an ANN query through one
    coordinator must gather candidates from every node's own index."""
    cluster, s = connect(three_nodes[0], whitelist=["127.0.0.1"])
    try:
        s.execute("CREATE KEYSPACE vs WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute("CREATE TABLE vs.t (id int PRIMARY KEY, grp int, v vector<float, 2>)")
        s.execute("CREATE CUSTOM INDEX t_grp ON vs.t (grp) USING 'StorageAttachedIndex'")
        s.execute("CREATE CUSTOM INDEX t_v ON vs.t (v) USING 'StorageAttachedIndex' WITH OPTIONS = {'similarity_function': 'euclidean'}")
        ins = s.prepare("INSERT INTO vs.t (id, grp, v) VALUES (?, ?, ?)")
        for i in range(300):
            s.execute(ins, [i, i % 3, [float(i), 0.0]])
        owners = {str(h.address) for i in range(300) for h in cluster.metadata.get_replicas("vs", ins.bind([i, 0, [0.0, 0.0]]).routing_key)}
        assert owners == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}

        def grp_complete():
            try:
                return sorted(r.id for r in s.execute("SELECT id FROM vs.t WHERE grp = 1")) == list(range(1, 300, 3))
            except Exception:
                return False
        wait_until(grp_complete, what="indexed query sees all nodes")
        def ann(q):
            try:
                return [r.id for r in s.execute(q)]
            except Exception:  # noqa: BLE001 - an index still building on some node
                return None
        wait_until(lambda: ann("SELECT id FROM vs.t ORDER BY v ANN OF [150.2, 0] LIMIT 5") == [150, 151, 149, 152, 148],
                   what="ANN gathers from all nodes")
        assert ann("SELECT id FROM vs.t WHERE grp = 2 ORDER BY v ANN OF [150.2, 0] LIMIT 3") == [149, 152, 146]
    finally:
        cluster.shutdown()


def test_bootstrap_streams_ranges_to_a_new_node(three_nodes):
    cluster, s = connect(three_nodes[0], whitelist=["127.0.0.1"])
    fourth = None
    try:
        s.execute("CREATE KEYSPACE boot WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute("CREATE TABLE boot.kv (k int PRIMARY KEY, v text)")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        ins = s.prepare("INSERT INTO boot.kv (k, v) VALUES (?, ?)")
        ins.consistency_level = ConsistencyLevel.ALL
        for k in range(300):
            s.execute(ins, (k, f"v{k}"))
        n1 = three_nodes[0]
        fourth = Node(name="c4", listen_address="127.0.0.4", native_port=n1.native_port, storage_port=n1.storage_port, seeds="127.0.0.1")
        fourth.start()
        wait_until(lambda: len(s.execute("SELECT peer FROM system.peers").all()) == 3, what="node 4 in node 1's peers")
        # RF 1: keys now owned by node 4 are readable only if it streamed them when joining.
        sel = s.prepare("SELECT v FROM boot.kv WHERE k = ?")
        sel.consistency_level = ConsistencyLevel.ONE
        owned = 0
        for k in range(300):
            row = s.execute(sel, (k,)).one()
            assert row is not None and row.v == f"v{k}", k
        c4, s4 = connect(fourth, whitelist=["127.0.0.4"])
        try:
            owned = len(s4.execute("SELECT k FROM boot.kv").all())
        finally:
            c4.shutdown()
        assert owned == 300
        # Decommission node 4: its ranges go back to the others before it leaves (RF 1, so a
        # key it did not hand over would be lost).
        s.execute("CREATE KEYSPACE IF NOT EXISTS rf4 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 4}")
        r = run_sibyl(["decommission", "--host", "127.0.0.4", "--port", str(fourth.storage_port)], timeout=120)
        assert r.returncode == 2 and "Not enough live nodes to maintain replication factor in keyspace" in r.stderr
        for ks in ("rf4", "nts4"):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        r = run_sibyl(["decommission", "--host", "127.0.0.4", "--port", str(fourth.storage_port)], timeout=120)
        assert r.returncode == 0, r.stderr
        assert "Decommissioned" in r.stdout
        wait_until(lambda: len(s.execute("SELECT peer FROM system.peers").all()) == 2, what="node 4 gone from node 1's peers")
        assert sorted(line.split()[1] for line in status_lines(three_nodes[0])) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        fourth.stop()
        for k in range(300):
            row = s.execute(sel, (k,)).one()
            assert row is not None and row.v == f"v{k}", k
    finally:
        cluster.shutdown()
        if fourth is not None:
            fourth.cleanup(remove=True)


def test_removenode_replaces_a_dead_nodes_replicas(three_nodes):
    """A fourth node joins, takes replicas of an RF 2 keyspace, and dies for good: `sibyl
    removenode` copies its ranges from the surviving replicas to the nodes that take them over,
    so every key is again readable at ALL from the three others."""
    cluster, s = connect(three_nodes[0], whitelist=["127.0.0.1"])
    n1 = three_nodes[0]
    fourth = Node(name="c4r", listen_address="127.0.0.4", native_port=n1.native_port, storage_port=n1.storage_port, seeds="127.0.0.1")
    try:
        fourth.start()
        wait_until(lambda: len(status_lines(n1)) == 4 and all(line.startswith("UN") for line in status_lines(n1)), what="node 4 up")
        s.execute("CREATE KEYSPACE rm WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 2}")
        s.execute("CREATE TABLE rm.kv (k int PRIMARY KEY, v int)")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        ins = s.prepare("INSERT INTO rm.kv (k, v) VALUES (?, ?)")
        ins.consistency_level = ConsistencyLevel.ALL
        for k in range(200):
            s.execute(ins, (k, k))
        host_id = next(line.split()[-2] for line in status_lines(n1) if " 127.0.0.4 " in line)
        r = run_sibyl(["removenode", host_id, "--port", str(n1.storage_port)])
        assert r.returncode == 2 and "is alive and owns this ID. Use decommission command" in r.stderr
        fourth.kill()
        wait_until(lambda: any(line.startswith("DN") and " 127.0.0.4 " in line for line in status_lines(n1)), what="node 4 down")
        r = run_sibyl(["removenode", host_id, "--port", str(n1.storage_port)], timeout=120)
        assert r.returncode == 0, r.stderr
        assert "partition copies streamed" in r.stdout
        assert sorted(line.split()[1] for line in status_lines(n1)) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        for n in three_nodes:
            wait_until(lambda: len(status_lines(n)) == 3, what=f"{n.listen_address} forgets node 4")
        wait_until(lambda: len(s.execute("SELECT peer FROM system.peers").all()) == 2, what="node 4 gone from peers")
        # Before any read could repair them: every range's replicas already agree.
        for n in three_nodes:
            r = run_sibyl(["repair", "rm", "--host", n.listen_address, "--port", str(n.storage_port)], timeout=120)
            assert r.returncode == 0 and ", 0 out of sync" in r.stdout, r.stdout + r.stderr
        sel = s.prepare("SELECT v FROM rm.kv WHERE k = ?")
        sel.consistency_level = ConsistencyLevel.ALL
        for k in range(200):
            row = s.execute(sel, (k,)).one()
            assert row is not None and row.v == k, k
    finally:
        cluster.shutdown()
        fourth.cleanup(remove=True)
