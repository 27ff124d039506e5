"""Shared helpers for tests that run several sibyl nodes on 127.0.0.x (like ccm)."""
import threading
import time

from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT
from cassandra.policies import WhiteListRoundRobinPolicy

from sibyl_node import Node, free_port, run_sibyl


def wait_until(pred, timeout=30.0, what="condition"):
    """Polls `pred` until it is true; an exception counts as not yet."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def up_count(node):
    """How many nodes `sibyl status` on `node` shows Up and Normal."""
    r = run_sibyl(["status", "--host", node.listen_address, "--port", str(node.storage_port)])
    return sum(line.startswith("UN") for line in r.stdout.splitlines()) if r.returncode == 0 else 0


def connect(node, whitelist=None, timeout=10):
    """A driver session whose requests go only to `whitelist` (default: 127.0.0.1-3)."""
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy(whitelist or ["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
        request_timeout=timeout,
    )
    cluster = Cluster([node.listen_address], port=node.native_port, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster, cluster.connect()


def start_ring(prefix, count=3, extra_args=(), env=None):
    """Starts `count` nodes on 127.0.0.1..count sharing ports, seeded by the first, and waits
    until every node sees all of them up."""
    native, storage = free_port("127.0.0.1"), free_port("127.0.0.1")
    nodes = [
        Node(name=f"{prefix}{i}", listen_address=f"127.0.0.{i}", native_port=native, storage_port=storage,
             seeds="127.0.0.1", extra_args=list(extra_args))
        for i in range(1, count + 1)
    ]
    for n, e in zip(nodes, env or [{}] * count):
        n.env.update(e)
    for n in nodes:
        n.start()
    wait_until(lambda: all(up_count(n) == count for n in nodes), what=f"{count} nodes up everywhere")
    return nodes


def run_threads(target, args_list):
    """Runs `target(*args)` for each args tuple on its own thread and waits for all."""
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
