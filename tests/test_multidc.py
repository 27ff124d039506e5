"""Six nodes in two data centers (127.0.0.1-3 in dc1, 127.0.0.4-6 in dc2, one rack per node in
each DC): the driver sees every node's DC and rack, NetworkTopologyStrategy places replicas
where the driver's token map says, and EACH_QUORUM / LOCAL_QUORUM count per data center."""
import re

import pytest
from cassandra import ConsistencyLevel, Unavailable
from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT
from cassandra.metadata import Murmur3Token
from cassandra.policies import DCAwareRoundRobinPolicy, WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement

from conftest import wait_for
from sibyl_node import Node, free_port, run_sibyl


def wait_until(pred, what):
    wait_for(pred, timeout=30, interval=0.2, what=what)


def status_count(node, prefix):
    """How many nodes `sibyl status` run against `node` lists with this UN/DN prefix."""
    r = run_sibyl(["status", "--host", node.listen_address, "--port", str(node.storage_port)])
    return sum(1 for line in r.stdout.splitlines() if line.startswith(prefix))


@pytest.fixture(scope="module")
def six_nodes():
    native, storage = free_port("127.0.0.1"), free_port("127.0.0.1")
    nodes = [
        Node(name=f"m{i}", listen_address=f"127.0.0.{i}", native_port=native, storage_port=storage,
             seeds="127.0.0.1", extra_args=["--dc", "dc1" if i <= 3 else "dc2", "--rack", f"r{(i - 1) % 3 + 1}"])
        for i in range(1, 7)
    ]
    for n in nodes:
        n.start()
    yield nodes
    for n in nodes:
        n.cleanup(remove=True)


def connect(node, whitelist=None):
    policy = WhiteListRoundRobinPolicy(whitelist) if whitelist else DCAwareRoundRobinPolicy(local_dc="dc1")
    profile = ExecutionProfile(load_balancing_policy=policy)
    cluster = Cluster([node.listen_address], port=node.native_port, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster, cluster.connect()


def test_two_datacenters_placement_and_each_quorum(six_nodes):
    cluster, s = connect(six_nodes[0])
    try:
        # The DC-aware policy only connects to dc1; the driver still learns every node.
        wait_until(lambda: len(cluster.metadata.all_hosts()) == 6, what="6 hosts known")

        wait_until(lambda: all(status_count(n, "UN") == 6 for n in six_nodes[:3]), what="dc1 coordinators see 6 nodes up")
        hosts = {h.address: (h.datacenter, h.rack) for h in cluster.metadata.all_hosts()}
        assert hosts == {f"127.0.0.{i}": ("dc1" if i <= 3 else "dc2", f"r{(i - 1) % 3 + 1}") for i in range(1, 7)}
        s.execute("CREATE KEYSPACE md WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 2, 'dc2': 2}")
        s.execute("CREATE TABLE md.kv (k int PRIMARY KEY, v int)")
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=20)
        cluster.refresh_schema_metadata()

        # The node's placement (describering: the replicas it writes to) equals the driver's.
        r = run_sibyl(["describering", "md", "--port", str(six_nodes[0].storage_port)])
        assert r.returncode == 0, r.stderr
        ranges = re.findall(r"end_token:(-?\d+), endpoints:\[([^\]]*)\]", r.stdout)
        assert len(ranges) == 6 * 16
        tm = cluster.metadata.token_map
        for end, eps in ranges:
            ours = set(eps.split(", "))
            theirs = {h.address for h in tm.get_replicas("md", Murmur3Token(int(end)))}
            assert ours == theirs, end
            dcs = sorted(hosts[a][0] for a in ours)
            assert dcs == ["dc1", "dc1", "dc2", "dc2"]
            # Rack-aware: the two replicas of a DC sit on different racks.
            assert len({hosts[a] for a in ours}) == 4

        ins = s.prepare("INSERT INTO md.kv (k, v) VALUES (?, ?)")
        ins.consistency_level = ConsistencyLevel.EACH_QUORUM
        for k in range(100):
            s.execute(ins, (k, k))
        sel = SimpleStatement("SELECT v FROM md.kv WHERE k = %s", consistency_level=ConsistencyLevel.LOCAL_QUORUM)
        assert all(s.execute(sel, (k,)).one().v == k for k in range(100))

        # dc2 loses two of its three nodes: EACH_QUORUM cannot reach a quorum there for keys
        # whose dc2 replicas include a dead node, LOCAL_QUORUM in dc1 keeps working.
        six_nodes[4].kill()
        six_nodes[5].kill()
        # Every dc1 coordinator must see both down before it refuses up front.
        wait_until(lambda: all(status_count(n, "DN") == 2 for n in six_nodes[:3]), what="2 nodes seen down by dc1")
        failed = 0
        for k in range(100, 140):
            try:
                s.execute(ins, (k, k))
            except Unavailable as e:
                failed += 1
                assert e.consistency == ConsistencyLevel.EACH_QUORUM
                assert e.required_replicas == 2 and e.alive_replicas < 2
        assert failed == 40  # every dc2 pair includes 127.0.0.5 or .6 (only .4 is alive there)
        local = s.prepare("INSERT INTO md.kv (k, v) VALUES (?, ?)")
        local.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        for k in range(100, 140):
            s.execute(local, (k, k))
        assert all(s.execute(sel, (k,)).one().v == k for k in range(100, 140))
    finally:
        cluster.shutdown()
